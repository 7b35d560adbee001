//! Every WASI call costs `host_call_fuel` plus 1 fuel per 64 bytes it moves (zero-filled gaps
//! included) plus 50 per path component walked, so a guest cannot run forever on free I/O.

use nestbox::{ErrorCode, Limits, WasiConfig};

use crate::common::{fixture, load, sandbox};
use crate::wasi_util::*;

fn fuel_of(limits: Limits, name: &str, args: &[u64]) -> u64 {
    let mut sys = Sys::with_limits(limits, WasiConfig::default());
    let values: Vec<nestbox::Value> = args
        .iter()
        .map(|a| nestbox::Value::I32(*a as i32))
        .collect();
    sys.instance
        .call(name, &values, |_, _| unreachable!())
        .expect("runs")
        .metrics
        .fuel_consumed
}

#[test]
fn a_wasi_call_costs_the_host_call_charge() {
    let cheap = fuel_of(
        Limits {
            host_call_fuel: 10,
            ..Limits::default()
        },
        "sched_yield",
        &[],
    );
    let dear = fuel_of(
        Limits {
            host_call_fuel: 5_010,
            ..Limits::default()
        },
        "sched_yield",
        &[],
    );
    assert_eq!(dear - cheap, 5_000);
}

#[test]
fn bytes_moved_cost_fuel() {
    let limits = Limits::default();
    let none = fuel_of(limits.clone(), "random_get", &[u64::from(BUF), 0]);
    let some = fuel_of(limits, "random_get", &[u64::from(BUF), 64 * 1000]);
    assert_eq!(some - none, 1_000, "1 per 64 bytes");
}

#[test]
fn charges_larger_than_a_slice_are_kept_on_the_books() {
    let limits = Limits {
        fuel_per_slice: 100,
        host_call_fuel: 10_000,
        ..Limits::default()
    };
    let fuel = fuel_of(limits, "sched_yield", &[]);
    assert!(fuel >= 10_000, "{fuel}");
}

#[test]
fn a_guest_looping_on_io_runs_out_of_fuel() {
    let sb = sandbox(Limits {
        fuel: 2_000_000,
        ..Limits::default()
    });
    let module = load(&sb, &fixture("wasi_print_loop"));
    let config = WasiConfig {
        max_stdout_bytes: u64::MAX,
        ..WasiConfig::default()
    };
    let error = nestbox::run_wasi(&sb, &module, config).expect_err("fuel runs out");
    assert_eq!(error.code(), ErrorCode::FuelExhausted);
}

#[test]
fn zero_filling_a_gap_costs_like_writing_it() {
    let fuel_of_pwrite = |offset: u64| {
        let mut sys = Sys::new(WasiConfig {
            preopens: vec![nestbox::Preopen::new("/")],
            ..WasiConfig::default()
        });
        let fd = sys
            .open(PREOPEN, "f", CREAT, READ_WRITE, 0)
            .expect("creates");
        sys.iovec(IOV, BUF, 1);
        let args = [fd as i32, IOV as i32, 1, 0, OUT as i32];
        let mut values: Vec<nestbox::Value> =
            args.iter().map(|a| nestbox::Value::I32(*a)).collect();
        values[3] = nestbox::Value::I64(offset as i64);
        let outcome = sys
            .instance
            .call("fd_pwrite", &values, |_, _| unreachable!())
            .expect("runs");
        assert_eq!(outcome.results, [nestbox::Value::I32(0)]);
        outcome.metrics.fuel_consumed
    };
    assert_eq!(fuel_of_pwrite(64 * 1000) - fuel_of_pwrite(0), 1_000);
}

#[test]
fn walking_symlinks_costs_fuel() {
    let fuel_of_stat = |links: usize| {
        let mut sys = Sys::new(WasiConfig {
            preopens: vec![nestbox::Preopen::new("/").file("target", "")],
            ..WasiConfig::default()
        });
        // l1 -> target, l2 -> l1, …
        for i in 1..=links {
            let target = if i == 1 {
                "target".to_string()
            } else {
                format!("l{}", i - 1)
            };
            let (t, tl) = sys.text(PATH2, &target);
            let (p, l) = sys.text(PATH, &format!("l{i}"));
            assert_eq!(sys.call("path_symlink", &[t, tl, PREOPEN, p, l]), 0);
        }
        let (p, l) = sys.text(PATH, &format!("l{links}"));
        let values: Vec<nestbox::Value> = [PREOPEN, 1, p, l, u64::from(OUT)]
            .iter()
            .map(|a| nestbox::Value::I32(*a as i32))
            .collect();
        sys.instance
            .call("path_filestat_get", &values, |_, _| unreachable!())
            .expect("runs")
            .metrics
            .fuel_consumed
    };
    // Each link followed is one more component walked: 50 fuel.
    assert_eq!(fuel_of_stat(11) - fuel_of_stat(1), 10 * 50);
}
