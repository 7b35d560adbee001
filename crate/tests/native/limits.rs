//! Memory and table maxima are clamped to the limits; minima over them are refused.

use nestbox::ErrorCode;
use nestbox::native::{self, InstrumentConfig};
use wasmi::Val;
use wasmparser::{Parser, Payload, TypeRef};

use crate::harness::{Run, config, fixture, instrument, wat};

/// A memory's or table's (minimum, maximum).
type Bounds = (u64, Option<u64>);

/// Every memory's and table's bounds, imports first.
fn limits_of(bytes: &[u8]) -> (Vec<Bounds>, Vec<Bounds>) {
    let (mut memories, mut tables) = (Vec::new(), Vec::new());
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.expect("parses") {
            Payload::ImportSection(r) => {
                for import in r {
                    match import.expect("import").ty {
                        TypeRef::Memory(m) => memories.push((m.initial, m.maximum)),
                        TypeRef::Table(t) => tables.push((t.initial, t.maximum)),
                        _ => {}
                    }
                }
            }
            Payload::MemorySection(r) => {
                for m in r {
                    let m = m.expect("memory");
                    memories.push((m.initial, m.maximum));
                }
            }
            Payload::TableSection(r) => {
                for t in r {
                    let t = t.expect("table").ty;
                    tables.push((t.initial, t.maximum));
                }
            }
            _ => {}
        }
    }
    (memories, tables)
}

#[test]
fn a_memory_declaring_65536_pages_of_maximum_is_clamped() {
    let bytes = wat(r#"(module (memory (export "memory") 1 65536)
      (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#);
    let meta = instrument(&bytes, &config());
    // 16 MiB = 256 pages.
    assert_eq!(limits_of(&meta.bytes).0, vec![(1, Some(256))]);
    let mut run = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("instantiates");
    assert!(matches!(
        run.call("grow", &[Val::I32(255)]).expect("grow")[..],
        [Val::I32(1)]
    ));
    assert!(matches!(
        run.call("grow", &[Val::I32(1)]).expect("grow")[..],
        [Val::I32(-1)]
    ));
}

#[test]
fn missing_maxima_are_set_and_smaller_ones_kept() {
    let bytes = wat(r#"(module
      (import "env" "mem" (memory 2))
      (table 1 funcref) (table 5 20 externref) (table 0 100000 funcref))"#);
    let meta = instrument(&bytes, &config());
    let (memories, tables) = limits_of(&meta.bytes);
    assert_eq!(memories, vec![(2, Some(256))], "an imported memory too");
    assert_eq!(
        tables,
        vec![(1, Some(10_000)), (5, Some(20)), (0, Some(10_000))]
    );
}

#[test]
fn growth_loops_stop_at_the_limits() {
    let meta = instrument(&fixture("grow_memory_loop"), &config());
    let mut run = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("instantiates");
    let pages = run.call("grow_until_refused", &[]).expect("runs");
    assert!(matches!(pages[..], [Val::I32(256)]), "{pages:?}");

    let meta = instrument(&fixture("grow_table_loop"), &config());
    let mut run = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("instantiates");
    let size = run.call("grow_until_refused", &[]).expect("runs");
    assert!(matches!(size[..], [Val::I32(10_000)]), "{size:?}");
}

#[test]
fn minima_over_the_limits_are_refused_with_the_limit_codes() {
    let e = native::instrument(&fixture("huge_memory"), &config()).expect_err("refused");
    assert_eq!(e.code(), ErrorCode::MemoryLimit, "{e}");
    assert_eq!(e.details().limit, Some(16 << 20));
    let e = native::instrument(&fixture("huge_table"), &config()).expect_err("refused");
    assert_eq!(e.code(), ErrorCode::TableLimit, "{e}");
    assert_eq!(e.details().limit, Some(10_000));
    let imported = wat(r#"(module (import "env" "t" (table 20000 funcref)))"#);
    let e = native::instrument(&imported, &config()).expect_err("refused");
    assert_eq!(e.code(), ErrorCode::TableLimit, "{e}");
    // At the limit exactly is allowed.
    let exact = wat("(module (memory 256))");
    assert_eq!(
        limits_of(&instrument(&exact, &config()).bytes).0,
        vec![(256, Some(256))]
    );
}

#[test]
fn a_limit_below_one_page_allows_no_memory_growth() {
    let config = InstrumentConfig {
        max_memory_bytes: 1000,
        ..config()
    };
    let zero = wat("(module (memory 0))");
    assert_eq!(
        limits_of(&instrument(&zero, &config).bytes).0,
        vec![(0, Some(0))]
    );
    let one = wat("(module (memory 1))");
    let e = native::instrument(&one, &config).expect_err("refused");
    assert_eq!(e.code(), ErrorCode::MemoryLimit);
}
