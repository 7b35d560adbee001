//! An instance and its call loop: execution in resumable steps.
//!
//! A call is driven by wasmi's `call_resumable`:
//!
//! - when a **fuel slice** runs out, the call suspends and [`Step::Yield`] goes back to the
//!   caller, who may yield to its event loop, cancel, or [`Instance::resume`];
//! - when the guest calls a **granted import**, the trampoline suspends the call and
//!   [`Step::HostCall`] carries the capability id and the arguments; the caller runs the host
//!   function (synchronously or not) and answers with [`Instance::resume_host`];
//! - [`Step::Finished`] carries the results and the metrics;
//! - with WASI ([`Sandbox::instantiate_wasi`](crate::Sandbox::instantiate_wasi)), a guest
//!   that waits for a clock (`poll_oneoff`) or reads an empty async stdin also suspends with
//!   [`Step::Yield`], and [`Instance::wasi_wait`] says what it waits for
//!   ([`WasiWait::Sleep`], [`WasiWait::ReadStdin`]); stdout and stderr are drained between
//!   steps with [`Instance::take_output`].
//!
//! The fuel budget, the deadline and the host-call charge are enforced here, between steps.
//! A call that ends in an error (trap, limit, cancellation) *poisons* the instance: the guest
//! may have been stopped half-way through updating its own state, so later calls fail with
//! `POISONED` until the module is instantiated again. The sandbox itself is never affected.

use std::collections::BTreeMap;

use serde::Serialize;
use wasmi::{Linker, ResumableCall, ResumableCallHostTrap, ResumableCallOutOfFuel, Store};
use web_time::Instant;

use crate::audit::{AuditEvent, Record, Recorder, values_digest};
use crate::capability::{
    CapabilityId, DirectAnswer, DirectCall, DirectHost, Grants, HostCall, HttpResponse,
};
use crate::data::{self, DataConfig, DataCtx, DataView, HttpPending, LogLine};
use crate::error::{Error, ErrorCode};
use crate::fuel::FuelLedger;
use crate::gojs::{self, GoCtx, GoExit, GoPending, GoView};
use crate::integrity::Digest;
use crate::limits::{InstanceSlot, Limiter, Limits};
use crate::memory::GuestMemory;
use crate::metrics::Metrics;
use crate::module::Module;
use crate::trace::{self, AttrValue, SpanRef, Trace, Tracer};
use crate::value::{GoValue, Signature, Value, ValueType};
use crate::wasi::{self, FsTree, WasiCtx, WasiSuspend, WasiView, WasiWait};

use self::classify::classify;
use self::link::{DirectStop, DirectTimeout, HostCallPending, Link, link_imports};

mod classify;
pub mod driver;
mod go;
mod link;
#[cfg(feature = "native-tier")]
pub mod native;

/// Per-call options. They can only tighten the sandbox's [`Limits`], never loosen them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// Fuel budget for this call (at most `Limits::fuel`).
    pub fuel: Option<u64>,
    /// Wall-clock limit for this call in milliseconds (at most `Limits::timeout_ms`).
    pub timeout_ms: Option<u64>,
    /// Largest linear memory during this call, in bytes (at most `Limits::max_memory_bytes`).
    /// Growth past it is refused as past the sandbox's limit; a call that starts with the
    /// memory already over it is refused with `MEMORY_LIMIT` before it runs (the instance
    /// stays usable).
    pub max_memory_bytes: Option<u64>,
    /// Record a trace of this call ([`Instance::take_trace`] once it ended) keeping at most
    /// this many spans (root included, at most [`trace::MAX_SPANS_LIMIT`]); `None`, the
    /// default, records nothing.
    pub trace: Option<u32>,
}

/// A call that finished.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The export's results (empty when the guest exited through `proc_exit`).
    pub results: Vec<Value>,
    /// The status the guest exited with, when it ended the call by exiting (WASI `proc_exit`).
    /// An exit is a result, not an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// What the call cost.
    pub metrics: Metrics,
    /// The output of a data call ([`Instance::start_data`]): the bytes the guest set with
    /// `output_set` (empty if it set none). `None` for a numeric call.
    #[serde(skip)]
    pub output: Option<Vec<u8>>,
    /// The result of an exported Go function ([`Instance::start_go_export`]), copied out of
    /// the membrane. `None` for other calls.
    #[serde(skip)]
    pub go_result: Option<GoValue>,
}

/// What a call did in its latest step.
#[derive(Debug)]
pub enum Step {
    /// The call returned.
    Finished(Outcome),
    /// The call is suspended: a fuel slice ran out, or (with WASI) the guest waits for a
    /// clock or for stdin — [`Instance::wasi_wait`] says which. Yield (or wait) if you like,
    /// then [`Instance::resume`] (or [`Instance::cancel`]).
    Yield,
    /// The guest called a granted import: run it, then [`Instance::resume_host`] with its
    /// results (or [`Instance::fail_host`]).
    HostCall(HostCall),
}

/// What the store of one instance holds besides the guest: the limiter, the call's fuel
/// books, and the WASI context.
pub(crate) struct StoreState {
    limiter: Limiter,
    /// The running call's fuel books (reset at every call).
    fuel: FuelLedger,
    /// WASI state, when the instance was created with WASI.
    wasi: Option<WasiCtx>,
    /// The data ABI's host-side blocks, input, output and variables.
    data: DataCtx,
    /// The running call's span recorder, when it is traced.
    trace: Option<Tracer>,
    /// A Go `js/wasm` guest's membrane, timers and output.
    go: Option<GoCtx>,
    /// Answers the direct grants from inside the call ([`Instance::set_direct_host`]).
    direct: Option<Box<dyn DirectHost>>,
    /// Direct host calls the running call made (its other host calls are counted by the call).
    direct_calls: u64,
    /// The guest's exported memory, as [`Instance::memory`] finds it (for direct calls).
    memory: Option<wasmi::Memory>,
    /// When the running call started and its wall-clock limit (ms), for direct calls.
    deadline: Option<(Instant, u64)>,
}

impl GoView for StoreState {
    fn go_view(&mut self) -> Option<(&mut GoCtx, &mut FuelLedger)> {
        let Self { go, fuel, .. } = self;
        go.as_mut().map(|g| (g, fuel))
    }
}

impl DataView for StoreState {
    fn data_view(&mut self) -> (&mut DataCtx, &mut FuelLedger) {
        let Self { data, fuel, .. } = self;
        (data, fuel)
    }
}

impl WasiView for StoreState {
    fn wasi_view(&mut self) -> Option<(&mut WasiCtx, &mut FuelLedger)> {
        let Self { wasi, fuel, .. } = self;
        wasi.as_mut().map(|w| (w, fuel))
    }

    fn tracer(&mut self) -> Option<&mut Tracer> {
        self.trace.as_mut()
    }
}

enum Pending {
    Fuel(ResumableCallOutOfFuel),
    Host {
        handle: ResumableCallHostTrap,
        link: usize,
    },
    /// A data guest's `http_request` waits for [`Instance::resume_http`].
    Http {
        handle: ResumableCallHostTrap,
    },
    /// A WASI function suspended the guest.
    Wasi {
        handle: ResumableCallHostTrap,
        wait: WasiWait,
    },
    /// A Go guest called a capability token; [`Instance::resume_go`] answers.
    GoHost {
        handle: ResumableCallHostTrap,
        capability: u32,
        result_at: u32,
        ok_at: Option<u32>,
    },
    /// A Go guest is idle with only timers pending (its entry returned): a sleep.
    GoSleep {
        duration_ns: u64,
    },
}

/// What a Go call is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GoPhase {
    /// `run`: until `main` exits, or the program is idle with its functions registered.
    Main,
    /// An exported function, through this event object.
    Export(u32),
    /// The timers that are due while the program is idle between calls.
    Timers,
}

struct ActiveCall {
    /// `None` only while a step is running.
    pending: Option<Pending>,
    outputs: Vec<wasmi::Val>,
    result_types: Vec<ValueType>,
    started: Instant,
    timeout_ms: u64,
    slices: u64,
    host_calls: u64,
    /// For the audit log: the export called and the digest of its arguments.
    export: String,
    args_digest: Digest,
    /// A data call: its input is in the data context, its output is taken when it ends.
    data: bool,
    /// The span of the host call being answered, when the call is traced.
    host_span: SpanRef,
    /// A Go call: several entries (`run`, `resume`…) in one budget.
    go: Option<GoPhase>,
}

/// The state of an [`Instance`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceState {
    /// Ready for a call.
    Idle,
    /// A call is suspended between steps.
    Running,
    /// An earlier call ended in this error; the instance refuses further calls.
    Poisoned(ErrorCode),
}

/// One instantiated guest, with its own store. Created by [`Sandbox::instantiate`](crate::Sandbox::instantiate).
pub struct Instance {
    store: Store<StoreState>,
    instance: wasmi::Instance,
    module: Module,
    links: Vec<Link>,
    limits: Limits,
    call: Option<ActiveCall>,
    poisoned: Option<(ErrorCode, String)>,
    /// Fuel the start function consumed during instantiation (0 without one).
    start_fuel: u64,
    audit: Recorder,
    /// The trace of the latest traced call, until [`Instance::take_trace`].
    last_trace: Option<Trace>,
    _slot: InstanceSlot,
}

impl core::fmt::Debug for Instance {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Instance")
            .field("module", &self.module)
            .field("state", &self.state())
            .finish()
    }
}

impl Instance {
    // Crate-internal, called from one place (the sandbox): a parameter struct would only
    // rename these.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        engine: &wasmi::Engine,
        module: &Module,
        grants: &Grants,
        wasi: Option<WasiCtx>,
        go: Option<GoCtx>,
        data_config: &DataConfig,
        limits: &Limits,
        slot: InstanceSlot,
        audit: Recorder,
    ) -> Result<Self, Error> {
        if let Some(g) = grants.iter().find(|g| g.module == data::DATA_MODULE) {
            return Err(Error::invalid_argument(format!(
                "{} is granted as a capability, but the data ABI provides the {} namespace",
                g.qualified_name(),
                data::DATA_MODULE
            )));
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
        if go.is_some() {
            if let Some(g) = grants.iter().find(|g| g.module == gojs::GO_MODULE) {
                return Err(Error::invalid_argument(format!(
                    "{} is granted as a capability, but nestbox provides the {} namespace",
                    g.qualified_name(),
                    gojs::GO_MODULE
                )));
            }
        }
        let (links, wasi_funcs, data_funcs, go_funcs) =
            link_imports(module, grants, wasi.is_some(), go.is_some())?;
        let mut store = Store::new(
            engine,
            StoreState {
                limiter: Limiter::new(limits),
                fuel: FuelLedger::default(),
                wasi,
                go,
                data: DataCtx::new(
                    data_config.clone(),
                    limits.max_memory_bytes,
                    limits.max_output_bytes,
                ),
                trace: None,
                direct: None,
                direct_calls: 0,
                memory: None,
                deadline: None,
            },
        );
        store.limiter(|s| &mut s.limiter);
        let mut linker = Linker::<StoreState>::new(engine);
        for func in wasi_funcs {
            wasi::define(&mut linker, func, limits.host_call_fuel)?;
        }
        for func in data_funcs {
            data::define(&mut linker, func, limits.host_call_fuel)?;
        }
        for name in go_funcs {
            gojs::define(&mut linker, name, limits.host_call_fuel)?;
        }
        for (index, link) in links.iter().enumerate() {
            let param_types = link.signature.params.clone();
            if link.direct {
                let trampoline = DirectTrampoline {
                    link: index,
                    capability: link.capability,
                    import: link.import.clone(),
                    params: param_types,
                    results: link.signature.results.clone(),
                    fuel: limits.host_call_fuel,
                };
                linker
                    .func_new(
                        &link.module,
                        &link.name,
                        link.signature.to_wasmi(),
                        move |caller, params, results| trampoline.call(caller, params, results),
                    )
                    .map_err(|e| Error::invalid_argument(format!("cannot link: {e}")))?;
                continue;
            }
            linker
                .func_new(
                    &link.module,
                    &link.name,
                    link.signature.to_wasmi(),
                    move |_caller, params, _results| {
                        // Suspend the guest; the caller answers through `resume_host`.
                        Err(wasmi::Error::host(HostCallPending {
                            link: index,
                            args: args_of(params, &param_types),
                            direct: false,
                        }))
                    },
                )
                .map_err(|e| Error::invalid_argument(format!("cannot link: {e}")))?;
        }
        // A start function runs inside instantiation, which wasmi cannot suspend (it has no
        // resumable form): it gets the whole call budget, metered but not sliced, and WASI calls
        // in it are charged to the same books as a call's.
        store
            .set_fuel(limits.fuel)
            .map_err(|e| Error::invalid_argument(format!("fuel: {e}")))?;
        store.data_mut().fuel = FuelLedger::new(limits.fuel, limits.fuel);
        let started = linker.instantiate_and_start(&mut store, module.wasmi());
        // What the start function consumed, reported so that an embedder keeping fuel books
        // across calls (the package's tenant pools) can charge it.
        let start_fuel = store.data().fuel.consumed(store.get_fuel().unwrap_or(0));
        let instance = match started {
            Ok(instance) => {
                store.data_mut().memory = exported_memory(&instance, &store);
                instance
            }
            Err(e) => {
                let limiter = &store.data().limiter;
                let error = classify(e, limiter, &links, "instantiation");
                if start_fuel == 0 {
                    return Err(error);
                }
                let metrics = Metrics {
                    fuel_consumed: start_fuel,
                    peak_memory_bytes: limiter.peak_memory_bytes,
                    ..Metrics::default()
                };
                return Err(error.with(|d| d.metrics = Some(metrics)));
            }
        };
        Ok(Self {
            store,
            instance,
            module: module.clone(),
            links,
            limits: limits.clone(),
            call: None,
            poisoned: None,
            start_fuel,
            audit,
            last_trace: None,
            _slot: slot,
        })
    }

    /// The module this instance runs.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// The fuel its start function consumed while instantiating (0 without a start
    /// function). A start function runs under the sandbox's whole `Limits::fuel` (wasmi
    /// cannot suspend it); an instantiation that failed after its start function consumed
    /// fuel reports it in the error's metrics (`fuel_consumed`).
    pub fn start_fuel_consumed(&self) -> u64 {
        self.start_fuel
    }

    /// Idle, running (suspended between steps) or poisoned.
    pub fn state(&self) -> InstanceState {
        match (&self.poisoned, &self.call) {
            (Some((code, _)), _) => InstanceState::Poisoned(*code),
            (None, Some(_)) => InstanceState::Running,
            (None, None) => InstanceState::Idle,
        }
    }

    /// The metrics of the call in progress so far (fuel consumed up to the last step, slices,
    /// host calls, peak memory, wall time since it started), or `None` when no call runs. What
    /// a progress report between slices shows; the finished call's own metrics are final.
    pub fn progress(&self) -> Option<Metrics> {
        self.call.as_ref().map(|_| self.metrics())
    }

    /// A checked view of the guest's exported memory named `memory` (or its only exported
    /// memory), for host functions. `None` if the guest exports no memory.
    pub fn memory(&mut self) -> Option<GuestMemory<'_>> {
        let memory = self.store.data().memory?;
        Some(GuestMemory::new(memory.data_mut(&mut self.store)))
    }

    /// Installs (or, with `None`, removes) the host that answers this instance's direct
    /// grants ([`Grants::grant_direct`]) from inside the guest's call: such a call runs
    /// `host` right away, with no [`Step::HostCall`], and continues the guest with its
    /// answer. Fuel (`Limits::host_call_fuel`), the host-call count and the deadline are
    /// charged and checked as for any host call. A traced call ([`CallOptions::trace`]), and
    /// any call while no host is installed, answers direct grants with host-call steps.
    ///
    /// # Errors
    ///
    /// `BUSY` while a call is running.
    pub fn set_direct_host(&mut self, host: Option<Box<dyn DirectHost>>) -> Result<(), Error> {
        if self.call.is_some() {
            return Err(Error::new(
                ErrorCode::Busy,
                "a call is running on this instance",
            ));
        }
        self.store.data_mut().direct = host;
        Ok(())
    }

    /// The capability id and `module.name` of each granted import, in the order of
    /// [`DirectCall::link`], and whether it is direct.
    pub fn granted_imports(&self) -> impl Iterator<Item = (CapabilityId, &str, bool)> {
        self.links
            .iter()
            .map(|l| (l.capability, l.import.as_str(), l.direct))
    }

    /// Starts calling `export` with `args`, under the sandbox limits.
    ///
    /// # Errors
    ///
    /// `BUSY` while another call is suspended; `POISONED` after an interrupted call;
    /// `INVALID_ARGUMENT` for an unknown export or wrong arguments; or any error the first
    /// step ends in.
    pub fn start(&mut self, export: &str, args: &[Value]) -> Result<Step, Error> {
        self.start_with(export, args, &CallOptions::default())
    }

    /// [`Instance::start`] with per-call options.
    ///
    /// # Errors
    ///
    /// As [`Instance::start`].
    pub fn start_with(
        &mut self,
        export: &str,
        args: &[Value],
        options: &CallOptions,
    ) -> Result<Step, Error> {
        self.start_inner(export, args, options, None)
    }

    /// Starts a *data call* of `export` with `input` (the data ABI, `extism:host/env`: see
    /// [`data`](mod@crate::data)). The export takes no parameters and returns nothing or an `i32`
    /// status. The call runs in steps like any other; when it finishes, the outcome's
    /// `output` holds the bytes the guest set with `output_set`.
    ///
    /// # Errors
    ///
    /// As [`Instance::start_with`]; `INPUT_LIMIT` (the instance stays usable) when `input` is
    /// over `Limits::max_input_bytes` or does not fit the data memory; `INVALID_ARGUMENT` for
    /// an export of another type. When the call ends, `GUEST_ERROR` if the guest returned a
    /// non-zero status or set an error (`details.cause`; the instance stays usable).
    pub fn start_data(
        &mut self,
        export: &str,
        input: &[u8],
        options: &CallOptions,
    ) -> Result<Step, Error> {
        self.start_inner(export, &[], options, Some(input))
    }

    /// The log messages of the latest data call (`log_*`), taken.
    pub fn take_logs(&mut self) -> Vec<LogLine> {
        self.store.data_mut().data.take_logs()
    }

    /// The trace of the latest call made with [`CallOptions::trace`], once it ended (returned,
    /// exited or failed); `None` when that call was not traced or the trace was taken.
    pub fn take_trace(&mut self) -> Option<Trace> {
        self.last_trace.take()
    }

    fn start_inner(
        &mut self,
        export: &str,
        args: &[Value],
        options: &CallOptions,
        data_input: Option<&[u8]>,
    ) -> Result<Step, Error> {
        self.start_full(export, args, options, data_input, None)
    }

    /// `POISONED` once an earlier call was interrupted (the instance's state cannot be trusted).
    fn check_not_poisoned(&self) -> Result<(), Error> {
        match &self.poisoned {
            Some((code, message)) => Err(Error::new(
                ErrorCode::Poisoned,
                format!(
                    "instance poisoned by an earlier {code} ({message}); instantiate the module again"
                ),
            )),
            None => Ok(()),
        }
    }

    fn start_full(
        &mut self,
        export: &str,
        args: &[Value],
        options: &CallOptions,
        data_input: Option<&[u8]>,
        go: Option<GoPhase>,
    ) -> Result<Step, Error> {
        if self.call.is_some() {
            return Err(Error::new(
                ErrorCode::Busy,
                "a call is already running on this instance",
            ));
        }
        self.check_not_poisoned()?;
        let func = self
            .instance
            .get_func(&self.store, export)
            .ok_or_else(|| Error::invalid_argument(format!("no exported function {export:?}")))?;
        let ty = func.ty(&self.store);
        let signature = Signature::from_wasmi(&ty).ok_or_else(|| {
            Error::invalid_argument(format!(
                "export {export:?} has a non-numeric signature and cannot be called from the host"
            ))
        })?;
        Signature::check(&format!("arguments of {export:?}"), &signature.params, args)?;
        if let Some(input) = data_input {
            if !matches!(&signature.results[..], [] | [ValueType::I32]) {
                return Err(Error::invalid_argument(format!(
                    "export {export:?} is {signature}; a data call needs () -> () or () -> i32"
                )));
            }
            let (len, cap) = (input.len() as u64, self.limits.max_input_bytes);
            if len > cap {
                return Err(Error::new(
                    ErrorCode::InputLimit,
                    format!("input of {len} bytes is over its cap of {cap} bytes"),
                )
                .with(|d| d.limit = Some(cap)));
            }
        }
        let fuel_budget = options
            .fuel
            .map_or(self.limits.fuel, |f| f.min(self.limits.fuel));
        let timeout_ms = options
            .timeout_ms
            .map_or(self.limits.timeout_ms, |t| t.min(self.limits.timeout_ms));
        if fuel_budget == 0 {
            return Err(Error::invalid_argument("call fuel must be > 0"));
        }
        let limiter = &mut self.store.data_mut().limiter;
        let memory_limit = limiter.set_call_memory_limit(options.max_memory_bytes);
        if limiter.current_memory_bytes > memory_limit {
            let current = limiter.current_memory_bytes;
            return Err(Error::new(
                ErrorCode::MemoryLimit,
                format!(
                    "call refused: linear memory is already {current} bytes, over the call's limit of {memory_limit} bytes"
                ),
            )
            .with(|d| d.limit = Some(memory_limit)));
        }
        if let Some(input) = data_input {
            self.store.data_mut().data.reset(input)?;
        }
        if let Some(wasi) = self.store.data_mut().wasi.as_mut() {
            wasi.start_call();
        }
        let first_slice = self.limits.fuel_per_slice.min(fuel_budget);
        self.store
            .set_fuel(first_slice)
            .map_err(|e| Error::invalid_argument(format!("fuel: {e}")))?;
        let state = self.store.data_mut();
        state.fuel = FuelLedger::new(fuel_budget, first_slice);
        state.direct_calls = 0;
        state.limiter.peak_memory_bytes = state.limiter.current_memory_bytes;
        state.limiter.last_denied = None;
        let started = Instant::now();
        self.store.data_mut().deadline = Some((started, timeout_ms));
        let mut call = ActiveCall {
            pending: None,
            outputs: signature
                .results
                .iter()
                .map(|t| Value::zero(*t).to_wasmi())
                .collect(),
            result_types: signature.results.clone(),
            started,
            timeout_ms,
            slices: 1,
            host_calls: 0,
            export: export.to_owned(),
            args_digest: data_input.map_or_else(|| values_digest(args), Digest::of),
            data: data_input.is_some(),
            host_span: None,
            go,
        };
        self.last_trace = None;
        let tracer = options.trace.map(|max_spans| {
            let mut tracer = Tracer::new(max_spans);
            let kind = match (data_input, self.store.data().wasi.is_some()) {
                (Some(_), _) => "data",
                (None, true) => "wasi",
                (None, false) => "call",
            };
            let mut attributes = vec![
                ("nestbox.export", AttrValue::from(export)),
                (
                    "nestbox.module",
                    AttrValue::from(self.module.digest().to_sri()),
                ),
                ("nestbox.call_kind", AttrValue::from(kind)),
                ("nestbox.args", AttrValue::from(trace::summarise(args))),
                ("nestbox.fuel_budget", AttrValue::from(fuel_budget)),
            ];
            if let Some(input) = data_input {
                attributes.push(("nestbox.input_bytes", AttrValue::from(input.len() as u64)));
            }
            tracer.open(format!("call {export}"), None, attributes);
            tracer
        });
        self.store.data_mut().trace = tracer;
        let inputs: Vec<wasmi::Val> = args.iter().map(|v| v.to_wasmi()).collect();
        let result = func.call_resumable(&mut self.store, &inputs, &mut call.outputs);
        self.call = Some(call);
        self.handle(result)
    }

    /// Continues a call after [`Step::Yield`]. When the guest was waiting
    /// ([`Instance::wasi_wait`]): after [`WasiWait::Sleep`] its `poll_oneoff` returns (ready
    /// stdin is reported, else its earliest clock fires: the caller says the time is up);
    /// after [`WasiWait::ReadStdin`] the read completes if stdin got data or ended
    /// ([`Instance::push_stdin`]), otherwise the guest keeps waiting and this returns
    /// [`Step::Yield`] again.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` if the call is not waiting at a yield (state unchanged); `TIMEOUT`
    /// if the deadline passed; or any error the next step ends in.
    pub fn resume(&mut self) -> Result<Step, Error> {
        let is_yield = |p: &Pending| {
            matches!(
                p,
                Pending::Fuel(_) | Pending::Wasi { .. } | Pending::GoSleep { .. }
            )
        };
        let handle = match self.take_pending(is_yield, "a yield")? {
            Pending::Fuel(h) => h,
            Pending::Wasi { handle, wait } => return self.resume_wasi(handle, wait),
            Pending::GoSleep { .. } => {
                self.check_deadline()?;
                return self.go_after_entry();
            }
            Pending::Host { .. } | Pending::Http { .. } | Pending::GoHost { .. } => {
                return Err(self.internal("pending kind changed"));
            }
        };
        self.check_deadline()?;
        let remaining = self.fuel_remaining();
        let refill = self
            .limits
            .fuel_per_slice
            .max(handle.required_fuel())
            .min(remaining);
        self.refill(refill)?;
        if let Some(call) = self.call.as_mut() {
            call.slices += 1;
        }
        let mut outputs = self.take_outputs();
        let result = handle.resume(&mut self.store, &mut outputs);
        self.put_outputs(outputs);
        self.handle(result)
    }

    /// Answers a [`Step::HostCall`] with the host function's results and continues the call.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` if the call is not waiting for a host answer (state unchanged);
    /// `HOST_ERROR` if `results` do not match the capability's declared results (the call
    /// ends); `TIMEOUT` if the deadline passed while the host worked; or any error the next
    /// step ends in.
    pub fn resume_host(&mut self, results: &[Value]) -> Result<Step, Error> {
        let (handle, link) =
            match self.take_pending(|p| matches!(p, Pending::Host { .. }), "a host answer")? {
                Pending::Host { handle, link } => (handle, link),
                _ => return Err(self.internal("pending kind changed")),
            };
        let Some(l) = self.links.get(link) else {
            return Err(self.internal("unknown link"));
        };
        // The message is only made for a mismatch: this runs on every host call.
        if let Err(e) = if Signature::matches(&l.signature.results, results) {
            Ok(())
        } else {
            Signature::check(
                &format!("results of capability {} ({})", l.capability, l.import),
                &l.signature.results,
                results,
            )
        } {
            let (capability, message) = (l.capability, e.message().to_owned());
            self.close_host_span(Vec::new(), Some((ErrorCode::HostError.as_str(), &message)));
            return Err(self.end(
                Error::new(ErrorCode::HostError, message)
                    .with(|d| d.capability = Some(capability.0)),
            ));
        }
        self.close_host_span(
            vec![(
                "nestbox.results",
                AttrValue::from(trace::summarise(results)),
            )],
            None,
        );
        self.check_deadline()?;
        let inputs: Vec<wasmi::Val> = results.iter().map(|v| v.to_wasmi()).collect();
        let mut outputs = self.take_outputs();
        let result = handle.resume(&mut self.store, &inputs, &mut outputs);
        self.put_outputs(outputs);
        self.handle(result)
    }

    /// Answers a [`Step::HostCall`] whose `http` is a data guest's request with the response,
    /// and continues the call: the guest's `http_request` returns a block with the body.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` if the call is not waiting for an HTTP response (state unchanged);
    /// `HOST_ERROR` if the body is over the capability's `max_response_bytes` or does not fit
    /// the data memory (the call ends); `TIMEOUT`; or any error the next step ends in.
    pub fn resume_http(&mut self, response: HttpResponse) -> Result<Step, Error> {
        let handle =
            match self.take_pending(|p| matches!(p, Pending::Http { .. }), "an HTTP response")? {
                Pending::Http { handle } => handle,
                _ => return Err(self.internal("pending kind changed")),
            };
        let (status, body_bytes) = (response.status, response.body.len() as u64);
        let block = match self.store.data_mut().data.answer_http(response) {
            Ok(block) => {
                self.close_host_span(
                    vec![
                        (
                            "http.response.status_code",
                            AttrValue::from(u64::from(status)),
                        ),
                        ("http.response.body.size", AttrValue::from(body_bytes)),
                    ],
                    None,
                );
                block
            }
            Err(e) => {
                self.close_host_span(Vec::new(), Some((e.code().as_str(), e.message())));
                let capability = self.store.data().data.http_grant().map(|g| g.capability.0);
                return Err(self.end(e.with(|d| d.capability = capability)));
            }
        };
        self.check_deadline()?;
        let inputs = [wasmi::Val::I64(block as i64)];
        let mut outputs = self.take_outputs();
        let result = handle.resume(&mut self.store, &inputs, &mut outputs);
        self.put_outputs(outputs);
        self.handle(result)
    }

    /// Ends a call waiting at [`Step::HostCall`] with `error` (for example `HOST_ERROR` from
    /// [`Error::host_failed`], or the `TRAP` of an out-of-bounds guest pointer). Returns the
    /// error, with the call's metrics attached; the instance is poisoned.
    ///
    /// When no host call is pending, nothing changes and `INVALID_ARGUMENT` is returned.
    pub fn fail_host(&mut self, error: Error) -> Error {
        let capability = match self.call.as_ref().and_then(|c| c.pending.as_ref()) {
            Some(Pending::Host { link, .. }) => self.links.get(*link).map(|l| l.capability.0),
            Some(Pending::Http { .. }) => {
                self.store.data().data.http_grant().map(|g| g.capability.0)
            }
            Some(Pending::GoHost { capability, .. }) => Some(*capability),
            _ => {
                return Error::invalid_argument(
                    "the running call is not waiting for a host answer, so it cannot fail",
                );
            }
        };
        let error = host_denial(&self.audit, &self.module, capability, error);
        self.close_host_span(Vec::new(), Some((error.code().as_str(), error.message())));
        self.end(error)
    }

    /// Ends the running call with `error` (for example the error of an embedder's hook):
    /// the suspended guest is dropped, the instance is poisoned, and `error` is returned with
    /// the call's metrics. When no call is running, `error` is returned unchanged.
    pub fn abort(&mut self, error: Error) -> Error {
        if self.call.is_none() {
            return error;
        }
        self.end(error)
    }

    /// Cancels the running call, if any: the suspended guest is dropped, the instance is
    /// poisoned and the `CANCELLED` error (with metrics) is returned. `None` when idle.
    pub fn cancel(&mut self) -> Option<Error> {
        self.call.as_ref()?;
        Some(self.end(Error::new(
            ErrorCode::Cancelled,
            "call cancelled by the caller",
        )))
    }

    /// The result types the pending host call must be answered with
    /// ([`Instance::resume_host`]); `None` when no host call is pending.
    pub fn pending_host_results(&self) -> Option<&[ValueType]> {
        match self.call.as_ref()?.pending.as_ref()? {
            Pending::Host { link, .. } => self.links.get(*link).map(|l| &l.signature.results[..]),
            Pending::Http { .. } => Some(&[ValueType::I64]),
            Pending::GoHost { .. } => Some(&[]),
            _ => None,
        }
    }

    /// What the suspended guest waits for, when it is a WASI wait rather than a fuel slice
    /// (`None` otherwise, and when no call is suspended).
    pub fn wasi_wait(&self) -> Option<WasiWait> {
        match self.call.as_ref()?.pending.as_ref()? {
            Pending::Wasi { wait, .. } => Some(*wait),
            Pending::GoSleep { duration_ns } => Some(WasiWait::Sleep {
                duration_ns: *duration_ns,
            }),
            _ => None,
        }
    }

    /// Answers [`WasiWait::ReadStdin`]: appends `bytes` to stdin and/or ends it (`eof`),
    /// then continues the call. The guest's read takes up to its `max_bytes`; the rest stays
    /// buffered for its next reads.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` (state unchanged) if the call is not waiting for stdin, or if
    /// `bytes` is empty and `eof` false (the guest would have nothing to read); `TIMEOUT` if
    /// the deadline passed; or any error the next step ends in.
    pub fn resume_stdin(&mut self, bytes: &[u8], eof: bool) -> Result<Step, Error> {
        if bytes.is_empty() && !eof {
            return Err(Error::invalid_argument(
                "resume_stdin needs bytes, end of file, or both",
            ));
        }
        if !matches!(self.wasi_wait(), Some(WasiWait::ReadStdin { .. })) {
            return Err(Error::invalid_argument("the call is not waiting for stdin"));
        }
        self.push_stdin(bytes, eof)?;
        self.resume()
    }

    /// Appends `bytes` to an async stdin and/or ends it (`eof`) at any time, e.g. while the
    /// guest computes or sleeps; a later read (or a sleeping `poll_oneoff`, once resumed)
    /// sees them.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` without WASI, when stdin was given as bytes, or when it already
    /// ended and `bytes` is not empty.
    pub fn push_stdin(&mut self, bytes: &[u8], eof: bool) -> Result<(), Error> {
        match self.store.data_mut().wasi.as_mut() {
            Some(wasi) => wasi.push_stdin(bytes, eof),
            None => Err(Error::invalid_argument(
                "this instance was not created with WASI, so it has no stdin",
            )),
        }
    }

    /// The stdout and stderr bytes written since the last call (empty without WASI). Call it
    /// between steps to stream output, and once more after the call ends — also after an
    /// error such as `OUTPUT_LIMIT`, to get the bytes up to the cap.
    pub fn take_output(&mut self) -> (Vec<u8>, Vec<u8>) {
        if let Some(go) = self.store.data_mut().go.as_mut() {
            return go.take_output();
        }
        self.store
            .data_mut()
            .wasi
            .as_mut()
            .map(WasiCtx::take_output)
            .unwrap_or_default()
    }

    /// Whether the WASI output stays in the instance once [`Instance::take_output`] returned
    /// it (the default, for [`run_wasi`](crate::run_wasi)'s result). An embedder that streams
    /// the output and needs no copy, as the CLI, turns it off: the host then holds only what
    /// was written since the last take, however much the guest writes (the caps still count
    /// every byte), and count each call's output afresh (an instance kept for many calls is
    /// capped per call). Does nothing without WASI.
    pub fn set_retain_output(&mut self, retain: bool) {
        if let Some(wasi) = self.store.data_mut().wasi.as_mut() {
            wasi.set_retain_output(retain);
        }
    }

    /// Everything written to stdout and stderr so far (empty without WASI).
    pub(crate) fn wasi_output(&self) -> (Vec<u8>, Vec<u8>) {
        self.store
            .data()
            .wasi
            .as_ref()
            .map(WasiCtx::output)
            .unwrap_or_default()
    }

    /// Each WASI preopen's tree as it is now, by guest path (empty without WASI).
    pub fn wasi_files(&self) -> BTreeMap<String, FsTree> {
        self.store
            .data()
            .wasi
            .as_ref()
            .map(WasiCtx::files)
            .unwrap_or_default()
    }

    /// Completes the suspended WASI call (its results go to guest memory) and continues —
    /// or, while stdin is still empty, keeps waiting.
    fn resume_wasi(
        &mut self,
        handle: ResumableCallHostTrap,
        wait: WasiWait,
    ) -> Result<Step, Error> {
        self.check_deadline()?;
        let stdin_ready = self
            .store
            .data()
            .wasi
            .as_ref()
            .is_some_and(WasiCtx::stdin_ready);
        if matches!(wait, WasiWait::ReadStdin { .. }) && !stdin_ready {
            // Still nothing to read: keep waiting.
            if let Some(call) = self.call.as_mut() {
                call.pending = Some(Pending::Wasi { handle, wait });
            }
            return Ok(Step::Yield);
        }
        let memory = self.instance.get_memory(&self.store, "memory");
        let (data, state): (&mut [u8], &mut StoreState) = match memory {
            Some(m) => m.data_and_store_mut(&mut self.store),
            None => (&mut [], self.store.data_mut()),
        };
        let completed = state
            .wasi
            .as_mut()
            .map(|w| wasi::complete(wasi::WasiMemory::new(data), w));
        let Some((errno, moved)) = completed else {
            return Err(self.end(self.internal("a wasi step without wasi")));
        };
        if let Some(tracer) = self.store.data_mut().trace.as_mut() {
            tracer.close_pending(vec![
                ("wasi.errno", AttrValue::Int(i64::from(errno))),
                ("nestbox.bytes", AttrValue::from(moved)),
            ]);
        }
        self.charge(wasi::fuel_cost(0, moved))?;
        let inputs = [wasmi::Val::I32(i32::from(errno))];
        let mut outputs = self.take_outputs();
        let result = handle.resume(&mut self.store, &inputs, &mut outputs);
        self.put_outputs(outputs);
        self.handle(result)
    }

    // ---- the loop's internals ----

    fn take_pending(
        &mut self,
        expected: impl Fn(&Pending) -> bool,
        what: &str,
    ) -> Result<Pending, Error> {
        let Some(call) = self.call.as_mut() else {
            return Err(Error::invalid_argument(format!(
                "no call is running, so there is no {what} to resume"
            )));
        };
        match call.pending.take() {
            Some(p) if expected(&p) => Ok(p),
            other => {
                call.pending = other;
                Err(Error::invalid_argument(format!(
                    "the running call is not waiting for {what}"
                )))
            }
        }
    }

    fn take_outputs(&mut self) -> Vec<wasmi::Val> {
        self.call
            .as_mut()
            .map(|c| core::mem::take(&mut c.outputs))
            .unwrap_or_default()
    }

    fn put_outputs(&mut self, outputs: Vec<wasmi::Val>) {
        if let Some(call) = self.call.as_mut() {
            call.outputs = outputs;
        }
    }

    fn fuel_consumed(&self) -> u64 {
        if self.call.is_none() {
            return 0;
        }
        let in_store = self.store.get_fuel().unwrap_or(0);
        self.store.data().fuel.consumed(in_store)
    }

    fn fuel_remaining(&self) -> u64 {
        if self.call.is_none() {
            return 0;
        }
        let in_store = self.store.get_fuel().unwrap_or(0);
        self.store.data().fuel.remaining(in_store)
    }

    /// Puts `amount` fuel in the store (replacing what is left), keeping the books.
    fn refill(&mut self, amount: u64) -> Result<(), Error> {
        let in_store = self.store.get_fuel().unwrap_or(0);
        self.store.data_mut().fuel.refilled(in_store, amount);
        self.store
            .set_fuel(amount)
            .map_err(|e| self.internal(&format!("set_fuel: {e}")))
    }

    /// Charges `cost` fuel outside the guest's own instructions (host calls, WASI
    /// completions): `FUEL_EXHAUSTED` when the budget cannot pay it.
    fn charge(&mut self, cost: u64) -> Result<(), Error> {
        if cost == 0 {
            return Ok(());
        }
        if self.fuel_remaining() < cost {
            return Err(self.fuel_exhausted());
        }
        let in_store = self.store.get_fuel().unwrap_or(0);
        let left = self.store.data_mut().fuel.charge(in_store, cost);
        self.store
            .set_fuel(left)
            .map_err(|e| self.internal(&format!("set_fuel: {e}")))
    }

    fn fuel_exhausted(&mut self) -> Error {
        let budget = self.store.data().fuel.budget();
        self.end(
            Error::new(
                ErrorCode::FuelExhausted,
                format!("fuel budget of {budget} exhausted"),
            )
            .with(|d| d.limit = Some(budget)),
        )
    }

    fn check_deadline(&mut self) -> Result<(), Error> {
        let Some(call) = self.call.as_ref() else {
            return Ok(());
        };
        let elapsed_ms = call.started.elapsed().as_millis();
        if elapsed_ms > u128::from(call.timeout_ms) {
            let timeout_ms = call.timeout_ms;
            return Err(self.end(
                Error::new(
                    ErrorCode::Timeout,
                    format!("wall-clock limit of {timeout_ms} ms passed"),
                )
                .with(|d| d.limit = Some(timeout_ms)),
            ));
        }
        Ok(())
    }

    fn metrics(&self) -> Metrics {
        let Some(call) = self.call.as_ref() else {
            return Metrics::default();
        };
        Metrics {
            fuel_consumed: self.fuel_consumed(),
            slices: call.slices,
            host_calls: call.host_calls + self.store.data().direct_calls,
            peak_memory_bytes: self.store.data().limiter.peak_memory_bytes,
            wall_time_us: u64::try_from(call.started.elapsed().as_micros()).unwrap_or(u64::MAX),
        }
    }

    /// Ends the running call with `error`: attaches the metrics, drops the suspended guest
    /// and poisons the instance.
    fn end(&mut self, error: Error) -> Error {
        let metrics = self.metrics();
        self.record_call(error.code().as_str(), &metrics, None);
        self.close_host_span(Vec::new(), Some((error.code().as_str(), error.message())));
        self.end_trace(
            &metrics,
            Some((error.code().as_str(), error.message())),
            None,
        );
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
        self.clear_wasi_suspension();
        self.store.data_mut().data.release();
        self.poisoned = Some((error.code(), error.message().to_owned()));
        error.with(|d| d.metrics = Some(metrics))
    }

    /// Appends the `call` entry of the running call.
    fn record_call(&self, outcome: &str, metrics: &Metrics, results: Option<&str>) {
        let Some(call) = self.call.as_ref() else {
            return;
        };
        let mut record = Record::new(AuditEvent::Call)
            .module(self.module.digest())
            .export(call.export.clone())
            .fuel(metrics.fuel_consumed)
            .with("args", call.args_digest.to_sri())
            .with("hostCalls", metrics.host_calls.to_string());
        record.outcome = outcome.to_owned();
        if let Some(results) = results {
            record = record.with("results", results);
        }
        self.audit.record(record);
    }

    /// Closes the span of the host call being answered, if the call is traced.
    fn close_host_span(
        &mut self,
        attributes: Vec<(&'static str, AttrValue)>,
        error: Option<(&str, &str)>,
    ) {
        let Some(span) = self.call.as_mut().and_then(|c| c.host_span.take()) else {
            return;
        };
        if let Some(tracer) = self.store.data_mut().trace.as_mut() {
            tracer.close(Some(span), attributes, error);
        }
    }

    /// Ends the running call's trace, if it is traced: the root span gets the metrics and
    /// the outcome, and the trace waits for [`Instance::take_trace`].
    fn end_trace(
        &mut self,
        metrics: &Metrics,
        error: Option<(&str, &str)>,
        exit_code: Option<i32>,
    ) {
        let Some(mut tracer) = self.store.data_mut().trace.take() else {
            return;
        };
        tracer.close_pending(Vec::new());
        let mut attributes = vec![
            ("nestbox.fuel", AttrValue::from(metrics.fuel_consumed)),
            ("nestbox.slices", AttrValue::from(metrics.slices)),
            ("nestbox.host_calls", AttrValue::from(metrics.host_calls)),
            (
                "nestbox.peak_memory_bytes",
                AttrValue::from(metrics.peak_memory_bytes),
            ),
            (
                "nestbox.wall_time_us",
                AttrValue::from(metrics.wall_time_us),
            ),
        ];
        if let Some(status) = exit_code {
            attributes.push(("nestbox.exit_code", AttrValue::Int(i64::from(status))));
        }
        tracer.close(Some(0), attributes, error);
        self.last_trace = Some(tracer.finish());
    }

    fn internal(&self, what: &str) -> Error {
        Error::invalid_argument(format!("internal state error: {what}"))
    }

    fn clear_wasi_suspension(&mut self) {
        if let Some(wasi) = self.store.data_mut().wasi.as_mut() {
            wasi.suspended = None;
        }
    }

    /// The time left before the running call's deadline (zero when no call is running).
    pub fn time_left(&self) -> core::time::Duration {
        let Some(call) = self.call.as_ref() else {
            return core::time::Duration::ZERO;
        };
        core::time::Duration::from_millis(call.timeout_ms).saturating_sub(call.started.elapsed())
    }

    /// A sleep no longer than the time left before the deadline (plus the 1 ms the deadline
    /// check needs to see it passed).
    fn clip_to_deadline(&self, duration_ns: u64) -> u64 {
        let Some(call) = self.call.as_ref() else {
            return duration_ns;
        };
        let limit_ns = u128::from(call.timeout_ms.saturating_add(1)) * 1_000_000;
        let left = limit_ns.saturating_sub(call.started.elapsed().as_nanos());
        duration_ns.min(u64::try_from(left).unwrap_or(u64::MAX))
    }

    /// The guest exited (WASI `proc_exit`): a result, not an error.
    fn exited(&mut self, status: i32) -> Step {
        let metrics = self.metrics();
        self.record_call("ok", &metrics, Some(&format!("exit:{status}")));
        self.end_trace(&metrics, None, Some(status));
        let output = self.take_data_output();
        self.call = None;
        self.clear_wasi_suspension();
        Step::Finished(Outcome {
            results: Vec::new(),
            exit_code: Some(status),
            metrics,
            output,
            go_result: None,
        })
    }

    /// A data call's output (its blocks released), `None` for a numeric call.
    fn take_data_output(&mut self) -> Option<Vec<u8>> {
        if !self.call.as_ref().is_some_and(|c| c.data) {
            return None;
        }
        let data = &mut self.store.data_mut().data;
        let (output, _) = data.take();
        data.release();
        Some(output)
    }

    /// Ends a data call that returned: its status and error decide between its output and
    /// `GUEST_ERROR`. Either way the guest returned normally, so the instance stays usable.
    fn finish_data(&mut self, results: &[Value], metrics: Metrics) -> Result<Step, Error> {
        let status = match results.first() {
            Some(Value::I32(rc)) => *rc,
            _ => 0,
        };
        let data = &mut self.store.data_mut().data;
        let (output, error) = data.take();
        data.release();
        if status != 0 || error.is_some() {
            let message = error.unwrap_or_else(|| format!("the guest returned status {status}"));
            self.record_call(ErrorCode::GuestError.as_str(), &metrics, None);
            self.end_trace(
                &metrics,
                Some((ErrorCode::GuestError.as_str(), &message)),
                None,
            );
            let export = self.module_export_hint();
            self.call = None;
            return Err(Error::new(
                ErrorCode::GuestError,
                format!("{export}failed with status {status}: {message}"),
            )
            .with(|d| {
                d.cause = Some(message);
                d.metrics = Some(metrics);
            }));
        }
        let digest = Digest::of(&output).to_sri();
        self.record_call("ok", &metrics, Some(&digest));
        self.end_trace(&metrics, None, None);
        self.call = None;
        Ok(Step::Finished(Outcome {
            results: results.to_vec(),
            exit_code: None,
            metrics,
            output: Some(output),
            go_result: None,
        }))
    }

    fn module_export_hint(&self) -> String {
        self.call
            .as_ref()
            .map_or_else(String::new, |c| format!("{:?} ", c.export))
    }

    fn handle(&mut self, result: Result<ResumableCall, wasmi::Error>) -> Result<Step, Error> {
        match result {
            Ok(ResumableCall::Finished) if self.call.as_ref().is_some_and(|c| c.go.is_some()) => {
                self.go_after_entry()
            }
            Ok(ResumableCall::Finished) => {
                let metrics = self.metrics();
                self.clear_wasi_suspension();
                let results: Vec<Value> = match self.call.as_ref() {
                    Some(call) => call
                        .outputs
                        .iter()
                        .zip(&call.result_types)
                        .map(|(v, t)| Value::from_wasmi(v).unwrap_or(Value::zero(*t)))
                        .collect(),
                    None => return Err(self.internal("finished without a call")),
                };
                if self.call.as_ref().is_some_and(|c| c.data) {
                    return self.finish_data(&results, metrics);
                }
                self.record_call("ok", &metrics, Some(&values_digest(&results).to_sri()));
                if self.store.data().trace.is_some() {
                    let summary = trace::summarise(&results);
                    if let Some(tracer) = self.store.data_mut().trace.as_mut() {
                        tracer.close(Some(0), vec![("nestbox.results", summary.into())], None);
                    }
                }
                self.end_trace(&metrics, None, None);
                self.call = None;
                // Blocks a numeric call allocated are not kept between calls either.
                self.store.data_mut().data.release();
                Ok(Step::Finished(Outcome {
                    results,
                    exit_code: None,
                    metrics,
                    output: None,
                    go_result: None,
                }))
            }
            Ok(ResumableCall::OutOfFuel(handle)) => {
                let remaining = self.fuel_remaining();
                if remaining == 0 || handle.required_fuel() > remaining {
                    return Err(self.fuel_exhausted());
                }
                self.check_deadline()?;
                if let Some(call) = self.call.as_mut() {
                    call.pending = Some(Pending::Fuel(handle));
                }
                Ok(Step::Yield)
            }
            Ok(ResumableCall::HostTrap(handle)) => {
                if let Some(pending) = handle.host_error().downcast_ref::<HostCallPending>() {
                    let (link, args, direct) = (pending.link, pending.args.clone(), pending.direct);
                    let Some(l) = self.links.get(link) else {
                        return Err(self.internal("trampoline named an unknown link"));
                    };
                    let call = HostCall {
                        capability: l.capability,
                        import: l.import.clone(),
                        results: l.signature.results.clone(),
                        args,
                        http: None,
                        go: None,
                        direct,
                    };
                    let cost = self.limits.host_call_fuel;
                    if !direct {
                        // A direct call suspended by its host was counted and paid for already.
                        if let Some(active) = self.call.as_mut() {
                            active.host_calls += 1;
                        }
                        self.charge(cost)?;
                    }
                    self.check_deadline()?;
                    let span = self.store.data_mut().trace.as_mut().and_then(|tracer| {
                        tracer.open(
                            format!("capability {}", call.import),
                            None,
                            vec![
                                (
                                    "nestbox.capability",
                                    AttrValue::from(u64::from(call.capability.0)),
                                ),
                                ("nestbox.import", AttrValue::from(call.import.as_str())),
                                (
                                    "nestbox.args",
                                    AttrValue::from(trace::summarise(&call.args)),
                                ),
                                ("nestbox.fuel", AttrValue::from(cost)),
                            ],
                        )
                    });
                    if let Some(active) = self.call.as_mut() {
                        active.pending = Some(Pending::Host { handle, link });
                        active.host_span = span;
                    }
                    return Ok(Step::HostCall(call));
                }
                if handle
                    .host_error()
                    .downcast_ref::<DirectTimeout>()
                    .is_some()
                {
                    self.check_deadline()?;
                    return Err(
                        self.end(self.internal("a direct call timed out before its deadline"))
                    );
                }
                if let Some(exit) = handle.host_error().downcast_ref::<GoExit>().copied() {
                    return self.go_exited(exit.0);
                }
                if let Some(pending) = handle.host_error().downcast_ref::<GoPending>() {
                    let call = HostCall {
                        capability: crate::capability::CapabilityId(pending.capability),
                        import: format!("{}.{}", gojs::GO_MODULE, pending.name),
                        args: Vec::new(),
                        results: Vec::new(),
                        http: None,
                        go: Some(pending.args.clone()),
                        direct: false,
                    };
                    let (capability, result_at, ok_at) =
                        (pending.capability, pending.result_at, pending.ok_at);
                    if let Some(active) = self.call.as_mut() {
                        active.host_calls += 1;
                    }
                    let cost = self.limits.host_call_fuel;
                    self.charge(cost)?;
                    self.check_deadline()?;
                    if let Some(active) = self.call.as_mut() {
                        active.pending = Some(Pending::GoHost {
                            handle,
                            capability,
                            result_at,
                            ok_at,
                        });
                    }
                    return Ok(Step::HostCall(call));
                }
                if handle.host_error().downcast_ref::<HttpPending>().is_some() {
                    let data = &mut self.store.data_mut().data;
                    let (Some(request), Some(capability)) = (
                        data.take_pending_http(),
                        data.http_grant().map(|g| g.capability),
                    ) else {
                        return Err(self.end(self.internal("an http suspension without a request")));
                    };
                    if let Some(active) = self.call.as_mut() {
                        active.host_calls += 1;
                    }
                    self.check_deadline()?;
                    let host = data::url_host(&request.url).unwrap_or_default();
                    let span = self.store.data_mut().trace.as_mut().and_then(|tracer| {
                        tracer.open(
                            "http_request".to_owned(),
                            None,
                            vec![
                                (
                                    "nestbox.capability",
                                    AttrValue::from(u64::from(capability.0)),
                                ),
                                (
                                    "http.request.method",
                                    AttrValue::from(request.method.as_str()),
                                ),
                                ("server.address", AttrValue::from(host)),
                                (
                                    "http.request.body.size",
                                    AttrValue::from(request.body.len() as u64),
                                ),
                            ],
                        )
                    });
                    if let Some(active) = self.call.as_mut() {
                        active.pending = Some(Pending::Http { handle });
                        active.host_span = span;
                    }
                    return Ok(Step::HostCall(HostCall {
                        capability,
                        import: format!("{}.http_request", data::DATA_MODULE),
                        args: Vec::new(),
                        results: vec![ValueType::I64],
                        http: Some(request),
                        go: None,
                        direct: false,
                    }));
                }
                if let Some(suspend) = handle.host_error().downcast_ref::<WasiSuspend>().copied() {
                    self.check_deadline()?;
                    let wait = match suspend {
                        WasiSuspend::Sleep { duration_ns } => WasiWait::Sleep {
                            duration_ns: self.clip_to_deadline(duration_ns),
                        },
                        WasiSuspend::ReadStdin { max_bytes } => WasiWait::ReadStdin { max_bytes },
                    };
                    if let Some(active) = self.call.as_mut() {
                        active.pending = Some(Pending::Wasi { handle, wait });
                    }
                    return Ok(Step::Yield);
                }
                if let Some(status) = handle.host_error().i32_exit_status() {
                    // WASI proc_exit: a result, not an error. The suspended guest is dropped.
                    return Ok(self.exited(status));
                }
                let error = handle.into_host_error();
                if let Some(DirectStop(stop)) = error.downcast_ref::<DirectStop>() {
                    return Err(self.end(stop.clone()));
                }
                let classified = classify(error, &self.store.data().limiter, &self.links, "call");
                Err(self.end(classified))
            }
            Err(error) => {
                if let Some(DirectStop(stop)) = error.downcast_ref::<DirectStop>() {
                    return Err(self.end(stop.clone()));
                }
                if error.downcast_ref::<DirectTimeout>().is_some() {
                    self.check_deadline()?;
                }
                if let Some(exit) = error.downcast_ref::<GoExit>().copied() {
                    return self.go_exited(exit.0);
                }
                if let Some(status) = error.i32_exit_status() {
                    // proc_exit reached through a tail call is not resumable, but still an exit.
                    return Ok(self.exited(status));
                }
                let classified = classify(error, &self.store.data().limiter, &self.links, "call");
                Err(self.end(classified))
            }
        }
    }
}

/// The guest's arguments, typed by the link's signature.
fn args_of(params: &[wasmi::Val], types: &[ValueType]) -> Vec<Value> {
    params
        .iter()
        .zip(types)
        .map(|(v, t)| Value::from_wasmi(v).unwrap_or(Value::zero(*t)))
        .collect()
}

/// The exported memory named `memory`, or the only exported memory.
fn exported_memory(instance: &wasmi::Instance, store: &Store<StoreState>) -> Option<wasmi::Memory> {
    instance.get_memory(store, "memory").or_else(|| {
        let mut memories = instance.exports(store).filter_map(|e| e.into_memory());
        match (memories.next(), memories.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    })
}

/// Arguments and results of up to this many values stay on the stack in a direct call.
const INLINE_VALUES: usize = 8;

/// The host function of a direct grant: calls the instance's [`DirectHost`] from inside the
/// guest's call, or suspends as any grant when there is none (or the call is traced).
struct DirectTrampoline {
    link: usize,
    capability: CapabilityId,
    import: String,
    params: Vec<ValueType>,
    results: Vec<ValueType>,
    fuel: u64,
}

impl DirectTrampoline {
    fn suspend(&self, params: &[wasmi::Val], direct: bool) -> wasmi::Error {
        wasmi::Error::host(HostCallPending {
            link: self.link,
            args: args_of(params, &self.params),
            direct,
        })
    }

    fn call(
        &self,
        mut caller: wasmi::Caller<'_, StoreState>,
        params: &[wasmi::Val],
        outputs: &mut [wasmi::Val],
    ) -> Result<(), wasmi::Error> {
        {
            let state = caller.data();
            // A traced call records a span per host call: the step path does that.
            if state.direct.is_none() || state.trace.is_some() {
                return Err(self.suspend(params, false));
            }
        }
        // The fuel first: a budget that cannot pay ends the call as any host call's would
        // (the step path charges it and reports FUEL_EXHAUSTED).
        let in_store = caller.get_fuel()?;
        if self.fuel > 0 {
            let ledger = &mut caller.data_mut().fuel;
            if ledger.remaining(in_store) < self.fuel {
                return Err(self.suspend(params, false));
            }
            let left = ledger.charge(in_store, self.fuel);
            caller.set_fuel(left)?;
        }
        caller.data_mut().direct_calls += 1;

        let mut args_inline = [Value::I32(0); INLINE_VALUES];
        let mut args_heap = Vec::new();
        let args: &mut [Value] = if params.len() <= INLINE_VALUES {
            &mut args_inline[..params.len()]
        } else {
            args_heap.resize(params.len(), Value::I32(0));
            &mut args_heap
        };
        for ((slot, v), t) in args.iter_mut().zip(params).zip(&self.params) {
            *slot = Value::from_wasmi(v).unwrap_or(Value::zero(*t));
        }
        let mut results_inline = [Value::I32(0); INLINE_VALUES];
        let mut results_heap = Vec::new();
        let results: &mut [Value] = if self.results.len() <= INLINE_VALUES {
            &mut results_inline[..self.results.len()]
        } else {
            results_heap.resize(self.results.len(), Value::I32(0));
            &mut results_heap
        };
        for (slot, t) in results.iter_mut().zip(&self.results) {
            *slot = Value::zero(*t);
        }

        let memory = caller.data().memory;
        let (data, state): (&mut [u8], &mut StoreState) = match memory {
            Some(m) => m.data_and_store_mut(&mut caller),
            None => (&mut [], caller.data_mut()),
        };
        let Some(host) = state.direct.as_mut() else {
            return Err(self.suspend(params, false));
        };
        let answer = host.call(DirectCall {
            link: self.link,
            capability: self.capability,
            args,
            results,
            memory: data,
        });
        let deadline = state.deadline;
        match answer {
            DirectAnswer::Answered => {}
            DirectAnswer::Suspend => return Err(self.suspend(params, true)),
            DirectAnswer::Fail(error) => {
                let capability = self.capability.0;
                let error = if error.details().capability.is_none() {
                    error.with(|d| d.capability = Some(capability))
                } else {
                    error
                };
                return Err(wasmi::Error::host(DirectStop(error)));
            }
        }
        if let Some((i, (value, ty))) = results
            .iter()
            .zip(&self.results)
            .enumerate()
            .find(|(_, (v, t))| v.ty() != **t)
        {
            let capability = self.capability.0;
            return Err(wasmi::Error::host(DirectStop(
                Error::new(
                    ErrorCode::HostError,
                    format!(
                        "results of capability {} ({}): value {i} is {}, declared {ty}",
                        self.capability,
                        self.import,
                        value.ty()
                    ),
                )
                .with(|d| d.capability = Some(capability)),
            )));
        }
        // As after any host call: the deadline may have passed while the host worked.
        if let Some((started, timeout_ms)) = deadline {
            if started.elapsed().as_millis() > u128::from(timeout_ms) {
                return Err(wasmi::Error::host(DirectTimeout));
            }
        }
        for (out, value) in outputs.iter_mut().zip(results.iter()) {
            *out = value.to_wasmi();
        }
        Ok(())
    }
}

impl Instance {
    /// Zeroes every exported linear memory of the guest (what [`Drop`] does before the store
    /// releases them). Returns the number of bytes zeroed.
    fn zero_memories(&mut self) -> usize {
        let memories: Vec<wasmi::Memory> = self
            .instance
            .exports(&self.store)
            .filter_map(|e| e.into_memory())
            .collect();
        let mut zeroed = 0;
        for memory in memories {
            let data = memory.data_mut(&mut self.store);
            data.fill(0);
            zeroed += data.len();
        }
        zeroed
    }
}

impl Drop for Instance {
    /// Zeroes the guest's exported linear memory before the store releases it (defence in
    /// depth: freed host memory never carries guest data), and records the disposal.
    fn drop(&mut self) {
        self.zero_memories();
        self.audit
            .record(Record::new(AuditEvent::Dispose).module(self.module.digest()));
    }
}

/// A host call failed with `error` on capability `capability`: a refusal of the capability
/// layer (revoked, over quota) becomes a `deny` entry, and the error names the capability
/// unless it already does. Shared by both tiers.
pub(crate) fn host_denial(
    audit: &Recorder,
    module: &Module,
    capability: Option<u32>,
    error: Error,
) -> Error {
    if matches!(
        error.code(),
        ErrorCode::CapabilityRevoked | ErrorCode::CapabilityQuota
    ) {
        audit.record(
            Record::new(AuditEvent::Deny)
                .failed(error.code())
                .module(module.digest())
                .with(
                    "capability",
                    capability.map_or_else(String::new, |c| c.to_string()),
                )
                .with("reason", error.message()),
        );
    }
    if error.details().capability.is_none() {
        error.with(|d| d.capability = capability)
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use crate::{Digest, Grants, Limits, Sandbox, Value};

    #[test]
    fn disposal_zeroes_the_guest_memory() {
        let bytes = wat::parse_str(
            r#"(module (memory (export "memory") 2)
                (func (export "fill") (memory.fill (i32.const 0) (i32.const 0xAB) (i32.const 131072))))"#,
        )
        .expect("wat");
        let sandbox = Sandbox::new(Limits::default()).expect("sandbox");
        let module = sandbox.load(&bytes, &Digest::of(&bytes)).expect("load");
        let mut instance = sandbox
            .instantiate(&module, &Grants::new())
            .expect("instance");
        instance
            .call("fill", &[], |_, _| Ok(Vec::<Value>::new()))
            .expect("fills");
        let secret = instance
            .memory()
            .expect("memory")
            .read(0, 131_072)
            .expect("read")
            .to_vec();
        assert!(secret.iter().all(|b| *b == 0xAB));
        assert_eq!(instance.zero_memories(), 131_072);
        let after = instance
            .memory()
            .expect("memory")
            .read(0, 131_072)
            .expect("read")
            .to_vec();
        assert!(after.iter().all(|b| *b == 0), "every byte zeroed");
    }
}
