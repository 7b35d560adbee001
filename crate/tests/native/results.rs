//! Instrumented guests compute what the originals compute.

use wasmi::Val;

use crate::harness::{Ended, Run, bits, config, fixture, instrument};

/// Every export of `native_mix.wat` with arguments, called on both and compared bit for bit
/// (traps included).
#[test]
fn the_mix_fixture_gives_the_same_results_and_traps() {
    let bytes = fixture("native_mix");
    let meta = instrument(&bytes, &config());
    let mut original = Run::original(&bytes).expect("original instantiates");
    let mut native = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("instantiates");
    let calls: Vec<(&str, Vec<Val>)> = vec![
        ("started", vec![]),
        ("fib", vec![Val::I32(0)]),
        ("fib", vec![Val::I32(1)]),
        ("fib", vec![Val::I32(20)]),
        ("apply", vec![Val::I32(0), Val::I32(7), Val::I32(5)]),
        ("apply", vec![Val::I32(1), Val::I32(7), Val::I32(5)]),
        ("apply", vec![Val::I32(2), Val::I32(7), Val::I32(5)]),
        ("apply", vec![Val::I32(3), Val::I32(7), Val::I32(5)]),
        ("apply", vec![Val::I32(9), Val::I32(7), Val::I32(5)]),
        ("apply_ref", vec![Val::I32(10), Val::I32(3)]),
        ("apply", vec![Val::I32(3), Val::I32(7), Val::I32(5)]),
        ("apply_global_ref", vec![Val::I32(10), Val::I32(3)]),
        ("apply", vec![Val::I32(3), Val::I32(7), Val::I32(5)]),
        ("sum_to", vec![Val::I32(0)]),
        ("sum_to", vec![Val::I32(100_000)]),
        ("count", vec![]),
        ("count", vec![]),
        ("checksum", vec![Val::I32(18)]),
        ("fill_and_copy", vec![Val::I32(1)]),
        ("fill_and_copy", vec![Val::I32(5000)]),
        ("fill_and_copy", vec![Val::I32(60_000)]),
        ("fill_and_copy", vec![Val::I32(0)]),
        ("size", vec![]),
        ("grow", vec![Val::I32(1)]),
        ("grow", vec![Val::I32(2)]),
        ("grow", vec![Val::I32(1)]),
        ("size", vec![]),
        ("fill_and_copy", vec![Val::I32(200_000)]),
        ("twice", vec![Val::I64(21)]),
        ("divmod", vec![Val::I32(17), Val::I32(5)]),
        ("divmod", vec![Val::I32(17), Val::I32(0)]),
        ("classify", vec![Val::I32(0)]),
        ("classify", vec![Val::I32(1)]),
        ("classify", vec![Val::I32(2)]),
        ("classify", vec![Val::I32(3)]),
        ("classify", vec![Val::I32(-1)]),
        ("early", vec![Val::I32(1)]),
        ("early", vec![Val::I32(0)]),
        ("tail_sum", vec![Val::I32(10), Val::I64(0)]),
        ("div", vec![Val::I32(7)]),
        ("div", vec![Val::I32(0)]),
    ];
    let mut traps = 0;
    for (export, args) in &calls {
        let want = original.call(export, args);
        let got = native.call(export, args);
        match (&want, &got) {
            (Ok(w), Ok(g)) => {
                assert_eq!(bits(w), bits(g), "{export}{args:?}");
                assert_eq!(native.depth(), 0, "{export}: every frame was counted out");
            }
            (Err(Ended::Trap(w, _)), Err(Ended::Trap(g, _))) => {
                assert_eq!(w, g, "{export}{args:?}");
                traps += 1;
            }
            _ => panic!("{export}{args:?}: original {want:?}, instrumented {got:?}"),
        }
    }
    // apply 3 (null slot), apply 9 (out of bounds), fill 200000 (out of bounds), div 0.
    assert_eq!(traps, 4);
    assert_eq!(native.store.data().doubles, 1, "the import was called once");
    let want = original.call("fib", &[Val::I32(20)]).expect("fib");
    assert_eq!(bits(&want), bits(&[Val::I32(6765)]));
}

/// The interpreter tier's fixtures that terminate, through the pass.
#[test]
fn the_interpreter_fixtures_give_the_same_results() {
    let cases: &[(&str, &str, Vec<Val>)] = &[
        ("add", "add", vec![Val::I32(40), Val::I32(2)]),
        ("count_loop", "count", vec![Val::I32(10_000)]),
        ("recurse_n", "depth", vec![Val::I32(500)]),
        ("host_log", "greet", vec![]),
        ("start_sets_global", "get", vec![]),
        ("traps", "unreachable", vec![]),
        ("traps", "div_by_zero", vec![]),
        ("traps", "overflow", vec![]),
        ("traps", "oob_load", vec![]),
        ("traps", "null_indirect", vec![]),
        ("traps", "oob_indirect", vec![]),
        ("traps", "bad_conversion", vec![]),
    ];
    for (name, export, args) in cases {
        let bytes = fixture(name);
        let meta = instrument(&bytes, &config());
        let mut original = Run::original(&bytes).expect("original");
        let mut native = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("instrumented");
        let want = original.call(export, args);
        let got = native.call(export, args);
        match (&want, &got) {
            (Ok(w), Ok(g)) => assert_eq!(bits(w), bits(g), "{name}.{export}"),
            (Err(Ended::Trap(w, _)), Err(Ended::Trap(g, _))) => {
                assert_eq!(w, g, "{name}.{export}")
            }
            _ => panic!("{name}.{export}: original {want:?}, instrumented {got:?}"),
        }
    }
}
