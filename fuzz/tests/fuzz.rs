//! The fuzz harness in the test suite: every saved regression replays clean, a bounded
//! smoke run (`FUZZ_CASES`, default 2000 cases, about 10 s) finds nothing, and the harness's own
//! assumptions hold (the WASI import list links; bugs it found stay fixed).

use nestbox::{Digest, ErrorCode, Limits, Sandbox, WasiConfig};
use nestbox_fuzz::{Tally, case_bytes, regressions_dir, run_case};

#[test]
fn every_regression_replays_clean() {
    let mut files: Vec<_> = std::fs::read_dir(regressions_dir())
        .expect("fuzz/regressions/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "the regressions are part of the repository"
    );
    for file in files {
        let bytes = std::fs::read(&file).expect("read");
        if let Err(bug) = run_case(&bytes) {
            panic!("{}: {bug}", file.display());
        }
    }
}

/// Open bugs outside nestbox (`regressions/open/`): each still fails as recorded. When one
/// stops failing (a fixed wasmi), move it up to `regressions/`.
#[test]
fn open_bugs_still_fail_as_recorded() {
    let open = regressions_dir().join("open");
    let cases = [(
        // wasmi 2.0.0's translator: `unreachable!()` for an integer store whose pointer and
        // value are both in registers (engine/translator/func/mod.rs:2583, store_rr is None
        // for i32/i64 stores), reached lazily at the first call of the function.
        "wasmi-store-rr-unreachable-seed-1033573.bin",
        "panic: internal error: entered unreachable code",
    )];
    for (file, failure) in cases {
        let bytes = std::fs::read(open.join(file)).expect("read");
        match run_case(&bytes) {
            Err(bug) if bug == failure => {}
            other => panic!("{file}: now {other:?}; if fixed, move it to regressions/"),
        }
    }
}

#[test]
fn a_bounded_run_finds_nothing() {
    let cases: u64 = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let mut tally = Tally::default();
    let mut bugs = Vec::new();
    for seed in 0..cases {
        let result = run_case(&case_bytes(seed));
        if let Err(bug) = &result {
            bugs.push(format!("seed {seed}: {bug}"));
        }
        tally.add(&result);
    }
    eprint!("{}", tally.report());
    assert!(bugs.is_empty(), "{}", bugs.join("\n"));
    assert!(
        tally.outcomes.get("diff:agree").copied().unwrap_or(0) > 0,
        "the differential part compared nothing"
    );
}

#[test]
fn cases_are_deterministic_by_seed() {
    for seed in [1, 77, 1000] {
        assert_eq!(case_bytes(seed), case_bytes(seed));
        assert_eq!(run_case(&case_bytes(seed)), run_case(&case_bytes(seed)));
    }
}

fn wasm(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("wat")
}

#[test]
fn the_wasi_import_list_has_the_signatures_nestbox_links() {
    // The import module plus a memory and _start: every import links.
    let text = nestbox_fuzz::wasi_import_module().trim_end();
    let text = format!(
        "{} (memory (export \"memory\") 1) (func (export \"_start\")))",
        text.strip_suffix(')').expect("a module")
    );
    let bytes = wasm(&text);
    let sandbox = Sandbox::new(Limits::default()).expect("sandbox");
    let module = sandbox.load(&bytes, &Digest::of(&bytes)).expect("load");
    assert_eq!(module.imports().len(), 46);
    sandbox
        .instantiate_wasi(&module, &WasiConfig::default())
        .expect("every import links");
}

/// Found by the fuzzer (regressions/start-proc-exit-seed-11755.bin): `proc_exit` in a start
/// function was a TRAP without a trap code, its message wasmi's ("Exited with i32 exit
/// status 1\n"); it is HOST_ERROR, as the start function's other things it cannot do.
#[test]
fn proc_exit_in_a_start_function_is_a_host_error_not_a_codeless_trap() {
    let bytes = wasm(
        r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func $start (call $exit (i32.const 1)))
  (start $start)
  (func (export "_start")))"#,
    );
    let sandbox = Sandbox::new(Limits::default()).expect("sandbox");
    let module = sandbox.load(&bytes, &Digest::of(&bytes)).expect("load");
    let Err(e) = sandbox.instantiate_wasi(&module, &WasiConfig::default()) else {
        panic!("instantiation succeeded");
    };
    assert_eq!(e.code(), ErrorCode::HostError, "{e:?}");
    assert!(e.message().contains("exited with status 1"), "{e:?}");
    assert!(!e.message().contains('\n'));
}
