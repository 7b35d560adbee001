//! The sandbox: one wasmi engine configured from [`Limits`] (its own, or one shared through a
//! [`ModuleCache`]), which loads modules and creates instances. Compiled code may be shared
//! between instances of one sandbox, and through a cache between sandboxes of the same engine
//! configuration; nothing else is: every instance has its own `Store`, memory, tables,
//! globals and fuel.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wasmi::Engine;

use crate::audit::{AuditEntry, AuditEvent, Record, Recorder, Sink};
use crate::cache::{EngineKey, ModuleCache};
use crate::capability::{Grants, HostCall};
use crate::data::DataConfig;
use crate::error::{Error, ErrorCode};
use crate::gojs::{GoConfig, GoCtx};
use crate::instance::driver::{self, Hooks, HostFn};
use crate::instance::{CallOptions, Instance};
use crate::integrity::Digest;
use crate::limits::{InstanceSlot, Limits};
use crate::memory::GuestMemory;
use crate::module::{Compiled, Module, check_shape};
use crate::policy::{Provenance, TrustPolicy};
use crate::value::Value;
use crate::wasi::{WasiConfig, WasiCtx, WasiOutcome};

/// Loads, verifies and instantiates guest modules under one set of [`Limits`].
pub struct Sandbox {
    engines: Engines,
    /// Unique in the process: a module is usable only with the sandbox that loaded it.
    id: u64,
    limits: Limits,
    live_instances: Arc<AtomicU32>,
    policy: TrustPolicy,
    /// Digests that failed integrity or their signature (with `deny_after_failure`): `false`
    /// when they failed here, `true` when an earlier sandbox denied them
    /// ([`Sandbox::deny_carried`]).
    denied: Mutex<BTreeMap<[u8; 32], bool>>,
    audit: Recorder,
}

impl core::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sandbox")
            .field("limits", &self.limits)
            .field("live_instances", &self.live_instances())
            .finish()
    }
}

/// Where a sandbox compiles modules.
enum Engines {
    /// An engine of its own (dropped with the sandbox and its modules).
    Own(Engine),
    /// The cache's engine for this configuration, and its compiled modules.
    Cached(ModuleCache),
}

/// The next sandbox id.
static NEXT_SANDBOX_ID: AtomicU64 = AtomicU64::new(1);

impl Sandbox {
    /// A sandbox enforcing `limits`.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` if the limits cannot work (see [`Limits::validate`]).
    pub fn new(limits: Limits) -> Result<Self, Error> {
        Self::with_policy(limits, TrustPolicy::permissive())
    }

    /// A sandbox enforcing `limits` that loads only what `policy` allows.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` if the limits cannot work (see [`Limits::validate`]).
    pub fn with_policy(limits: Limits, policy: TrustPolicy) -> Result<Self, Error> {
        limits.validate()?;
        let engine = EngineKey::of(&limits).engine();
        Ok(Self::build(Engines::Own(engine), limits, policy))
    }

    /// A sandbox like [`Sandbox::with_policy`] that compiles through `cache`: a module whose
    /// bytes another sandbox of the same engine configuration ([`EngineKey`]) already loaded
    /// reuses that compiled code. Every load is still checked in full first — size, SHA-256,
    /// deny list, policy, shape under these limits — and every instance still has its own
    /// store (see [`cache`](crate::cache)). A hit is marked `cached` in the audit log's load
    /// entry.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` if the limits cannot work (see [`Limits::validate`]).
    pub fn with_cache(
        limits: Limits,
        policy: TrustPolicy,
        cache: &ModuleCache,
    ) -> Result<Self, Error> {
        limits.validate()?;
        Ok(Self::build(Engines::Cached(cache.clone()), limits, policy))
    }

    fn build(engines: Engines, limits: Limits, policy: TrustPolicy) -> Self {
        Self {
            engines,
            id: NEXT_SANDBOX_ID.fetch_add(1, Ordering::Relaxed),
            limits,
            live_instances: Arc::new(AtomicU32::new(0)),
            policy,
            denied: Mutex::new(BTreeMap::new()),
            audit: Recorder::default(),
        }
    }

    /// The limits this sandbox enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Instances created by this sandbox that are still alive.
    pub fn live_instances(&self) -> u32 {
        self.live_instances.load(Ordering::Acquire)
    }

    /// Verifies `bytes` against `expected`, then validates them. The bytes are not parsed
    /// unless their size and digest are right. Same as [`Sandbox::load_with`] without
    /// provenance.
    ///
    /// # Errors
    ///
    /// `MODULE_TOO_LARGE`, `INTEGRITY_MISMATCH`, `POLICY_DENIED`, `SIGNATURE_INVALID`,
    /// `INVALID_MODULE` (with the parser's message).
    pub fn load(&self, bytes: &[u8], expected: &Digest) -> Result<Module, Error> {
        self.load_with(bytes, expected, &Provenance::default())
    }

    /// Verifies `bytes` against `expected` (size cap, SHA-256), checks the deny list and the
    /// trust policy with `provenance` (origin, signature), and only then validates them.
    /// Every attempt is recorded in the audit log; a module that fails integrity or its
    /// signature is denied for the life of the sandbox when the policy says so.
    ///
    /// # Errors
    ///
    /// `MODULE_TOO_LARGE`, `INTEGRITY_MISMATCH`, `POLICY_DENIED`, `SIGNATURE_INVALID`,
    /// `INVALID_MODULE`.
    pub fn load_with(
        &self,
        bytes: &[u8],
        expected: &Digest,
        provenance: &Provenance,
    ) -> Result<Module, Error> {
        let origin = |r: Record| match &provenance.origin {
            Some(o) => r.with("origin", o.clone()),
            None => r,
        };
        let digest = match crate::integrity::verify(bytes, expected, self.limits.max_module_bytes) {
            Ok(digest) => digest,
            Err(e) => {
                let mut record = origin(Record::new(AuditEvent::Load).failed(e.code()))
                    .with("expected", expected.to_sri())
                    .with("sizeBytes", bytes.len().to_string());
                if e.code() == ErrorCode::IntegrityMismatch {
                    let actual = Digest::of(bytes);
                    if self.deny(&actual) {
                        record = record.with("denied", "true");
                    }
                    record = record.module(actual);
                }
                self.audit.record(record);
                return Err(e);
            }
        };
        let denied = self
            .denied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(digest.as_bytes())
            .copied();
        let verdict = if let Some(carried) = denied {
            let when = if carried {
                " (in a worker since replaced)"
            } else {
                ""
            };
            Err(Error::new(
                ErrorCode::PolicyDenied,
                format!(
                    "module {digest} failed verification earlier in this sandbox{when} and is denied"
                ),
            ))
        } else {
            self.policy.evaluate(&digest, provenance)
        };
        match verdict {
            Ok(allowed) => {
                let mut record = origin(Record::new(AuditEvent::Policy).module(digest));
                if let Some(key) = allowed.key_id {
                    record = record.with("keyId", key);
                }
                self.audit.record(record);
            }
            Err(e) => {
                // A signature that was given and failed is evidence of tampering; a missing
                // one is not (the caller may retry with it), so only the former is denied.
                let denied = e.code() == ErrorCode::SignatureInvalid
                    && provenance.signature.is_some()
                    && self.deny(&digest);
                let mut record = origin(
                    Record::new(AuditEvent::Policy)
                        .failed(e.code())
                        .module(digest),
                )
                .with("reason", e.message());
                if denied {
                    record = record.with("denied", "true");
                }
                self.audit.record(record);
                return Err(e);
            }
        }
        let loaded = check_shape(bytes, &self.limits.module).and_then(|()| match &self.engines {
            Engines::Own(engine) => Compiled::compile(engine, bytes, digest).map(|c| (c, false)),
            Engines::Cached(cache) => cache.compile(EngineKey::of(&self.limits), digest, bytes),
        });
        let mut record = Record::new(AuditEvent::Load)
            .module(digest)
            .with("sizeBytes", bytes.len().to_string());
        match loaded {
            Ok((compiled, cached)) => {
                if cached {
                    record = record.with("cached", "true");
                }
                self.audit.record(record);
                Ok(Module::new(compiled, self.id))
            }
            Err(e) => {
                self.audit.record(record.failed(e.code()));
                Err(e)
            }
        }
    }

    /// `INVALID_ARGUMENT` unless this sandbox loaded `module`.
    fn check_owner(&self, module: &Module) -> Result<(), Error> {
        if module.owner() == self.id {
            Ok(())
        } else {
            Err(Error::invalid_argument(
                "module was loaded by another sandbox",
            ))
        }
    }

    /// Puts `digest` on the deny list when the policy says so; `true` if it is on it now.
    /// The audit entry of the failure then says `extra.denied = "true"`, which is how an
    /// embedder that replaces its core (the browser package) carries the list over.
    fn deny(&self, digest: &Digest) -> bool {
        if self.policy.deny_after_failure {
            self.denied
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(*digest.as_bytes())
                .or_insert(false);
        }
        self.policy.deny_after_failure
    }

    /// Denies `digests` for the life of the sandbox, as if they had failed verification in
    /// it: the deny list of an earlier sandbox standing for the same one (the browser's
    /// replaced worker; its audit entries mark each denial with `extra.denied = "true"`).
    /// Ignored when the policy does not deny after failure.
    pub fn deny_carried(&self, digests: &[Digest]) {
        if !self.policy.deny_after_failure {
            return;
        }
        let mut denied = self
            .denied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for digest in digests {
            denied.entry(*digest.as_bytes()).or_insert(true);
        }
    }

    /// Every audit entry so far, oldest first.
    pub fn audit_entries(&self) -> Vec<AuditEntry> {
        self.audit.lock().entries().to_vec()
    }

    /// The entries from sequence number `seq` on (for embedders that forward entries).
    pub fn audit_since(&self, seq: u64) -> Vec<AuditEntry> {
        let log = self.audit.lock();
        let from = log.entries().partition_point(|e| e.seq < seq);
        log.entries().get(from..).unwrap_or_default().to_vec()
    }

    /// The hash of the newest audit entry: keep it somewhere safe to detect tampering and
    /// truncation later ([`audit::verify`](crate::audit::verify)).
    pub fn audit_head(&self) -> String {
        self.audit.lock().head()
    }

    /// The audit log as JSON Lines.
    pub fn audit_jsonl(&self) -> String {
        self.audit.lock().to_jsonl()
    }

    /// Sends every later audit entry to `sink` as it is appended (e.g. to persist it).
    pub fn set_audit_sink(&self, sink: Option<Sink>) {
        self.audit.lock().set_sink(sink);
    }

    /// Makes this sandbox's audit log continue an earlier segment whose next sequence number
    /// is `next_seq` and whose last hash is `head` (say, a log file a new process appends
    /// to; verify the file first with [`audit::verify`](crate::audit::verify)).
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` once the log has entries of its own.
    pub fn continue_audit(&self, next_seq: u64, head: &str) -> Result<(), Error> {
        let mut log = self.audit.lock();
        if !log.entries().is_empty() {
            return Err(Error::invalid_argument(
                "the audit log already has entries; continue it before the first load",
            ));
        }
        let sink = log.take_sink();
        *log = crate::audit::AuditLog::continuing(next_seq, head);
        log.set_sink(sink);
        Ok(())
    }

    /// Records an embedder's own event (for example a capability revoked on the page).
    pub fn audit_record(&self, record: Record) {
        self.audit.record(record);
    }

    /// One `grant` entry per capability an instantiation linked (both tiers).
    fn record_grants(&self, module: &Module, grants: &Grants) {
        for grant in grants.iter() {
            self.audit.record(
                Record::new(AuditEvent::Grant)
                    .module(module.digest())
                    .with("import", grant.qualified_name())
                    .with("capability", grant.capability.0.to_string())
                    .with("signature", grant.signature.to_string()),
            );
        }
    }

    /// An instantiation that failed: its `instantiate` entry `record` marked failed, and a
    /// `limit` entry when a limit refused it (both tiers).
    fn record_refused(&self, record: Record, module: &Module, e: &Error) {
        self.audit
            .record(record.failed(e.code()).with("reason", e.message()));
        if e.code().is_limit() {
            self.audit.record(
                Record::new(AuditEvent::Limit)
                    .failed(e.code())
                    .module(module.digest()),
            );
        }
    }

    /// Links `module` against `grants` and instantiates it in a fresh store.
    ///
    /// # Errors
    ///
    /// `IMPORT_NOT_GRANTED` naming every import that was not granted; `SIGNATURE_MISMATCH`
    /// naming every granted import whose type differs; `INSTANCE_LIMIT`; `MEMORY_LIMIT` /
    /// `TABLE_LIMIT` when the module's initial sizes are over the limits; `FUEL_EXHAUSTED` or
    /// a trap from a `start` function; `INVALID_ARGUMENT` for a module of another sandbox.
    pub fn instantiate(&self, module: &Module, grants: &Grants) -> Result<Instance, Error> {
        self.check_owner(module)?;
        self.instantiate_inner(module, grants, None, None, &DataConfig::default())
    }

    /// [`Sandbox::instantiate`] with the data ABI's configuration (what the guest reads with
    /// `config_get`, the cap on its variables). Every instance links the data ABI
    /// (`extism:host/env`, see [`data`](crate::data)) when its module imports it; this only
    /// configures it.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::instantiate`].
    pub fn instantiate_with_data(
        &self,
        module: &Module,
        grants: &Grants,
        data: &DataConfig,
    ) -> Result<Instance, Error> {
        self.check_owner(module)?;
        self.instantiate_inner(module, grants, None, None, data)
    }

    fn instantiate_inner(
        &self,
        module: &Module,
        grants: &Grants,
        wasi: Option<WasiCtx>,
        go: Option<GoCtx>,
        data: &DataConfig,
    ) -> Result<Instance, Error> {
        let is_wasi = wasi.is_some();
        let is_go = go.is_some();
        let result = InstanceSlot::acquire(&self.live_instances, self.limits.max_instances)
            .and_then(|slot| {
                Instance::new(
                    module.wasmi().engine(),
                    module,
                    grants,
                    wasi,
                    go,
                    data,
                    &self.limits,
                    slot,
                    self.audit.clone(),
                )
            });
        let mut record = Record::new(AuditEvent::Instantiate).module(module.digest());
        if is_wasi {
            record = record.with("wasi", "preview1");
        }
        if is_go {
            record = record.with("gojs", "js/wasm");
        }
        match &result {
            Ok(_) => {
                self.audit.record(record);
                if let Some(http) = &data.http {
                    self.audit.record(
                        Record::new(AuditEvent::Grant)
                            .module(module.digest())
                            .with("import", "extism:host/env.http_request")
                            .with("capability", http.capability.0.to_string())
                            .with("allowedHosts", http.allowed_hosts.join(" "))
                            .with("maxResponseBytes", http.max_response_bytes.to_string()),
                    );
                }
                self.record_grants(module, grants);
            }
            Err(e) => self.record_refused(record, module, e),
        }
        result
    }

    /// Links `module` against WASI preview1 (configured by `config`, over an in-memory
    /// filesystem: see [`wasi`](crate::wasi)) and the capabilities in `config.grants`, and
    /// instantiates it in a fresh store. Run it with [`Instance::start`]`("_start", &[])`;
    /// a [`Step::Yield`](crate::Step::Yield) may then also be a WASI wait
    /// ([`Instance::wasi_wait`]), and the output is drained with [`Instance::take_output`].
    /// Every preview1 function the module imports is linked; an import under
    /// `wasi_snapshot_preview1` that is not one is `IMPORT_NOT_GRANTED`, one of the wrong type
    /// `SIGNATURE_MISMATCH`.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::instantiate`]; `INVALID_ARGUMENT` for a bad configuration (NUL in an
    /// argument, a bad preopen path, initial files over a quota, a capability granted under
    /// `wasi_snapshot_preview1`).
    pub fn instantiate_wasi(
        &self,
        module: &Module,
        config: &WasiConfig,
    ) -> Result<Instance, Error> {
        self.check_owner(module)?;
        let wasi = WasiCtx::new(config)?;
        self.instantiate_inner(module, &config.grants, Some(wasi), None, &config.data)
    }
}

#[cfg(feature = "native-tier")]
impl Sandbox {
    /// Loads `bytes` for the native tier: exactly [`Sandbox::load_with`]'s checks and audit
    /// entries (size, SHA-256, deny list, trust policy and signature, module shape,
    /// validation), then the instrumentation pass with this sandbox's limits
    /// ([`InstrumentConfig::from_limits`](crate::native::InstrumentConfig::from_limits)).
    /// The embedder compiles the instrumented bytes with its own engine.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::load_with`]; and the pass's (`INVALID_MODULE`, `IMPORT_NOT_GRANTED` for
    /// an import from `nestbox`, `MEMORY_LIMIT` / `TABLE_LIMIT` for a minimum over the limit),
    /// recorded as a failed `load` entry with `engine: native`.
    pub fn load_native(
        &self,
        bytes: &[u8],
        expected: &Digest,
        provenance: &Provenance,
    ) -> Result<(Module, crate::native::Instrumented), Error> {
        let module = self.load_with(bytes, expected, provenance)?;
        let config = crate::native::InstrumentConfig::from_limits(&self.limits);
        match crate::native::instrument(bytes, &config) {
            Ok(instrumented) => Ok((module, instrumented)),
            Err(e) => {
                self.audit.record(
                    Record::new(AuditEvent::Load)
                        .failed(e.code())
                        .module(module.digest())
                        .with("engine", "native")
                        .with("reason", e.message()),
                );
                Err(e)
            }
        }
    }

    /// Links `module` (loaded with [`Sandbox::load_native`]) against `grants` for the
    /// native tier: the same import checks, instance slot and `instantiate`/`grant` audit
    /// entries as [`Sandbox::instantiate`]. The embedder then instantiates the instrumented
    /// module with its engine, binding each granted import as
    /// [`NativeInstance::links`](crate::instance::native::NativeInstance::links) says.
    ///
    /// # Errors
    ///
    /// `IMPORT_NOT_GRANTED`, `SIGNATURE_MISMATCH`, `INSTANCE_LIMIT`, `INVALID_ARGUMENT` (a
    /// module of another sandbox; `trap_on_grow_failure`, which this tier cannot honour).
    pub fn instantiate_native(
        &self,
        module: &Module,
        grants: &Grants,
    ) -> Result<crate::instance::native::NativeInstance, Error> {
        self.instantiate_native_inner(module, grants, None)
    }

    /// [`Sandbox::instantiate_native`] for a WASI guest: its `wasi_snapshot_preview1` imports
    /// are linked to the preview1 functions configured by `config` (args, environment,
    /// preopens, stdin, output caps, quotas, determinism), and `config.grants` to the
    /// capabilities, as [`Sandbox::instantiate_wasi`] does. The embedder binds each WASI
    /// import ([`NativeInstance::wasi_functions`](crate::instance::native::NativeInstance::wasi_functions))
    /// to [`NativeInstance::wasi_call`](crate::instance::native::NativeInstance::wasi_call).
    ///
    /// # Errors
    ///
    /// As [`Sandbox::instantiate_native`] and [`Sandbox::instantiate_wasi`]; `INVALID_ARGUMENT`
    /// for a module that imports the data ABI (not on this tier).
    pub fn instantiate_native_wasi(
        &self,
        module: &Module,
        config: &WasiConfig,
    ) -> Result<crate::instance::native::NativeInstance, Error> {
        self.check_owner(module)?;
        let wasi = WasiCtx::new(config)?;
        self.instantiate_native_inner(module, &config.grants, Some(wasi))
    }

    fn instantiate_native_inner(
        &self,
        module: &Module,
        grants: &Grants,
        wasi: Option<WasiCtx>,
    ) -> Result<crate::instance::native::NativeInstance, Error> {
        self.check_owner(module)?;
        let has_wasi = wasi.is_some();
        let result = InstanceSlot::acquire(&self.live_instances, self.limits.max_instances)
            .and_then(|slot| {
                crate::instance::native::NativeInstance::new(
                    module,
                    grants,
                    wasi,
                    &self.limits,
                    slot,
                    self.audit.clone(),
                )
            });
        let mut record = Record::new(AuditEvent::Instantiate)
            .module(module.digest())
            .with("engine", "native");
        if has_wasi {
            record = record.with("wasi", "preview1");
        }
        match &result {
            Ok(_) => {
                self.audit.record(record);
                self.record_grants(module, grants);
            }
            Err(e) => self.record_refused(record, module, e),
        }
        result
    }
}

impl Sandbox {
    /// Instantiates a Go `js/wasm` guest (`GOOS=js GOARCH=wasm`): its `gojs` imports are
    /// linked to the membrane ([`gojs`](crate::gojs)), whose `js.Global()` holds exactly
    /// `config.globals`. Nothing runs yet: [`Instance::start_go_main`] runs `main`, then
    /// [`Instance::start_go_export`] calls the functions it registered.
    ///
    /// # Errors
    ///
    /// As [`Sandbox::instantiate`]; `INVALID_ARGUMENT` for a reserved global name;
    /// `IMPORT_NOT_GRANTED` for an import outside `gojs`.
    pub fn instantiate_go(&self, module: &Module, config: &GoConfig) -> Result<Instance, Error> {
        self.check_owner(module)?;
        let go = GoCtx::new(
            config,
            self.limits.max_memory_bytes,
            self.limits.max_output_bytes,
            self.limits.fuel_per_slice,
        )?;
        self.instantiate_inner(
            module,
            &Grants::new(),
            None,
            Some(go),
            &DataConfig::default(),
        )
    }
}

/// Runs a WASI command (its `_start` export) to completion natively: sleeps block the thread
/// (or advance a deterministic clock), an async stdin reads as end of file. Capabilities in
/// `config.grants` cannot be answered here and end the run with `HOST_ERROR`; use
/// [`run_wasi_with`] for them, or [`run_wasi_hooked`] to stream output and feed stdin.
///
/// # Errors
///
/// Any error of [`Sandbox::instantiate_wasi`] or of the call (`OUTPUT_LIMIT`,
/// `FUEL_EXHAUSTED`, `TIMEOUT`, `TRAP`, …). For the output written before a failure, drive
/// the instance yourself ([`driver::drive`]) and call [`Instance::take_output`].
pub fn run_wasi(
    sandbox: &Sandbox,
    module: &Module,
    config: WasiConfig,
) -> Result<WasiOutcome, Error> {
    run_wasi_with(sandbox, module, config, |call, _| {
        Err(Error::host_failed(format!(
            "run_wasi has no host function for {} (capability {})",
            call.import, call.capability
        )))
    })
}

/// [`run_wasi`] answering the capabilities of `config.grants` with `host`.
///
/// # Errors
///
/// As [`run_wasi`]; an error returned by `host` ends the run with that error.
pub fn run_wasi_with<H>(
    sandbox: &Sandbox,
    module: &Module,
    config: WasiConfig,
    host: H,
) -> Result<WasiOutcome, Error>
where
    H: FnMut(&HostCall, &mut GuestMemory<'_>) -> Result<Vec<Value>, Error>,
{
    run_wasi_hooked(sandbox, module, &config, &mut HostFn(host))
}

/// [`run_wasi`] driven with `hooks` ([`driver::drive`]): host calls, streamed output, sleeps
/// and stdin as the embedder wants them. The outcome's stdout and stderr hold everything the
/// guest wrote, streamed or not.
///
/// # Errors
///
/// As [`run_wasi`]; an error of a hook ends the run with that error.
pub fn run_wasi_hooked<H: Hooks + ?Sized>(
    sandbox: &Sandbox,
    module: &Module,
    config: &WasiConfig,
    hooks: &mut H,
) -> Result<WasiOutcome, Error> {
    let mut instance = sandbox.instantiate_wasi(module, config)?;
    let outcome = driver::drive(&mut instance, "_start", &[], &CallOptions::default(), hooks)?;
    let (stdout, stderr) = instance.wasi_output();
    Ok(WasiOutcome {
        exit_code: outcome.exit_code.unwrap_or(0),
        stdout,
        stderr,
        files: instance.wasi_files(),
        metrics: outcome.metrics,
    })
}
