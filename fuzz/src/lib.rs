//! Structure-aware fuzzing of nestbox on stable Rust.
//!
//! A case is a byte string, made from a seed by [`case_bytes`] (SplitMix64), read through
//! [`arbitrary::Unstructured`]: it picks a kind of module, a wasm-smith configuration, the
//! module itself, the limits, the arguments of each call and the host's answers. Then
//! [`run_case`] takes the module through nestbox (load, instantiate, a call of each exported
//! function) and checks that
//!
//! - nothing panics;
//! - every failure has a code expected at its stage (a load fails with `INVALID_MODULE`, never
//!   with `TRAP`; a call with a run-time code, never with `INVALID_MODULE`), a trap has its
//!   trap code, a successful call has results of its signature's types, and a failed call
//!   leaves the instance poisoned with that code;
//! - for a module without imports, each call agrees with wasmi used directly (same version,
//!   same engine settings, no nestbox): the same results bit for bit, or the same trap. Cases
//!   where either side hit fuel, stack or a memory or table limit are left out of the
//!   comparison (the two account for them differently, and they are limits, not semantics).
//!
//! Three kinds of modules: *pure* (no imports; also run differentially), *host* (imports of
//! host functions from `env`, granted as capabilities and answered with random values, errors
//! or wrong answers), and *WASI* (imports among the preview1 functions with their real
//! signatures, linked with `Sandbox::instantiate_wasi` over a small preopen, deterministic
//! clocks and randomness, random quotas and output caps).

mod native;

pub use native::run_native_case;

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use arbitrary::Unstructured;
use nestbox::{
    CallOptions, CapabilityId, Deterministic, Digest, Error, ErrorCode, Grants, GuestMemory, Hooks,
    HostCall, Instance, InstanceState, ItemKind, Limits, Preopen, Sandbox, Stdin, StdinFeed,
    TrapCode, Value, ValueType, WasiConfig,
};

/// SplitMix64: the seeded generator that makes a case's bytes (and the host's answers).
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The bytes of case `seed`: 2 to 32 KiB.
pub fn case_bytes(seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed);
    let len = 2048 + rng.below(30 << 10) as usize;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        bytes.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// What one case came to: the outcome of each stage, as `stage:OUTCOME` labels.
pub type Labels = Vec<String>;

/// Runs one case. `Err` is a bug: a panic, an unexpected code, a broken invariant or a
/// difference from wasmi, described.
pub fn run_case(data: &[u8]) -> Result<Labels, String> {
    on_case_stack(
        || match catch_unwind(AssertUnwindSafe(|| Case::new(data).run())) {
            Ok(result) => result,
            Err(panic) => Err(format!("panic: {}", panic_message(&*panic))),
        },
    )
}

/// The host stack every case runs on (a thread of its own): 512 MiB, reserved, not committed
/// (the pages a case touches are).
///
/// wasmi's native dispatch is a chain of handler calls that LLVM turns into jumps, except in
/// the `memory.grow` and `table.grow` handlers with a non-constant operand (wasmi PR #1946
/// left them: they need the unstable `become`). Each such grow executed keeps a host frame of
/// about 100–160 bytes until the root call returns, so a loop of grows uses host stack in
/// proportion to the fuel it runs on: measured, 1,000,000 fuel of `memory.grow (local.get 0)`
/// needs 64–128 MiB. A native case runs at most about 2,000,000 fuel in one root call (the
/// start fuel left over plus a call's budget), an interpreter case at most 1,048,576 (a slice,
/// or a differential call), so 512 MiB covers both with room. Not covered: an interpreter
/// case's start function, which runs its whole budget (up to 2^25 fuel) in one go. A case that
/// overflows aborts the process; `main` keeps it as `regressions/crash-….bin` on the next run.
pub const CASE_STACK_BYTES: usize = 512 << 20;

/// Runs `f` on a thread with [`CASE_STACK_BYTES`] of stack. A panic on it (in a build that
/// unwinds) is returned as a bug, as is failing to start the thread (the case did not run).
pub(crate) fn on_case_stack(
    f: impl FnOnce() -> Result<Labels, String> + Send,
) -> Result<Labels, String> {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("fuzz-case".to_owned())
            .stack_size(CASE_STACK_BYTES)
            .spawn_scoped(scope, f)
            .map_err(|e| format!("cannot start the case's thread: {e}"))?;
        thread
            .join()
            .unwrap_or_else(|panic| Err(format!("panic: {}", panic_message(&*panic))))
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "?".to_owned())
}

/// Where failing cases are kept (and replayed from by `tests/regressions.rs`).
pub fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions")
}

/// Writes a failing case's bytes to `regressions/<name>.bin`; returns the path.
///
/// # Errors
///
/// When the file cannot be written.
pub fn save_regression(name: &str, data: &[u8]) -> std::io::Result<PathBuf> {
    let path = regressions_dir().join(format!("{name}.bin"));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, data)?;
    Ok(path)
}

/// A short name for a case's bytes: the first 12 hex digits of their SHA-256.
pub fn short_digest(data: &[u8]) -> String {
    Digest::of(data).to_hex().chars().take(12).collect()
}

/// Counts of cases and outcomes over a run.
#[derive(Debug, Default)]
pub struct Tally {
    /// Cases run.
    pub cases: u64,
    /// Cases that found a bug.
    pub bugs: u64,
    /// How often each `stage:OUTCOME` label occurred.
    pub outcomes: BTreeMap<String, u64>,
}

impl Tally {
    /// Adds one case's result.
    pub fn add(&mut self, result: &Result<Labels, String>) {
        self.cases += 1;
        match result {
            Ok(labels) => {
                for label in labels {
                    *self.outcomes.entry(label.clone()).or_default() += 1;
                }
            }
            Err(_) => self.bugs += 1,
        }
    }

    /// One line per outcome.
    pub fn report(&self) -> String {
        let mut text = format!("{} cases, {} bugs\n", self.cases, self.bugs);
        for (label, count) in &self.outcomes {
            text.push_str(&format!("  {count:>7}  {label}\n"));
        }
        text
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Pure,
    Host,
    Wasi,
}

/// The preview1 functions with their real signatures, as imports wasm-smith may pick from.
const WASI_IMPORTS: &str = r#"(module
  (import "wasi_snapshot_preview1" "args_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_res_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_advise" (func (param i32 i64 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_allocate" (func (param i32 i64 i64) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_datasync" (func (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_set_flags" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_set_rights" (func (param i32 i64 i64) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_set_size" (func (param i32 i64) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_set_times" (func (param i32 i64 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pread" (func (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name" (func (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pwrite" (func (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_renumber" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_seek" (func (param i32 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_sync" (func (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_tell" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_create_directory" (func (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_get" (func (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_set_times" (func (param i32 i32 i32 i32 i64 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_link" (func (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_readlink" (func (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_remove_directory" (func (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_rename" (func (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_symlink" (func (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_unlink_file" (func (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
  (import "wasi_snapshot_preview1" "proc_raise" (func (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "sched_yield" (func (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_recv" (func (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_send" (func (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_shutdown" (func (param i32 i32) (result i32)))
)"#;

/// What a WASI guest exports when its exports are fixed: a memory named `memory` (so
/// pointers mean something), `_start` and a few functions.
const WASI_EXPORTS: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "_start"))
  (func (export "f1") (param i32 i32) (result i32) unreachable)
  (func (export "f2") (param i64) (result i64) unreachable)
)"#;

/// Host functions of `env` of various signatures, and imports nestbox cannot grant.
const HOST_IMPORTS: &str = r#"(module
  (import "env" "nop" (func))
  (import "env" "get" (func (result i32)))
  (import "env" "put" (func (param i32)))
  (import "env" "add" (func (param i32 i64) (result i64)))
  (import "env" "mix" (func (param f32 f64 i32) (result f64 i32)))
  (import "env" "pair" (func (param i64 i64) (result i64 i64)))
  (import "env" "fl" (func (param f32) (result f32)))
)"#;

/// Imports nestbox never grants (a reference type in a signature, a memory, a global): the
/// module is refused with `IMPORT_NOT_GRANTED`. In some cases only.
const UNGRANTABLE_IMPORTS: &str = r#"(module
  (import "env" "nop" (func))
  (import "env" "get" (func (result i32)))
  (import "env" "ref" (func (param externref) (result i32)))
  (import "env" "memory" (memory 1))
  (import "env" "global" (global i32))
)"#;

/// Fuel, memory and stack generous enough for the differential part. The fuel is one
/// nestbox slice: wasmi alone runs a call in one go, and natively wasmi's dispatch grows the
/// host stack with some handlers (a `memory.grow` loop: 176 bytes an iteration in the dev
/// profile), so 20 million fuel in one go overflows an 8 MiB stack; nestbox with
/// `fuel_per_slice` of 20 million does too (`FUZZ_SLICE=20000000 nestbox-fuzz --replay
/// regressions/crash-….bin`).
const DIFF_FUEL: u64 = 1_000_000;
const DIFF_MEMORY: u64 = 16 << 20;
const DIFF_TABLE: u64 = 10_000;
const DIFF_DEPTH: u32 = 1_000;

/// At most this many calls per case.
const MAX_CALLS: usize = 8;

struct Case<'a> {
    u: Unstructured<'a>,
    labels: Labels,
}

impl<'a> Case<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            u: Unstructured::new(data),
            labels: Vec::new(),
        }
    }

    fn label(&mut self, stage: &str, outcome: impl AsRef<str>) {
        self.labels.push(format!("{stage}:{}", outcome.as_ref()));
    }

    fn run(mut self) -> Result<Labels, String> {
        let kind = match self.u.int_in_range(0..=2u8).unwrap_or(0) {
            0 => Kind::Pure,
            1 => Kind::Host,
            _ => Kind::Wasi,
        };
        // wasm-smith's own failures are not nestbox's.
        let generated = catch_unwind(AssertUnwindSafe(|| self.module(kind)));
        let Ok(generated) = generated else {
            self.label("generate", "wasm-smith-panicked");
            return Ok(self.labels);
        };
        let Some(bytes) = generated else {
            self.label("generate", "gave-up");
            return Ok(self.labels);
        };
        self.label("kind", format!("{kind:?}"));
        if let Some(path) = std::env::var_os("FUZZ_DUMP") {
            // `--replay` with FUZZ_DUMP=FILE: the generated module, to look at.
            let _ = std::fs::write(path, &bytes);
        }
        let limits = if kind == Kind::Pure {
            Limits {
                fuel: DIFF_FUEL,
                max_memory_bytes: DIFF_MEMORY,
                max_table_elements: DIFF_TABLE,
                max_recursion_depth: DIFF_DEPTH,
                timeout_ms: 60_000,
                // FUZZ_SLICE: another slice for the differential cases (to reproduce the
                // stack overflow above).
                fuel_per_slice: std::env::var("FUZZ_SLICE")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(Limits::default().fuel_per_slice),
                ..Limits::default()
            }
        } else {
            self.limits()
        };
        let sandbox = match Sandbox::new(limits.clone()) {
            Ok(sandbox) => sandbox,
            Err(e) if e.code() == ErrorCode::InvalidArgument => {
                self.label("limits", "INVALID_ARGUMENT");
                return Ok(self.labels);
            }
            Err(e) => return Err(format!("Sandbox::new: unexpected {}", describe(&e))),
        };
        let module = match sandbox.load(&bytes, &Digest::of(&bytes)) {
            Ok(module) => module,
            Err(e) => {
                expect(
                    "load",
                    &e,
                    &[ErrorCode::InvalidModule, ErrorCode::ModuleTooLarge],
                )?;
                self.label("load", e.code().as_str());
                // A module nestbox refuses may still be valid for wasmi with its default
                // shape limits; nothing to compare then.
                return Ok(self.labels);
            }
        };
        self.label("load", "ok");
        let mut reference = if kind == Kind::Pure {
            Some(Reference::new(&bytes)?)
        } else {
            None
        };
        let instance = self.instantiate(kind, &sandbox, &module);
        if let Some(reference) = &mut reference {
            reference.compare_instantiation(&instance)?;
        }
        let mut instance = match instance {
            Ok(instance) => instance,
            Err(e) => {
                expect("instantiate", &e, INSTANTIATE_CODES)?;
                check_error_shape("instantiate", &e)?;
                self.label("instantiate", e.code().as_str());
                if std::env::var_os("FUZZ_DEBUG").is_some() {
                    eprintln!("{kind:?} instantiate: {}", describe(&e));
                }
                return Ok(self.labels);
            }
        };
        self.label("instantiate", "ok");
        self.calls(&module, &mut instance, reference.as_mut())?;
        Ok(self.labels)
    }

    /// A wasm-smith module of `kind` (`None` when the bytes ran out).
    fn module(&mut self, kind: Kind) -> Option<Vec<u8>> {
        let mut config = smith_config(&mut self.u)?;
        match kind {
            Kind::Pure => {
                config.max_imports = 0;
                config.min_imports = 0;
                config.available_imports = None;
                config.export_everything = self.u.ratio(1, 2).unwrap_or(true);
            }
            Kind::Host => {
                let imports = if self.u.ratio(1, 10).unwrap_or(false) {
                    UNGRANTABLE_IMPORTS
                } else {
                    HOST_IMPORTS
                };
                config.available_imports = wat::parse_str(imports).ok();
                config.max_imports = config.max_imports.clamp(1, 10);
                config.min_imports = config.min_imports.min(config.max_imports);
            }
            Kind::Wasi => {
                config.available_imports = wat::parse_str(WASI_IMPORTS).ok();
                config.max_imports = config.max_imports.clamp(1, 46);
                config.min_imports = config.min_imports.min(config.max_imports);
                if self.u.ratio(1, 2).unwrap_or(true) {
                    config.exports = wat::parse_str(WASI_EXPORTS).ok();
                }
            }
        }
        smith_module(&mut self.u, config)
    }

    /// Random limits: small fuel, memory, tables and stack, sometimes refused ones.
    fn limits(&mut self) -> Limits {
        let u = &mut self.u;
        let fuel = 1u64 << u.int_in_range(0..=24u32).unwrap_or(20);
        Limits {
            fuel: fuel + u.int_in_range(0..=fuel).unwrap_or(0),
            fuel_per_slice: 1u64 << u.int_in_range(0..=20u32).unwrap_or(20),
            host_call_fuel: u.int_in_range(0..=5_000).unwrap_or(1_000),
            timeout_ms: 20_000,
            max_memory_bytes: *u
                .choose(&[
                    0,
                    65_536,
                    1 << 20,
                    1 << 20,
                    16 << 20,
                    16 << 20,
                    64 << 20,
                    256 << 20,
                ])
                .unwrap_or(&(1 << 20)),
            max_table_elements: u.int_in_range(0..=20_000).unwrap_or(1_000),
            max_recursion_depth: u.int_in_range(1..=2_000).unwrap_or(100),
            trap_on_grow_failure: u.ratio(1, 4).unwrap_or(false),
            ..Limits::default()
        }
    }

    fn instantiate(
        &mut self,
        kind: Kind,
        sandbox: &Sandbox,
        module: &nestbox::Module,
    ) -> Result<Instance, Error> {
        match kind {
            Kind::Pure => sandbox.instantiate(module, &Grants::new()),
            Kind::Host => {
                let grants = self.grants(module);
                sandbox.instantiate(module, &grants)
            }
            Kind::Wasi => {
                let config = self.wasi_config();
                sandbox.instantiate_wasi(module, &config)
            }
        }
    }

    /// A grant for most function imports, with their declared signature, sometimes a wrong
    /// one.
    fn grants(&mut self, module: &nestbox::Module) -> Grants {
        let mut grants = Grants::new();
        for (i, import) in module.imports().iter().enumerate() {
            let Some(signature) = &import.signature else {
                continue;
            };
            if self.u.ratio(1, 20).unwrap_or(false) {
                continue;
            }
            let mut signature = signature.clone();
            if self.u.ratio(1, 20).unwrap_or(false) {
                signature.results.push(ValueType::I32);
            }
            let id = CapabilityId(u32::try_from(i).unwrap_or(u32::MAX));
            // A module may import the same name twice: the second grant is refused and the
            // first answers both.
            if let Ok(more) =
                grants
                    .clone()
                    .grant(import.module.clone(), import.name.clone(), id, signature)
            {
                grants = more;
            }
        }
        grants
    }

    fn wasi_config(&mut self) -> WasiConfig {
        let u = &mut self.u;
        let len = u.int_in_range(0..=64).unwrap_or(0);
        let stdin: Vec<u8> = u.bytes(len).unwrap_or(&[]).to_vec();
        WasiConfig {
            args: vec!["guest".to_owned(), "arg".to_owned()],
            env: vec![("K".to_owned(), "V".to_owned())],
            preopens: vec![
                Preopen::new("/d")
                    .file("a.txt", "hello")
                    .dir("sub")
                    .file("sub/b.bin", vec![0u8; 100])
                    .symlink("link", "a.txt"),
                Preopen::new("/ro").file("r", "x").read_only(),
            ],
            stdin: Stdin::Bytes(stdin),
            max_stdout_bytes: u.int_in_range(0..=4096).unwrap_or(1024),
            max_stderr_bytes: u.int_in_range(0..=4096).unwrap_or(1024),
            max_fs_bytes: u.int_in_range(200..=100_000).unwrap_or(10_000),
            max_files: u.int_in_range(5..=100).unwrap_or(20),
            deterministic: Some(Deterministic {
                seed: 1,
                start_time_ns: 1_000_000_000,
            }),
            ..WasiConfig::default()
        }
    }

    fn calls(
        &mut self,
        module: &nestbox::Module,
        instance: &mut Instance,
        mut reference: Option<&mut Reference>,
    ) -> Result<(), String> {
        let exports: Vec<_> = module
            .exports()
            .iter()
            .filter(|e| e.kind == ItemKind::Function)
            .take(MAX_CALLS)
            .cloned()
            .collect();
        let seed = self.u.arbitrary::<u64>().unwrap_or(0);
        let mut hooks = FuzzHooks {
            rng: SplitMix64(seed),
            wrong_answers: false,
        };
        for export in exports {
            let args = match &export.signature {
                Some(sig) => self.values(&sig.params),
                None => Vec::new(),
            };
            hooks.wrong_answers = false;
            let result = nestbox::drive(
                instance,
                &export.name,
                &args,
                &CallOptions::default(),
                &mut hooks,
            );
            let stage = "call";
            match &result {
                Ok(outcome) => {
                    self.label(stage, "ok");
                    if let Some(sig) = &export.signature {
                        let types: Vec<_> = outcome.results.iter().map(Value::ty).collect();
                        if outcome.exit_code.is_none() && types != sig.results {
                            return Err(format!(
                                "call {}: results {types:?}, signature says {:?}",
                                export.name, sig.results
                            ));
                        }
                    }
                }
                Err(e) => {
                    let mut allowed = CALL_CODES.to_vec();
                    if export.signature.is_none() || hooks.wrong_answers {
                        allowed.push(ErrorCode::InvalidArgument);
                    }
                    expect(stage, e, &allowed)?;
                    check_error_shape(stage, e)?;
                    self.label(stage, e.code().as_str());
                }
            }
            if let Some(reference) = reference.as_deref_mut() {
                let go_on = reference.compare_call(&export.name, &args, &result)?;
                if !go_on {
                    self.label("diff", "skipped");
                    reference.done = true;
                } else {
                    self.label("diff", "agree");
                }
            }
            if let Err(e) = result {
                if e.code() == ErrorCode::InvalidArgument && export.signature.is_none() {
                    continue;
                }
                // A failed call poisons the instance, with its code.
                match instance.state() {
                    InstanceState::Poisoned(code) if code == e.code() => {}
                    InstanceState::Poisoned(_) if e.code() == ErrorCode::Poisoned => {}
                    state => {
                        return Err(format!(
                            "after {} the instance is {state:?}, not poisoned by it",
                            describe(&e)
                        ));
                    }
                }
                let again = instance.call(&export.name, &args, |_, _| Ok(Vec::new()));
                match again {
                    Err(p) if p.code() == ErrorCode::Poisoned => {}
                    other => {
                        return Err(format!(
                            "a call after {} gave {:?}, not POISONED",
                            describe(&e),
                            other.map_err(|x| describe(&x))
                        ));
                    }
                }
                break;
            }
        }
        Ok(())
    }

    fn values(&mut self, types: &[ValueType]) -> Vec<Value> {
        types
            .iter()
            .map(|ty| random_value(&mut self.u, *ty))
            .collect()
    }
}

/// The codes instantiation may fail with once the module loaded.
const INSTANTIATE_CODES: &[ErrorCode] = &[
    ErrorCode::ImportNotGranted,
    ErrorCode::SignatureMismatch,
    ErrorCode::MemoryLimit,
    ErrorCode::TableLimit,
    ErrorCode::FuelExhausted,
    ErrorCode::Trap,
    ErrorCode::StackOverflow,
    ErrorCode::HostError,
    ErrorCode::OutputLimit,
    ErrorCode::Timeout,
];

/// The codes a call may fail with (`INVALID_ARGUMENT` too after a wrong host answer or for
/// an export whose types cannot cross).
const CALL_CODES: &[ErrorCode] = &[
    ErrorCode::FuelExhausted,
    ErrorCode::Timeout,
    ErrorCode::Cancelled,
    ErrorCode::MemoryLimit,
    ErrorCode::TableLimit,
    ErrorCode::StackOverflow,
    ErrorCode::Trap,
    ErrorCode::HostError,
    ErrorCode::CapabilityRevoked,
    ErrorCode::CapabilityQuota,
    ErrorCode::OutputLimit,
];

fn describe(e: &Error) -> String {
    format!("{}: {}", e.code().as_str(), e.message())
}

fn expect(stage: &str, e: &Error, allowed: &[ErrorCode]) -> Result<(), String> {
    if allowed.contains(&e.code()) {
        Ok(())
    } else {
        Err(format!("{stage}: unexpected {}", describe(e)))
    }
}

/// A trap names its trap code; every error has a message.
fn check_error_shape(stage: &str, e: &Error) -> Result<(), String> {
    if e.message().is_empty() {
        return Err(format!("{stage}: {} without a message", e.code().as_str()));
    }
    if e.code() == ErrorCode::Trap && e.details().trap_code.is_none() {
        return Err(format!(
            "{stage}: a trap without its trap code: {}",
            describe(e)
        ));
    }
    Ok(())
}

fn random_value(u: &mut Unstructured<'_>, ty: ValueType) -> Value {
    let bits = u.arbitrary::<u64>().unwrap_or(0);
    // Small numbers and edge values more often than uniform ones.
    let bits = match u.int_in_range(0..=3u8).unwrap_or(0) {
        0 => bits % 16,
        1 => [0, 1, u64::MAX, 1 << 31, 1 << 63, 0x7ff8_0000_0000_0000][(bits % 6) as usize],
        _ => bits,
    };
    match ty {
        ValueType::I32 => Value::I32(bits as i32),
        ValueType::I64 => Value::I64(bits as i64),
        ValueType::F32 => Value::F32(f32::from_bits(bits as u32)),
        ValueType::F64 => Value::F64(f64::from_bits(bits)),
    }
}

/// Answers host calls: mostly values of the right types, sometimes an error, sometimes a
/// wrong answer (count or types); WASI sleeps return at once (the clock is deterministic).
struct FuzzHooks {
    rng: SplitMix64,
    /// A wrong answer was given during this call.
    wrong_answers: bool,
}

impl FuzzHooks {
    fn value(&mut self, ty: ValueType) -> Value {
        let bits = self.rng.next_u64();
        let bits = if self.rng.below(2) == 0 {
            bits % 8
        } else {
            bits
        };
        match ty {
            ValueType::I32 => Value::I32(bits as i32),
            ValueType::I64 => Value::I64(bits as i64),
            ValueType::F32 => Value::F32(f32::from_bits(bits as u32)),
            ValueType::F64 => Value::F64(f64::from_bits(bits)),
        }
    }
}

impl Hooks for FuzzHooks {
    fn host_call(
        &mut self,
        call: &HostCall,
        memory: &mut GuestMemory<'_>,
    ) -> Result<Vec<Value>, Error> {
        // Touch the guest's memory through the checked view, as a capability would.
        let ptr = self.rng.below(1 << 17) as u32;
        let _ = memory.read(ptr, self.rng.below(64) as u32);
        match self.rng.below(20) {
            0 | 1 => Err(Error::host_failed("fuzz: the host function failed")),
            2 => {
                self.wrong_answers = true;
                let mut answer: Vec<Value> = call.results.iter().map(|t| self.value(*t)).collect();
                answer.push(Value::I32(0));
                Ok(answer)
            }
            3 if !call.results.is_empty() => {
                self.wrong_answers = true;
                Ok(call
                    .results
                    .iter()
                    .map(|t| match t {
                        ValueType::I32 => Value::I64(1),
                        _ => Value::I32(1),
                    })
                    .collect())
            }
            4 => {
                let code = ErrorCode::HOST_FAILURES[self.rng.below(5) as usize];
                let error = match code {
                    // A trap from a host function names its trap code, as the core's own do.
                    ErrorCode::Trap => {
                        Error::trap(TrapCode::MemoryOutOfBounds, "fuzz: a host trap")
                    }
                    _ => Error::new(code, "fuzz: a host failure"),
                };
                Err(error)
            }
            _ => Ok(call.results.iter().map(|t| self.value(*t)).collect()),
        }
    }

    fn slice(&mut self) -> Result<(), Error> {
        if self.rng.below(200) == 0 {
            return Err(Error::new(ErrorCode::Cancelled, "fuzz: cancelled"));
        }
        Ok(())
    }

    fn sleep(&mut self, _stdin: &mut StdinFeed<'_>, _duration_ns: u64) -> Result<(), Error> {
        Ok(())
    }
}

// ---- the reference: wasmi alone ----

struct RefData {
    limits: wasmi::StoreLimits,
}

/// The same module in wasmi, configured as nestbox configures it, without nestbox.
struct Reference {
    store: wasmi::Store<RefData>,
    module: Option<wasmi::Module>,
    instance: Option<wasmi::Instance>,
    /// A limit was hit on either side, or the two diverged in a way that is not compared:
    /// the rest of the case is not compared.
    done: bool,
}

fn reference_engine() -> wasmi::Engine {
    let mut config = wasmi::Config::default();
    config
        .consume_fuel(true)
        .compilation_mode(wasmi::CompilationMode::LazyTranslation)
        .fuel_cost(wasmi::CustomFuelCosts {
            bytes_copied_per_fuel: 64,
            fuel_per_bytes_translated: 0,
            fuel_per_bytes_validated: 0,
        })
        .set_max_recursion_depth(DIFF_DEPTH as usize)
        .wasm_multi_memory(false)
        .wasm_wide_arithmetic(false)
        .wasm_custom_page_sizes(false);
    wasmi::Engine::new(&config)
}

/// Whether nestbox's error is a limit (not compared).
fn nestbox_limit(e: &Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::FuelExhausted
            | ErrorCode::StackOverflow
            | ErrorCode::MemoryLimit
            | ErrorCode::TableLimit
            | ErrorCode::Timeout
    )
}

fn wasmi_limit(e: &wasmi::Error) -> bool {
    matches!(
        e.as_trap_code(),
        Some(
            wasmi::TrapCode::OutOfFuel
                | wasmi::TrapCode::StackOverflow
                | wasmi::TrapCode::GrowthOperationLimited
                | wasmi::TrapCode::OutOfSystemMemory
        )
    ) || !matches!(e.kind(), wasmi::errors::ErrorKind::TrapCode(_))
}

impl Reference {
    fn new(bytes: &[u8]) -> Result<Self, String> {
        let engine = reference_engine();
        let limits = wasmi::StoreLimitsBuilder::new()
            .memory_size(DIFF_MEMORY as usize)
            .table_elements(DIFF_TABLE as usize)
            .build();
        let mut store = wasmi::Store::new(&engine, RefData { limits });
        store.limiter(|d| &mut d.limits);
        // nestbox loaded it: wasmi must accept it too.
        let module = wasmi::Module::new(&engine, bytes)
            .map_err(|e| format!("nestbox loaded a module wasmi refuses: {e}"))?;
        Ok(Self {
            store,
            module: Some(module),
            instance: None,
            done: false,
        })
    }

    fn compare_instantiation(&mut self, ours: &Result<Instance, Error>) -> Result<(), String> {
        let Some(module) = self.module.take() else {
            return Ok(());
        };
        let linker = wasmi::Linker::<RefData>::new(self.store.engine());
        self.store
            .set_fuel(DIFF_FUEL)
            .map_err(|e| format!("wasmi set_fuel: {e}"))?;
        let theirs = linker.instantiate_and_start(&mut self.store, &module);
        match (ours, theirs) {
            (Ok(_), Ok(instance)) => {
                self.instance = Some(instance);
                Ok(())
            }
            (Err(e), Err(_)) if nestbox_limit(e) => {
                self.done = true;
                Ok(())
            }
            // An instantiation error that is not a trap in wasmi (say, an element segment
            // that does not fit) is nestbox's to name (TRAP table_out_of_bounds here).
            (Err(_), Err(t)) if t.as_trap_code().is_none() => {
                self.done = true;
                Ok(())
            }
            (Err(e), Err(t)) => {
                self.done = true;
                compare_traps("instantiation", e, &t)
            }
            (Err(e), Ok(_)) if nestbox_limit(e) => {
                self.done = true;
                Ok(())
            }
            (Ok(_), Err(t)) if wasmi_limit(&t) => {
                self.done = true;
                Ok(())
            }
            (Err(e), Ok(_)) => Err(format!(
                "instantiation: nestbox failed with {}, wasmi instantiated",
                describe(e)
            )),
            (Ok(_), Err(t)) => Err(format!(
                "instantiation: wasmi failed with {t}, nestbox instantiated"
            )),
        }
    }

    /// Calls `name` with `args` and compares with nestbox's `ours`; `false` when the rest is
    /// not compared (a limit on either side, or both failed).
    fn compare_call(
        &mut self,
        name: &str,
        args: &[Value],
        ours: &Result<nestbox::Outcome, Error>,
    ) -> Result<bool, String> {
        if self.done {
            return Ok(false);
        }
        let Some(instance) = self.instance else {
            return Ok(false);
        };
        let Some(func) = instance.get_func(&self.store, name) else {
            return Err(format!("wasmi has no function export {name}"));
        };
        let ty = func.ty(&self.store);
        if ty.params().len() != args.len()
            || matches!(ours, Err(e) if e.code() == ErrorCode::InvalidArgument)
        {
            // An export whose types cannot cross: nestbox refused it, nothing to compare.
            return match ours {
                Err(e) if e.code() == ErrorCode::InvalidArgument => Ok(true),
                _ => Err(format!("{name}: nestbox called an export it cannot pass")),
            };
        }
        let params: Vec<wasmi::Val> = args.iter().map(|v| to_wasmi(*v)).collect();
        let mut results: Vec<wasmi::Val> = ty
            .results()
            .iter()
            .map(|t| wasmi::Val::default_for_ty(*t))
            .collect();
        self.store
            .set_fuel(DIFF_FUEL)
            .map_err(|e| format!("wasmi set_fuel: {e}"))?;
        let theirs = func.call(&mut self.store, &params, &mut results);
        match (ours, theirs) {
            (Ok(outcome), Ok(())) => {
                let theirs: Vec<Option<u64>> = results.iter().map(bits_of_wasmi).collect();
                let ours: Vec<Option<u64>> =
                    outcome.results.iter().map(|v| Some(bits_of(*v))).collect();
                if ours == theirs {
                    Ok(true)
                } else {
                    Err(format!(
                        "{name}({args:?}): nestbox returned {:?}, wasmi {results:?}",
                        outcome.results
                    ))
                }
            }
            (Err(e), _) if nestbox_limit(e) => Ok(false),
            (_, Err(t)) if wasmi_limit(&t) => Ok(false),
            (Err(e), Err(t)) => {
                compare_traps(name, e, &t)?;
                Ok(false)
            }
            (Err(e), Ok(())) => Err(format!(
                "{name}({args:?}): nestbox failed with {}, wasmi returned {results:?}",
                describe(e)
            )),
            (Ok(outcome), Err(t)) => Err(format!(
                "{name}({args:?}): nestbox returned {:?}, wasmi trapped: {t}",
                outcome.results
            )),
        }
    }
}

fn compare_traps(what: &str, ours: &Error, theirs: &wasmi::Error) -> Result<(), String> {
    let theirs_code = theirs.as_trap_code().map(TrapCode::from);
    if ours.code() == ErrorCode::Trap && ours.details().trap_code == theirs_code {
        return Ok(());
    }
    Err(format!(
        "{what}: nestbox failed with {} (trap code {:?}), wasmi with {theirs} ({theirs_code:?})",
        describe(ours),
        ours.details().trap_code
    ))
}

fn to_wasmi(v: Value) -> wasmi::Val {
    match v {
        Value::I32(x) => wasmi::Val::I32(x),
        Value::I64(x) => wasmi::Val::I64(x),
        Value::F32(x) => wasmi::Val::F32(x.into()),
        Value::F64(x) => wasmi::Val::F64(x.into()),
    }
}

fn bits_of(v: Value) -> u64 {
    match v {
        Value::I32(x) => u64::from(x as u32),
        Value::I64(x) => x as u64,
        Value::F32(x) => u64::from(x.to_bits()),
        Value::F64(x) => x.to_bits(),
    }
}

fn bits_of_wasmi(v: &wasmi::Val) -> Option<u64> {
    match v {
        wasmi::Val::I32(x) => Some(u64::from(*x as u32)),
        wasmi::Val::I64(x) => Some(*x as u64),
        wasmi::Val::F32(x) => Some(u64::from(f32::from(*x).to_bits())),
        wasmi::Val::F64(x) => Some(f64::from(*x).to_bits()),
        _ => None,
    }
}

/// The signature of every WASI import nestbox links (for the test that checks the list).
pub fn wasi_import_module() -> &'static str {
    WASI_IMPORTS
}

/// A wasm-smith configuration drawn from `u`, held to what nestbox's wasmi supports and allows
/// (no SIMD, threads, exceptions, GC, memory64…) and to small modules (more cases per second;
/// the shapes that matter are all there). The caller sets the imports and exports, then
/// [`smith_module`] builds it.
pub(crate) fn smith_config(u: &mut Unstructured<'_>) -> Option<wasm_smith::Config> {
    let mut config: wasm_smith::Config = u.arbitrary().ok()?;
    config.simd_enabled = false;
    config.relaxed_simd_enabled = false;
    config.threads_enabled = false;
    config.shared_everything_threads_enabled = false;
    config.exceptions_enabled = false;
    config.gc_enabled = false;
    config.custom_descriptors_enabled = false;
    config.memory64_enabled = false;
    config.custom_page_sizes_enabled = false;
    config.wide_arithmetic_enabled = false;
    config.max_memories = config.max_memories.min(1);
    config.max_tables = config.max_tables.min(4);
    config.max_types = config.max_types.min(30);
    config.max_funcs = config.max_funcs.min(30);
    config.max_instructions = config.max_instructions.min(300);
    config.max_globals = config.max_globals.min(20);
    config.max_exports = config.max_exports.min(20);
    config.max_data_segments = config.max_data_segments.min(8);
    config.max_element_segments = config.max_element_segments.min(8);
    config.max_elements = config.max_elements.min(100);
    // Mostly under the harnesses' 16 MiB memory limit, so that most modules instantiate.
    config.max_memory32_bytes = config.max_memory32_bytes.min(32 << 20);
    config.max_table_elements = config.max_table_elements.min(20_000);
    config.max_nesting_depth = config.max_nesting_depth.min(10);
    config.allow_invalid_funcs = false;
    Some(config)
}

/// The module of `config` (minima clamped to the maxima), a third of them with wasm-smith's
/// termination counter — a counter in every loop and function that traps when it runs out, so
/// more calls end by themselves and their results can be compared.
pub(crate) fn smith_module(
    u: &mut Unstructured<'_>,
    mut config: wasm_smith::Config,
) -> Option<Vec<u8>> {
    config.min_funcs = config.min_funcs.min(config.max_funcs);
    config.min_exports = config.min_exports.min(config.max_exports);
    config.min_types = config.min_types.min(config.max_types);
    config.min_globals = config.min_globals.min(config.max_globals);
    config.min_data_segments = config.min_data_segments.min(config.max_data_segments);
    config.min_element_segments = config.min_element_segments.min(config.max_element_segments);
    config.min_elements = config.min_elements.min(config.max_elements);
    config.min_memories = config.min_memories.min(config.max_memories as u32);
    config.min_tables = config.min_tables.min(config.max_tables as u32);
    let terminate = u.ratio(1, 3).unwrap_or(false);
    let fuel = u.int_in_range(10..=10_000u32).unwrap_or(100);
    let mut module = wasm_smith::Module::new(config, u).ok()?;
    if terminate {
        let _ = module.ensure_termination(fuel);
    }
    Some(module.to_bytes())
}
