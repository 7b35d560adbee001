//! Every result carries metrics.

use nestbox::{Limits, Value};

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
