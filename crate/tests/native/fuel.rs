//! Fuel: every loop iteration pays, bulk operations pay per byte, the count is deterministic,
//! and the host's `out_of_fuel` is how the guest is stopped or continued.

use nestbox::native::InstrumentConfig;
use wasmi::Val;

use crate::harness::{Ended, Run, config, fixture, instrument, wat};

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let meta = instrument(&fixture("infinite_loop"), &config());
    let mut run = Run::instrumented(&meta, 1_000_000, 10_000).expect("instantiates");
    assert_eq!(run.call("spin", &[]).err(), Some(Ended::OutOfFuel));
    let host = run.store.data();
    assert_eq!(host.budget, 0, "the whole budget was handed out");
    // One call per slice, and one more that found the budget spent.
    assert_eq!(host.out_of_fuel_calls, 1_000_000 / 10_000 + 1);
}

#[test]
fn a_loop_back_edge_always_charges() {
    // The body of the loop is only `br`: 1 fuel an iteration.
    let meta = instrument(&fixture("count_loop"), &config());
    let mut run = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("instantiates");
    run.call("count", &[Val::I32(1_000)]).expect("runs");
    let thousand = run.consumed(config().start_fuel);
    let mut run = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("instantiates");
    run.call("count", &[Val::I32(2_000)]).expect("runs");
    let two_thousand = run.consumed(config().start_fuel);
    // Per iteration: loop block (local.get ×2, i32.ge_u, br_if) + the rest (local.get,
    // i32.const, i32.add, local.set, br) = 4 + 5.
    assert_eq!(two_thousand - thousand, 1_000 * 9);
}

#[test]
fn fuel_is_deterministic_and_slice_independent() {
    let meta = instrument(&fixture("native_mix"), &config());
    let mut seen = Vec::new();
    for slice in [1, 7, 1_000, 1 << 30] {
        let mut run = Run::instrumented(&meta, 1 << 40, slice).expect("instantiates");
        let before = run.consumed(config().start_fuel);
        run.call("fib", &[Val::I32(15)]).expect("fib");
        run.call("sum_to", &[Val::I32(1_000)]).expect("sum_to");
        run.call("fill_and_copy", &[Val::I32(4_096)]).expect("fill");
        seen.push(run.consumed(config().start_fuel) - before);
        // The same call twice on one instance costs the same.
        let a = run.consumed(config().start_fuel);
        run.call("fib", &[Val::I32(15)]).expect("fib");
        let b = run.consumed(config().start_fuel);
        run.call("fib", &[Val::I32(15)]).expect("fib");
        let c = run.consumed(config().start_fuel);
        assert_eq!(b - a, c - b, "slice {slice}");
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
}

#[test]
fn memory_fill_charges_in_proportion_to_its_length() {
    let bytes = wat(r#"(module (memory 16)
      (func (export "fill") (param i32) (memory.fill (i32.const 0) (i32.const 1) (local.get 0))))"#);
    let meta = instrument(&bytes, &config());
    let cost = |len: i32| {
        let mut run = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("instantiates");
        let before = run.consumed(config().start_fuel);
        run.call("fill", &[Val::I32(len)]).expect("fill");
        run.consumed(config().start_fuel) - before
    };
    let (zero, small, large) = (cost(0), cost(64 * 10), cost(1 << 20));
    assert_eq!(small - zero, 10, "1 fuel per 64 bytes");
    assert_eq!(large - zero, (1 << 20) / 64);
    // With a budget below the fill's charge, the fill never runs.
    let mut run = Run::instrumented(&meta, 1_000, 1_000).expect("instantiates");
    assert_eq!(
        run.call("fill", &[Val::I32(1 << 20)]).err(),
        Some(Ended::OutOfFuel)
    );
}

#[test]
fn bulk_table_and_memory_growth_charge_dynamically() {
    let bytes = wat(r#"(module (memory 1 100) (table $t 1 funcref)
      (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
      (func (export "tgrow") (param i32) (result i32) (table.grow $t (ref.null func) (local.get 0)))
      (func (export "tfill") (param i32) (table.fill $t (i32.const 0) (ref.null func) (local.get 0))))"#);
    let meta = instrument(&bytes, &config());
    let cost = |export: &str, arg: i32| {
        let mut run = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("instantiates");
        let before = run.consumed(config().start_fuel);
        let _ = run.call(export, &[Val::I32(arg)]);
        run.consumed(config().start_fuel) - before
    };
    assert_eq!(
        cost("grow", 3) - cost("grow", 0),
        3 * 1_024,
        "1,024 fuel a page"
    );
    assert_eq!(
        cost("tgrow", 1_600) - cost("tgrow", 0),
        100,
        "1 fuel per 16 elements"
    );
    // A fill past the table traps, but it was charged first.
    assert_eq!(cost("tfill", 1_600) - cost("tfill", 0), 100);
}

#[test]
fn the_guest_continues_after_each_refill() {
    // A slice of 1: out_of_fuel at nearly every block, and the answer is still right.
    let meta = instrument(&fixture("native_mix"), &config());
    let mut run = Run::instrumented(&meta, 1 << 40, 1).expect("instantiates");
    let results = run.call("fib", &[Val::I32(12)]).expect("fib");
    assert!(matches!(results[..], [Val::I32(144)]));
    assert!(run.store.data().out_of_fuel_calls > 100);
}

#[test]
fn a_start_function_has_exactly_the_start_fuel() {
    let looping = fixture("start_loops");
    let config = InstrumentConfig {
        start_fuel: 10_000,
        ..config()
    };
    let meta = instrument(&looping, &config);
    assert!(matches!(
        Run::instrumented(&meta, 1 << 40, 1 << 20),
        Err(Ended::OutOfFuel)
    ));
    // The start function of native_mix costs 2 and runs within any positive start fuel.
    let meta = instrument(
        &fixture("native_mix"),
        &InstrumentConfig {
            start_fuel: 2,
            ..config
        },
    );
    let mut run = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("instantiates");
    assert!(matches!(
        run.call("started", &[]).expect("runs")[..],
        [Val::I32(7)]
    ));
}

#[test]
fn declared_locals_are_charged_at_entry() {
    let bytes = wat(r#"(module
      (func $few (local i32) nop)
      (func $many (local i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64 i64) nop)
      (func (export "few") (call $few))
      (func (export "many") (call $many)))"#);
    let meta = instrument(&bytes, &config());
    let cost = |export: &str| {
        let mut run = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("instantiates");
        let before = run.consumed(config().start_fuel);
        run.call(export, &[]).expect("runs");
        run.consumed(config().start_fuel) - before
    };
    assert_eq!(cost("many") - cost("few"), 16 / 8);
}

#[test]
fn an_endless_loop_whose_header_is_free_still_runs_out() {
    // The header block (`block`, `end`) costs nothing and the `br` after it is not a checked
    // block: the loop header must check anyway, or this loop would never refuel.
    let bytes = wat(r#"(module (func (export "spin") (loop (block) (br 0))))"#);
    let meta = instrument(&bytes, &config());
    let mut run = Run::instrumented(&meta, 10_000, 100).expect("instantiates");
    assert_eq!(run.call("spin", &[]).err(), Some(Ended::OutOfFuel));
    // It ran on its slices until the budget was gone: 10,000 fuel, one per iteration.
    assert!(run.store.data().out_of_fuel_calls >= 100);
}

#[test]
fn straight_line_code_may_overdraw_until_the_next_check() {
    // One entry check, then blocks that only subtract: the call finishes with the counter
    // below zero, and the overdraft is counted.
    let bytes = wat(
        r#"(module (func (export "branches") (param i32) (result i32)
      (if (result i32) (local.get 0) (then (i32.const 1)) (else (i32.const 2)))
      (i32.const 3) i32.add))"#,
    );
    let meta = instrument(&bytes, &config());
    let mut run = Run::instrumented(&meta, 1 << 20, 1).expect("instantiates");
    let before = run.consumed(config().start_fuel);
    assert!(matches!(
        run.call("branches", &[Val::I32(1)]).expect("runs")[..],
        [Val::I32(4)]
    ));
    assert!(
        run.fuel() < 0,
        "the blocks after the entry overdrew the slice of 1"
    );
    assert!(run.consumed(config().start_fuel) - before >= 4);
}

#[test]
fn a_growth_past_the_limit_fails_and_is_charged_at_most_the_limit() {
    // The interpreter answers -1 to a `memory.grow` of 2^32 - 1 pages; so must this tier,
    // not run out of fuel charging for 4 billion pages.
    let bytes = wat(r#"(module (memory 1)
      (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))"#);
    let meta = instrument(&bytes, &config());
    let limit_pages = config().max_memory_bytes / 65_536;
    let mut run = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("instantiates");
    let before = run.consumed(config().start_fuel);
    let got = run.call("grow", &[Val::I32(-1)]).expect("runs");
    assert!(matches!(got[..], [Val::I32(-1)]), "{got:?}");
    let charged = run.consumed(config().start_fuel) - before;
    assert!(charged >= limit_pages * 1_024, "{charged}");
    assert!(charged < limit_pages * 1_024 + 100, "{charged}");
}
