//! Every result carries metrics.

use nestbox::{Limits, Step, Value};

use crate::common::*;

#[test]
fn results_carry_metrics() {
    let sb = sandbox(Limits {
        fuel_per_slice: 1_000,
        ..Limits::default()
    });
    let mut inst = instance(&sb, "count_loop");
    let o = inst
        .call("count", &[Value::I32(10_000)], |_, _| unreachable!())
        .expect("runs");
    let m = &o.metrics;
    assert!(m.fuel_consumed > 10_000, "{m:?}");
    assert_eq!(m.slices, m.fuel_consumed.div_ceil(1_000), "{m:?}");
    assert_eq!(m.host_calls, 0);
    assert_eq!(m.peak_memory_bytes, 0, "no memory");
    assert!(m.wall_time_us > 0, "{m:?}");
}

#[test]
fn progress_reports_the_call_so_far_between_slices() {
    let sb = sandbox(Limits {
        fuel_per_slice: 1_000,
        ..Limits::default()
    });
    let mut inst = instance(&sb, "count_loop");
    assert!(inst.progress().is_none(), "no call runs yet");
    let mut step = inst.start("count", &[Value::I32(10_000)]).expect("starts");
    let mut last = 0;
    let mut samples = 0;
    let outcome = loop {
        step = match step {
            Step::Yield => {
                let p = inst.progress().expect("a call runs");
                assert!(p.fuel_consumed > last, "{p:?} after {last}");
                assert_eq!(p.slices, samples + 1, "{p:?}");
                last = p.fuel_consumed;
                samples += 1;
                inst.resume().expect("resumes")
            }
            Step::Finished(outcome) => break outcome,
            Step::HostCall(_) => unreachable!(),
        };
    };
    assert!(samples > 5);
    assert!(outcome.metrics.fuel_consumed >= last);
    assert!(inst.progress().is_none(), "the call is over");
}
