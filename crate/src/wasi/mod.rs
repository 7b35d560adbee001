//! WASI preview1 (`wasi_snapshot_preview1`) over an in-memory filesystem.
//!
//! Nothing here touches the real machine: args and environment are exactly what the caller
//! gave, preopened directories are in-memory trees ([`Preopen`]) with quotas, stdout and
//! stderr are captured with byte caps, stdin is bytes given up front or an async source the
//! caller feeds, clocks and randomness are real or deterministic ([`Deterministic`]).
//!
//! **Linking.** Every preview1 function exists with its exact type ([`FUNCTION_NAMES`]); a
//! module links the ones it imports. An import under `wasi_snapshot_preview1` that is not a
//! preview1 function fails with `IMPORT_NOT_GRANTED`, one with another type with
//! `SIGNATURE_MISMATCH`, like any capability. Functions nestbox cannot honour return an errno
//! (sockets: `EBADF`/`ENOTSOCK`; `proc_raise`: `ENOSYS`) and never trap.
//!
//! **Execution.** WASI functions run synchronously inside the interpreter. They suspend the
//! guest (a [`Step::Yield`](crate::Step::Yield) whose reason is
//! [`Instance::wasi_wait`](crate::Instance::wasi_wait)) in only two cases: a `poll_oneoff`
//! that has to wait for a clock ([`WasiWait::Sleep`], unless the clock is deterministic, in
//! which case virtual time just advances) and a read of an empty async stdin
//! ([`WasiWait::ReadStdin`]). `proc_exit(n)` ends the call with
//! `exit_code: Some(n)` — a result, not an error. Going over an output cap ends the call
//! with `OUTPUT_LIMIT`, keeping the bytes up to the cap.
//!
//! **Fuel.** Each WASI call costs `Limits::host_call_fuel` plus 1 per 64 bytes it moves
//! (read, written, zero-filled, listed, generated) plus 50 per path component it walks or
//! directory entry it passes over, so a guest cannot loop on free I/O and every slice stays
//! short. The bytes a call will move are paid *before* they are copied: if the call's budget
//! cannot pay them, the call ends with `FUEL_EXHAUSTED` and nothing is copied.
//!
//! **Host memory** never grows with what a guest asks for, only with what the quotas allow:
//! the fd is checked before the iovecs are read (a write to stdin is `EBADF` at once), writes
//! and reads go straight between guest memory and the file, output or stdin buffer one iovec
//! at a time, `fd_readdir` writes entries straight into the guest's buffer, `random_get`
//! generates 4 KiB at a time, and `poll_oneoff` takes at most 4096 subscriptions (`EINVAL`
//! beyond, once they are known to be in memory). At most 1024 iovecs (`IOV_MAX`, `EINVAL`)
//! and 4096-byte paths (`PATH_MAX`, `ENAMETOOLONG`) per call.
//!
//! **Guest memory** is reached only through a checked view: a bad pointer or length is
//! `EFAULT` to the guest (never a host panic, never a clamp; wasmtime traps instead — see
//! `memory.rs` for why nestbox does not); offsets and lengths use checked arithmetic.
//!
//! **Choices worth knowing** (wasmtime's `preview_1.rs` is the reference where the spec is
//! silent):
//! - stdin, stdout and stderr report `FILETYPE_CHARACTER_DEVICE` without seek/tell rights,
//!   i.e. a terminal, as wasmtime does for a tty: wasi-libc's `isatty` then says yes, so C
//!   programs line-buffer stdout and output streams to the page line by line; Go and Rust
//!   accept it. Their `fd_fdstat_set_flags` accepts `NONBLOCK` (Go sets it at start-up) and
//!   they never answer `EAGAIN`.
//! - clocks: `REALTIME` and `MONOTONIC` with a resolution of 1 µs; the monotonic clock starts
//!   at 1 s, never 0 (Go's runtime aborts on a zero `nanotime`); the two CPU-time clocks read
//!   as the monotonic one (wasi-libc's `clock()` needs an answer). A deterministic clock
//!   starts at `start_time_ns` (realtime) and 1 s (monotonic) and moves only when the guest
//!   sleeps.
//! - escaping a preopen (`..` at the directory fd a path is resolved from, an absolute path,
//!   an absolute symlink target, or a relative one that climbs out) is `ENOTCAPABLE`;
//!   creating an absolute symlink is refused the same way. Changing a read-only preopen is
//!   `EROFS`. Over `max_fs_bytes` is `ENOSPC` (writes are short when part fits), over
//!   `max_files` is `EDQUOT`.
//! - the tree read back after a run ([`WasiOutcome::files`]) stays within the quotas: every
//!   name counts against `max_files`, hard links included, and a file's bytes count once per
//!   name against `max_fs_bytes` (the export copies them under each name; a link that does
//!   not fit is `ENOSPC`, and a file with 3 names grows 3 bytes of quota per byte). An entry
//!   may be at most 128 directories deep and its path from the preopen at most 4096 bytes
//!   (`ENAMETOOLONG`, Linux's answer for a path over `PATH_MAX`; renaming a directory checks
//!   its whole tree), so the export holds at most `max_files` paths of at most 4096 bytes.
//! - rights are enforced as wasmtime's `preview_1.rs` enforces them (wasi-testsuite's
//!   `fd_fdstat_set_rights` and `truncation_rights`): `fd_fdstat_set_rights` only drops rights
//!   (`ENOTCAPABLE` to add one); every operation on an fd needs its right — `fd_read`
//!   `FD_READ`, `fd_pread` also `FD_SEEK`, `fd_seek` `FD_SEEK` (`FD_TELL` is enough to ask
//!   the position), `fd_filestat_set_size` `FD_FILESTAT_SET_SIZE`, `fd_readdir` `FD_READDIR`,
//!   each `path_*` function the directory's `PATH_*` right, `path_open` `PATH_OPEN` plus
//!   `PATH_CREATE_FILE` for `O_CREAT` and `PATH_FILESTAT_SET_SIZE` for `O_TRUNC`, and so on.
//!   A missing `FD_READ` or `FD_WRITE` is `EBADF` (POSIX's answer for a file not open for
//!   it), any other missing right `EPERM` (wasmtime's answer, which `truncation_rights`
//!   expects). `path_open` gives the new fd at most the directory's inheriting rights (asking
//!   for more is not an error: wasi-libc, Rust and Go ask for all they might use). Checks
//!   come after the errno an fd's kind already gives (`ESPIPE` to seek stdio), and
//!   `fd_sync`/`fd_datasync`/`fd_filestat_set_times` on stdio, which do nothing, need no
//!   right; `poll_oneoff` does not check `POLL_FD_READWRITE`. The read-only flag of a preopen
//!   is enforced apart (`EROFS`), and a read-only preopen reports the same rights as a
//!   writable one on purpose: wasi-libc (and so Rust std) masks what it asks `path_open` for
//!   with the directory's inheriting rights, so an `O_WRONLY` open would otherwise arrive as a
//!   read-only open and succeed instead of failing with `EROFS`.

mod clock;
mod fd;
mod fs;
mod memory;
mod path;
mod poll;
mod proc;
mod random;
mod sock;

use std::collections::{BTreeMap, VecDeque};

use wasip1::{ERRNO_NOSYS, Errno};
use wasmi::{Caller, Linker};
use web_time::Instant;

use crate::capability::Grants;
use crate::data::DataConfig;
use crate::error::{Error, ErrorCode};
use crate::fuel::FuelLedger;
use crate::metrics::Metrics;
use crate::trace::{AttrValue, Tracer};
use crate::value::{Signature, Value, ValueType};

use self::clock::Clock;
use self::fd::FdTable;
use self::fs::{Fs, NodeId};
use self::memory::Iovec;
pub(crate) use self::memory::WasiMemory;
use self::random::Rng;

/// The import namespace of WASI preview1.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// Where the guest's standard input comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stdin {
    /// These bytes, then end of file.
    Bytes(Vec<u8>),
    /// Fed by the caller while the guest runs: a read of empty stdin suspends the guest
    /// ([`WasiWait::ReadStdin`]); answer with
    /// [`Instance::resume_stdin`](crate::Instance::resume_stdin). Data can also be pushed
    /// ahead of time with [`Instance::push_stdin`](crate::Instance::push_stdin).
    Async,
}

impl Default for Stdin {
    fn default() -> Self {
        Self::Bytes(Vec::new())
    }
}

/// Deterministic clocks and randomness: the same program with the same inputs produces the
/// same outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deterministic {
    /// Seeds the ChaCha20 generator behind `random_get`.
    pub seed: u64,
    /// The realtime clock's start, in nanoseconds since the Unix epoch. The monotonic clock
    /// starts at 1 s (never 0). Both move only when the guest sleeps (`poll_oneoff`), by
    /// exactly the time it asked for, without waiting.
    pub start_time_ns: u64,
}

/// A directory the guest sees at `guest_path`, backed by an in-memory tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preopen {
    /// The name the guest sees (`fd_prestat_dir_name`), e.g. `/`, `/data` or `.`. wasi-libc,
    /// Rust and Go map absolute paths to the preopen with the longest matching prefix.
    pub guest_path: String,
    /// The initial tree: relative path (`a/b.txt`) to contents. Parent directories are
    /// created as needed; a key ending in `/` (`empty/`) is a directory, with no contents.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Symbolic links: relative path to a relative target (`"latest" -> "v2/data.txt"`).
    /// Resolution never leaves the preopen; absolute targets are refused.
    pub symlinks: BTreeMap<String, String>,
    /// Whether the guest may only read (every change is `EROFS`).
    pub read_only: bool,
}

impl Preopen {
    /// An empty, writable directory at `guest_path`.
    pub fn new(guest_path: impl Into<String>) -> Self {
        Self {
            guest_path: guest_path.into(),
            ..Self::default()
        }
    }

    /// Adds a symbolic link to a relative `target` (builder style).
    pub fn symlink(mut self, path: impl Into<String>, target: impl Into<String>) -> Self {
        self.symlinks.insert(path.into(), target.into());
        self
    }

    /// Adds a file (builder style).
    pub fn file(mut self, path: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        self.files.insert(path.into(), contents.into());
        self
    }

    /// Adds an (empty) directory (builder style).
    pub fn dir(mut self, path: impl Into<String>) -> Self {
        let mut path = path.into();
        if !path.ends_with('/') {
            path.push('/');
        }
        self.files.insert(path, Vec::new());
        self
    }

    /// Makes the directory read-only (builder style).
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }
}

/// Everything a WASI guest gets from its host.
#[derive(Clone, Debug, PartialEq)]
pub struct WasiConfig {
    /// The arguments exactly as the guest sees them, `args[0]` being the program name.
    /// Default: `["guest"]`.
    pub args: Vec<String>,
    /// The environment exactly as the guest sees it, in this order. Default: empty.
    pub env: Vec<(String, String)>,
    /// Preopened directories, given to the guest as fds 3, 4, … in this order.
    pub preopens: Vec<Preopen>,
    /// Standard input. Default: empty.
    pub stdin: Stdin,
    /// Cap on stdout; passing it ends the call with `OUTPUT_LIMIT`. Default 1 MiB.
    pub max_stdout_bytes: u64,
    /// Cap on stderr; passing it ends the call with `OUTPUT_LIMIT`. Default 1 MiB.
    pub max_stderr_bytes: u64,
    /// Cap on the bytes of all files and symlinks of all preopens together, initial files
    /// included (`ENOSPC` to the guest). Default 64 MiB.
    pub max_fs_bytes: u64,
    /// Cap on the files, directories and symlinks of all preopens together, initial ones
    /// included, roots excluded (`EDQUOT` to the guest). Default 10,000.
    pub max_files: u64,
    /// Deterministic clocks and randomness; `None` (default) for the real ones.
    pub deterministic: Option<Deterministic>,
    /// Capabilities granted besides WASI (under any namespace but `wasi_snapshot_preview1`).
    pub grants: Grants,
    /// What a data call's guest reads with `config_get`, and its variables' cap (the data
    /// ABI, [`data`](crate::data)).
    pub data: DataConfig,
}

impl Default for WasiConfig {
    fn default() -> Self {
        Self {
            args: vec!["guest".to_owned()],
            env: Vec::new(),
            preopens: Vec::new(),
            stdin: Stdin::default(),
            max_stdout_bytes: 1 << 20,
            max_stderr_bytes: 1 << 20,
            max_fs_bytes: 64 << 20,
            max_files: 10_000,
            deterministic: None,
            grants: Grants::new(),
            data: DataConfig::default(),
        }
    }
}

/// One entry of a filesystem tree read back after a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsEntry {
    /// A regular file and its contents.
    File(Vec<u8>),
    /// A directory (its entries are listed under its path).
    Dir,
    /// A symbolic link and its target.
    Symlink(String),
}

/// One preopen's tree: relative path (`a/b.txt`) to entry, every directory listed.
pub type FsTree = BTreeMap<String, FsEntry>;

/// The result of a WASI command run to completion ([`run_wasi`](crate::run_wasi)).
#[derive(Clone, Debug, PartialEq)]
pub struct WasiOutcome {
    /// `proc_exit`'s status, or 0 when `_start` returned.
    pub exit_code: i32,
    /// Everything the guest wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the guest wrote to stderr.
    pub stderr: Vec<u8>,
    /// Each preopen's tree after the run, by guest path.
    pub files: BTreeMap<String, FsTree>,
    /// What the run cost.
    pub metrics: Metrics,
}

// ---- the context kept in the store ----

/// Captured stdout or stderr: everything written (up to the cap), and how much of it the
/// driver has already taken.
pub(crate) struct Output {
    name: &'static str,
    all: Vec<u8>,
    drained: usize,
    max_bytes: u64,
    /// Whether drained bytes stay in `all` (default); when not, `take` drops them and only
    /// their count is kept, in `dropped`, so the cap still counts everything written.
    retain: bool,
    dropped: u64,
}

impl Output {
    fn new(name: &'static str, max_bytes: u64) -> Self {
        Self {
            name,
            all: Vec::new(),
            drained: 0,
            max_bytes,
            retain: true,
            dropped: 0,
        }
    }

    /// Bytes written so far, dropped ones included.
    fn written(&self) -> u64 {
        self.dropped.saturating_add(self.all.len() as u64)
    }

    /// Appends `bytes`; past the cap keeps what fits and fails with `OUTPUT_LIMIT`.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let room = self.room();
        if bytes.len() as u64 <= room {
            self.all.extend_from_slice(bytes);
            return Ok(());
        }
        let fits = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
        self.all
            .extend_from_slice(bytes.get(..fits).unwrap_or_default());
        let (name, max) = (self.name, self.max_bytes);
        Err(Error::new(
            ErrorCode::OutputLimit,
            format!("{name} over its cap of {max} bytes"),
        )
        .with(|d| d.limit = Some(max)))
    }

    /// Bytes that can still be written before the cap.
    pub(crate) fn room(&self) -> u64 {
        self.max_bytes.saturating_sub(self.written())
    }

    fn take(&mut self) -> Vec<u8> {
        if !self.retain {
            let new = self.all.split_off(self.drained.min(self.all.len()));
            self.dropped = self.written().saturating_add(new.len() as u64);
            self.all = Vec::new();
            self.drained = 0;
            return new;
        }
        let new = self.all.get(self.drained..).unwrap_or_default().to_vec();
        self.drained = self.all.len();
        new
    }
}

/// Standard input as buffered so far.
pub(crate) struct StdinBuf {
    pub data: VecDeque<u8>,
    /// No more bytes will come.
    pub closed: bool,
    pub is_async: bool,
}

/// A preopened directory as the guest sees it.
pub(crate) struct PreopenDir {
    pub guest_path: String,
    pub root: NodeId,
}

/// What a suspended WASI call will do when the caller resumes it.
pub(crate) enum Suspended {
    /// `fd_read` on empty async stdin: fill these buffers, write the count to `nread_ptr`.
    Read { iovs: Vec<Iovec>, nread_ptr: u32 },
    /// `poll_oneoff` waiting for a clock or for stdin.
    Poll(poll::PendingPoll),
}

/// All WASI state of one instance, kept in its store.
pub(crate) struct WasiCtx {
    args: Vec<Vec<u8>>,
    env: Vec<Vec<u8>>,
    pub(crate) fs: Fs,
    pub(crate) fds: FdTable,
    pub(crate) preopens: Vec<PreopenDir>,
    pub(crate) stdin: StdinBuf,
    pub(crate) stdout: Output,
    pub(crate) stderr: Output,
    pub(crate) clock: Clock,
    pub(crate) rng: Rng,
    pub(crate) suspended: Option<Suspended>,
}

impl WasiCtx {
    /// Builds the context, checking the configuration.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` for a NUL in an argument or variable, `=` or nothing in a variable
    /// name, a bad or duplicate preopen path, or initial files over a quota.
    pub(crate) fn new(config: &WasiConfig) -> Result<Self, Error> {
        let mut args = Vec::with_capacity(config.args.len());
        for arg in &config.args {
            if arg.contains('\0') {
                return Err(Error::invalid_argument(format!(
                    "wasi argument {arg:?} contains NUL"
                )));
            }
            args.push(nul_terminated(arg));
        }
        let mut env = Vec::with_capacity(config.env.len());
        for (key, value) in &config.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
                return Err(Error::invalid_argument(format!(
                    "wasi environment variable {key:?}: names must be non-empty without = or NUL, values without NUL"
                )));
            }
            env.push(nul_terminated(&format!("{key}={value}")));
        }
        let clock = Clock::new(config.deterministic);
        let now = clock.realtime_ns();
        let mut fs = Fs::new(config.max_fs_bytes, config.max_files);
        let mut fds = FdTable::with_stdio();
        let mut preopens = Vec::with_capacity(config.preopens.len());
        for (index, preopen) in config.preopens.iter().enumerate() {
            let guest_path = &preopen.guest_path;
            if guest_path.is_empty() || guest_path.contains('\0') {
                return Err(Error::invalid_argument(format!(
                    "preopen guest path {guest_path:?} must be non-empty without NUL"
                )));
            }
            if preopens
                .iter()
                .any(|p: &PreopenDir| &p.guest_path == guest_path)
            {
                return Err(Error::invalid_argument(format!(
                    "preopen guest path {guest_path:?} is given twice"
                )));
            }
            let root = fs.add_root(now);
            let entries = preopen
                .files
                .iter()
                .map(|(p, b)| (p.as_str(), fs::Initial::File(b)))
                .chain(
                    preopen
                        .symlinks
                        .iter()
                        .map(|(p, t)| (p.as_str(), fs::Initial::Symlink(t))),
                );
            fs.populate(root, entries, preopen.read_only, now)
                .map_err(|e| Error::invalid_argument(format!("preopen {guest_path:?}: {e}")))?;
            fds.insert_preopen(&mut fs, root, index).map_err(|e| {
                Error::invalid_argument(format!(
                    "preopen {guest_path:?}: cannot give it an fd: {}",
                    e.message()
                ))
            })?;
            preopens.push(PreopenDir {
                guest_path: guest_path.clone(),
                root,
            });
        }
        let (data, closed, is_async) = match &config.stdin {
            Stdin::Bytes(bytes) => (bytes.iter().copied().collect(), true, false),
            Stdin::Async => (VecDeque::new(), false, true),
        };
        Ok(Self {
            args,
            env,
            fs,
            fds,
            preopens,
            stdin: StdinBuf {
                data,
                closed,
                is_async,
            },
            stdout: Output::new("stdout", config.max_stdout_bytes),
            stderr: Output::new("stderr", config.max_stderr_bytes),
            clock,
            rng: Rng::new(config.deterministic),
            suspended: None,
        })
    }

    /// stdout and stderr written since the last call.
    pub(crate) fn take_output(&mut self) -> (Vec<u8>, Vec<u8>) {
        (self.stdout.take(), self.stderr.take())
    }

    /// Whether stdout and stderr keep what [`WasiCtx::take_output`] returned (default);
    /// when not, [`WasiCtx::output`] has only what was not taken yet.
    pub(crate) fn set_retain_output(&mut self, retain: bool) {
        self.stdout.retain = retain;
        self.stderr.retain = retain;
    }

    /// A call starts: when output is not retained (it is streamed), the caps count this
    /// call's output afresh, so an instance kept for many calls is capped per call. Retained
    /// output keeps counting from the start (it is all held).
    pub(crate) fn start_call(&mut self) {
        for output in [&mut self.stdout, &mut self.stderr] {
            if !output.retain {
                output.dropped = 0;
            }
        }
    }

    /// Everything written to stdout and stderr.
    pub(crate) fn output(&self) -> (Vec<u8>, Vec<u8>) {
        (self.stdout.all.clone(), self.stderr.all.clone())
    }

    /// Each preopen's tree, by guest path.
    pub(crate) fn files(&self) -> BTreeMap<String, FsTree> {
        self.preopens
            .iter()
            .map(|p| (p.guest_path.clone(), self.fs.export(p.root)))
            .collect()
    }

    /// Appends bytes to an async stdin (and/or closes it).
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` if stdin is not async, or already closed and `bytes` is not empty.
    pub(crate) fn push_stdin(&mut self, bytes: &[u8], eof: bool) -> Result<(), Error> {
        if !self.stdin.is_async {
            return Err(Error::invalid_argument(
                "stdin was given as bytes up front, not as an async source",
            ));
        }
        if self.stdin.closed && !bytes.is_empty() {
            return Err(Error::invalid_argument(
                "stdin is already closed (end of file was given)",
            ));
        }
        self.stdin.data.extend(bytes);
        self.stdin.closed |= eof;
        Ok(())
    }

    /// Whether a suspended stdin read (or poll) could now complete.
    pub(crate) fn stdin_ready(&self) -> bool {
        !self.stdin.data.is_empty() || self.stdin.closed
    }
}

fn nul_terminated(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

/// What a suspended WASI guest waits for: [`Instance::wasi_wait`](crate::Instance::wasi_wait)
/// after a [`Step::Yield`](crate::Step::Yield).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WasiWait {
    /// `poll_oneoff` waits for a clock: wait `duration_ns` without blocking (a `setTimeout`
    /// in a browser, `thread::sleep` natively), then
    /// [`Instance::resume`](crate::Instance::resume). Resuming earlier is allowed (say, when
    /// stdin data arrived and was pushed with
    /// [`Instance::push_stdin`](crate::Instance::push_stdin)): ready stdin is reported, else
    /// the earliest clock fires. The duration is cut to the call's deadline, after which
    /// `resume` fails with `TIMEOUT`. Never happens with a deterministic clock, which just
    /// advances.
    Sleep {
        /// How long the guest waits, in nanoseconds.
        duration_ns: u64,
    },
    /// A read (or a `poll_oneoff`) found an async stdin empty: answer with
    /// [`Instance::resume_stdin`](crate::Instance::resume_stdin) (bytes, end of file, or
    /// both), or push data with [`Instance::push_stdin`](crate::Instance::push_stdin) and
    /// [`Instance::resume`](crate::Instance::resume) (which yields again while stdin is
    /// still empty).
    ReadStdin {
        /// The most bytes the guest can take now (more are buffered for later reads).
        max_bytes: u32,
    },
}

// ---- suspensions and fatal stops, as wasmi host errors ----

/// A WASI call suspended the guest; the step loop turns it into a [`WasiWait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WasiSuspend {
    /// `poll_oneoff` waits this long for a clock.
    Sleep { duration_ns: u64 },
    /// A read of empty async stdin wants up to this many bytes.
    ReadStdin { max_bytes: u32 },
}

impl core::fmt::Display for WasiSuspend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Sleep { duration_ns } => write!(f, "wasi sleep of {duration_ns} ns pending"),
            Self::ReadStdin { max_bytes } => {
                write!(f, "wasi stdin read of up to {max_bytes} bytes pending")
            }
        }
    }
}

impl wasmi::errors::HostError for WasiSuspend {}

/// A WASI call ended the run with a nestbox error (e.g. `OUTPUT_LIMIT`).
#[derive(Debug, Clone)]
pub(crate) struct WasiStop(pub(crate) Error);

impl core::fmt::Display for WasiStop {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl wasmi::errors::HostError for WasiStop {}

/// How a syscall fails: an errno the guest sees, or a stop of the guest (suspension, exit,
/// fatal error) that the step loop handles. Decided here and nowhere else.
#[derive(Debug)]
pub(crate) enum Fail {
    Errno(Errno),
    Stop(wasmi::Error),
}

impl From<Errno> for Fail {
    fn from(errno: Errno) -> Self {
        Self::Errno(errno)
    }
}

impl Fail {
    pub(crate) fn suspend(s: WasiSuspend) -> Self {
        Self::Stop(wasmi::Error::host(s))
    }

    pub(crate) fn fatal(e: Error) -> Self {
        Self::Stop(wasmi::Error::host(WasiStop(e)))
    }
}

/// What every syscall returns.
pub(crate) type SysResult = Result<(), Fail>;

/// What a syscall works with: checked guest memory, the WASI state, and what it cost: the
/// bytes it moved (1 fuel per 64) and other host work, in fuel.
pub(crate) struct Cx<'a> {
    pub mem: WasiMemory<'a>,
    pub wasi: &'a mut WasiCtx,
    pub moved: u64,
    pub work: u64,
    /// What the call pays besides `moved` and `work` (`Limits::host_call_fuel`).
    pub base_fuel: u64,
    /// Fuel the call's budget has left (store and ledger together) when the syscall began.
    pub fuel_left: u64,
    /// The call's budget, for the error message.
    pub fuel_budget: u64,
    /// Set when [`Cx::reserve`] refused: the syscall ends the call with `FUEL_EXHAUSTED`.
    pub starved: bool,
}

/// Fuel for one step of host work that moves no bytes: a path component walked (symlink
/// targets included) or a directory entry passed over. About its native cost in ns, as 1 fuel
/// is about one guest instruction.
pub(crate) const FUEL_PER_STEP: u64 = 50;

impl Cx<'_> {
    /// The current realtime, for timestamps.
    pub(crate) fn now(&self) -> u64 {
        self.wasi.clock.realtime_ns()
    }

    /// What the call costs so far, plus `bytes` more to move.
    fn cost_with(&self, bytes: u64) -> u64 {
        fuel_cost(self.base_fuel, self.moved.saturating_add(bytes)).saturating_add(self.work)
    }

    /// Checks, before any of them is copied, that the budget can pay for `bytes` more to be
    /// moved (on top of what the call already costs); if not, the call ends with
    /// `FUEL_EXHAUSTED` and nothing is copied. The bytes are counted in `moved` by the caller
    /// once they are.
    pub(crate) fn reserve(&mut self, bytes: u64) -> Result<(), Fail> {
        if self.cost_with(bytes) <= self.fuel_left {
            return Ok(());
        }
        self.starved = true;
        let budget = self.fuel_budget;
        Err(Fail::fatal(
            Error::new(
                ErrorCode::FuelExhausted,
                format!("fuel budget of {budget} exhausted (by a wasi call)"),
            )
            .with(|d| d.limit = Some(budget)),
        ))
    }

    /// Counts `steps` of host work ([`FUEL_PER_STEP`] each) and checks the budget can pay.
    pub(crate) fn step(&mut self, steps: u64) -> Result<(), Fail> {
        self.work = self
            .work
            .saturating_add(steps.saturating_mul(FUEL_PER_STEP));
        self.reserve(0)
    }
}

// ---- the table of every preview1 function ----

/// A call's parameters, read by position. The linker enforces the types, so a mismatch
/// cannot happen; it would read as 0.
pub(crate) struct Args<'a>(&'a [wasmi::Val]);

impl Args<'_> {
    fn u32(&self, i: usize) -> u32 {
        match self.0.get(i) {
            Some(wasmi::Val::I32(v)) => *v as u32,
            _ => 0,
        }
    }

    fn u64(&self, i: usize) -> u64 {
        match self.0.get(i) {
            Some(wasmi::Val::I64(v)) => *v as u64,
            _ => 0,
        }
    }
}

/// One preview1 function: its name, its exact type and its implementation.
pub(crate) struct WasiFunc {
    pub name: &'static str,
    params: &'static [ValueType],
    results: &'static [ValueType],
    call: fn(&mut Cx<'_>, &Args<'_>) -> SysResult,
}

impl WasiFunc {
    /// Its parameter types (no allocation: the native tier checks them at every call).
    #[cfg(feature = "native-tier")]
    pub(crate) fn params(&self) -> &'static [ValueType] {
        self.params
    }

    /// The type a guest must import it with.
    pub(crate) fn signature(&self) -> Signature {
        Signature::new(self.params.iter().copied(), self.results.iter().copied())
    }
}

use ValueType::{I32, I64};

const ERRNO: &[ValueType] = &[I32];

macro_rules! f {
    ($name:literal, [$($p:ident),*], $results:expr, $call:expr) => {
        WasiFunc { name: $name, params: &[$($p),*], results: $results, call: $call }
    };
}

/// Every function of `wasi_snapshot_preview1`, with the types of the witx spec (as in the
/// `wasip1` crate's raw imports).
static FUNCTIONS: [WasiFunc; 46] = [
    f!("args_get", [I32, I32], ERRNO, |cx, a| proc::args_get(
        cx,
        a.u32(0),
        a.u32(1)
    )),
    f!("args_sizes_get", [I32, I32], ERRNO, |cx, a| {
        proc::args_sizes_get(cx, a.u32(0), a.u32(1))
    }),
    f!("environ_get", [I32, I32], ERRNO, |cx, a| {
        proc::environ_get(cx, a.u32(0), a.u32(1))
    }),
    f!("environ_sizes_get", [I32, I32], ERRNO, |cx, a| {
        proc::environ_sizes_get(cx, a.u32(0), a.u32(1))
    }),
    f!("clock_res_get", [I32, I32], ERRNO, |cx, a| {
        clock::clock_res_get(cx, a.u32(0), a.u32(1))
    }),
    f!("clock_time_get", [I32, I64, I32], ERRNO, |cx, a| {
        clock::clock_time_get(cx, a.u32(0), a.u64(1), a.u32(2))
    }),
    f!("fd_advise", [I32, I64, I64, I32], ERRNO, |cx, a| {
        fd::fd_advise(cx, a.u32(0), a.u64(1), a.u64(2), a.u32(3))
    }),
    f!("fd_allocate", [I32, I64, I64], ERRNO, |cx, a| {
        fd::fd_allocate(cx, a.u32(0), a.u64(1), a.u64(2))
    }),
    f!("fd_close", [I32], ERRNO, |cx, a| fd::fd_close(cx, a.u32(0))),
    f!("fd_datasync", [I32], ERRNO, |cx, a| fd::fd_datasync(
        cx,
        a.u32(0)
    )),
    f!("fd_fdstat_get", [I32, I32], ERRNO, |cx, a| {
        fd::fd_fdstat_get(cx, a.u32(0), a.u32(1))
    }),
    f!("fd_fdstat_set_flags", [I32, I32], ERRNO, |cx, a| {
        fd::fd_fdstat_set_flags(cx, a.u32(0), a.u32(1))
    }),
    f!("fd_fdstat_set_rights", [I32, I64, I64], ERRNO, |cx, a| {
        fd::fd_fdstat_set_rights(cx, a.u32(0), a.u64(1), a.u64(2))
    }),
    f!("fd_filestat_get", [I32, I32], ERRNO, |cx, a| {
        fd::fd_filestat_get(cx, a.u32(0), a.u32(1))
    }),
    f!("fd_filestat_set_size", [I32, I64], ERRNO, |cx, a| {
        fd::fd_filestat_set_size(cx, a.u32(0), a.u64(1))
    }),
    f!(
        "fd_filestat_set_times",
        [I32, I64, I64, I32],
        ERRNO,
        |cx, a| { fd::fd_filestat_set_times(cx, a.u32(0), a.u64(1), a.u64(2), a.u32(3)) }
    ),
    f!("fd_pread", [I32, I32, I32, I64, I32], ERRNO, |cx, a| {
        fd::fd_pread(cx, a.u32(0), a.u32(1), a.u32(2), a.u64(3), a.u32(4))
    }),
    f!("fd_prestat_get", [I32, I32], ERRNO, |cx, a| {
        fd::fd_prestat_get(cx, a.u32(0), a.u32(1))
    }),
    f!("fd_prestat_dir_name", [I32, I32, I32], ERRNO, |cx, a| {
        fd::fd_prestat_dir_name(cx, a.u32(0), a.u32(1), a.u32(2))
    }),
    f!("fd_pwrite", [I32, I32, I32, I64, I32], ERRNO, |cx, a| {
        fd::fd_pwrite(cx, a.u32(0), a.u32(1), a.u32(2), a.u64(3), a.u32(4))
    }),
    f!("fd_read", [I32, I32, I32, I32], ERRNO, |cx, a| {
        fd::fd_read(cx, a.u32(0), a.u32(1), a.u32(2), a.u32(3))
    }),
    f!("fd_readdir", [I32, I32, I32, I64, I32], ERRNO, |cx, a| {
        fd::fd_readdir(cx, a.u32(0), a.u32(1), a.u32(2), a.u64(3), a.u32(4))
    }),
    f!("fd_renumber", [I32, I32], ERRNO, |cx, a| {
        fd::fd_renumber(cx, a.u32(0), a.u32(1))
    }),
    f!("fd_seek", [I32, I64, I32, I32], ERRNO, |cx, a| {
        fd::fd_seek(cx, a.u32(0), a.u64(1) as i64, a.u32(2), a.u32(3))
    }),
    f!("fd_sync", [I32], ERRNO, |cx, a| fd::fd_sync(cx, a.u32(0))),
    f!("fd_tell", [I32, I32], ERRNO, |cx, a| fd::fd_tell(
        cx,
        a.u32(0),
        a.u32(1)
    )),
    f!("fd_write", [I32, I32, I32, I32], ERRNO, |cx, a| {
        fd::fd_write(cx, a.u32(0), a.u32(1), a.u32(2), a.u32(3))
    }),
    f!("path_create_directory", [I32, I32, I32], ERRNO, |cx, a| {
        path::path_create_directory(cx, a.u32(0), a.u32(1), a.u32(2))
    }),
    f!(
        "path_filestat_get",
        [I32, I32, I32, I32, I32],
        ERRNO,
        |cx, a| { path::path_filestat_get(cx, a.u32(0), a.u32(1), a.u32(2), a.u32(3), a.u32(4)) }
    ),
    f!(
        "path_filestat_set_times",
        [I32, I32, I32, I32, I64, I64, I32],
        ERRNO,
        |cx, a| path::path_filestat_set_times(
            cx,
            a.u32(0),
            a.u32(1),
            a.u32(2),
            a.u32(3),
            a.u64(4),
            a.u64(5),
            a.u32(6)
        )
    ),
    f!(
        "path_link",
        [I32, I32, I32, I32, I32, I32, I32],
        ERRNO,
        |cx, a| path::path_link(
            cx,
            a.u32(0),
            a.u32(1),
            a.u32(2),
            a.u32(3),
            a.u32(4),
            a.u32(5),
            a.u32(6)
        )
    ),
    f!(
        "path_open",
        [I32, I32, I32, I32, I32, I64, I64, I32, I32],
        ERRNO,
        |cx, a| path::path_open(
            cx,
            a.u32(0),
            a.u32(1),
            a.u32(2),
            a.u32(3),
            a.u32(4),
            a.u64(5),
            a.u64(6),
            a.u32(7),
            a.u32(8)
        )
    ),
    f!(
        "path_readlink",
        [I32, I32, I32, I32, I32, I32],
        ERRNO,
        |cx, a| path::path_readlink(
            cx,
            a.u32(0),
            a.u32(1),
            a.u32(2),
            a.u32(3),
            a.u32(4),
            a.u32(5)
        )
    ),
    f!("path_remove_directory", [I32, I32, I32], ERRNO, |cx, a| {
        path::path_remove_directory(cx, a.u32(0), a.u32(1), a.u32(2))
    }),
    f!(
        "path_rename",
        [I32, I32, I32, I32, I32, I32],
        ERRNO,
        |cx, a| path::path_rename(
            cx,
            a.u32(0),
            a.u32(1),
            a.u32(2),
            a.u32(3),
            a.u32(4),
            a.u32(5)
        )
    ),
    f!("path_symlink", [I32, I32, I32, I32, I32], ERRNO, |cx, a| {
        path::path_symlink(cx, a.u32(0), a.u32(1), a.u32(2), a.u32(3), a.u32(4))
    }),
    f!("path_unlink_file", [I32, I32, I32], ERRNO, |cx, a| {
        path::path_unlink_file(cx, a.u32(0), a.u32(1), a.u32(2))
    }),
    f!("poll_oneoff", [I32, I32, I32, I32], ERRNO, |cx, a| {
        poll::poll_oneoff(cx, a.u32(0), a.u32(1), a.u32(2), a.u32(3))
    }),
    f!("proc_exit", [I32], &[], |cx, a| proc::proc_exit(
        cx,
        a.u32(0)
    )),
    f!("proc_raise", [I32], ERRNO, |cx, a| proc::proc_raise(
        cx,
        a.u32(0)
    )),
    f!("sched_yield", [], ERRNO, |cx, _| poll::sched_yield(cx)),
    f!("random_get", [I32, I32], ERRNO, |cx, a| {
        random::random_get(cx, a.u32(0), a.u32(1))
    }),
    f!("sock_accept", [I32, I32, I32], ERRNO, |cx, a| {
        sock::sock_accept(cx, a.u32(0), a.u32(1), a.u32(2))
    }),
    f!(
        "sock_recv",
        [I32, I32, I32, I32, I32, I32],
        ERRNO,
        |cx, a| sock::sock_recv(
            cx,
            a.u32(0),
            a.u32(1),
            a.u32(2),
            a.u32(3),
            a.u32(4),
            a.u32(5)
        )
    ),
    f!("sock_send", [I32, I32, I32, I32, I32], ERRNO, |cx, a| {
        sock::sock_send(cx, a.u32(0), a.u32(1), a.u32(2), a.u32(3), a.u32(4))
    }),
    f!("sock_shutdown", [I32, I32], ERRNO, |cx, a| {
        sock::sock_shutdown(cx, a.u32(0), a.u32(1))
    }),
];

/// The names of every preview1 function, in the spec's order.
pub const FUNCTION_NAMES: [&str; 46] = {
    let mut names = [""; 46];
    let mut i = 0;
    while i < 46 {
        names[i] = FUNCTIONS[i].name;
        i += 1;
    }
    names
};

/// The preview1 function called `name`, if there is one.
pub(crate) fn function(name: &str) -> Option<&'static WasiFunc> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// The errno a syscall that nestbox does not support answers with.
pub(crate) const UNSUPPORTED: Errno = ERRNO_NOSYS;

/// What the WASI functions need from the embedder's store data: its WASI context and the
/// call's fuel ledger, which they charge. This is how the layer stays generic over the store
/// (as wasmi_wasi's `add_to_linker(linker, |state| &mut state.wasi)`): it knows nothing of
/// the instance that owns it.
pub(crate) trait WasiView: 'static {
    /// The context and the ledger; `None` when the store has no WASI (every WASI call then
    /// fails, which cannot happen when only [`define`] links them).
    fn wasi_view(&mut self) -> Option<(&mut WasiCtx, &mut FuelLedger)>;

    /// The running call's span recorder, when the call is traced (`None`, the default: the
    /// WASI calls record nothing).
    fn tracer(&mut self) -> Option<&mut Tracer> {
        None
    }
}

/// Defines `func` in `linker` for stores of `T`. The host function runs the syscall over the
/// guest's exported `memory` (an absent memory makes every pointer `EFAULT`), charges fuel to
/// the store's ledger, and returns the errno — or stops the guest.
pub(crate) fn define<T: WasiView>(
    linker: &mut Linker<T>,
    func: &'static WasiFunc,
    host_call_fuel: u64,
) -> Result<(), Error> {
    linker
        .func_new(
            WASI_MODULE,
            func.name,
            func.signature().to_wasmi(),
            move |mut caller: Caller<'_, T>, params, results| {
                // Off (the common case), tracing costs this one check.
                let started = caller.data_mut().tracer().is_some().then(Instant::now);
                let in_store = caller.get_fuel()?;
                let memory = caller
                    .get_export("memory")
                    .and_then(wasmi::Extern::into_memory);
                let (outcome, cost, moved) = {
                    let (data, state): (&mut [u8], &mut T) = match memory {
                        Some(m) => m.data_and_store_mut(&mut caller),
                        None => (&mut [], caller.data_mut()),
                    };
                    let Some((wasi, ledger)) = state.wasi_view() else {
                        return Err(wasmi::Error::new("wasi is not configured"));
                    };
                    let mut cx = Cx {
                        mem: WasiMemory::new(data),
                        wasi,
                        moved: 0,
                        work: 0,
                        base_fuel: host_call_fuel,
                        fuel_left: ledger.remaining(in_store),
                        fuel_budget: ledger.budget(),
                        starved: false,
                    };
                    let (outcome, cost) = run(func, &mut cx, params);
                    (outcome, cost, cx.moved)
                };
                charge(&mut caller, cost)?;
                if let (Some(started), Some(tracer)) = (started, caller.data_mut().tracer()) {
                    trace_call(tracer, func, params, &outcome, cost, moved, started);
                }
                match outcome {
                    Ok(()) => set_errno(results, 0),
                    Err(Fail::Errno(errno)) => set_errno(results, errno.raw()),
                    Err(Fail::Stop(error)) => return Err(error),
                }
                Ok(())
            },
        )
        .map_err(|e| Error::invalid_argument(format!("cannot link {}: {e}", func.name)))?;
    Ok(())
}

/// Runs `func` with `params` in `cx` (both tiers call it): what it returns, and what it costs.
pub(crate) fn run(func: &WasiFunc, cx: &mut Cx<'_>, params: &[wasmi::Val]) -> (SysResult, u64) {
    // Not even the call itself can be paid: nothing runs.
    let outcome = cx.reserve(0).and_then(|()| (func.call)(cx, &Args(params)));
    let cost = if cx.starved {
        // The call ends for want of fuel: all that is left is consumed.
        cx.fuel_left
    } else {
        cx.cost_with(0)
    };
    (outcome, cost)
}

/// Records the span of one WASI call. A call that suspends the guest (a sleep, a read of an
/// empty stdin) stays open until [`complete`] finishes it ([`Tracer::close_pending`]).
fn trace_call(
    tracer: &mut Tracer,
    func: &WasiFunc,
    params: &[wasmi::Val],
    outcome: &SysResult,
    cost: u64,
    moved: u64,
    started: Instant,
) {
    let args: Vec<Value> = params.iter().filter_map(Value::from_wasmi).collect();
    let mut attributes = vec![
        ("wasi.function", AttrValue::from(func.name)),
        ("wasi.args", AttrValue::from(crate::trace::summarise(&args))),
        ("nestbox.fuel", AttrValue::from(cost)),
        ("nestbox.bytes", AttrValue::from(moved)),
    ];
    let name = format!("wasi {}", func.name);
    match outcome {
        Ok(()) => {
            attributes.push(("wasi.errno", AttrValue::Int(0)));
            tracer.record(name, started, attributes, None);
        }
        Err(Fail::Errno(errno)) => {
            attributes.push(("wasi.errno", AttrValue::Int(i64::from(errno.raw()))));
            attributes.push(("wasi.errno_name", AttrValue::from(errno.name())));
            tracer.record(name, started, attributes, None);
        }
        Err(Fail::Stop(stop)) => {
            if let Some(status) = stop.i32_exit_status() {
                attributes.push(("wasi.exit_code", AttrValue::Int(i64::from(status))));
                tracer.record(name, started, attributes, None);
            } else if let Some(suspend) = stop.downcast_ref::<WasiSuspend>() {
                attributes.push(("wasi.suspended", AttrValue::from(suspend.to_string())));
                tracer.open_pending(name, started, attributes);
            } else {
                let (code, message) = match stop.downcast_ref::<WasiStop>() {
                    Some(WasiStop(e)) => (e.code().as_str(), e.message().to_owned()),
                    None => ("TRAP", stop.to_string()),
                };
                tracer.record(name, started, attributes, Some((code, &message)));
            }
        }
    }
}

fn set_errno(results: &mut [wasmi::Val], errno: u16) {
    if let Some(slot) = results.first_mut() {
        *slot = wasmi::Val::I32(i32::from(errno));
    }
}

/// Fuel for one WASI call: the host-call charge plus 1 per 64 bytes moved.
pub(crate) fn fuel_cost(host_call_fuel: u64, moved: u64) -> u64 {
    host_call_fuel.saturating_add(moved.div_ceil(64))
}

/// Charges `cost` to the store's fuel ledger: the slice pays what it can, the call's budget
/// the rest ([`FuelLedger::charge`]).
fn charge<T: WasiView>(caller: &mut Caller<'_, T>, cost: u64) -> Result<(), wasmi::Error> {
    let fuel = caller.get_fuel()?;
    let left = match caller.data_mut().wasi_view() {
        Some((_, ledger)) => ledger.charge(fuel, cost),
        None => fuel.saturating_sub(cost),
    };
    caller.set_fuel(left)?;
    Ok(())
}

/// Finishes the suspended call after the caller resumed it (after [`WasiSuspend::Sleep`],
/// or after stdin got data or closed): writes its results to guest memory and returns the
/// errno the guest gets, and the bytes moved.
pub(crate) fn complete(mem: WasiMemory<'_>, wasi: &mut WasiCtx) -> (u16, u64) {
    let Some(suspended) = wasi.suspended.take() else {
        return (wasip1::ERRNO_INTR.raw(), 0);
    };
    // The instance charges what this moved after it returns (`FUEL_EXHAUSTED` if the budget
    // cannot pay); what it moves is bounded by the guest's request and the bytes buffered.
    let mut cx = Cx {
        mem,
        wasi,
        moved: 0,
        work: 0,
        base_fuel: 0,
        fuel_left: u64::MAX,
        fuel_budget: u64::MAX,
        starved: false,
    };
    let result = match suspended {
        Suspended::Read { iovs, nread_ptr } => fd::complete_read(&mut cx, &iovs, nread_ptr),
        Suspended::Poll(pending) => poll::complete_poll(&mut cx, &pending),
    };
    let errno = match result {
        Ok(()) => 0,
        Err(errno) => errno.raw(),
    };
    (errno, cx.moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_is_in_the_table_once_with_the_spec_types() {
        let mut seen = std::collections::HashSet::new();
        for f in &FUNCTIONS {
            assert!(seen.insert(f.name), "{} twice", f.name);
            let sig = f.signature();
            let expected = if f.name == "proc_exit" {
                vec![]
            } else {
                vec![I32]
            };
            assert_eq!(sig.results, expected, "{}", f.name);
        }
        assert_eq!(function("fd_write").map(|f| f.params.len()), Some(4));
        assert_eq!(function("path_open").map(|f| f.params.len()), Some(9));
        assert!(function("fd_nonsense").is_none());
        assert_eq!(FUNCTION_NAMES[0], "args_get");
    }

    #[test]
    fn output_keeps_bytes_up_to_the_cap() {
        let mut out = Output::new("stdout", 5);
        out.write(b"abc").expect("fits");
        assert_eq!(out.take(), b"abc");
        let e = out.write(b"defg").expect_err("over the cap");
        assert_eq!(e.code(), ErrorCode::OutputLimit);
        assert_eq!(e.details().limit, Some(5));
        assert_eq!(out.take(), b"de");
        assert_eq!(out.all, b"abcde");
    }

    #[test]
    fn output_not_retained_drops_what_was_taken_and_still_counts_it() {
        let mut out = Output::new("stdout", 5);
        out.retain = false;
        out.write(b"abc").expect("fits");
        assert_eq!(out.take(), b"abc");
        assert!(out.all.is_empty(), "taken bytes are dropped");
        assert_eq!(out.room(), 2);
        let e = out.write(b"defg").expect_err("over the cap");
        assert_eq!(e.code(), ErrorCode::OutputLimit);
        assert_eq!(out.take(), b"de");
        assert!(out.all.is_empty());
        assert_eq!(out.written(), 5);
    }
}
