//! `nestbox run`: a WASI preview1 command (its `_start`) in the sandbox, natively, with the
//! same core, `Limits` and defaults as the browser build.
//!
//! - **Files.** `--dir HOST::GUEST` copies HOST (files, directories, empty ones too) into the
//!   in-memory filesystem before the guest starts, within `--max-fs-bytes`/`--max-files`; the
//!   guest changes only that copy and the host is never written. `--out-dir DIR` writes the
//!   writable preopens' trees after the run (also after a trap or a limit) to a directory
//!   that must not exist yet.
//!   Host symlinks whose relative target stays inside the directory are copied as symlinks;
//!   others are refused with a clear error (dereferencing a link would silently change what
//!   the guest sees).
//! - **Output** is streamed: stdout and stderr are drained between fuel slices (about every
//!   millisecond of guest time) and after the run, and written to the real ones as they come;
//!   nestbox keeps no copy ([`nestbox::Instance::set_retain_output`]), so the caps
//!   ([`CLI_MAX_OUTPUT_BYTES`] by default, not the core's 1 MiB meant for output held in
//!   memory) bound what reaches our stdout, not our memory.
//! - **stdin** is ours by default, streamed as wasmtime, wasmer and node do (read on a thread;
//!   a guest waiting for it still ends at `--timeout-ms`); `--stdin FILE` gives a file's
//!   bytes, `--stdin none` an empty one.
//! - **Limits**: the line of an error that a limit ended the run with names the flag that
//!   raises it.
//! - **Exit status**: the guest's `proc_exit` code `& 0xff` (0 when `_start` returns; WASI
//!   exit codes are `u32` and a process status is a byte, as in a POSIX shell); [`EXIT_REFUSED`]
//!   when nestbox refuses to start the guest; [`EXIT_GUEST_FAILED`] when the guest traps or
//!   hits a limit. Both print `nestbox: CODE: message` as the last line of stderr.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nestbox::audit::{AuditEntry, GENESIS, parse_jsonl, verify};
use nestbox::policy::{Provenance, TrustPolicy, TrustedKey};
use nestbox::{
    Deterministic, Digest, Error, ErrorCode, FsEntry, FsTree, GuestMemory, Hooks, HostCall, Limits,
    Metrics, Preopen, Sandbox, Stdin, StdinFeed, Value, WasiConfig,
};

use crate::args::Args;

/// Exit status when nestbox refuses to start the guest: bad usage, an unreadable file, a
/// module that fails integrity, policy or validation, or imports nestbox cannot link (also
/// when it cannot write `--out-dir`, `--audit` or `--metrics` after the run).
pub const EXIT_REFUSED: u8 = crate::EXIT_USAGE;

/// Exit status when the guest ran and ended in a trap or a limit (fuel, timeout, memory,
/// output cap, stack, …) instead of exiting.
pub const EXIT_GUEST_FAILED: u8 = 126;

/// The default caps on stdout and stderr: the guest's output is streamed and not kept, so
/// the cap bounds only what it may write (e.g. to a file we are redirected to), not memory.
pub const CLI_MAX_OUTPUT_BYTES: u64 = 1 << 30;

/// `--stdin none`: an empty stdin.
const STDIN_NONE: &str = "none";

/// The preopen options, read together to keep their order (fds 3, 4, …).
const DIR_FLAGS: [&str; 2] = ["--dir", "--dir-ro"];

/// The usage text, with the defaults of [`Limits`] and [`WasiConfig`].
pub fn usage() -> String {
    let l = Limits::default();
    let w = WasiConfig::default();
    format!(
        "  run [OPTIONS] [--] MODULE.wasm [ARGS...]
                                        run a WASI preview1 command (_start) in the sandbox;
                                        options go before MODULE, everything after it is argv
    --argv0 NAME                        the guest's argv[0] (default: MODULE as given)
    --env KEY=VALUE                     an environment variable; the guest sees only these
    --dir HOST::GUEST                   preopen an in-memory copy of directory HOST at GUEST
                                        (fds 3, 4, … in order); HOST is never written
    --dir-ro HOST::GUEST                the same, read-only (changes fail with EROFS)
    --out-dir DIR                       after the run, write each writable preopen's files to
                                        DIR/GUEST (DIR must not exist; never over a HOST)
    --stdin -|FILE|none                 the guest's stdin: - streams ours (default), FILE gives
                                        a file's bytes (./none for a file called none), none
                                        an empty one
    --fuel N                            fuel budget (default {fuel}); FUEL_EXHAUSTED
    --max-memory-bytes BYTES            largest linear memory (default {memory}; K, M, G
                                        suffixes are binary); MEMORY_LIMIT. Old name: --memory
    --timeout-ms MS                     wall-clock limit (default {timeout}); TIMEOUT. Old
                                        name: --timeout
    --max-stdout-bytes BYTES            stdout cap (default {stdout}, 1 GiB: streamed, not kept
                                        in memory; K, M, G suffixes); OUTPUT_LIMIT
    --max-stderr-bytes BYTES            stderr cap (default {stderr}); OUTPUT_LIMIT
    --max-fs-bytes N                    bytes of all preopens, copies included (default {fs})
    --max-files N                       entries of all preopens, copies included (default {files})
    --seed N, --start-time-ns N         deterministic random_get and clocks (either one turns
                                        both on; the other defaults to 0)
    --integrity SRI                     the module's SHA-256 (sha256-<base64> or hex), checked
                                        before parsing; without it the module is pinned to its
                                        own digest, i.e. nothing is checked
    --pubkey ID=KEY --signature SIG     also require a valid signature (as `verify`)
    --audit FILE                        append load, instantiate and call entries to FILE, a
                                        hash-chained JSON Lines log (checked first)
    --metrics FILE|-                    write {{outcome, exitCode, metrics}} as JSON after the run
    --trace FILE|-                      write the run's trace after it (OTLP JSON: the _start call
                                        and a span per WASI call), also when it failed
    --trace-spans N                     the most spans the trace keeps, then it is marked
                                        truncated (default {spans})
    exit status: the guest's exit code & 0xff (0 when _start returns); {refused} when nestbox
    refuses (usage, unreadable file, integrity, policy, invalid module or imports); {failed} when
    the guest traps or hits a limit. Both end stderr with `nestbox: CODE: message`
    (`nestbox: TRAP (trap_code): message` for a trap).",
        fuel = l.fuel,
        memory = l.max_memory_bytes,
        timeout = l.timeout_ms,
        stdout = CLI_MAX_OUTPUT_BYTES,
        stderr = CLI_MAX_OUTPUT_BYTES,
        fs = w.max_fs_bytes,
        spans = CLI_TRACE_SPANS,
        files = w.max_files,
        refused = EXIT_REFUSED,
        failed = EXIT_GUEST_FAILED,
    )
}

/// A `--dir`/`--dir-ro` option.
struct DirSpec {
    flag: String,
    host: PathBuf,
    guest: String,
    read_only: bool,
}

impl DirSpec {
    fn describe(&self) -> String {
        format!("{} {}::{}", self.flag, self.host.display(), self.guest)
    }
}

/// Everything `run` was asked to do.
struct Options {
    module: String,
    guest_args: Vec<String>,
    argv0: Option<String>,
    env: Vec<(String, String)>,
    dirs: Vec<DirSpec>,
    out_dir: Option<PathBuf>,
    stdin: Option<String>,
    limits: Limits,
    max_stdout_bytes: u64,
    max_stderr_bytes: u64,
    max_fs_bytes: u64,
    max_files: u64,
    deterministic: Option<Deterministic>,
    integrity: Option<String>,
    pubkeys: Vec<TrustedKey>,
    signature: Option<String>,
    audit: Option<PathBuf>,
    metrics: Option<String>,
    /// `--trace FILE`, and how many spans it keeps.
    trace: Option<String>,
    trace_spans: u32,
}

/// The spans `--trace` keeps unless `--trace-spans` says otherwise (a WASI program makes many
/// calls; the core's default for a page is smaller).
pub(crate) const CLI_TRACE_SPANS: u32 = 10_000;

/// `nestbox run …`: parses, runs, reports; never returns an error (it has its own statuses).
pub fn main(items: Vec<String>) -> ExitCode {
    let options = match parse(items) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("usage: nestbox\n{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", error_line(&e));
            return ExitCode::from(EXIT_REFUSED);
        }
    };
    let audit = match options.audit.as_deref().map(AuditFile::open).transpose() {
        Ok(audit) => audit,
        Err(e) => {
            eprintln!("{}", error_line(&e));
            return ExitCode::from(EXIT_REFUSED);
        }
    };
    let report = execute(&options, audit.as_ref());
    // The guest's unfinished last line on stderr (say, a panic message) is ended before a
    // line of ours follows it; a run that ends well keeps its stderr byte for byte.
    let mut mid_line = report.stderr_mid_line;
    let mut end_line = || {
        if std::mem::take(&mut mid_line) {
            eprintln!();
        }
    };
    if report.error.is_some() {
        end_line();
    }
    let after = match audit.as_ref().and_then(AuditFile::error) {
        Some(e) => Err(e),
        None => finish(&options, report.digest.as_ref(), &report.result),
    };
    if after.is_err() {
        end_line();
    }
    // What the guest wrote is out already; what nestbox has to say comes last, the line that
    // explains the status at the very end.
    if let Some(e) = &report.error {
        eprintln!("{}", error_line(e));
    }
    match after {
        Ok(()) => ExitCode::from(report.status),
        Err(e) => {
            eprintln!("{}", error_line(&e));
            ExitCode::from(EXIT_REFUSED)
        }
    }
}

/// What a run came to.
struct Report {
    status: u8,
    /// The error that ended it, if any.
    error: Option<Error>,
    digest: Option<Digest>,
    result: RunResult,
    /// The guest's stderr did not end with a newline.
    stderr_mid_line: bool,
}

/// What the guest did, for `--out-dir`, `--audit` and `--metrics`.
#[derive(Default)]
struct RunResult {
    /// `None` when the guest never ran.
    files: Option<BTreeMap<String, FsTree>>,
    exit_code: Option<i32>,
    outcome: Option<ErrorCode>,
    metrics: Option<Metrics>,
    /// The module passed every check (what fails later is the guest's outcome).
    loaded: bool,
    /// The `_start` call's trace, with `--trace`.
    trace: Option<nestbox::Trace>,
}

// ---- arguments ----

/// Parses `run`'s arguments; `None` for `--help`.
fn parse(mut items: Vec<String>) -> Result<Option<Options>, Error> {
    // Options come first; the first item that is neither an option nor an option's value (or
    // whatever follows `--`) is the module, and everything after it belongs to the guest.
    let mut i = 0;
    let mut separator = false;
    while i < items.len() {
        let item = &items[i];
        if item == "--" {
            separator = true;
            break;
        }
        if item == "-h" || item == "--help" {
            return Ok(None);
        }
        if !item.starts_with("--") {
            break;
        }
        i += if item.contains('=') { 1 } else { 2 };
    }
    let mut rest = items.split_off(i.min(items.len()));
    if separator {
        rest.remove(0);
    }
    let mut args = Args::new(items);

    let argv0 = args.optional("--argv0")?;
    let mut env = Vec::new();
    for spec in args.all("--env")? {
        let (key, value) = spec.split_once('=').ok_or_else(|| {
            Error::invalid_argument(format!("--env takes KEY=VALUE, got {spec:?}"))
        })?;
        env.push((key.to_owned(), value.to_owned()));
    }
    let mut dirs = Vec::new();
    for (flag, spec) in args.all_of(&DIR_FLAGS)? {
        let parsed = spec
            .split_once("::")
            .filter(|(host, guest)| !host.is_empty() && !guest.is_empty());
        let Some((host, guest)) = parsed else {
            return Err(Error::invalid_argument(format!(
                "{flag} takes HOST::GUEST (e.g. ./data::/data), got {spec:?}"
            )));
        };
        dirs.push(DirSpec {
            read_only: flag == "--dir-ro",
            flag,
            host: PathBuf::from(host),
            guest: guest.to_owned(),
        });
    }
    let out_dir = args.optional("--out-dir")?.map(PathBuf::from);
    let stdin = args.optional("--stdin")?;
    let defaults = Limits::default();
    let wasi = WasiConfig::default();
    let limits = Limits {
        fuel: number(&mut args, "--fuel")?.unwrap_or(defaults.fuel),
        max_memory_bytes: match aliased(&mut args, "--max-memory-bytes", "--memory")? {
            Some((flag, text)) => bytes_with_suffix(flag, &text)?,
            None => defaults.max_memory_bytes,
        },
        timeout_ms: match aliased(&mut args, "--timeout-ms", "--timeout")? {
            Some((flag, text)) => parse_number(flag, &text)?,
            None => defaults.timeout_ms,
        },
        ..defaults
    };
    let max_stdout_bytes = bytes_option(&mut args, "--max-stdout-bytes")?;
    let max_stderr_bytes = bytes_option(&mut args, "--max-stderr-bytes")?;
    let max_fs_bytes = number(&mut args, "--max-fs-bytes")?.unwrap_or(wasi.max_fs_bytes);
    let max_files = number(&mut args, "--max-files")?.unwrap_or(wasi.max_files);
    let seed = number(&mut args, "--seed")?;
    let start_time_ns = number(&mut args, "--start-time-ns")?;
    let deterministic = (seed.is_some() || start_time_ns.is_some()).then(|| Deterministic {
        seed: seed.unwrap_or(0),
        start_time_ns: start_time_ns.unwrap_or(0),
    });
    let integrity = args.optional("--integrity")?;
    let mut pubkeys = Vec::new();
    for spec in args.all("--pubkey")? {
        let (id, key) = spec
            .split_once('=')
            .ok_or_else(|| Error::invalid_argument("--pubkey takes ID=PUBLIC_KEY"))?;
        pubkeys.push(TrustedKey::parse(id, key)?);
    }
    let signature = args.optional("--signature")?;
    if signature.is_some() && pubkeys.is_empty() {
        return Err(Error::invalid_argument(
            "--signature needs at least one --pubkey ID=PUBLIC_KEY to check it with",
        ));
    }
    let audit = args.optional("--audit")?.map(PathBuf::from);
    let metrics = args.optional("--metrics")?;
    let trace = args.optional("--trace")?;
    let trace_spans = trace_spans(args.optional("--trace-spans")?, trace.is_some())?;
    args.finish()?;
    limits.validate()?;

    let mut rest = rest.into_iter();
    let module = rest
        .next()
        .ok_or_else(|| Error::invalid_argument("missing MODULE.wasm"))?;
    let options = Options {
        module,
        guest_args: rest.collect(),
        argv0,
        env,
        dirs,
        out_dir,
        stdin,
        limits,
        max_stdout_bytes,
        max_stderr_bytes,
        max_fs_bytes,
        max_files,
        deterministic,
        integrity,
        pubkeys,
        signature,
        audit,
        metrics,
        trace,
        trace_spans,
    };
    if let Some(dir) = &options.out_dir {
        check_out_dir(dir, &options.dirs)?;
    }
    Ok(Some(options))
}

/// `--trace-spans N` (only with `--trace`): from 1 to the core's limit.
pub(crate) fn trace_spans(text: Option<String>, traced: bool) -> Result<u32, Error> {
    let Some(text) = text else {
        return Ok(CLI_TRACE_SPANS);
    };
    if !traced {
        return Err(Error::invalid_argument(
            "--trace-spans needs --trace FILE to write the trace to",
        ));
    }
    let limit = nestbox::trace::MAX_SPANS_LIMIT;
    match parse_number("--trace-spans", &text)? {
        n @ 1.. if n <= u64::from(limit) => Ok(n as u32),
        n => Err(Error::invalid_argument(format!(
            "--trace-spans must be from 1 to {limit}, got {n}"
        ))),
    }
}

/// Writes a trace as OTLP JSON to `target` (`-`: stderr).
pub(crate) fn write_trace(target: &str, trace: &nestbox::Trace) -> Result<(), Error> {
    let json = trace.to_otlp_json().to_string();
    if target == "-" {
        eprintln!("{json}");
        return Ok(());
    }
    std::fs::write(target, json + "\n")
        .map_err(|e| Error::invalid_argument(format!("cannot write {target}: {e}")))
}

/// A limit's option under its name (the core's, in kebab case) or its older, deprecated
/// alias: the value and the flag it came with. Both at once are refused.
fn aliased(
    args: &mut Args,
    name: &'static str,
    alias: &'static str,
) -> Result<Option<(&'static str, String)>, Error> {
    match (args.optional(name)?, args.optional(alias)?) {
        (Some(_), Some(_)) => Err(Error::invalid_argument(format!(
            "{name} and {alias} are the same option ({alias} is its old name): give one"
        ))),
        (Some(v), None) => Ok(Some((name, v))),
        (None, Some(v)) => Ok(Some((alias, v))),
        (None, None) => Ok(None),
    }
}

/// An output cap: a number of bytes with an optional suffix, [`CLI_MAX_OUTPUT_BYTES`] when not
/// given.
fn bytes_option(args: &mut Args, name: &str) -> Result<u64, Error> {
    match args.optional(name)? {
        Some(text) => bytes_with_suffix(name, &text),
        None => Ok(CLI_MAX_OUTPUT_BYTES),
    }
}

pub(crate) fn number(args: &mut Args, name: &str) -> Result<Option<u64>, Error> {
    args.optional(name)?
        .map(|text| parse_number(name, &text))
        .transpose()
}

pub(crate) fn parse_number(name: &str, text: &str) -> Result<u64, Error> {
    text.parse::<u64>().map_err(|_| {
        Error::invalid_argument(format!("{name} takes a non-negative integer, got {text:?}"))
    })
}

/// `4096`, `64K`, `16M`, `1G` (binary multiples).
pub(crate) fn bytes_with_suffix(name: &str, text: &str) -> Result<u64, Error> {
    let (digits, shift) = match text.char_indices().last() {
        Some((i, 'K' | 'k')) => (&text[..i], 10),
        Some((i, 'M' | 'm')) => (&text[..i], 20),
        Some((i, 'G' | 'g')) => (&text[..i], 30),
        _ => (text, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| {
            Error::invalid_argument(format!(
                "{name} takes a number of bytes (optionally with K, M or G), got {text:?}"
            ))
        })
}

/// Where `--out-dir` writes a preopen: the guest path without its root, `.` and `/` being
/// DIR itself.
fn out_subdir(guest: &str) -> Result<PathBuf, Error> {
    let mut sub = PathBuf::new();
    for c in Path::new(guest).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => sub.push(name),
            _ => {
                return Err(Error::invalid_argument(format!(
                    "--out-dir: cannot map guest path {guest:?} to a directory under it"
                )));
            }
        }
    }
    Ok(sub)
}

/// `--out-dir` must be new, must not land inside a HOST directory (it would change the
/// source), and the writable preopens must map to separate subdirectories.
fn check_out_dir(dir: &Path, dirs: &[DirSpec]) -> Result<(), Error> {
    if std::fs::symlink_metadata(dir).is_ok() {
        return Err(Error::invalid_argument(format!(
            "--out-dir {} already exists: give a new directory",
            dir.display()
        )));
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = parent.canonicalize().map_err(|e| {
        Error::invalid_argument(format!(
            "--out-dir {}: its parent directory is not usable: {e}",
            dir.display()
        ))
    })?;
    for spec in dirs {
        if let Ok(host) = spec.host.canonicalize() {
            if parent.starts_with(&host) {
                return Err(Error::invalid_argument(format!(
                    "--out-dir {} is inside the host directory of {}: nestbox never writes there",
                    dir.display(),
                    spec.describe()
                )));
            }
        }
    }
    let mut subs: Vec<(PathBuf, &str)> = Vec::new();
    for spec in dirs.iter().filter(|d| !d.read_only) {
        let sub = out_subdir(&spec.guest)?;
        if let Some((_, other)) = subs
            .iter()
            .find(|(s, _)| s.starts_with(&sub) || sub.starts_with(s))
        {
            return Err(Error::invalid_argument(format!(
                "--out-dir: the writable preopens {other:?} and {:?} would overlap in it",
                spec.guest
            )));
        }
        subs.push((sub, &spec.guest));
    }
    Ok(())
}

// ---- host directories into memory ----

/// What the copies may still take: the guest's quotas, counted as the core counts them.
struct Quota {
    bytes: u64,
    files: u64,
    max_bytes: u64,
    max_files: u64,
}

impl Quota {
    fn take(&mut self, spec: &DirSpec, rel: &str, bytes: u64) -> Result<(), Error> {
        self.files += 1;
        self.bytes = self.bytes.saturating_add(bytes);
        if self.files > self.max_files {
            return Err(Error::invalid_argument(format!(
                "{}: more than --max-files {} entries to copy (at {rel})",
                spec.describe(),
                self.max_files
            )));
        }
        if self.bytes > self.max_bytes {
            return Err(Error::invalid_argument(format!(
                "{}: more than --max-fs-bytes {} bytes to copy (at {rel})",
                spec.describe(),
                self.max_bytes
            )));
        }
        Ok(())
    }
}

/// Copies the host directory of `spec` into a preopen's initial tree: regular files,
/// directories (empty ones too) and symlinks whose relative target stays inside; nothing else.
fn copy_host_dir(spec: &DirSpec, quota: &mut Quota) -> Result<Preopen, Error> {
    let bad = |what: String| Error::invalid_argument(format!("{}: {what}", spec.describe()));
    let meta = std::fs::metadata(&spec.host)
        .map_err(|e| bad(format!("cannot read host directory: {e}")))?;
    if !meta.is_dir() {
        return Err(bad("the host path is not a directory".to_owned()));
    }
    let mut files = BTreeMap::new();
    let mut symlinks = BTreeMap::new();
    let mut stack = vec![String::new()];
    while let Some(rel_dir) = stack.pop() {
        let host_dir = spec.host.join(&rel_dir);
        let mut entries = std::fs::read_dir(&host_dir)
            .and_then(|entries| entries.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(format!("cannot list {}: {e}", host_dir.display())))?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let name = entry.file_name();
            let name = name.to_str().ok_or_else(|| {
                bad(format!(
                    "{} has a name that is not UTF-8",
                    entry.path().display()
                ))
            })?;
            let rel = if rel_dir.is_empty() {
                name.to_owned()
            } else {
                format!("{rel_dir}/{name}")
            };
            let kind = entry
                .file_type()
                .map_err(|e| bad(format!("cannot stat {rel}: {e}")))?;
            if kind.is_dir() {
                quota.take(spec, &rel, 0)?;
                files.insert(format!("{rel}/"), Vec::new());
                stack.push(rel);
            } else if kind.is_file() {
                let room = quota.max_bytes.saturating_sub(quota.bytes);
                let bytes = read_capped(&entry.path(), room)
                    .map_err(|e| bad(format!("cannot read {rel}: {e}")))?;
                quota.take(spec, &rel, bytes.len() as u64)?;
                files.insert(rel, bytes);
            } else if kind.is_symlink() {
                // Copied as a symlink when its relative target stays inside the directory
                // (resolution in the sandbox never leaves a preopen anyway); refused otherwise,
                // so a copy never silently changes what a path means.
                let target = std::fs::read_link(entry.path())
                    .map_err(|e| bad(format!("cannot read symlink {rel}: {e}")))?;
                let text = target.to_str().filter(|t| !t.is_empty()).ok_or_else(|| {
                    bad(format!(
                        "{rel} is a symlink whose target is not UTF-8: refused"
                    ))
                })?;
                if target.is_absolute() || !stays_inside(&rel, &target) {
                    return Err(bad(format!(
                        "{rel} is a symlink to {}: refused, it points outside the directory; replace it with a copy",
                        target.display()
                    )));
                }
                quota.take(spec, &rel, text.len() as u64)?;
                symlinks.insert(rel, text.to_owned());
            } else {
                return Err(bad(format!(
                    "{rel} is not a regular file, directory or symlink: refused"
                )));
            }
        }
    }
    Ok(Preopen {
        guest_path: spec.guest.clone(),
        files,
        symlinks,
        read_only: spec.read_only,
    })
}

/// Reads at most `max` bytes and one more, so that a larger file is noticed without reading
/// all of it.
fn read_capped(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Whether a symlink at `rel` (relative to the preopen) with `target` resolves, lexically,
/// inside the preopen.
fn stays_inside(rel: &str, target: &Path) -> bool {
    let mut depth: Vec<&std::ffi::OsStr> = Vec::new();
    let parent = Path::new(rel).parent().unwrap_or(Path::new(""));
    for c in parent.components().chain(target.components()) {
        match c {
            Component::Normal(n) => depth.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

// ---- the run ----

/// Everything from the module file to the guest's end, through the core: the sandbox checks
/// integrity, the trust policy and the module, records the audit log, and its driver runs the
/// guest with [`CliHooks`]. This file only translates options and does the I/O.
fn execute(options: &Options, audit: Option<&AuditFile>) -> Report {
    let mut report = Report {
        status: EXIT_REFUSED,
        error: None,
        digest: None,
        result: RunResult::default(),
        stderr_mid_line: false,
    };
    match run(options, audit, &mut report) {
        Ok(outcome) => {
            let code = outcome.exit_code.unwrap_or(0);
            report.status = (code & 0xff) as u8;
            report.result.exit_code = Some(code);
            report.result.metrics = Some(outcome.metrics);
        }
        Err(e) => {
            // Refusals map to EXIT_REFUSED; what happened once the module loaded (its
            // instantiation included) is the guest's outcome.
            report.status = status_of(e.code());
            if report.result.loaded {
                report.result.outcome = Some(e.code());
                report.result.metrics = e.metrics().cloned();
            }
            report.error = Some(e);
        }
    }
    report
}

fn run(
    options: &Options,
    audit: Option<&AuditFile>,
    report: &mut Report,
) -> Result<nestbox::Outcome, Error> {
    // Read no more than the core accepts: it refuses anything over `max_module_bytes`.
    let max = options.limits.max_module_bytes;
    let bytes = read_capped(Path::new(&options.module), max)
        .map_err(|e| Error::invalid_argument(format!("cannot read {}: {e}", options.module)))?;
    report.digest = Some(Digest::of(&bytes));
    let expected = match &options.integrity {
        Some(text) => Digest::parse(text)?,
        // Pinned to its own digest: nothing is checked.
        None => Digest::of(&bytes),
    };
    let policy = if options.pubkeys.is_empty() {
        TrustPolicy::permissive()
    } else {
        TrustPolicy {
            keys: options.pubkeys.clone(),
            require_signature: true,
            ..TrustPolicy::default()
        }
    };
    let sandbox = Sandbox::with_policy(options.limits.clone(), policy)?;
    if let Some(audit) = audit {
        audit.attach(&sandbox)?;
    }
    let provenance = Provenance {
        origin: None,
        signature: options.signature.clone(),
    };
    let module = sandbox.load_with(&bytes, &expected, &provenance)?;
    report.result.loaded = true;
    let (config, live) = wasi_config(options)?;
    let mut instance = sandbox.instantiate_wasi(&module, &config)?;
    // Streamed to ours as it comes: no copy is kept.
    instance.set_retain_output(false);
    let mut hooks = CliHooks {
        live,
        stderr_mid_line: false,
    };
    let call_options = nestbox::CallOptions {
        trace: options.trace.as_ref().map(|_| options.trace_spans),
        ..nestbox::CallOptions::default()
    };
    let result = nestbox::drive(&mut instance, "_start", &[], &call_options, &mut hooks);
    report.result.trace = instance.take_trace();
    report.stderr_mid_line = hooks.stderr_mid_line;
    if options.out_dir.is_some() {
        report.result.files = Some(instance.wasi_files());
    }
    result
}

/// The guest's WASI configuration: argv, environment, the preopens' copies, stdin.
fn wasi_config(options: &Options) -> Result<(WasiConfig, Option<LiveStdin>), Error> {
    let mut quota = Quota {
        bytes: 0,
        files: 0,
        max_bytes: options.max_fs_bytes,
        max_files: options.max_files,
    };
    let preopens = options
        .dirs
        .iter()
        .map(|spec| copy_host_dir(spec, &mut quota))
        .collect::<Result<Vec<_>, _>>()?;
    let (stdin, live) = match options.stdin.as_deref() {
        Some(STDIN_NONE) => (Stdin::Bytes(Vec::new()), None),
        None | Some("-") => (
            Stdin::Async,
            Some(LiveStdin {
                rx: read_stdin_on_a_thread(),
                open: true,
            }),
        ),
        Some(path) => (Stdin::Bytes(crate::args::read_bytes(path)?), None),
    };
    let mut args = vec![options.argv0.clone().unwrap_or(options.module.clone())];
    args.extend(options.guest_args.iter().cloned());
    let config = WasiConfig {
        args,
        env: options.env.clone(),
        preopens,
        stdin,
        max_stdout_bytes: options.max_stdout_bytes,
        max_stderr_bytes: options.max_stderr_bytes,
        max_fs_bytes: options.max_fs_bytes,
        max_files: options.max_files,
        deterministic: options.deterministic,
        ..WasiConfig::default()
    };
    Ok((config, live))
}

/// Which status an error maps to: the guest's own failures (traps and limits while it ran,
/// including in its start function or its initial memory) or nestbox's refusals.
pub(crate) fn status_of(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::FuelExhausted
        | ErrorCode::Timeout
        | ErrorCode::Cancelled
        | ErrorCode::MemoryLimit
        | ErrorCode::TableLimit
        | ErrorCode::StackOverflow
        | ErrorCode::Trap
        | ErrorCode::HostError
        | ErrorCode::OutputLimit
        | ErrorCode::GuestError => EXIT_GUEST_FAILED,
        _ => EXIT_REFUSED,
    }
}

/// Reads our stdin in chunks on a thread; the channel closes at end of file (or an error).
fn read_stdin_on_a_thread() -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::sync_channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// A live stdin as the driver feeds it to the guest.
struct LiveStdin {
    rx: Receiver<Vec<u8>>,
    open: bool,
}

impl LiveStdin {
    /// Waits up to `wait` for our stdin and pushes what came (or its end) to the guest.
    fn feed(&mut self, stdin: &mut StdinFeed<'_>, wait: Duration) -> Result<(), Error> {
        if !self.open {
            std::thread::sleep(wait);
            return Ok(());
        }
        match self.rx.recv_timeout(wait) {
            Ok(bytes) => stdin.push(&bytes, false),
            Err(RecvTimeoutError::Disconnected) => {
                self.open = false;
                stdin.push(&[], true)
            }
            Err(RecvTimeoutError::Timeout) => Ok(()),
        }
    }
}

/// How the core's driver runs a guest for `nestbox run`: output streamed to ours after every
/// step, sleeps as long as asked while our stdin keeps being buffered, no capabilities.
struct CliHooks {
    live: Option<LiveStdin>,
    /// The last byte written to our stderr was not a newline.
    stderr_mid_line: bool,
}

impl Hooks for CliHooks {
    fn host_call(&mut self, call: &HostCall, _: &mut GuestMemory<'_>) -> Result<Vec<Value>, Error> {
        Err(Error::host_failed(format!(
            "nestbox run grants no capabilities besides WASI, but {} was called",
            call.import
        )))
    }

    fn streams_output(&self) -> bool {
        true
    }

    /// A closed stdout (a pipe to `head`) loses the rest of the guest's output but does not
    /// stop the guest.
    fn output(&mut self, out: &[u8], err: &[u8]) {
        if !out.is_empty() {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(out).and_then(|()| stdout.flush());
        }
        if let Some(&last) = err.last() {
            self.stderr_mid_line = last != b'\n';
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(err).and_then(|()| stderr.flush());
        }
    }

    /// A sleep lasts as long as asked (a poll that also waits for stdin then reports it at
    /// the end), while our stdin keeps being buffered.
    fn sleep(&mut self, stdin: &mut StdinFeed<'_>, duration_ns: u64) -> Result<(), Error> {
        let until = Instant::now() + Duration::from_nanos(duration_ns);
        let Some(live) = self.live.as_mut() else {
            std::thread::sleep(Duration::from_nanos(duration_ns));
            return Ok(());
        };
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            live.feed(stdin, left)?;
        }
    }

    /// Until data, end of file or the deadline (then the core's resume fails: TIMEOUT).
    fn read_stdin(&mut self, stdin: &mut StdinFeed<'_>, _max_bytes: u32) -> Result<(), Error> {
        match self.live.as_mut() {
            Some(live) => {
                let left = stdin.time_left();
                live.feed(stdin, left.max(Duration::from_millis(1)))
            }
            None => stdin.push(&[], true),
        }
    }
}

/// The one line nestbox prints for an error: `nestbox: CODE: message`, with the trap code for
/// a trap.
pub(crate) fn error_line(e: &Error) -> String {
    let code = match (e.code(), e.details().trap_code) {
        (ErrorCode::Trap, Some(trap)) => format!("TRAP ({})", trap.as_str()),
        (code, _) => code.as_str().to_owned(),
    };
    let message: String = e
        .message()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match raised_by(e) {
        Some(flag) => format!("nestbox: {code}: {message} (raise it with {flag})"),
        None => format!("nestbox: {code}: {message}"),
    }
}

/// The flag that raises the limit `e` is about, if a flag does.
fn raised_by(e: &Error) -> Option<&'static str> {
    match e.code() {
        ErrorCode::FuelExhausted => Some("--fuel N"),
        ErrorCode::Timeout => Some("--timeout-ms MS"),
        ErrorCode::MemoryLimit => Some("--max-memory-bytes BYTES"),
        // The core's message names the stream: "stderr over its cap of N bytes".
        ErrorCode::OutputLimit if e.message().starts_with("stderr") => {
            Some("--max-stderr-bytes BYTES")
        }
        // A data call's output (`nestbox call`).
        ErrorCode::OutputLimit if e.message().starts_with("output") => {
            Some("--max-output-bytes BYTES")
        }
        ErrorCode::InputLimit => Some("--max-input-bytes BYTES"),
        ErrorCode::OutputLimit => Some("--max-stdout-bytes BYTES"),
        _ => None,
    }
}

// ---- after the run: --out-dir, --audit, --metrics ----

fn finish(options: &Options, digest: Option<&Digest>, result: &RunResult) -> Result<(), Error> {
    if let (Some(dir), Some(files)) = (&options.out_dir, &result.files) {
        write_out_dir(dir, &options.dirs, files)?;
    }
    if let Some(target) = &options.metrics {
        let json = serde_json::json!({
            "module": digest.map(Digest::to_sri),
            "outcome": result.outcome.map_or("ok", ErrorCode::as_str),
            "exitCode": result.exit_code,
            "metrics": result.metrics,
        })
        .to_string();
        if target == "-" {
            eprintln!("{json}");
        } else {
            std::fs::write(target, json + "\n")
                .map_err(|e| Error::invalid_argument(format!("cannot write {target}: {e}")))?;
        }
    }
    if let (Some(target), Some(trace)) = (&options.trace, &result.trace) {
        write_trace(target, trace)?;
    }
    Ok(())
}

/// Writes each writable preopen's tree to `dir/GUEST`. Every name comes from the guest, so
/// each component is checked again, files are created only where nothing exists, and
/// symlinks are written last and only when they stay inside their preopen once resolved
/// through the tree ([`resolve_in_tree`]); the others are skipped with a warning.
fn write_out_dir(
    dir: &Path,
    dirs: &[DirSpec],
    files: &BTreeMap<String, FsTree>,
) -> Result<(), Error> {
    let fail = |what: &Path, e: std::io::Error| {
        Error::invalid_argument(format!("--out-dir: cannot write {}: {e}", what.display()))
    };
    std::fs::create_dir(dir).map_err(|e| fail(dir, e))?;
    for spec in dirs.iter().filter(|d| !d.read_only) {
        let root = dir.join(out_subdir(&spec.guest)?);
        std::fs::create_dir_all(&root).map_err(|e| fail(&root, e))?;
        let Some(tree) = files.get(&spec.guest) else {
            continue;
        };
        let mut links = Vec::new();
        for (rel, entry) in tree {
            let safe = rel
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\\'));
            if !safe {
                return Err(Error::invalid_argument(format!(
                    "--out-dir: refusing the guest's path {rel:?}"
                )));
            }
            let path = root.join(rel);
            match entry {
                FsEntry::Dir => std::fs::create_dir_all(&path).map_err(|e| fail(&path, e))?,
                FsEntry::File(bytes) => OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .and_then(|mut f| f.write_all(bytes))
                    .map_err(|e| fail(&path, e))?,
                FsEntry::Symlink(target) => links.push((rel, path, target)),
            }
        }
        for (rel, path, target) in links {
            if resolve_in_tree(tree, rel).is_none() {
                eprintln!(
                    "nestbox: --out-dir: skipped {rel} in {}: a symlink to {target:?}, which \
                     leads outside it (or loops) once the links on its way are followed",
                    spec.guest
                );
                continue;
            }
            #[cfg(unix)]
            std::os::unix::fs::symlink(target, &path).map_err(|e| fail(&path, e))?;
            #[cfg(not(unix))]
            eprintln!("nestbox: --out-dir: skipped symlink {}", path.display());
        }
    }
    Ok(())
}

/// Most symlinks one resolution follows, as Linux (and the core's filesystem).
const MAX_SYMLINK_HOPS: usize = 40;

/// Where the symlink at `rel` leads in `tree` (a preopen's tree as exported), following every
/// symlink on the way, the ones its target goes through included, as the host will once they
/// are written: the path's components from the preopen's root, or `None` when it leaves the
/// root (`..` above it, an absolute target), loops, or follows more than
/// [`MAX_SYMLINK_HOPS`] links. A text check alone is not enough: with `d/up -> ..`,
/// `d/up/d/up/../../..` looks inside but is the root's parent. What does not exist is taken
/// as it is written (nothing written later can make it a link: links come from the tree).
fn resolve_in_tree(tree: &FsTree, rel: &str) -> Option<Vec<String>> {
    let mut at: Vec<String> = Vec::new();
    // Components still to walk, last first; link targets are pushed on top.
    let mut todo: Vec<String> = rel.rsplit('/').map(str::to_owned).collect();
    let mut hops = 0;
    while let Some(name) = todo.pop() {
        match name.as_str() {
            "" | "." => {}
            ".." => {
                at.pop()?;
            }
            _ => {
                at.push(name);
                if let Some(FsEntry::Symlink(target)) = tree.get(&at.join("/")) {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS || target.starts_with('/') || target.is_empty() {
                        return None;
                    }
                    at.pop();
                    todo.extend(target.rsplit('/').map(str::to_owned));
                }
            }
        }
    }
    Some(at)
}

/// `--audit FILE`: an existing log is verified first; the sandbox's own log then continues
/// its chain, and every entry the core records is appended to the file as it is recorded.
struct AuditFile {
    path: PathBuf,
    next_seq: u64,
    head: String,
    /// The first write error, reported after the run.
    failed: Arc<Mutex<Option<String>>>,
}

impl AuditFile {
    fn open(path: &Path) -> Result<Self, Error> {
        let shown = path.display();
        let entries = match std::fs::read_to_string(path) {
            Ok(text) => parse_jsonl(&text).map_err(|e| {
                Error::invalid_argument(format!("--audit {shown}: {}", e.message()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::invalid_argument(format!("cannot read {shown}: {e}"))),
        };
        verify(&entries, None).map_err(|f| {
            Error::invalid_argument(format!(
                "--audit {shown}: the existing log does not verify at entry {}: {}",
                f.index, f.reason
            ))
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            next_seq: entries.len() as u64,
            head: entries
                .last()
                .map_or_else(|| GENESIS.to_owned(), |e| e.hash.clone()),
            failed: Arc::new(Mutex::new(None)),
        })
    }

    /// Makes `sandbox`'s log continue the file's chain and append to it.
    fn attach(&self, sandbox: &Sandbox) -> Result<(), Error> {
        let shown = self.path.display().to_string();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::invalid_argument(format!("cannot open {shown}: {e}")))?;
        sandbox.continue_audit(self.next_seq, &self.head)?;
        let failed = Arc::clone(&self.failed);
        sandbox.set_audit_sink(Some(Box::new(move |entry: &AuditEntry| {
            let written = writeln!(file, "{}", entry.to_json()).and_then(|()| file.flush());
            if let Err(e) = written {
                let mut slot = failed.lock().unwrap_or_else(PoisonError::into_inner);
                slot.get_or_insert_with(|| format!("cannot write {shown}: {e}"));
            }
        })));
        Ok(())
    }

    /// The first write that failed, if any.
    fn error(&self) -> Option<Error> {
        let slot = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        slot.clone().map(Error::invalid_argument)
    }
}
