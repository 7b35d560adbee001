//! Clocks, as booleans only (values differ on every run): realtime is after 2020-01-01,
//! monotonic never goes backwards over 1000 reads, both report a resolution above zero.
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use wasi_guests::raw;

const JAN_1_2020_SECS: u64 = 1_577_836_800;

fn main() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    println!("realtime after 2020: {}", now > JAN_1_2020_SECS);
    let mut last = Instant::now();
    let mut monotonic = true;
    for _ in 0..1000 {
        let t = Instant::now();
        monotonic &= t >= last;
        last = t;
    }
    println!("monotonic non-decreasing over 1000 reads: {monotonic}");
    for (name, id) in [
        ("realtime", raw::CLOCKID_REALTIME),
        ("monotonic", raw::CLOCKID_MONOTONIC),
    ] {
        let mut res = 0u64;
        // SAFETY: `res` is a writable u64.
        let errno = unsafe { raw::clock_res_get(id, &mut res) };
        println!("{name} resolution > 0: {}", errno == 0 && res > 0);
    }
}
