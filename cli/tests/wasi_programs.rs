//! The WASI guest suite (tests/wasi/programs.json): every case in every language, run through
//! the `nestbox run` binary as a user would run it, compared with the expected files.
//!
//! Each run gets a fresh temporary directory with copies of its fixtures (one per preopen),
//! the manifest's `outside` file next to them, and its stdin in a file. The flags follow
//! from the manifest: `argv0`/`args`, `env`, `preopens` (`--dir`/`--dir-ro`, in fd order),
//! `stdin` (`--stdin FILE`), `limits`, `deterministic` (`--seed`, `--start-time-ns`) and
//! `timeout_ms`. An expected nestbox error (`OUTPUT_LIMIT`) is exit status 126 with
//! `nestbox: OUTPUT_LIMIT: …` as the last line of stderr; an expected exit code is that
//! status with no `nestbox:` line at all.
//!
//! The guests are built by `make guests` (tests/wasi/build.sh); without them this test fails
//! and says so. `cargo test -p nestbox-cli --test wasi_programs -- --nocapture` shows the
//! table.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Status of a run that ended in a trap or a limit (see `nestbox run --help`).
const EXIT_GUEST_FAILED: i32 = 126;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

fn suite() -> PathBuf {
    root().join("tests/wasi")
}

struct Job<'a> {
    manifest: &'a Value,
    case: &'a Value,
    name: String,
    lang: String,
    wasm: PathBuf,
}

struct Row {
    key: String,
    passed: bool,
    ms: u128,
    detail: String,
}

#[test]
fn every_program_in_every_language_matches_its_expected_output() {
    let text = std::fs::read_to_string(suite().join("programs.json")).expect("programs.json");
    let manifest: Value = serde_json::from_str(&text).expect("programs.json is JSON");
    let guests = std::env::var_os("GUESTS_DIR").map_or_else(
        || root().join(str_of(&manifest["guests_dir"])),
        PathBuf::from,
    );
    assert!(
        guests.is_dir(),
        "{} is missing: build the WASI guest programs first with `make guests` \
         (or tests/wasi/build.sh)",
        guests.display()
    );

    let mut jobs = Vec::new();
    for case in manifest["cases"].as_array().expect("cases") {
        for lang in case["languages"].as_array().expect("languages") {
            let lang = str_of(lang).to_owned();
            let program = str_of(&case["program"]);
            jobs.push(Job {
                manifest: &manifest,
                case,
                name: str_of(&case["name"]).to_owned(),
                wasm: guests.join(&lang).join(format!("{program}.wasm")),
                lang,
            });
        }
    }
    assert!(jobs.len() >= 75, "only {} runs in the manifest", jobs.len());

    // Runs in parallel (each run is its own process), reported in manifest order.
    let next = Mutex::new(0usize);
    let rows: Mutex<BTreeMap<usize, Row>> = Mutex::new(BTreeMap::new());
    let workers = std::thread::available_parallelism().map_or(4, |n| n.get().min(8));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let index = {
                        let mut n = next.lock().expect("lock");
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(job) = jobs.get(index) else { break };
                    let row = run_job(job);
                    rows.lock().expect("lock").insert(index, row);
                }
            });
        }
    });
    let mut rows: Vec<Row> = rows.into_inner().expect("lock").into_values().collect();
    rows.extend(coverage(&manifest));

    let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(10);
    for r in &rows {
        println!(
            "{:<width$}  {}  {:>6} ms  {}",
            r.key,
            if r.passed { "pass" } else { "FAIL" },
            r.ms,
            r.detail
        );
    }
    let passed = rows.iter().filter(|r| r.passed).count();
    let failed = rows.len() - passed;
    println!("{passed} passed, {failed} failed");
    assert_eq!(
        failed,
        0,
        "{failed} of {} runs failed:\n{}",
        rows.len(),
        rows.iter()
            .filter(|r| !r.passed)
            .map(|r| format!("  {}: {}", r.key, r.detail))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn str_of(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

fn run_job(job: &Job<'_>) -> Row {
    let key = format!("{}/{}", job.name, job.lang);
    let started = Instant::now();
    if !job.wasm.is_file() {
        return Row {
            key,
            passed: false,
            ms: 0,
            detail: format!(
                "{} is missing: run `make guests` (tests/wasi/build.sh)",
                job.wasm.display()
            ),
        };
    }
    let count = job.case["runs"]["count"].as_u64().unwrap_or(1);
    let mut problems = Vec::new();
    let mut stdouts = Vec::new();
    for run in 0..count {
        let result = run_once(job, run);
        problems.extend(check(job, &result).into_iter().map(|p| {
            if count > 1 {
                format!("run {}: {p}", run + 1)
            } else {
                p
            }
        }));
        stdouts.push(result.stdout);
    }
    if count > 1 {
        let same = stdouts.iter().all(|s| *s == stdouts[0]);
        match job.case["runs"]["stdout"].as_str() {
            Some("equal") if !same => problems.push(format!("stdout differs between {count} runs")),
            Some("differ") if same => problems.push(format!("stdout equal in {count} runs")),
            Some("equal" | "differ") => {}
            other => problems.push(format!("unknown runs.stdout {other:?}")),
        }
    }
    Row {
        key,
        passed: problems.is_empty(),
        ms: started.elapsed().as_millis(),
        detail: problems.join("; "),
    }
}

struct RunResult {
    status: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// Set when the runner itself failed (could not start, hung past the timeout).
    runner_error: Option<String>,
}

/// One run in a fresh temporary directory: `outside`, `preopenN/` copies, `stdin.bin`.
fn run_once(job: &Job<'_>, run: u64) -> RunResult {
    let case = job.case;
    let tmp = std::env::temp_dir().join(format!(
        "nestbox-wasi-{}-{}-{}-{run}",
        std::process::id(),
        job.name,
        job.lang
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let outside = &job.manifest["outside_file"];
    std::fs::write(tmp.join(str_of(&outside["name"])), str_of(&outside["text"])).expect("outside");

    let mut args: Vec<String> = vec!["run".into()];
    let mut flag = |name: &str, value: String| {
        args.push(name.to_owned());
        args.push(value);
    };
    flag("--argv0", str_of(&case["argv0"]).to_owned());
    for pair in case["env"].as_array().expect("env") {
        flag(
            "--env",
            format!("{}={}", str_of(&pair[0]), str_of(&pair[1])),
        );
    }
    for (i, p) in case["preopens"]
        .as_array()
        .expect("preopens")
        .iter()
        .enumerate()
    {
        let host = tmp.join(format!("preopen{i}"));
        match p["fixture"].as_str() {
            Some(fixture) => copy_tree(&suite().join(fixture), &host),
            None => std::fs::create_dir(&host).expect("preopen dir"),
        }
        let ro = p["readonly"].as_bool().unwrap_or(false);
        flag(
            if ro { "--dir-ro" } else { "--dir" },
            format!("{}::{}", host.display(), str_of(&p["guest"])),
        );
    }
    if let Some(bytes) = stdin_bytes(&case["stdin"]) {
        let path = tmp.join("stdin.bin");
        std::fs::write(&path, bytes).expect("stdin");
        flag("--stdin", path.display().to_string());
    }
    if let Some(limits) = case["limits"].as_object() {
        for (name, value) in limits {
            let value = value.as_u64().expect("limits are integers").to_string();
            match name.as_str() {
                "max_stdout_bytes" => flag("--max-stdout-bytes", value),
                "max_stderr_bytes" => flag("--max-stderr-bytes", value),
                "max_fs_bytes" => flag("--max-fs-bytes", value),
                "max_files" => flag("--max-files", value),
                other => panic!("{}: unknown limit {other}", job.name),
            }
        }
    }
    if let Some(d) = case["deterministic"].as_object() {
        flag("--seed", d["seed"].as_u64().expect("seed").to_string());
        flag(
            "--start-time-ns",
            d["start_time_ns"]
                .as_u64()
                .expect("start_time_ns")
                .to_string(),
        );
    }
    let timeout_ms = case["timeout_ms"].as_u64().unwrap_or(30_000);
    flag("--timeout-ms", timeout_ms.to_string());
    args.push("--".into());
    args.push(job.wasm.display().to_string());
    args.extend(
        case["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| str_of(a).to_owned()),
    );

    let result = spawn(&args, &tmp, Duration::from_millis(timeout_ms + 30_000));
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Runs the binary with an empty environment, killing it if it outlives `hard_limit` (its own
/// `--timeout` should end it long before).
fn spawn(args: &[String], cwd: &Path, hard_limit: Duration) -> RunResult {
    let mut child = match Command::new(env!("CARGO_BIN_EXE_nestbox"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            return RunResult {
                status: None,
                stdout: Vec::new(),
                stderr: Vec::new(),
                runner_error: Some(format!("cannot start nestbox: {e}")),
            };
        }
    };
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + hard_limit;
    let mut runner_error = None;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                runner_error = Some(format!("still running after {hard_limit:?}: killed"));
                break None;
            }
            Err(e) => {
                runner_error = Some(format!("wait failed: {e}"));
                break None;
            }
        }
    };
    RunResult {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        runner_error,
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("fixture dir") {
        let entry = entry.expect("entry");
        let kind = entry.file_type().expect("type");
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &dest).expect("copy");
        } else {
            panic!(
                "fixture {} is not a file or directory",
                entry.path().display()
            );
        }
    }
}

fn stdin_bytes(stdin: &Value) -> Option<Vec<u8>> {
    if stdin.is_null() {
        return None;
    }
    if let Some(file) = stdin["file"].as_str() {
        return Some(std::fs::read(suite().join(file)).expect("stdin fixture"));
    }
    if let Some(text) = stdin["text"].as_str() {
        return Some(text.as_bytes().to_vec());
    }
    if let Some(unit) = stdin["repeat"].as_str() {
        let times = stdin["times"].as_u64().expect("times") as usize;
        return Some(unit.repeat(times).into_bytes());
    }
    panic!("unknown stdin {stdin}");
}

/// The mismatches of one run with the case's expectation, each a short phrase.
fn check(job: &Job<'_>, run: &RunResult) -> Vec<String> {
    let e = &job.case["expect"];
    if let Some(err) = &run.runner_error {
        return vec![format!("runner: {err}")];
    }
    let mut problems = Vec::new();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    // nestbox's own line, if any: the last line of stderr.
    let mut guest_stderr = stderr.as_str();
    let mut nestbox_line = None;
    let body = stderr.strip_suffix('\n').unwrap_or(&stderr);
    let (before, last) = match body.rsplit_once('\n') {
        Some((before, last)) => (&stderr[..=before.len()], last),
        None => ("", body),
    };
    if last.starts_with("nestbox: ") {
        nestbox_line = Some(last);
        guest_stderr = before;
    }
    match e["error"].as_str() {
        Some(code) => {
            if run.status != Some(EXIT_GUEST_FAILED) {
                problems.push(format!(
                    "exit {:?}, expected {EXIT_GUEST_FAILED} ({code})",
                    run.status
                ));
            }
            // `nestbox: CODE: …`, or with a trap's code `nestbox: TRAP (unreachable): …`.
            let want = format!("nestbox: {code}: ");
            let with_trap_code = format!("nestbox: {code} (");
            if !nestbox_line.is_some_and(|l| l.starts_with(&want) || l.starts_with(&with_trap_code))
            {
                problems.push(format!(
                    "last stderr line {:?}, expected one starting {want:?}",
                    nestbox_line.unwrap_or(last)
                ));
            }
        }
        None => {
            let want = e["exit_code"].as_i64().expect("exit_code or error");
            if run.status.map(i64::from) != Some(want) {
                problems.push(format!("exit {:?}, expected {want}", run.status));
            }
            if let Some(line) = nestbox_line {
                problems.push(format!("nestbox said {line:?}"));
            }
        }
    }
    let stdout_file = e["stdout_by_language"][&job.lang]
        .as_str()
        .or_else(|| e["stdout"].as_str());
    if let Some(file) = stdout_file {
        let want = std::fs::read_to_string(suite().join(file)).expect("expected file");
        let got = String::from_utf8_lossy(&run.stdout);
        if let Some(diff) = first_mismatch(&want, &got) {
            problems.push(format!("stdout ({file}) {diff}"));
        }
    }
    if let Some(file) = e["stderr"].as_str() {
        let want = std::fs::read_to_string(suite().join(file)).expect("expected file");
        if let Some(diff) = first_mismatch(&want, guest_stderr) {
            problems.push(format!("stderr ({file}) {diff}"));
        }
    }
    if let Some(g) = e["stdout_generated"].as_object() {
        let full = generated_lines(g["lines_of_64_bytes"].as_u64().expect("lines") as usize);
        let out = &run.stdout;
        match g.get("cut_at_most_bytes").and_then(Value::as_u64) {
            Some(cap) => {
                // The manifest allows any prefix up to the cap; nestbox keeps exactly the
                // bytes up to it (wasi/mod.rs, "Going over an output cap"), so be exact.
                let cap = cap as usize;
                let want = &full[..cap.min(full.len())];
                if out.as_slice() != want {
                    let common = out.iter().zip(want).take_while(|(a, b)| a == b).count();
                    problems.push(format!(
                        "stdout {} bytes, expected the first {} of the generated lines \
                         (equal for {common} bytes)",
                        out.len(),
                        want.len()
                    ));
                }
            }
            None if *out != full => problems.push(format!(
                "stdout {} bytes, expected {} generated bytes",
                out.len(),
                full.len()
            )),
            None => {}
        }
    }
    problems
}

/// The output_cap program's stdout: line i is i zero-padded to 63 digits, then `\n`.
fn generated_lines(lines: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(lines * 64);
    for i in 0..lines {
        v.extend_from_slice(format!("{i:063}\n").as_bytes());
    }
    v
}

// ---- expected files: literal lines with placeholders (tests/wasi/README.md) ----

#[derive(Debug, PartialEq)]
enum Token {
    Literal(String),
    /// `{int}`: `-?[0-9]+`
    Int,
    /// `{hex}`: `[0-9a-f]+`
    Hex,
    /// `{*}`: anything on the line
    Any,
    /// `{A|B|C}`: exactly one of these literal texts
    OneOf(Vec<String>),
}

/// `None` when `actual` matches `expected` line by line, else where it first differs.
fn first_mismatch(expected: &str, actual: &str) -> Option<String> {
    let want: Vec<&str> = expected.split('\n').collect();
    let got: Vec<&str> = actual.split('\n').collect();
    for i in 0..want.len().max(got.len()) {
        let (w, g) = (want.get(i), got.get(i));
        let ok = matches!((w, g), (Some(w), Some(g)) if line_matches(w, g));
        if !ok {
            return Some(format!(
                "line {}: got {:?}, expected {:?}",
                i + 1,
                g.copied().unwrap_or("<end>"),
                w.copied().unwrap_or("<end>")
            ));
        }
    }
    None
}

/// Splits an expected line into literals and placeholders. `{…}` without `{`/`}` inside is a
/// placeholder when it is `int`, `hex`, `*` or has a `|`; anything else is literal text.
fn tokens(line: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut literal = String::new();
    let mut rest = line;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find(['{', '}'])
            .filter(|&j| after.as_bytes()[j] == b'}');
        let Some(close) = close else {
            literal.push_str(&rest[..=open]);
            rest = after;
            continue;
        };
        let inner = &after[..close];
        let token = match inner {
            "int" => Some(Token::Int),
            "hex" => Some(Token::Hex),
            "*" => Some(Token::Any),
            _ if inner.contains('|') => {
                Some(Token::OneOf(inner.split('|').map(str::to_owned).collect()))
            }
            _ => None,
        };
        literal.push_str(&rest[..open]);
        match token {
            Some(t) => {
                if !literal.is_empty() {
                    out.push(Token::Literal(std::mem::take(&mut literal)));
                }
                out.push(t);
            }
            None => literal.push_str(&rest[open..open + close + 2]),
        }
        rest = &after[close + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        out.push(Token::Literal(literal));
    }
    out
}

fn line_matches(pattern: &str, line: &str) -> bool {
    matches_from(&tokens(pattern), line)
}

/// Whether `tokens` match all of `s` (backtracking; lines are short).
fn matches_from(tokens: &[Token], s: &str) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return s.is_empty();
    };
    let run_of = |s: &str, ok: fn(u8) -> bool| s.bytes().take_while(|&b| ok(b)).count();
    match first {
        Token::Literal(text) => s
            .strip_prefix(text.as_str())
            .is_some_and(|after| matches_from(rest, after)),
        Token::OneOf(options) => options.iter().any(|o| {
            s.strip_prefix(o.as_str())
                .is_some_and(|after| matches_from(rest, after))
        }),
        Token::Int => {
            let sign = usize::from(s.starts_with('-'));
            let digits = run_of(&s[sign..], |b| b.is_ascii_digit());
            (1..=digits)
                .rev()
                .any(|n| matches_from(rest, &s[sign + n..]))
        }
        Token::Hex => {
            let digits = run_of(s, |b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            (1..=digits).rev().any(|n| matches_from(rest, &s[n..]))
        }
        Token::Any => (0..=s.len())
            .rev()
            .filter(|&i| s.is_char_boundary(i))
            .any(|i| matches_from(rest, &s[i..])),
    }
}

/// Every program source has a case in its language, and every case's program a source (as
/// the node runner checks).
fn coverage(manifest: &Value) -> Vec<Row> {
    let list = |dir: &str, keep: &dyn Fn(&Path) -> Option<String>| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(suite().join(dir))
            .expect("source dir")
            .filter_map(|e| keep(&e.expect("entry").path()))
            .collect();
        names.sort();
        names
    };
    let ext = |want: &'static str| {
        move |p: &Path| {
            (p.extension().and_then(|e| e.to_str()) == Some(want))
                .then(|| p.file_stem()?.to_str().map(str::to_owned))
                .flatten()
        }
    };
    let sources = [
        ("rust", list("rust/src/bin", &ext("rs"))),
        ("c", list("c", &ext("c"))),
        (
            "go",
            list("go", &|p: &Path| {
                p.join("main.go")
                    .is_file()
                    .then(|| p.file_name()?.to_str().map(str::to_owned))
                    .flatten()
            }),
        ),
    ];
    let cases = manifest["cases"].as_array().expect("cases");
    let mut rows = Vec::new();
    for (lang, programs) in &sources {
        for p in programs {
            let covered = cases.iter().any(|c| {
                c["program"] == p.as_str()
                    && c["languages"]
                        .as_array()
                        .is_some_and(|l| l.iter().any(|x| x == lang))
            });
            if !covered {
                rows.push(Row {
                    key: format!("(coverage)/{lang}"),
                    passed: false,
                    ms: 0,
                    detail: format!("program {p} has no case in programs.json"),
                });
            }
        }
    }
    for c in cases {
        for lang in c["languages"].as_array().expect("languages") {
            let lang = str_of(lang);
            let has = sources
                .iter()
                .any(|(l, ps)| *l == lang && ps.iter().any(|p| c["program"] == p.as_str()));
            if !has {
                rows.push(Row {
                    key: format!("{}/{lang}", str_of(&c["name"])),
                    passed: false,
                    ms: 0,
                    detail: format!("no {lang} source for program {}", c["program"]),
                });
            }
        }
    }
    rows
}

#[test]
fn the_placeholder_matcher_is_strict() {
    let m = line_matches;
    assert!(m("plain text", "plain text"));
    assert!(!m("plain text", "plain text "));
    assert!(!m("plain", ""));
    assert!(m("", ""));
    assert!(m("n={int}", "n=42"));
    assert!(m("n={int}", "n=-7"));
    assert!(!m("n={int}", "n="));
    assert!(!m("n={int}", "n=4x"));
    assert!(!m("n={int}", "n=+4"));
    assert!(m("{int} bytes", "12 bytes"));
    assert!(m("x={hex}", "x=00ff"));
    assert!(!m("x={hex}", "x=00FF"));
    assert!(!m("x={hex}", "x="));
    assert!(m("a {*} z", "a anything at all z"));
    assert!(m("a {*} z", "a  z"));
    assert!(!m("a {*} z", "a z"));
    assert!(m("{*}", ""));
    assert!(m("e: {ENOENT|EPERM}", "e: EPERM"));
    assert!(!m("e: {ENOENT|EPERM}", "e: EPERMX"));
    assert!(!m("e: {ENOENT|EPERM}", "e: ENOENT|EPERM"));
    assert!(m("{ok|ENOTCAPABLE} done", "ok done"));
    // Not placeholders: literal braces.
    assert!(m("{name}", "{name}"));
    assert!(m("map {}", "map {}"));
    assert!(m("{{int}}", "{5}"));
    assert!(m("ünïcödé {int}", "ünïcödé 3"));
    // Backtracking: `{int}` followed by digits.
    assert!(m("{int}0", "100"));
    assert!(m("{hex}ab", "12abab"));
    // Whole text, line by line: a missing or extra line fails.
    assert_eq!(first_mismatch("a\nb\n", "a\nb\n"), None);
    assert!(first_mismatch("a\nb\n", "a\nb").is_some());
    assert!(first_mismatch("a\n", "a\nextra\n").is_some());
    assert_eq!(
        tokens("x {int} {A|B}"),
        vec![
            Token::Literal("x ".into()),
            Token::Int,
            Token::Literal(" ".into()),
            Token::OneOf(vec!["A".into(), "B".into()])
        ]
    );
}
