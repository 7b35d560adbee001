//! Call depth: the counter stops recursion at the limit, counts every exit, and tail calls do
//! not grow it.

use nestbox::native::InstrumentConfig;
use wasmi::Val;

use crate::harness::{Ended, Run, config, fixture, instrument};

#[test]
fn unbounded_recursion_hits_the_call_depth_limit() {
    let meta = instrument(&fixture("deep_recursion"), &config());
    let mut run = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("instantiates");
    assert_eq!(
        run.call("down", &[Val::I32(0)]).err(),
        Some(Ended::StackOverflow)
    );
    assert_eq!(
        run.depth(),
        1_001,
        "stopped at the first frame past the limit"
    );
}

#[test]
fn the_limit_is_exactly_max_call_depth_frames() {
    let config = InstrumentConfig {
        max_call_depth: 100,
        ..config()
    };
    let meta = instrument(&fixture("recurse_n"), &config);
    let mut run = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("instantiates");
    // depth(n) is n + 1 frames.
    let ok = run.call("depth", &[Val::I32(99)]).expect("100 frames");
    assert!(matches!(ok[..], [Val::I32(99)]));
    assert_eq!(run.depth(), 0);
    assert_eq!(
        run.call("depth", &[Val::I32(100)]).err(),
        Some(Ended::StackOverflow)
    );
}

#[test]
fn every_exit_decrements_the_counter() {
    // Returns, branches to the function's label (with values), br_table to returns, and tail
    // calls: after each call the counter is back at 0, and a loop of many calls never hits
    // the limit.
    let meta = instrument(&fixture("native_mix"), &config());
    let mut run = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("instantiates");
    for _ in 0..3 {
        for (export, args) in [
            ("divmod", vec![Val::I32(1), Val::I32(0)]),
            ("classify", vec![Val::I32(1)]),
            ("early", vec![Val::I32(1)]),
            ("fib", vec![Val::I32(10)]),
        ] {
            run.call(export, &args).expect("runs");
            assert_eq!(run.depth(), 0, "{export}");
        }
    }
}

#[test]
fn tail_calls_do_not_grow_the_depth() {
    let meta = instrument(&fixture("native_mix"), &config());
    let mut run = Run::instrumented(&meta, 1 << 40, 1 << 20).expect("instantiates");
    // 100,000 tail calls with a limit of 1,000 frames.
    let results = run
        .call("tail_sum", &[Val::I32(100_000), Val::I64(0)])
        .expect("tail calls");
    assert!(matches!(results[..], [Val::I64(5_000_050_000)]));
    assert_eq!(run.depth(), 0);
}
