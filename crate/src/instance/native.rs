//! The native tier's instance (cargo feature `native-tier`): the books of a guest that runs on
//! the embedder's own WebAssembly engine (the browser's, with JSPI), not in wasmi.
//!
//! The guest was rewritten by [`crate::native::instrument`] to meter itself: it keeps its fuel
//! in its exported global `nestbox_fuel` and calls `nestbox.out_of_fuel` when it goes
//! negative. The embedder compiles and runs it; this type keeps everything else exactly as an
//! [`Instance`](super::Instance) does, so both tiers give the same answers: the links of its
//! imports to the grants ([`link_imports`]), the instance slot, the call's budget, deadline and
//! metrics, the host-call charge, the `call`/`limit`/`deny` audit entries and poisoning.
//!
//! The embedder's side of the contract, per call:
//!
//! 1. [`NativeInstance::start`] checks the export and arguments and returns the fuel to put in
//!    `nestbox_fuel` (one slice);
//! 2. at every `out_of_fuel`: [`NativeInstance::refuel`] with the global's value (negative)
//!    returns the next slice to put there — or ends the call (`FUEL_EXHAUSTED`, `TIMEOUT`);
//! 3. at every call of a granted import: [`NativeInstance::host_call`] returns the
//!    [`Step::HostCall`] to run (after charging the host-call fuel), then
//!    [`NativeInstance::host_results`] checks the answer (or [`NativeInstance::fail_host`]);
//! 4. at every call of a WASI function (an instance made with WASI):
//!    [`NativeInstance::wasi_call`] runs the same syscall code as the interpreter against the
//!    guest's memory and returns the errno (and the new `nestbox_fuel`), a wait (sleep, empty
//!    stdin: after it, [`NativeInstance::wasi_resume`]) or the exit (`proc_exit`);
//! 5. at the end: [`NativeInstance::finish`] with the results, or [`NativeInstance::abort`] with
//!    the error the engine's trap maps to.
//!
//! Fuel books: the guest consumed `given - nestbox_fuel`, where `given` is everything the
//! host put in (the first slice and every refill, each replacing what was left).

use std::collections::BTreeMap;

use web_time::Instant;

use crate::audit::{AuditEvent, Record, Recorder, values_digest};
use crate::capability::{Grants, HostCall};
use crate::error::{Error, ErrorCode};
use crate::integrity::Digest;
use crate::limits::{InstanceSlot, Limits};
use crate::metrics::Metrics;
use crate::module::{ItemKind, Module};
use crate::value::{Signature, Value, ValueType};
use crate::wasi::{
    self, Cx, Fail, FsTree, WasiCtx, WasiFunc, WasiMemory, WasiStop, WasiSuspend, WasiWait,
};

use super::link::{Link, link_imports};
use super::{CallOptions, InstanceState, Outcome, Step};

/// One granted import of a native instance, in the order of the module's imports: what the
/// embedder binds it to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeLink {
    /// The import's module name.
    pub module: String,
    /// The import's field name.
    pub name: String,
    /// The capability it calls.
    pub capability: u32,
}

/// The running call's books.
struct NativeCall {
    started: Instant,
    timeout_ms: u64,
    budget: u64,
    /// Fuel put into `nestbox_fuel` so far (first slice plus refills, as replacements).
    given: u64,
    slices: u64,
    host_calls: u64,
    export: String,
    args_digest: Digest,
    result_types: Vec<ValueType>,
    memory_limit: u64,
    peak_memory_bytes: u64,
    /// The link of the host call being answered.
    pending: Option<usize>,
    /// What the suspended WASI call waits for.
    wasi_wait: Option<WasiWait>,
}

/// What a WASI call of a native guest came to (when it did not end the call with an error).
#[derive(Debug)]
pub enum NativeWasiStep {
    /// The function returns `errno` to the guest; set `nestbox_fuel` to `fuel`.
    Return {
        /// The errno (0: success).
        errno: u16,
        /// The value to set `nestbox_fuel` to (the call's charge taken; may be negative).
        fuel: i64,
    },
    /// The guest waits (a sleep or empty stdin): wait, then
    /// [`NativeInstance::wasi_resume`]. `nestbox_fuel` becomes `fuel`.
    Wait {
        /// What it waits for (a sleep is cut to the call's deadline).
        wait: WasiWait,
        /// The value to set `nestbox_fuel` to.
        fuel: i64,
    },
    /// `proc_exit`: the call is over (a result, not an error, as in the interpreter): this
    /// is its [`Step::Finished`] with `exit_code`. The embedder unwinds the guest's stack.
    Exit(Step),
}

/// A guest instantiated for the native tier (see the [module docs](self)).
pub struct NativeInstance {
    module: Module,
    links: Vec<Link>,
    /// The WASI state of an instance made with WASI.
    wasi: Option<WasiCtx>,
    /// The preview1 functions the module imports, in the order of first import.
    wasi_funcs: Vec<&'static WasiFunc>,
    limits: Limits,
    call: Option<NativeCall>,
    poisoned: Option<(ErrorCode, String)>,
    audit: Recorder,
    memory_bytes: u64,
    _slot: InstanceSlot,
}

impl core::fmt::Debug for NativeInstance {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NativeInstance")
            .field("module", &self.module)
            .field("state", &self.state())
            .finish()
    }
}

impl NativeInstance {
    /// Links `module` against `grants` as [`Instance`](super::Instance) does (every import
    /// must be granted with its exact type); with `wasi`, its `wasi_snapshot_preview1` imports
    /// are linked to the preview1 functions, as
    /// [`Sandbox::instantiate_wasi`](crate::Sandbox::instantiate_wasi) does. The data and Go
    /// namespaces are not available on this tier.
    pub(crate) fn new(
        module: &Module,
        grants: &Grants,
        wasi: Option<WasiCtx>,
        limits: &Limits,
        slot: InstanceSlot,
        audit: Recorder,
    ) -> Result<Self, Error> {
        if limits.trap_on_grow_failure {
            return Err(Error::invalid_argument(
                "the native tier cannot end a call at a refused memory.grow (trapOnGrowFailure); use the interpreter",
            ));
        }
        if wasi.is_some() {
            if let Some(g) = grants.iter().find(|g| g.module == wasi::WASI_MODULE) {
                return Err(Error::invalid_argument(format!(
                    "{} is granted as a capability, but WASI provides the {} namespace",
                    g.qualified_name(),
                    wasi::WASI_MODULE
                )));
            }
        }
        let (links, wasi_funcs, data, go) = link_imports(module, grants, wasi.is_some(), false)?;
        if !data.is_empty() {
            return Err(Error::invalid_argument(format!(
                "the data ABI ({}) is not available on the native tier; use the interpreter",
                crate::data::DATA_MODULE
            )));
        }
        if !go.is_empty() {
            return Err(Error::invalid_argument(
                "internal: the native tier linked a built-in namespace",
            ));
        }
        Ok(Self {
            module: module.clone(),
            links,
            wasi,
            wasi_funcs,
            limits: limits.clone(),
            call: None,
            poisoned: None,
            audit,
            memory_bytes: 0,
            _slot: slot,
        })
    }

    /// The module this instance runs.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// The granted imports, in the module's import order.
    pub fn links(&self) -> Vec<NativeLink> {
        self.links
            .iter()
            .map(|l| NativeLink {
                module: l.module.clone(),
                name: l.name.clone(),
                capability: l.capability.0,
            })
            .collect()
    }

    /// The names of the WASI functions the module imports (an instance made with WASI), in
    /// the order [`NativeInstance::wasi_call`] numbers them.
    pub fn wasi_functions(&self) -> Vec<&'static str> {
        self.wasi_funcs.iter().map(|f| f.name).collect()
    }

    /// The parameter types of WASI function number `func`.
    pub fn wasi_params(&self, func: usize) -> Option<&'static [ValueType]> {
        self.wasi_funcs.get(func).map(|f| f.params())
    }

    /// Whether the instance was made with WASI.
    pub fn has_wasi(&self) -> bool {
        self.wasi.is_some()
    }

    /// The stdout and stderr written since the last take (empty without WASI).
    pub fn take_output(&mut self) -> (Vec<u8>, Vec<u8>) {
        self.wasi
            .as_mut()
            .map(WasiCtx::take_output)
            .unwrap_or_default()
    }

    /// Whether the WASI output stays in the instance once taken (as
    /// [`Instance::set_retain_output`](super::Instance::set_retain_output)).
    pub fn set_retain_output(&mut self, retain: bool) {
        if let Some(wasi) = self.wasi.as_mut() {
            wasi.set_retain_output(retain);
        }
    }

    /// Everything written to stdout and stderr and retained (empty without WASI).
    pub fn wasi_output(&self) -> (Vec<u8>, Vec<u8>) {
        self.wasi.as_ref().map(WasiCtx::output).unwrap_or_default()
    }

    /// Each WASI preopen's tree as it is now, by guest path (empty without WASI).
    pub fn wasi_files(&self) -> BTreeMap<String, FsTree> {
        self.wasi.as_ref().map(WasiCtx::files).unwrap_or_default()
    }

    /// Appends `bytes` to an async stdin and/or ends it (as
    /// [`Instance::push_stdin`](super::Instance::push_stdin)).
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` without WASI, when stdin was given as bytes, or when it already
    /// ended and `bytes` is not empty.
    pub fn push_stdin(&mut self, bytes: &[u8], eof: bool) -> Result<(), Error> {
        match self.wasi.as_mut() {
            Some(wasi) => wasi.push_stdin(bytes, eof),
            None => Err(Error::invalid_argument(
                "this instance was not created with WASI, so it has no stdin",
            )),
        }
    }

    /// What the suspended WASI call waits for, if one is.
    pub fn wasi_wait(&self) -> Option<WasiWait> {
        self.call.as_ref()?.wasi_wait
    }

    /// The parameter types of granted import number `link`.
    pub fn links_params(&self, link: usize) -> Option<Vec<ValueType>> {
        self.links.get(link).map(|l| l.signature.params.clone())
    }

    /// The result types of the running call's export.
    pub fn running_result_types(&self) -> Option<Vec<ValueType>> {
        self.call.as_ref().map(|c| c.result_types.clone())
    }

    /// Idle, running or poisoned.
    pub fn state(&self) -> InstanceState {
        match (&self.poisoned, &self.call) {
            (Some((code, _)), _) => InstanceState::Poisoned(*code),
            (None, Some(_)) => InstanceState::Running,
            (None, None) => InstanceState::Idle,
        }
    }

    /// The signature of function export `export`, when it has a numeric one.
    pub fn export_signature(&self, export: &str) -> Option<Signature> {
        self.module
            .exports()
            .iter()
            .find(|e| e.name == export && e.kind == ItemKind::Function)
            .and_then(|e| e.signature.clone())
    }

    /// Starts a call of `export` with `args`: returns the fuel to put in `nestbox_fuel`.
    /// `memory_bytes` is the guest's memory now.
    ///
    /// # Errors
    ///
    /// `BUSY`, `POISONED`, `INVALID_ARGUMENT` (unknown export, wrong arguments, zero fuel, a
    /// trace asked for), `MEMORY_LIMIT` when the memory is already over the call's limit.
    pub fn start(
        &mut self,
        export: &str,
        args: &[Value],
        options: &CallOptions,
        memory_bytes: u64,
    ) -> Result<u64, Error> {
        if self.call.is_some() {
            return Err(Error::new(
                ErrorCode::Busy,
                "a call is already running on this instance",
            ));
        }
        if let Some((code, message)) = &self.poisoned {
            return Err(Error::new(
                ErrorCode::Poisoned,
                format!(
                    "instance poisoned by an earlier {code} ({message}); instantiate the module again"
                ),
            ));
        }
        let signature = self.export_signature(export).ok_or_else(|| {
            Error::invalid_argument(format!(
                "no exported function {export:?} with a numeric signature"
            ))
        })?;
        Signature::check(&format!("arguments of {export:?}"), &signature.params, args)?;
        if options.trace.is_some() {
            return Err(Error::invalid_argument(
                "trace is not available on the native tier; use the interpreter",
            ));
        }
        let budget = options
            .fuel
            .map_or(self.limits.fuel, |f| f.min(self.limits.fuel))
            .min(i64::MAX as u64);
        if budget == 0 {
            return Err(Error::invalid_argument("call fuel must be > 0"));
        }
        let timeout_ms = options
            .timeout_ms
            .map_or(self.limits.timeout_ms, |t| t.min(self.limits.timeout_ms));
        let memory_limit = options
            .max_memory_bytes
            .map_or(self.limits.max_memory_bytes, |m| {
                m.min(self.limits.max_memory_bytes)
            });
        if memory_bytes > memory_limit {
            return Err(Error::new(
                ErrorCode::MemoryLimit,
                format!(
                    "call refused: linear memory is already {memory_bytes} bytes, over the call's limit of {memory_limit} bytes"
                ),
            )
            .with(|d| d.limit = Some(memory_limit)));
        }
        self.memory_bytes = memory_bytes;
        if let Some(wasi) = self.wasi.as_mut() {
            wasi.suspended = None;
            wasi.start_call();
        }
        let slice = self.limits.fuel_per_slice.min(budget);
        self.call = Some(NativeCall {
            started: Instant::now(),
            timeout_ms,
            budget,
            given: slice,
            slices: 1,
            host_calls: 0,
            export: export.to_owned(),
            args_digest: values_digest(args),
            result_types: signature.results,
            memory_limit,
            peak_memory_bytes: memory_bytes,
            pending: None,
            wasi_wait: None,
        });
        Ok(slice)
    }

    /// Fuel consumed by the call so far, when the guest's global reads `fuel_left`.
    fn consumed(call: &NativeCall, fuel_left: i64) -> u64 {
        // given - fuel_left, where fuel_left may be negative (a block charged past zero).
        let consumed = i128::from(call.given) - i128::from(fuel_left);
        u64::try_from(consumed.max(0)).unwrap_or(u64::MAX)
    }

    /// Records the memory size the embedder saw; `MEMORY_LIMIT` (ending the call) when it is
    /// over the call's own limit (which the instrumented maximum cannot know: it is the
    /// sandbox's).
    fn observe_memory(&mut self, memory_bytes: u64, fuel_left: i64) -> Result<(), Error> {
        self.memory_bytes = memory_bytes;
        let Some(call) = self.call.as_mut() else {
            return Ok(());
        };
        call.peak_memory_bytes = call.peak_memory_bytes.max(memory_bytes);
        if memory_bytes > call.memory_limit {
            let limit = call.memory_limit;
            return Err(self.end(
                Error::new(
                    ErrorCode::MemoryLimit,
                    format!("call: linear memory over the limit of {limit} bytes"),
                )
                .with(|d| d.limit = Some(limit)),
                fuel_left,
            ));
        }
        Ok(())
    }

    fn check_deadline(&mut self, fuel_left: i64) -> Result<(), Error> {
        let Some(call) = self.call.as_ref() else {
            return Ok(());
        };
        if call.started.elapsed().as_millis() > u128::from(call.timeout_ms) {
            let timeout_ms = call.timeout_ms;
            return Err(self.end(
                Error::new(
                    ErrorCode::Timeout,
                    format!("wall-clock limit of {timeout_ms} ms passed"),
                )
                .with(|d| d.limit = Some(timeout_ms)),
                fuel_left,
            ));
        }
        Ok(())
    }

    fn no_call() -> Error {
        Error::invalid_argument("no call is running on this instance")
    }

    /// The guest's `out_of_fuel`: its global reads `fuel_left` (negative). Returns the value to
    /// set it to (non-negative: the next slice, or what is left of the budget).
    ///
    /// # Errors
    ///
    /// `FUEL_EXHAUSTED` (the budget is spent), `TIMEOUT`, `MEMORY_LIMIT` (the call's own
    /// limit); each ends the call. `INVALID_ARGUMENT` when no call runs.
    pub fn refuel(&mut self, fuel_left: i64, memory_bytes: u64) -> Result<u64, Error> {
        if self.call.is_none() {
            return Err(Self::no_call());
        }
        self.check_deadline(fuel_left)?;
        self.observe_memory(memory_bytes, fuel_left)?;
        let slice = self.limits.fuel_per_slice;
        let Some(call) = self.call.as_mut() else {
            return Err(Self::no_call());
        };
        let consumed = Self::consumed(call, fuel_left);
        let remaining = call.budget.saturating_sub(consumed);
        if fuel_left >= 0 {
            // Called with fuel left: nothing to refill (the guest traps if it returns).
            return Ok(u64::try_from(fuel_left).unwrap_or(0));
        }
        if remaining == 0 {
            return Err(self.fuel_exhausted(fuel_left));
        }
        let refill = slice.min(remaining);
        call.given = consumed + refill;
        call.slices += 1;
        Ok(refill)
    }

    /// The guest called its granted import number `link` (in the order of
    /// [`NativeInstance::links`]) with `args`: charges the host-call fuel and returns the host
    /// step to run, and the value to set `nestbox_fuel` to (the charge taken from it; it may go
    /// negative, and the guest's next block then refuels).
    ///
    /// # Errors
    ///
    /// `FUEL_EXHAUSTED` (the budget cannot pay the charge), `TIMEOUT`, `MEMORY_LIMIT` (each
    /// ends the call); `HOST_ERROR` for arguments of the wrong types (ends the call);
    /// `INVALID_ARGUMENT` when no call runs or another host call is pending.
    pub fn host_call(
        &mut self,
        link: usize,
        args: Vec<Value>,
        fuel_left: i64,
        memory_bytes: u64,
    ) -> Result<(Step, i64), Error> {
        match self.call.as_ref() {
            None => return Err(Self::no_call()),
            Some(call) if call.pending.is_some() || call.wasi_wait.is_some() => {
                return Err(Error::invalid_argument(
                    "a host call is already pending on this instance",
                ));
            }
            Some(_) => {}
        }
        let Some(l) = self.links.get(link) else {
            return Err(self.end(
                Error::new(
                    ErrorCode::HostError,
                    format!("internal: unknown link {link}"),
                ),
                fuel_left,
            ));
        };
        let (capability, import) = (l.capability, l.import.clone());
        let (params, results) = (l.signature.params.clone(), l.signature.results.clone());
        if let Err(e) = Signature::check(&format!("arguments of {import}"), &params, &args) {
            let message = e.message().to_owned();
            return Err(self.end(
                Error::new(ErrorCode::HostError, message)
                    .with(|d| d.capability = Some(capability.0)),
                fuel_left,
            ));
        }
        let cost = self.limits.host_call_fuel;
        let Some(call) = self.call.as_mut() else {
            return Err(Self::no_call());
        };
        call.host_calls += 1;
        let consumed = Self::consumed(call, fuel_left);
        if consumed.saturating_add(cost) > call.budget {
            return Err(self.fuel_exhausted(fuel_left));
        }
        let left = fuel_left.saturating_sub(i64::try_from(cost).unwrap_or(i64::MAX));
        self.check_deadline(left)?;
        self.observe_memory(memory_bytes, left)?;
        if let Some(call) = self.call.as_mut() {
            call.pending = Some(link);
        }
        Ok((
            Step::HostCall(HostCall {
                capability,
                import,
                args,
                results,
                http: None,
                go: None,
                direct: false,
            }),
            left,
        ))
    }

    /// The guest called WASI function number `func` (in the order of
    /// [`NativeInstance::wasi_functions`]) with `args`; its global reads `fuel_left`. Runs the
    /// interpreter's syscall code over `memory` (the guest's linear memory) with this instance's WASI state, and charges its
    /// fuel as the interpreter does (`host_call_fuel` plus what it moved and walked; what the
    /// budget cannot pay ends the call with `FUEL_EXHAUSTED`, nothing copied). WASI calls
    /// are not host calls in the metrics, as in the interpreter.
    ///
    /// # Errors
    ///
    /// What ends the call: `OUTPUT_LIMIT`, `FUEL_EXHAUSTED`, `TIMEOUT` (at a wait),
    /// `MEMORY_LIMIT` (the call's own limit), `HOST_ERROR` (arguments of the wrong types, an
    /// unknown function: a broken engine); `INVALID_ARGUMENT` when no call runs, another host
    /// or WASI call is pending, or the instance has no WASI (nothing changes then).
    pub fn wasi_call(
        &mut self,
        func: usize,
        args: &[Value],
        memory: &mut [u8],
        fuel_left: i64,
    ) -> Result<NativeWasiStep, Error> {
        self.wasi_call_in(func, args, WasiMemory::new(memory), fuel_left)
    }

    /// [`NativeInstance::wasi_call`] over either kind of guest memory (the binding's is the
    /// guest's JS `WebAssembly.Memory`).
    pub(crate) fn wasi_call_in(
        &mut self,
        func: usize,
        args: &[Value],
        mem: WasiMemory<'_>,
        fuel_left: i64,
    ) -> Result<NativeWasiStep, Error> {
        match self.call.as_ref() {
            None => return Err(Self::no_call()),
            Some(call) if call.pending.is_some() || call.wasi_wait.is_some() => {
                return Err(Error::invalid_argument(
                    "a host or WASI call is already pending on this instance",
                ));
            }
            Some(_) => {}
        }
        if self.wasi.is_none() {
            return Err(Error::invalid_argument(
                "this instance was not created with WASI",
            ));
        }
        let Some(f) = self.wasi_funcs.get(func).copied() else {
            return Err(self.end(
                Error::new(
                    ErrorCode::HostError,
                    format!("internal: unknown WASI function {func}"),
                ),
                fuel_left,
            ));
        };
        if !Signature::matches(f.params(), args) {
            // The message is built only for a broken engine, not on every call.
            let message = match Signature::check(
                &format!("arguments of {}.{}", wasi::WASI_MODULE, f.name),
                f.params(),
                args,
            ) {
                Err(e) => e.message().to_owned(),
                Ok(()) => "arguments do not match".to_owned(),
            };
            return Err(self.end(Error::new(ErrorCode::HostError, message), fuel_left));
        }
        self.observe_memory(mem.size_bytes(), fuel_left)?;
        let host_call_fuel = self.limits.host_call_fuel;
        let (Some(call), Some(wasi_ctx)) = (self.call.as_ref(), self.wasi.as_mut()) else {
            return Err(Self::no_call());
        };
        let budget = call.budget;
        let remaining = budget.saturating_sub(Self::consumed(call, fuel_left));
        let params: Vec<wasmi::Val> = args.iter().map(|v| v.to_wasmi()).collect();
        let mut cx = Cx {
            mem,
            wasi: wasi_ctx,
            moved: 0,
            work: 0,
            base_fuel: host_call_fuel,
            fuel_left: remaining,
            fuel_budget: budget,
            starved: false,
        };
        let (outcome, cost) = wasi::run(f, &mut cx, &params);
        let left = fuel_left.saturating_sub(i64::try_from(cost).unwrap_or(i64::MAX));
        match outcome {
            Ok(()) => Ok(NativeWasiStep::Return {
                errno: 0,
                fuel: left,
            }),
            Err(Fail::Errno(errno)) => Ok(NativeWasiStep::Return {
                errno: errno.raw(),
                fuel: left,
            }),
            Err(Fail::Stop(stop)) => {
                if let Some(status) = stop.i32_exit_status() {
                    return Ok(NativeWasiStep::Exit(self.exited(status, left)));
                }
                if let Some(suspend) = stop.downcast_ref::<WasiSuspend>().copied() {
                    self.check_deadline(left)?;
                    let wait = match suspend {
                        WasiSuspend::Sleep { duration_ns } => WasiWait::Sleep {
                            duration_ns: self.clip_to_deadline(duration_ns),
                        },
                        WasiSuspend::ReadStdin { max_bytes } => WasiWait::ReadStdin { max_bytes },
                    };
                    if let Some(call) = self.call.as_mut() {
                        call.wasi_wait = Some(wait);
                    }
                    return Ok(NativeWasiStep::Wait { wait, fuel: left });
                }
                let error = match stop.downcast_ref::<WasiStop>() {
                    Some(WasiStop(e)) => e.clone(),
                    None => Error::new(
                        ErrorCode::HostError,
                        format!("internal: WASI {} stopped the guest: {stop}", f.name),
                    ),
                };
                Err(self.end(error, left))
            }
        }
    }

    /// Continues the WASI call that waits ([`NativeWasiStep::Wait`]): after a sleep, its
    /// `poll_oneoff` returns (ready stdin is reported, else its earliest clock fires); after
    /// an empty stdin, the read completes if stdin got data or ended
    /// ([`NativeInstance::push_stdin`]), otherwise it waits again. As the interpreter's
    /// `resume`.
    ///
    /// # Errors
    ///
    /// `TIMEOUT` (the deadline passed), `FUEL_EXHAUSTED` (the budget cannot pay what the
    /// completion moved), `MEMORY_LIMIT` (each ends the call); `INVALID_ARGUMENT` when no
    /// WASI call waits (nothing changes).
    pub fn wasi_resume(
        &mut self,
        memory: &mut [u8],
        fuel_left: i64,
    ) -> Result<NativeWasiStep, Error> {
        self.wasi_resume_in(WasiMemory::new(memory), fuel_left)
    }

    /// [`NativeInstance::wasi_resume`] over either kind of guest memory.
    pub(crate) fn wasi_resume_in(
        &mut self,
        mem: WasiMemory<'_>,
        fuel_left: i64,
    ) -> Result<NativeWasiStep, Error> {
        let Some(wait) = self.call.as_ref().and_then(|c| c.wasi_wait) else {
            return Err(Error::invalid_argument(
                "the running call is not waiting in a WASI call",
            ));
        };
        self.check_deadline(fuel_left)?;
        self.observe_memory(mem.size_bytes(), fuel_left)?;
        let Some(wasi_ctx) = self.wasi.as_mut() else {
            return Err(Self::no_call());
        };
        if matches!(wait, WasiWait::ReadStdin { .. }) && !wasi_ctx.stdin_ready() {
            // Still nothing to read: keep waiting.
            return Ok(NativeWasiStep::Wait {
                wait,
                fuel: fuel_left,
            });
        }
        let (errno, moved) = wasi::complete(mem, wasi_ctx);
        if let Some(call) = self.call.as_mut() {
            call.wasi_wait = None;
        }
        let cost = wasi::fuel_cost(0, moved);
        let Some(call) = self.call.as_ref() else {
            return Err(Self::no_call());
        };
        if Self::consumed(call, fuel_left).saturating_add(cost) > call.budget {
            return Err(self.fuel_exhausted(fuel_left));
        }
        let fuel = fuel_left.saturating_sub(i64::try_from(cost).unwrap_or(i64::MAX));
        Ok(NativeWasiStep::Return { errno, fuel })
    }

    /// A sleep no longer than the time left before the deadline (plus the 1 ms the deadline
    /// check needs to see it passed), as the interpreter's.
    fn clip_to_deadline(&self, duration_ns: u64) -> u64 {
        let Some(call) = self.call.as_ref() else {
            return duration_ns;
        };
        let limit_ns = u128::from(call.timeout_ms.saturating_add(1)) * 1_000_000;
        let left = limit_ns.saturating_sub(call.started.elapsed().as_nanos());
        duration_ns.min(u64::try_from(left).unwrap_or(u64::MAX))
    }

    /// The guest exited (WASI `proc_exit`): a result, not an error (the instance stays
    /// usable), as in the interpreter.
    fn exited(&mut self, status: i32, fuel_left: i64) -> Step {
        let metrics = self.metrics(fuel_left);
        self.record_call("ok", &metrics, Some(&format!("exit:{status}")));
        self.call = None;
        if let Some(wasi) = self.wasi.as_mut() {
            wasi.suspended = None;
        }
        Step::Finished(Outcome {
            results: Vec::new(),
            exit_code: Some(status),
            metrics,
            output: None,
            go_result: None,
        })
    }

    /// The result types the pending host call must be answered with.
    pub fn pending_host_results(&self) -> Option<&[ValueType]> {
        let link = self.call.as_ref()?.pending?;
        self.links.get(link).map(|l| &l.signature.results[..])
    }

    /// Checks the host's answer to the pending host call; the guest gets `results` then.
    ///
    /// # Errors
    ///
    /// `HOST_ERROR` for results of the wrong count or types (ends the call), `TIMEOUT` (ends
    /// the call), `INVALID_ARGUMENT` when no host call is pending.
    pub fn host_results(&mut self, results: &[Value], fuel_left: i64) -> Result<(), Error> {
        let Some(link) = self.call.as_ref().and_then(|c| c.pending) else {
            return Err(Error::invalid_argument(
                "the running call is not waiting for a host answer",
            ));
        };
        let Some(l) = self.links.get(link) else {
            return Err(Self::no_call());
        };
        if !Signature::matches(&l.signature.results, results) {
            let capability = l.capability;
            let message = match Signature::check(
                &format!("results of capability {} ({})", l.capability, l.import),
                &l.signature.results,
                results,
            ) {
                Err(e) => e.message().to_owned(),
                Ok(()) => "results do not match".to_owned(),
            };
            return Err(self.end(
                Error::new(ErrorCode::HostError, message)
                    .with(|d| d.capability = Some(capability.0)),
                fuel_left,
            ));
        }
        if let Some(call) = self.call.as_mut() {
            call.pending = None;
        }
        self.check_deadline(fuel_left)
    }

    /// Ends a call waiting for a host answer with `error` (as
    /// [`Instance::fail_host`](super::Instance::fail_host): denials are `deny` entries).
    pub fn fail_host(&mut self, error: Error, fuel_left: i64) -> Error {
        let Some(link) = self.call.as_ref().and_then(|c| c.pending) else {
            return Error::invalid_argument(
                "the running call is not waiting for a host answer, so it cannot fail",
            );
        };
        let capability = self.links.get(link).map(|l| l.capability.0);
        let error = super::host_denial(&self.audit, &self.module, capability, error);
        self.end(error, fuel_left)
    }

    /// The export returned `results` (typed by its signature); the guest's global reads
    /// `fuel_left`.
    ///
    /// # Errors
    ///
    /// `MEMORY_LIMIT` (the call's own limit), `HOST_ERROR` for results that do not match the
    /// export's signature (cannot happen with a conforming engine); `INVALID_ARGUMENT` when no
    /// call runs.
    pub fn finish(
        &mut self,
        results: Vec<Value>,
        fuel_left: i64,
        memory_bytes: u64,
    ) -> Result<Step, Error> {
        let Some(call) = self.call.as_ref() else {
            return Err(Self::no_call());
        };
        if call.pending.is_some() || call.wasi_wait.is_some() {
            return Err(self.end(
                Error::new(
                    ErrorCode::Trap,
                    "call: the engine returned while a host or WASI call was pending",
                ),
                fuel_left,
            ));
        }
        if !Signature::matches(&call.result_types, &results) {
            return Err(self.end(
                Error::new(
                    ErrorCode::Trap,
                    "call: the engine returned results of the wrong types",
                ),
                fuel_left,
            ));
        }
        self.observe_memory(memory_bytes, fuel_left)?;
        let metrics = self.metrics(fuel_left);
        if metrics.fuel_consumed > self.call.as_ref().map_or(0, |c| c.budget) {
            // The last block was charged past the budget and never refuelled: the
            // interpreter would not have run it either.
            return Err(self.fuel_exhausted(fuel_left));
        }
        self.record_call("ok", &metrics, Some(&values_digest(&results).to_sri()));
        self.call = None;
        Ok(Step::Finished(Outcome {
            results,
            exit_code: None,
            metrics,
            output: None,
            go_result: None,
        }))
    }

    /// Ends the running call with `error` (the engine trapped, the caller cancelled): the
    /// instance is poisoned and `error` comes back with the metrics. When no call runs,
    /// `error` comes back unchanged.
    pub fn abort(&mut self, error: Error, fuel_left: i64, memory_bytes: u64) -> Error {
        if self.call.is_none() {
            return error;
        }
        self.memory_bytes = memory_bytes;
        if let Some(call) = self.call.as_mut() {
            call.peak_memory_bytes = call.peak_memory_bytes.max(memory_bytes);
        }
        // The guest keeps its fuel in a local between calls, so after a trap the global holds
        // the value of its last call, refill or bulk operator: the fuel used since is unknown.
        // The whole slice counts as used (never less than ran; the same for the same run).
        let fuel_left = if error.code() == ErrorCode::Trap {
            fuel_left.min(0)
        } else {
            fuel_left
        };
        self.end(error, fuel_left)
    }

    /// The metrics of the call in progress (`fuel_left` read from the guest), or `None`.
    pub fn progress(&self, fuel_left: i64) -> Option<Metrics> {
        self.call.as_ref().map(|_| self.metrics(fuel_left))
    }

    fn metrics(&self, fuel_left: i64) -> Metrics {
        let Some(call) = self.call.as_ref() else {
            return Metrics::default();
        };
        Metrics {
            fuel_consumed: Self::consumed(call, fuel_left),
            slices: call.slices,
            host_calls: call.host_calls,
            peak_memory_bytes: call.peak_memory_bytes.max(self.memory_bytes),
            wall_time_us: u64::try_from(call.started.elapsed().as_micros()).unwrap_or(u64::MAX),
        }
    }

    /// Ends the call with `error`: metrics, the `call` (and `limit`) audit entries, poisoned.
    /// Ends the call with `FUEL_EXHAUSTED` (its budget as the limit).
    fn fuel_exhausted(&mut self, fuel_left: i64) -> Error {
        let budget = self.call.as_ref().map_or(0, |c| c.budget);
        self.end(
            Error::new(
                ErrorCode::FuelExhausted,
                format!("fuel budget of {budget} exhausted"),
            )
            .with(|d| d.limit = Some(budget)),
            fuel_left,
        )
    }

    fn end(&mut self, error: Error, fuel_left: i64) -> Error {
        let metrics = self.metrics(fuel_left);
        self.record_call(error.code().as_str(), &metrics, None);
        if error.code().is_limit() {
            self.audit.record(
                Record::new(AuditEvent::Limit)
                    .failed(error.code())
                    .module(self.module.digest())
                    .fuel(metrics.fuel_consumed)
                    .with("reason", error.message()),
            );
        }
        self.call = None;
        if let Some(wasi) = self.wasi.as_mut() {
            wasi.suspended = None;
        }
        self.poisoned = Some((error.code(), error.message().to_owned()));
        error.with(|d| d.metrics = Some(metrics))
    }

    fn record_call(&self, outcome: &str, metrics: &Metrics, results: Option<&str>) {
        let Some(call) = self.call.as_ref() else {
            return;
        };
        let mut record = Record::new(AuditEvent::Call)
            .module(self.module.digest())
            .export(call.export.clone())
            .fuel(metrics.fuel_consumed)
            .with("args", call.args_digest.to_sri())
            .with("hostCalls", metrics.host_calls.to_string())
            .with("engine", "native");
        record.outcome = outcome.to_owned();
        if let Some(results) = results {
            record = record.with("results", results);
        }
        self.audit.record(record);
    }
}

impl Drop for NativeInstance {
    /// Records the disposal (the embedder drops the engine's instance and its memory).
    fn drop(&mut self) {
        self.audit
            .record(Record::new(AuditEvent::Dispose).module(self.module.digest()));
    }
}
