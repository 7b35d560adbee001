//! `nestbox run`, run as a user would run it: every bad input, every limit, the exit statuses,
//! the host directory left alone, `--out-dir`, `--stdin`, `--audit`, `--metrics`.
//! The guests are WAT (the source of truth), built here.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nestbox::Digest;

const REFUSED: i32 = 125;
const GUEST_FAILED: i32 = 126;

fn nestbox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nestbox"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The last line of stderr: nestbox's own, when it has something to say.
fn last_line(o: &Output) -> String {
    stderr(o).lines().last().unwrap_or_default().to_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nestbox-run-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A WASI command: the given imports and data, `_start` running `body`.
fn guest(dir: &Path, name: &str, body: &str) -> PathBuf {
    guest_with(dir, name, "", body)
}

/// [`guest`] with more module fields (say, data segments).
fn guest_with(dir: &Path, name: &str, fields: &str, body: &str) -> PathBuf {
    let wat = format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_unlink_file" (func $unlink (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_create_directory" (func $mkdir (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "hello\n")
  (data (i32.const 80) "new.txt")
  (data (i32.const 96) "existing.txt")
  (data (i32.const 112) "gone.txt")
  (data (i32.const 128) "made")
  {fields}
  ;; writes `len` bytes at `ptr` to `fd`; exits with `code` on failure
  (func $write (param $fd i32) (param $ptr i32) (param $len i32) (param $code i32)
    (i32.store (i32.const 16) (local.get $ptr))
    (i32.store (i32.const 20) (local.get $len))
    (if (call $fd_write (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 32))
      (then (call $exit (local.get $code)))))
  ;; opens `path` in preopen fd 3 for reading and writing; exits with `code` on failure
  (func $open (param $path i32) (param $len i32) (param $oflags i32) (param $code i32) (result i32)
    (if (call $path_open (i32.const 3) (i32.const 0) (local.get $path) (local.get $len)
          (local.get $oflags) (i64.const 66) (i64.const 0) (i32.const 0) (i32.const 0))
      (then (call $exit (local.get $code))))
    (i32.load (i32.const 0)))
  (func (export "_start") {body}))"#
    );
    let bytes = wat::parse_str(&wat).unwrap_or_else(|e| panic!("{name}: {e}"));
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, bytes).expect("write guest");
    path
}

const HELLO: &str = "(call $write (i32.const 1) (i32.const 64) (i32.const 6) (i32.const 90))";

#[test]
fn a_guest_runs_streams_its_output_and_exits_with_its_code() {
    let dir = scratch("basic");
    let hello = guest(&dir, "hello", HELLO);
    let out = nestbox(&["run", s(&hello)]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "hello\n");
    assert_eq!(stderr(&out), "");

    // proc_exit codes: as they are up to 255, then & 0xff (a process status is a byte).
    for (code, status) in [(3, 3), (255, 255), (256 + 7, 7), (-1, 255)] {
        let m = guest(
            &dir,
            &format!("exit{status}"),
            &format!("{HELLO} (call $exit (i32.const {code}))"),
        );
        let out = nestbox(&["run", s(&m)]);
        assert_eq!(out.status.code(), Some(status), "exit {code}: {out:?}");
        assert_eq!(stdout(&out), "hello\n", "output before the exit is kept");
    }

    // Everything after the module is the guest's argv, flags included; argv[0] is the
    // module path unless --argv0 says otherwise.
    let argc = guest(
        &dir,
        "argc",
        "(drop (call $args_sizes (i32.const 0) (i32.const 4))) (call $exit (i32.load (i32.const 0)))",
    );
    let out = nestbox(&["run", s(&argc), "--fuel", "1", "--", "x"]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let out = nestbox(&["run", "--argv0", "a", "--", s(&argc)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = nestbox(&["run", "--fuel=100000000", s(&argc), "y"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_bad_input_is_refused_with_125_and_a_code() {
    let dir = scratch("bad");
    let hello = guest(&dir, "hello", HELLO);
    let data = dir.join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let not_dir = dir.join("file.txt");
    std::fs::write(&not_dir, "x").expect("write");
    let missing = dir.join("missing");
    let garbage = dir.join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm\x01\0\0\0\x99garbage").expect("write");
    let foreign = dir.join("foreign.wasm");
    std::fs::write(
        &foreign,
        wat::parse_str(
            r#"(module (import "env" "secret" (func)) (memory (export "memory") 1)
               (func (export "_start")))"#,
        )
        .expect("wat"),
    )
    .expect("write");
    // Sparse: over the 32 MiB module limit without writing 32 MiB; refused before reading.
    let huge = dir.join("huge.wasm");
    std::fs::File::create(&huge)
        .and_then(|f| f.set_len(33 << 20))
        .expect("sparse file");
    let dir_spec = format!("{}::/data", s(&data));
    let missing_spec = format!("{}::/data", s(&missing));
    let file_spec = format!("{}::/data", s(&not_dir));
    let wrong_sri = Digest::of(b"other bytes").to_sri();

    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "no module",
            vec!["run"],
            "INVALID_ARGUMENT: missing MODULE.wasm",
        ),
        (
            "only options",
            vec!["run", "--fuel", "5"],
            "missing MODULE.wasm",
        ),
        ("module not found", vec!["run", s(&missing)], "cannot read"),
        (
            "unknown flag",
            vec!["run", "--bogus", "1", s(&hello)],
            "unexpected argument \"--bogus\"",
        ),
        (
            "flag without value",
            vec!["run", "--fuel"],
            "--fuel needs a value",
        ),
        (
            "bad number",
            vec!["run", "--fuel", "lots", s(&hello)],
            "--fuel takes a non-negative integer",
        ),
        (
            "negative number",
            vec!["run", "--timeout", "-5", s(&hello)],
            "--timeout takes a non-negative integer",
        ),
        (
            "zero fuel",
            vec!["run", "--fuel", "0", s(&hello)],
            "limit fuel must be > 0",
        ),
        (
            "memory over 4 GiB",
            vec!["run", "--memory", "5G", s(&hello)],
            "maxMemoryBytes must be <= 4 GiB",
        ),
        (
            "bad memory",
            vec!["run", "--memory", "12X", s(&hello)],
            "--memory takes a number of bytes",
        ),
        (
            "bad memory by the limit's name",
            vec!["run", "--max-memory-bytes", "12X", s(&hello)],
            "--max-memory-bytes takes a number of bytes",
        ),
        (
            "a limit by both its names",
            vec!["run", "--timeout-ms", "5", "--timeout", "6", s(&hello)],
            "--timeout-ms and --timeout are the same option",
        ),
        (
            "env without =",
            vec!["run", "--env", "NOVALUE", s(&hello)],
            "--env takes KEY=VALUE",
        ),
        (
            "env with empty name",
            vec!["run", "--env", "=v", s(&hello)],
            "INVALID_ARGUMENT: wasi environment variable",
        ),
        (
            "dir without ::",
            vec!["run", "--dir", s(&data), s(&hello)],
            "--dir takes HOST::GUEST",
        ),
        (
            "dir without guest",
            vec!["run", "--dir-ro", "x::", s(&hello)],
            "--dir-ro takes HOST::GUEST",
        ),
        (
            "dir without host",
            vec!["run", "--dir", "::/data", s(&hello)],
            "--dir takes HOST::GUEST",
        ),
        (
            "host dir missing",
            vec!["run", "--dir", &missing_spec, s(&hello)],
            "cannot read host directory",
        ),
        (
            "host path a file",
            vec!["run", "--dir", &file_spec, s(&hello)],
            "not a directory",
        ),
        (
            "same guest path twice",
            vec!["run", "--dir", &dir_spec, "--dir-ro", &dir_spec, s(&hello)],
            "is given twice",
        ),
        (
            "stdin file missing",
            vec!["run", "--stdin", s(&missing), s(&hello)],
            "cannot read",
        ),
        (
            "integrity mismatch",
            vec!["run", "--integrity", &wrong_sri, s(&hello)],
            "INTEGRITY_MISMATCH: ",
        ),
        (
            "integrity malformed",
            vec!["run", "--integrity", "md5-abc", s(&hello)],
            "INVALID_ARGUMENT: malformed integrity",
        ),
        (
            "invalid module",
            vec!["run", s(&garbage)],
            "INVALID_MODULE: ",
        ),
        (
            "ungranted import",
            vec!["run", s(&foreign)],
            "IMPORT_NOT_GRANTED: ",
        ),
        (
            "signature without key",
            vec!["run", "--signature", "k:AAAA", s(&hello)],
            "--signature needs",
        ),
        (
            "module too large",
            vec!["run", s(&huge)],
            "MODULE_TOO_LARGE: ",
        ),
        (
            "not wasm at all",
            vec!["run", s(&not_dir)],
            "INVALID_MODULE: ",
        ),
    ];
    for (what, args, want) in cases {
        let out = nestbox(&args);
        assert_eq!(out.status.code(), Some(REFUSED), "{what}: {out:?}");
        assert_eq!(stdout(&out), "", "{what}: the guest never ran");
        let err = stderr(&out);
        let line = err
            .lines()
            .find(|l| l.starts_with("nestbox: "))
            .unwrap_or("");
        assert!(line.contains(want), "{what}: {err:?} does not say {want:?}");
    }

    // The right digest (SRI or hex) runs it.
    let bytes = std::fs::read(&hello).expect("read");
    for pinned in [Digest::of(&bytes).to_sri(), Digest::of(&bytes).to_hex()] {
        let out = nestbox(&["run", "--integrity", &pinned, s(&hello)]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(stdout(&out), "hello\n");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn traps_and_limits_end_with_126_and_their_code_on_the_last_line() {
    let dir = scratch("limits");
    let spin = guest(&dir, "spin", &format!("{HELLO} (loop (br 0))"));
    let unreachable = guest(&dir, "unreachable", &format!("{HELLO} unreachable"));
    let oob = guest(&dir, "oob", "(drop (i32.load (i32.const 0x7ffffff0)))");
    let chatty = guest(&dir, "chatty", &format!("(loop {HELLO} (br 0))"));
    let big_memory = dir.join("big.wasm");
    std::fs::write(
        &big_memory,
        wat::parse_str(r#"(module (memory (export "memory") 64) (func (export "_start")))"#)
            .expect("wat"),
    )
    .expect("write");
    let grow = guest(
        &dir,
        "grow",
        // memory.grow past --memory answers -1 and the guest carries on (exit 7).
        "(if (i32.eq (memory.grow (i32.const 100)) (i32.const -1)) (then (call $exit (i32.const 7))))",
    );

    let cases: Vec<(&str, Vec<&str>, &str, &str)> = vec![
        (
            "fuel",
            vec!["run", "--fuel", "1000000", s(&spin)],
            "nestbox: FUEL_EXHAUSTED: ",
            "hello\n",
        ),
        (
            "timeout",
            vec!["run", "--timeout-ms", "200", s(&spin)],
            "nestbox: TIMEOUT: ",
            "hello\n",
        ),
        (
            "unreachable",
            vec!["run", s(&unreachable)],
            "nestbox: TRAP (unreachable): ",
            "hello\n",
        ),
        (
            "out of bounds",
            vec!["run", s(&oob)],
            "nestbox: TRAP (memory_out_of_bounds): ",
            "",
        ),
        (
            "memory at instantiation",
            vec!["run", "--max-memory-bytes", "1M", s(&big_memory)],
            "nestbox: MEMORY_LIMIT: ",
            "",
        ),
        (
            "stdout cap",
            vec!["run", "--max-stdout-bytes", "100", s(&chatty)],
            "nestbox: OUTPUT_LIMIT: ",
            "hello\n",
        ),
    ];
    for (what, args, want, out_prefix) in cases {
        let started = std::time::Instant::now();
        let out = nestbox(&args);
        assert_eq!(out.status.code(), Some(GUEST_FAILED), "{what}: {out:?}");
        assert!(
            last_line(&out).starts_with(want),
            "{what}: {:?} should start with {want:?}",
            stderr(&out)
        );
        assert!(stdout(&out).starts_with(out_prefix), "{what}: {out:?}");
        if what == "timeout" {
            assert!(
                started.elapsed().as_secs() < 10,
                "timeout took {:?}",
                started.elapsed()
            );
        }
    }
    // The output cap keeps exactly the bytes up to it.
    let out = nestbox(&["run", "--max-stdout-bytes", "100", s(&chatty)]);
    assert_eq!(out.stdout, "hello\n".repeat(17).as_bytes()[..100]);

    let out = nestbox(&["run", "--memory", "1M", s(&grow)]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let out = nestbox(&["run", "--memory", "16M", s(&grow)]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Every file under `dir`, as (relative path, contents or "<dir>").
fn snapshot(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            let rel = p.strip_prefix(dir).expect("under").display().to_string();
            if p.is_dir() {
                out.push((rel, "<dir>".to_owned()));
                stack.push(p);
            } else {
                out.push((rel, std::fs::read_to_string(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_host_directory_is_never_written_and_out_dir_gets_the_result() {
    let dir = scratch("files");
    let host = dir.join("host");
    std::fs::create_dir_all(host.join("sub/empty")).expect("mkdir");
    std::fs::write(host.join("existing.txt"), "old contents\n").expect("write");
    std::fs::write(host.join("gone.txt"), "to be deleted\n").expect("write");
    std::fs::write(host.join("sub/kept.txt"), "kept\n").expect("write");
    let before = snapshot(&host);
    // O_CREAT|O_TRUNC new.txt, O_TRUNC existing.txt, each gets "hello\n"; unlink gone.txt;
    // mkdir made. Each step exits with its own code if it fails.
    let writer = guest(
        &dir,
        "writer",
        "(call $write (call $open (i32.const 80) (i32.const 7) (i32.const 9) (i32.const 10))
               (i32.const 64) (i32.const 6) (i32.const 11))
         (call $write (call $open (i32.const 96) (i32.const 12) (i32.const 8) (i32.const 12))
               (i32.const 64) (i32.const 6) (i32.const 13))
         (if (call $unlink (i32.const 3) (i32.const 112) (i32.const 8))
           (then (call $exit (i32.const 14))))
         (if (call $mkdir (i32.const 3) (i32.const 128) (i32.const 4))
           (then (call $exit (i32.const 15))))",
    );
    let spec = format!("{}::/sandbox", s(&host));
    let out_dir = dir.join("out");

    let out = nestbox(&["run", "--dir", &spec, "--out-dir", s(&out_dir), s(&writer)]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(snapshot(&host), before, "the host directory changed");
    let result = snapshot(&out_dir.join("sandbox"));
    let want: Vec<(String, String)> = [
        ("existing.txt", "hello\n"),
        ("made", "<dir>"),
        ("new.txt", "hello\n"),
        ("sub", "<dir>"),
        ("sub/empty", "<dir>"),
        ("sub/kept.txt", "kept\n"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(result, want);

    // Read-only: the first write fails (EROFS), the guest exits 10; nothing is written.
    let out = nestbox(&["run", "--dir-ro", &spec, s(&writer)]);
    assert_eq!(out.status.code(), Some(10), "{out:?}");
    assert_eq!(snapshot(&host), before);

    // --out-dir must be new, and never inside a host directory.
    let out = nestbox(&["run", "--dir", &spec, "--out-dir", s(&out_dir), s(&writer)]);
    assert_eq!(out.status.code(), Some(REFUSED), "{out:?}");
    assert!(last_line(&out).contains("already exists"), "{out:?}");
    let inside = host.join("results");
    let out = nestbox(&["run", "--dir", &spec, "--out-dir", s(&inside), s(&writer)]);
    assert_eq!(out.status.code(), Some(REFUSED), "{out:?}");
    assert!(
        last_line(&out).contains("inside the host directory"),
        "{out:?}"
    );
    assert_eq!(snapshot(&host), before);

    // The copies count against the guest's quotas.
    let out = nestbox(&["run", "--dir", &spec, "--max-fs-bytes", "10", s(&writer)]);
    assert_eq!(out.status.code(), Some(REFUSED), "{out:?}");
    assert!(
        last_line(&out).contains("more than --max-fs-bytes 10"),
        "{out:?}"
    );
    let out = nestbox(&["run", "--dir", &spec, "--max-files", "2", s(&writer)]);
    assert_eq!(out.status.code(), Some(REFUSED), "{out:?}");
    assert!(
        last_line(&out).contains("more than --max-files 2"),
        "{out:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[cfg(unix)]
#[test]
fn host_symlinks_inside_are_copied_and_outside_ones_refused() {
    let dir = scratch("symlinks");
    let hello = guest(&dir, "hello", HELLO);
    for (target, says) in [
        ("../outside.txt", "points outside"),
        ("/etc/passwd", "points outside"),
        ("sub/../../outside.txt", "points outside"),
    ] {
        let host = dir.join(format!("host-{}", target.len()));
        let _ = std::fs::remove_dir_all(&host);
        std::fs::create_dir(&host).expect("mkdir");
        std::fs::write(host.join("inside.txt"), "x").expect("write");
        std::os::unix::fs::symlink(target, host.join("link")).expect("symlink");
        let spec = format!("{}::/d", s(&host));
        let out = nestbox(&["run", "--dir-ro", &spec, s(&hello)]);
        assert_eq!(out.status.code(), Some(REFUSED), "{out:?}");
        let line = last_line(&out);
        assert!(
            line.contains("link is a symlink") && line.contains(says),
            "{line}"
        );
    }
    // A relative link that stays inside is copied as a link (and written back as one).
    let host = dir.join("host-inside");
    std::fs::create_dir_all(host.join("v2")).expect("mkdir");
    std::fs::write(host.join("v2/data.txt"), "DATA").expect("write");
    std::os::unix::fs::symlink("v2/data.txt", host.join("latest")).expect("symlink");
    let out_dir = dir.join("out");
    let spec = format!("{}::/d", s(&host));
    let out = nestbox(&["run", "--dir", &spec, "--out-dir", s(&out_dir), s(&hello)]);
    assert!(out.status.success(), "{out:?}");
    let copied = out_dir.join("d/latest");
    assert_eq!(
        std::fs::read_link(&copied).expect("a symlink"),
        Path::new("v2/data.txt")
    );
    assert_eq!(std::fs::read_to_string(&copied).expect("resolves"), "DATA");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn stdin_comes_from_a_file_or_streams_from_ours() {
    let dir = scratch("stdin");
    // cat: read up to 4096 bytes at 256, write them, until end of file.
    let cat = guest(
        &dir,
        "cat",
        "(loop $more
           (i32.store (i32.const 16) (i32.const 256))
           (i32.store (i32.const 20) (i32.const 4096))
           (if (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 32))
             (then (call $exit (i32.const 20))))
           (if (i32.load (i32.const 32))
             (then
               (call $write (i32.const 1) (i32.const 256) (i32.load (i32.const 32)) (i32.const 21))
               (br $more))))",
    );
    let input = dir.join("input.txt");
    std::fs::write(&input, "from a file\n").expect("write");
    let out = nestbox(&["run", "--stdin", s(&input), s(&cat)]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "from a file\n");

    // Default: ours, which is null here.
    let out = nestbox(&["run", s(&cat)]);
    assert_eq!((out.status.code(), stdout(&out)), (Some(0), String::new()));

    // `-`: ours, streamed (larger than one read and one pipe buffer).
    let big: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nestbox"))
        .args(["run", "--stdin", "-", s(&cat)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut pipe = child.stdin.take().expect("stdin");
    let feed = big.clone();
    let writer = std::thread::spawn(move || pipe.write_all(feed.as_bytes()));
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("join").expect("fed");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), big);

    // A guest waiting for a stdin that never comes still ends at the timeout.
    let mut child = Command::new(env!("CARGO_BIN_EXE_nestbox"))
        .args(["run", "--stdin", "-", "--timeout", "300", s(&cat)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let held_open = child.stdin.take();
    let out = child.wait_with_output().expect("wait");
    drop(held_open);
    assert_eq!(out.status.code(), Some(GUEST_FAILED), "{out:?}");
    assert!(last_line(&out).starts_with("nestbox: TIMEOUT: "), "{out:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn audit_and_metrics_record_the_run() {
    let dir = scratch("audit");
    let hello = guest(&dir, "hello", HELLO);
    let spin = guest(&dir, "spin", "(loop (br 0))");
    let log = dir.join("audit.jsonl");
    let metrics = dir.join("metrics.json");

    let out = nestbox(&[
        "run",
        "--audit",
        s(&log),
        "--metrics",
        s(&metrics),
        s(&hello),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&metrics).expect("metrics")).expect("json");
    assert_eq!(m["outcome"], "ok");
    assert_eq!(m["exitCode"], 0);
    assert!(
        m["metrics"]["fuelConsumed"].as_u64().expect("fuel") > 0,
        "{m}"
    );
    let sri = Digest::of(&std::fs::read(&hello).expect("read")).to_sri();
    assert_eq!(m["module"], sri.as_str());

    // A second run continues the chain: load, instantiate, call twice.
    let out = nestbox(&[
        "run",
        "--audit",
        s(&log),
        "--fuel",
        "100000",
        "--metrics",
        s(&metrics),
        s(&spin),
    ]);
    assert_eq!(out.status.code(), Some(GUEST_FAILED), "{out:?}");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&metrics).expect("metrics")).expect("json");
    assert_eq!(m["outcome"], "FUEL_EXHAUSTED");
    let text = std::fs::read_to_string(&log).expect("log");
    let events: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("entry");
            format!(
                "{} {}",
                v["event"].as_str().unwrap_or("?"),
                v["outcome"].as_str().unwrap_or("?")
            )
        })
        .collect();
    // The entries are the core's own (the same writer as in the browser), one chain over
    // both runs.
    assert_eq!(
        events,
        [
            "policy ok",
            "load ok",
            "instantiate ok",
            "call ok",
            "dispose ok",
            "policy ok",
            "load ok",
            "instantiate ok",
            "call FUEL_EXHAUSTED",
            "limit FUEL_EXHAUSTED",
            "dispose ok"
        ]
    );
    let first: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("entry"))
        .collect();
    let size = std::fs::metadata(&hello).expect("stat").len().to_string();
    assert_eq!(
        first[1]["extra"]["sizeBytes"],
        size.as_str(),
        "{}",
        first[1]
    );
    assert_eq!(first[2]["extra"]["wasi"], "preview1", "{}", first[2]);
    assert_eq!(first[3]["export"], "_start");
    assert!(first[3]["extra"]["args"].as_str().is_some(), "{}", first[3]);
    for (seq, entry) in first.iter().enumerate() {
        assert_eq!(entry["seq"], seq as u64, "{entry}");
    }
    let verified = nestbox(&["audit", "verify", s(&log)]);
    assert!(
        stdout(&verified).starts_with("ok: 11 entries"),
        "{verified:?}"
    );

    // A refused module is audited too.
    let wrong = Digest::of(b"x").to_sri();
    let out = nestbox(&["run", "--audit", s(&log), "--integrity", &wrong, s(&hello)]);
    assert_eq!(out.status.code(), Some(REFUSED));
    let last = std::fs::read_to_string(&log).expect("log");
    assert!(
        last.lines()
            .last()
            .unwrap_or("")
            .contains("INTEGRITY_MISMATCH")
    );
    assert!(stdout(&nestbox(&["audit", "verify", s(&log)])).starts_with("ok: 12 entries"));

    // A tampered log is not appended to.
    std::fs::write(
        &log,
        text.replace("\"outcome\":\"ok\"", "\"outcome\":\"OK\""),
    )
    .expect("write");
    let out = nestbox(&["run", "--audit", s(&log), s(&hello)]);
    assert_eq!(out.status.code(), Some(REFUSED), "{out:?}");
    assert!(last_line(&out).contains("does not verify"), "{out:?}");
    assert_eq!(stdout(&out), "", "the guest did not run");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_signature_policy_is_enforced() {
    let dir = scratch("policy");
    let hello = guest(&dir, "hello", HELLO);
    let key = dir.join("k.key");
    let out = nestbox(&["keygen", "--id", "ci", "--out", s(&key)]);
    let pubkey = stdout(&out).trim().to_owned();
    let sig = stdout(&nestbox(&["sign", "--key", s(&key), s(&hello)]))
        .trim()
        .to_owned();
    let out = nestbox(&["run", "--pubkey", &pubkey, "--signature", &sig, s(&hello)]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = nestbox(&["run", "--pubkey", &pubkey, s(&hello)]);
    assert_eq!(out.status.code(), Some(REFUSED), "{out:?}");
    assert!(
        last_line(&out).starts_with("nestbox: SIGNATURE_INVALID: "),
        "{out:?}"
    );
    let other = guest(&dir, "other", "(nop)");
    let out = nestbox(&["run", "--pubkey", &pubkey, "--signature", &sig, s(&other)]);
    assert_eq!(out.status.code(), Some(REFUSED), "{out:?}");
    assert!(
        last_line(&out).starts_with("nestbox: SIGNATURE_INVALID: "),
        "{out:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn help_lists_the_options() {
    let out = nestbox(&["run", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for flag in [
        "--argv0",
        "--env",
        "--dir",
        "--dir-ro",
        "--out-dir",
        "--stdin",
        "--fuel",
        "--memory",
        "--timeout",
        "--max-memory-bytes",
        "--timeout-ms",
        "--max-stdout-bytes",
        "--max-stderr-bytes",
        "--max-fs-bytes",
        "--max-files",
        "--seed",
        "--start-time-ns",
        "--integrity",
        "--pubkey",
        "--signature",
        "--audit",
        "--metrics",
        "pinned to its",
        "125",
        "126",
    ] {
        assert!(text.contains(flag), "--help does not mention {flag}");
    }
    assert!(stdout(&nestbox(&["help"])).contains("run [OPTIONS] [--] MODULE.wasm"));
}

/// Every symlink under `dir` (not followed while walking) and where it resolves on the host,
/// if it resolves at all.
#[cfg(unix)]
fn symlinks_and_targets(dir: &Path) -> Vec<(PathBuf, Option<PathBuf>)> {
    let mut links = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            let meta = std::fs::symlink_metadata(&p).expect("lstat");
            if meta.file_type().is_symlink() {
                links.push((p.clone(), resolve_on_host(&p)));
            } else if meta.is_dir() {
                stack.push(p);
            }
        }
    }
    links.sort();
    links
}

/// Where `path` leads on the host, following every symlink on the way (at most 40) and taking
/// what does not exist lexically (as `realpath -m`); `None` for a loop.
#[cfg(unix)]
fn resolve_on_host(path: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut done = PathBuf::from("/");
    let mut todo: Vec<std::ffi::OsString> = Vec::new();
    let absolute = std::path::absolute(path).ok()?;
    for c in absolute.components().rev() {
        todo.push(c.as_os_str().to_owned());
    }
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match Path::new(&c).components().next() {
            None | Some(Component::CurDir | Component::RootDir) => {}
            Some(Component::ParentDir) => {
                done.pop();
            }
            Some(_) => {
                let next = done.join(&c);
                match std::fs::read_link(&next) {
                    Ok(target) => {
                        hops += 1;
                        if hops > 40 {
                            return None;
                        }
                        if target.is_absolute() {
                            done = PathBuf::from("/");
                        }
                        for t in target.components().rev() {
                            todo.push(t.as_os_str().to_owned());
                        }
                    }
                    Err(_) => done = next,
                }
            }
        }
    }
    Some(done)
}

/// A guest makes a chain of symlinks that each look inside by their text, but that leave the
/// preopen once the links they go through are followed: `--out-dir` writes none whose
/// resolution leaves it.
#[cfg(unix)]
#[test]
fn out_dir_symlinks_are_resolved_through_the_tree_and_escaping_ones_skipped() {
    let dir = scratch("symlink-chain");
    let host = dir.join("host");
    std::fs::create_dir(&host).expect("mkdir");
    let links = [
        // (link, target): d/up is the preopen itself, so d/up/d/up/../../.. is its parent.
        ("d/up", ".."),
        ("esc", "d/up/d/up/../../../etc/passwd"),
        ("esc2", "esc"),
        ("esc3", "d/up/.."),
        ("ok", "d/up/d/up/d"),
        ("loop1", "loop2"),
        ("loop2", "loop1"),
        ("dangling", "d/nothing/here"),
    ];
    let mut data = String::new();
    let mut calls = String::new();
    let mut at = 64;
    for (i, (link, target)) in links.iter().enumerate() {
        data.push_str(&format!("(data (i32.const {at}) \"{target}\")\n"));
        data.push_str(&format!("(data (i32.const {}) \"{link}\")\n", at + 64));
        calls.push_str(&format!(
            "(if (call $symlink (i32.const {at}) (i32.const {}) (i32.const 3) (i32.const {}) (i32.const {}))
               (then (call $exit (i32.const {}))))\n",
            target.len(),
            at + 64,
            link.len(),
            10 + i
        ));
        at += 128;
    }
    let wat = format!(
        r#"(module
  (import "wasi_snapshot_preview1" "path_symlink" (func $symlink (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_create_directory" (func $mkdir (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "d")
  {data}
  (func (export "_start")
    (if (call $mkdir (i32.const 3) (i32.const 0) (i32.const 1)) (then (call $exit (i32.const 9))))
    {calls}))"#
    );
    let module = dir.join("chain.wasm");
    std::fs::write(&module, wat::parse_str(&wat).expect("wat")).expect("write");
    let out_dir = dir.join("out");
    let spec = format!("{}::/s", s(&host));
    let out = nestbox(&["run", "--dir", &spec, "--out-dir", s(&out_dir), s(&module)]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let root = out_dir
        .join("s")
        .canonicalize()
        .expect("the preopen's copy");
    let written = symlinks_and_targets(&out_dir);
    for (link, resolved) in &written {
        if let Some(resolved) = resolved {
            assert!(
                resolved.starts_with(&root),
                "{} resolves to {}, outside its preopen in --out-dir",
                link.display(),
                resolved.display()
            );
        }
    }
    let names: Vec<String> = written
        .iter()
        .map(|(p, _)| {
            p.strip_prefix(&out_dir)
                .expect("under")
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["s/d/up", "s/dangling", "s/ok"], "{}", stderr(&out));
    let err = stderr(&out);
    for skipped in ["esc", "esc2", "esc3", "loop1", "loop2"] {
        assert!(
            err.contains(&format!("skipped {skipped} in /s")),
            "{skipped}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A guest that reads its stdin to the end and writes it to stdout.
fn cat_guest(dir: &Path) -> PathBuf {
    guest(
        dir,
        "cat",
        "(loop $more
           (i32.store (i32.const 16) (i32.const 256))
           (i32.store (i32.const 20) (i32.const 4096))
           (if (call $fd_read (i32.const 0) (i32.const 16) (i32.const 1) (i32.const 32))
             (then (call $exit (i32.const 20))))
           (if (i32.load (i32.const 32))
             (then
               (call $write (i32.const 1) (i32.const 256) (i32.load (i32.const 32)) (i32.const 21))
               (br $more))))",
    )
}

/// Runs nestbox with `input` on a pipe to its stdin, kept open until it exits when `input`
/// is `None`.
fn nestbox_fed(args: &[&str], input: Option<&'static [u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nestbox"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut pipe = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || match input {
        Some(bytes) => {
            let _ = pipe.write_all(bytes);
            None
        }
        None => Some(pipe),
    });
    let out = child.wait_with_output().expect("wait");
    drop(writer.join().expect("join"));
    out
}

#[test]
fn stdin_is_ours_by_default_as_other_runtimes_and_none_makes_it_empty() {
    let dir = scratch("stdin-default");
    let cat = cat_guest(&dir);
    // `nestbox run cat.wasm < file`: the guest reads our stdin.
    let out = nestbox_fed(&["run", s(&cat)], Some(b"piped in\n"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), "piped in\n");
    // `--stdin none`: empty, and ours is never waited for (the pipe stays open meanwhile).
    let started = std::time::Instant::now();
    let out = nestbox_fed(
        &["run", "--stdin", "none", "--timeout-ms", "20000", s(&cat)],
        None,
    );
    assert_eq!((out.status.code(), stdout(&out)), (Some(0), String::new()));
    assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
    std::fs::remove_dir_all(&dir).ok();
}

/// Writes `count` times 64 KiB of memory to `fd`.
fn flood(dir: &Path, name: &str, fd: u32, count: u32) -> PathBuf {
    guest(
        dir,
        name,
        &format!(
            "(local $i i32)
             (loop $more
               (call $write (i32.const {fd}) (i32.const 0) (i32.const 65536) (i32.const 90))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $more (i32.lt_u (local.get $i) (i32.const {count}))))"
        ),
    )
}

#[test]
fn output_is_streamed_without_the_cores_one_mebibyte_cap() {
    let dir = scratch("big-output");
    // 3 MiB to stdout, 2 MiB to stderr: the defaults of the CLI let them through.
    let out = nestbox(&["run", s(&flood(&dir, "out3m", 1, 48))]);
    assert_eq!(out.status.code(), Some(0), "{}", last_line(&out));
    assert_eq!(out.stdout.len(), 3 << 20);
    let out = nestbox(&["run", s(&flood(&dir, "err2m", 2, 32))]);
    assert_eq!(out.status.code(), Some(0), "{}", last_line(&out));
    assert_eq!(out.stderr.len(), 2 << 20);
    // The caps still hold, with suffixes, and the line says which flag raises each.
    let out = nestbox(&[
        "run",
        "--max-stdout-bytes",
        "1M",
        s(&flood(&dir, "out3m", 1, 48)),
    ]);
    assert_eq!(out.status.code(), Some(GUEST_FAILED), "{out:?}");
    assert_eq!(out.stdout.len(), 1 << 20);
    assert!(
        last_line(&out).starts_with("nestbox: OUTPUT_LIMIT: stdout")
            && last_line(&out).ends_with("(raise it with --max-stdout-bytes BYTES)"),
        "{}",
        last_line(&out)
    );
    let out = nestbox(&[
        "run",
        "--max-stderr-bytes=64K",
        s(&flood(&dir, "err2m", 2, 32)),
    ]);
    assert_eq!(out.status.code(), Some(GUEST_FAILED), "{}", last_line(&out));
    assert!(
        last_line(&out).ends_with("(raise it with --max-stderr-bytes BYTES)"),
        "{}",
        last_line(&out)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_limit_error_names_the_flag_that_raises_it() {
    let dir = scratch("limit-flags");
    let spin = guest(&dir, "spin", "(loop (br 0))");
    let big_memory = dir.join("big.wasm");
    std::fs::write(
        &big_memory,
        wat::parse_str(r#"(module (memory (export "memory") 64) (func (export "_start")))"#)
            .expect("wat"),
    )
    .expect("write");
    for (args, code, flag) in [
        (
            vec!["--fuel", "100000", s(&spin)],
            "FUEL_EXHAUSTED",
            "--fuel N",
        ),
        (
            vec!["--timeout-ms", "100", s(&spin)],
            "TIMEOUT",
            "--timeout-ms MS",
        ),
        (
            vec!["--max-memory-bytes", "1M", s(&big_memory)],
            "MEMORY_LIMIT",
            "--max-memory-bytes BYTES",
        ),
    ] {
        let out = nestbox(&[&["run"], &args[..]].concat());
        assert_eq!(out.status.code(), Some(GUEST_FAILED), "{out:?}");
        let line = last_line(&out);
        assert!(
            line.starts_with(&format!("nestbox: {code}: "))
                && line.ends_with(&format!("(raise it with {flag})")),
            "{line}"
        );
    }
    // A trap has no flag to raise.
    let out = nestbox(&["run", s(&guest(&dir, "trap", "unreachable"))]);
    assert!(!last_line(&out).contains("raise it"), "{out:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn what_the_guest_wrote_before_a_trap_comes_before_nestboxs_line() {
    let dir = scratch("before-trap");
    // A Rust panic: its message on stderr (the last line without its newline here), then a
    // trap; and the same before a limit.
    let message = "thread 'main' panicked at src/main.rs:2:5:\nboom";
    let data = format!(
        r#"(data (i32.const 1024) "{}")"#,
        message.replace('\n', "\\n")
    );
    let write = format!(
        "{HELLO} (call $write (i32.const 2) (i32.const 1024) (i32.const {}) (i32.const 91))",
        message.len()
    );
    let trap = guest_with(&dir, "panic", &data, &format!("{write} unreachable"));
    let spin = guest_with(&dir, "spin", &data, &format!("{write} (loop (br 0))"));
    for (module, fuel, line) in [
        (&trap, "1000000", "nestbox: TRAP (unreachable): "),
        (&spin, "1000000", "nestbox: FUEL_EXHAUSTED: "),
    ] {
        let out = nestbox(&["run", "--fuel", fuel, s(module)]);
        assert_eq!(out.status.code(), Some(GUEST_FAILED), "{out:?}");
        assert_eq!(stdout(&out), "hello\n");
        let err = stderr(&out);
        // nestbox ends the guest's unfinished line before its own.
        assert!(err.starts_with(&format!("{message}\n{line}")), "{err:?}");
        assert_eq!(err.lines().count(), 3, "{err:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The names of the spans of an OTLP JSON trace, root first.
fn span_names(trace: &serde_json::Value) -> Vec<String> {
    trace["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|s| s["name"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[test]
fn trace_writes_the_runs_spans_as_otlp_json_even_when_it_fails() {
    let dir = scratch("trace");
    let hello = guest(&dir, "hello", HELLO);
    let file = dir.join("trace.json");
    let out = nestbox(&["run", "--trace", s(&file), s(&hello)]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("trace")).expect("json");
    let names = span_names(&trace);
    assert_eq!(names.first().map(String::as_str), Some("call _start"));
    assert!(names.iter().any(|n| n == "wasi fd_write"), "{names:?}");
    let spans = &trace["resourceSpans"][0]["scopeSpans"][0]["spans"];
    let root_id = spans[0]["spanId"].as_str().expect("span id");
    assert_eq!(spans[1]["parentSpanId"], root_id);
    assert_eq!(spans[0]["status"]["code"], 1);

    // A run that hits its fuel limit still writes its trace; the root says why it ended.
    let spin = guest(&dir, "spin", "(loop (br 0))");
    let out = nestbox(&["run", "--fuel", "100000", "--trace", s(&file), s(&spin)]);
    assert_eq!(out.status.code(), Some(GUEST_FAILED), "{out:?}");
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("trace")).expect("json");
    let root = &trace["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(root["status"]["code"], 2);
    assert!(
        root["status"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("FUEL_EXHAUSTED")),
        "{root}"
    );

    // Bad uses are refused before anything runs.
    let out = nestbox(&["run", "--trace-spans", "5", s(&hello)]);
    assert_eq!(out.status.code(), Some(REFUSED), "{out:?}");
    assert!(
        last_line(&out).contains("--trace-spans needs --trace"),
        "{out:?}"
    );
    let out = nestbox(&["run", "--trace", s(&file), "--trace-spans", "0", s(&hello)]);
    assert_eq!(out.status.code(), Some(REFUSED), "{out:?}");
    // One span kept: the root, marked truncated.
    let out = nestbox(&["run", "--trace", s(&file), "--trace-spans", "1", s(&hello)]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("trace")).expect("json");
    assert_eq!(span_names(&trace), ["call _start"]);
    let attributes = trace["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
        .as_array()
        .expect("attributes")
        .clone();
    assert!(
        attributes
            .iter()
            .any(|a| a["key"] == "nestbox.trace.truncated" && a["value"]["boolValue"] == true),
        "{attributes:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
