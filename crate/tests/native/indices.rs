//! The injected imports move every defined function's index up by two: calls, `ref.func`,
//! element segments, exports, the start function and the names all follow (the classic bug of
//! such passes).

use std::collections::BTreeMap;

use nestbox::native::{DEPTH_EXPORT, FUEL_EXPORT, IMPORT_MODULE};
use wasmi::Val;
use wasmparser::{ElementItems, ExternalKind, KnownCustom, Name, Parser, Payload, TypeRef};

use crate::harness::{Run, config, fixture, instrument, wat};

#[derive(Debug, Default, PartialEq)]
struct Shape {
    imports: Vec<(String, String)>,
    exports: BTreeMap<String, (ExternalKind, u32)>,
    start: Option<u32>,
    element_functions: Vec<u32>,
    function_names: BTreeMap<u32, String>,
    globals: u32,
    defined_functions: u32,
}

fn shape(bytes: &[u8]) -> Shape {
    let mut shape = Shape::default();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.expect("parses") {
            Payload::ImportSection(r) => {
                for i in r {
                    let i = i.expect("import");
                    if matches!(i.ty, TypeRef::Func(_)) {
                        shape.imports.push((i.module.to_owned(), i.name.to_owned()));
                    }
                }
            }
            Payload::ExportSection(r) => {
                for e in r {
                    let e = e.expect("export");
                    shape.exports.insert(e.name.to_owned(), (e.kind, e.index));
                }
            }
            Payload::GlobalSection(r) => shape.globals = r.count(),
            Payload::FunctionSection(r) => shape.defined_functions = r.count(),
            Payload::StartSection { func, .. } => shape.start = Some(func),
            Payload::ElementSection(r) => {
                for e in r {
                    if let ElementItems::Functions(fs) = e.expect("element").items {
                        for f in fs {
                            shape.element_functions.push(f.expect("index"));
                        }
                    }
                }
            }
            Payload::CustomSection(c) => {
                if let KnownCustom::Name(names) = c.as_known() {
                    for name in names {
                        if let Name::Function(map) = name.expect("name") {
                            for n in map {
                                let n = n.expect("naming");
                                shape.function_names.insert(n.index, n.name.to_owned());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    shape
}

#[test]
fn defined_functions_move_up_by_two_everywhere() {
    let bytes = fixture("native_mix");
    let before = shape(&bytes);
    let meta = instrument(&bytes, &config());
    let after = shape(&meta.bytes);

    assert_eq!(meta.guest_function_imports, 1);
    assert_eq!(
        (meta.out_of_fuel_function, meta.stack_overflow_function),
        (1, 2)
    );
    assert_eq!(
        after.imports,
        vec![
            ("env".to_owned(), "double".to_owned()),
            (IMPORT_MODULE.to_owned(), "out_of_fuel".to_owned()),
            (IMPORT_MODULE.to_owned(), "stack_overflow".to_owned()),
        ]
    );
    let moved = |i: u32| if i < 1 { i } else { i + 2 };
    for (name, (kind, index)) in &before.exports {
        let want = if *kind == ExternalKind::Func {
            moved(*index)
        } else {
            *index
        };
        assert_eq!(after.exports[name], (*kind, want), "export {name}");
    }
    assert_eq!(after.start, before.start.map(moved));
    assert_eq!(
        after.element_functions,
        before
            .element_functions
            .iter()
            .copied()
            .map(moved)
            .collect::<Vec<_>>()
    );
    assert!(!before.function_names.is_empty(), "the fixture has names");
    for (index, name) in &before.function_names {
        assert_eq!(
            after.function_names.get(&moved(*index)),
            Some(name),
            "name of {index}"
        );
    }
    // The injected globals come after the guest's three and are exported.
    assert_eq!((meta.fuel_global, meta.depth_global), (3, 4));
    assert_eq!(after.globals, 5);
    assert_eq!(after.exports[FUEL_EXPORT], (ExternalKind::Global, 3));
    assert_eq!(after.exports[DEPTH_EXPORT], (ExternalKind::Global, 4));
    // The refuel path is the last function: after the guest's import, the two injected ones
    // and the guest's defined functions.
    assert_eq!(meta.refuel_function, 1 + 2 + before.defined_functions);
    assert_eq!(after.defined_functions, before.defined_functions + 1);
}

#[test]
fn calls_through_shifted_indices_reach_the_right_function() {
    // Three imports and functions that call each other, through a table, through ref.func
    // and from a start function: a wrong shift calls the wrong one or fails validation.
    let bytes = wat(r#"(module
      (import "env" "double" (func $double (param i64) (result i64)))
      (import "env" "log" (func $log (param i32 i32)))
      (type $t (func (result i32)))
      (table 3 funcref)
      (elem (i32.const 0) func $one $two)
      (elem declare func $three)
      (global $g (mut i32) (i32.const 0))
      (func $one (result i32) (i32.const 1))
      (func $two (result i32) (i32.const 2))
      (func $three (result i32) (i32.const 3))
      (func $init (global.set $g (call $two)))
      (start $init)
      (func (export "via_table") (param i32) (result i32)
        (call_indirect (type $t) (local.get 0)))
      (func (export "via_ref") (result i32)
        (table.set (i32.const 2) (ref.func $three))
        (call_indirect (type $t) (i32.const 2)))
      (func (export "start_ran") (result i32) (global.get $g))
      (func (export "import") (result i64) (call $double (i64.const 4))))"#);
    let meta = instrument(&bytes, &config());
    let mut run = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("instantiates");
    let one = |run: &mut Run, export: &str, args: &[Val]| match run.call(export, args) {
        Ok(v) => match v[..] {
            [Val::I32(x)] => i64::from(x),
            [Val::I64(x)] => x,
            _ => panic!("{export}: {v:?}"),
        },
        Err(e) => panic!("{export}: {e:?}"),
    };
    assert_eq!(one(&mut run, "via_table", &[Val::I32(0)]), 1);
    assert_eq!(one(&mut run, "via_table", &[Val::I32(1)]), 2);
    assert_eq!(one(&mut run, "via_ref", &[]), 3);
    assert_eq!(one(&mut run, "start_ran", &[]), 2);
    assert_eq!(one(&mut run, "import", &[]), 8);
    assert_eq!(meta.guest_function_imports, 2);
    assert_eq!(
        (meta.out_of_fuel_function, meta.stack_overflow_function),
        (2, 3)
    );
}

#[test]
fn modules_missing_sections_get_them_in_order() {
    // No sections at all; only a function; only imports; passive data with memory.init and a
    // data count section; a code section with no functions.
    for text in [
        "(module)",
        "(module (func))",
        r#"(module (import "env" "log" (func (param i32 i32))))"#,
        r#"(module (memory 1) (data "abcdefgh")
            (func (export "init") (memory.init 0 (i32.const 0) (i32.const 0) (i32.const 8))))"#,
        "(module (global i32 (i32.const 1)) (export \"g\" (global 0)))",
    ] {
        let meta = instrument(&wat(text), &config());
        let after = shape(&meta.bytes);
        assert!(after.exports.contains_key(FUEL_EXPORT), "{text}");
        // Instantiates (the host links only what it knows: env.log and the injected two).
        let run = Run::instrumented(&meta, 1 << 40, 1 << 20).expect(text);
        assert_eq!(run.depth(), 0);
    }
    let meta = instrument(
        &wat(r#"(module (memory 1) (data "abcdefgh")
            (func (export "init") (memory.init 0 (i32.const 0) (i32.const 0) (i32.const 8))))"#),
        &config(),
    );
    let mut run = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("instantiates");
    run.call("init", &[]).expect("memory.init runs");
}

/// Found by `nestbox-fuzz --native` (regressions/native/seed-1766.bin): the block types added
/// for multi-value bodies were numbered in the order found but written sorted, so a body
/// wrapped for a branch to its own label got another function's result types.
#[test]
fn multi_value_bodies_get_their_own_block_types() {
    let bytes = wat(r#"(module
      (func (export "a") (param i32) (result i64 i64)
        (i64.const 1) (i64.const 2) (br_if 0 (local.get 0)) (drop) (drop) (i64.const 3) (i64.const 4))
      (func (export "b") (param i32) (result i32 i32)
        (i32.const 5) (i32.const 6) (br_if 0 (local.get 0)) (drop) (drop) (i32.const 7) (i32.const 8))
      (func (export "c") (param i32) (result f64 i32 i64)
        (f64.const 9) (i32.const 10) (i64.const 11) (br_if 0 (local.get 0))))"#);
    let meta = instrument(&bytes, &config());
    let mut run = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("validates and instantiates");
    let a = run.call("a", &[Val::I32(1)]).expect("a");
    assert!(matches!(a[..], [Val::I64(1), Val::I64(2)]), "{a:?}");
    let b = run.call("b", &[Val::I32(0)]).expect("b");
    assert!(matches!(b[..], [Val::I32(7), Val::I32(8)]), "{b:?}");
    let c = run.call("c", &[Val::I32(1)]).expect("c");
    assert!(
        matches!(c[..], [Val::F64(_), Val::I32(10), Val::I64(11)]),
        "{c:?}"
    );
}
