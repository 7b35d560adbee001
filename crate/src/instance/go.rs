//! The Go `js/wasm` call loop: a Go call is a series of guest entries (`run`, then `resume`
//! for every timer or event) in one budget, deadline and metrics.

use crate::error::{Error, ErrorCode};
use crate::gojs;
use crate::value::GoValue;

use super::{CallOptions, GoPhase, Instance, Outcome, Pending, Step};

impl Instance {
    /// Whether this instance is a Go `js/wasm` guest ([`Sandbox::instantiate_go`](crate::Sandbox::instantiate_go)).
    pub fn is_go(&self) -> bool {
        self.store.data().go.is_some()
    }

    /// The functions the Go guest registered on `js.Global()` (`js.FuncOf`), sorted.
    pub fn go_exports(&self) -> Vec<String> {
        self.store
            .data()
            .go
            .as_ref()
            .map(gojs::GoCtx::exports)
            .unwrap_or_default()
    }

    /// The status the Go program exited with, once it has.
    pub fn go_exit_code(&self) -> Option<i32> {
        self.store.data().go.as_ref().and_then(|g| g.exit)
    }

    fn go_ready(&self, main: bool) -> Result<(), Error> {
        let Some(go) = self.store.data().go.as_ref() else {
            return Err(Error::invalid_argument(
                "this instance is not a Go js/wasm guest (use instantiate_go)",
            ));
        };
        if let Some(code) = go.exit {
            return Err(Error::new(
                ErrorCode::Poisoned,
                format!(
                    "the Go program has exited with status {code}; instantiate the module again"
                ),
            ));
        }
        if main == go.main_started {
            return Err(Error::invalid_argument(if main {
                "the Go program's main already ran"
            } else {
                "the Go program's main has not run yet (start_go_main)"
            }));
        }
        if self.call.is_some() {
            return Err(Error::new(
                ErrorCode::Busy,
                "a call is already running on this instance",
            ));
        }
        self.check_not_poisoned()
    }

    /// Runs the Go program's `main` (the export `run` with its command line): the call
    /// ends when `main` exits (`exit_code`), or when the program is idle and has registered
    /// at least one function on `js.Global()` (or has no timer left to wait for). Timers it
    /// waits for meanwhile are sleeps ([`Instance::wasi_wait`]).
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` if this is no Go guest or `main` already ran; as
    /// [`Instance::start_with`]; `TRAP` (Go's message in `details.cause`) if it panics.
    pub fn start_go_main(&mut self, options: &CallOptions) -> Result<Step, Error> {
        self.go_ready(true)?;
        let memory = self
            .instance
            .get_memory(&self.store, "mem")
            .ok_or_else(|| Error::invalid_argument("the Go guest exports no memory \"mem\""))?;
        let (data, state) = memory.data_and_store_mut(&mut self.store);
        let Some(go) = state.go.as_mut() else {
            return Err(self.internal("go vanished"));
        };
        let (argc, argv) = gojs::write_args(data, go.config())?;
        go.main_started = true;
        self.start_full(
            "run",
            &[crate::Value::I32(argc), crate::Value::I32(argv)],
            options,
            None,
            Some(GoPhase::Main),
        )
    }

    /// Calls the Go function registered as `js.Global().<name>` with `args` (copied into
    /// the membrane); the outcome's `go_result` is its result, copied out. Go's scheduler runs
    /// meanwhile (goroutines, due timers).
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` for an unknown name, before `main` ran, or for arguments too deep;
    /// `POISONED` after the program exited; as [`Instance::start_with`]; `TRAP` if it panics.
    pub fn start_go_export(
        &mut self,
        name: &str,
        args: &[GoValue],
        options: &CallOptions,
    ) -> Result<Step, Error> {
        self.go_ready(false)?;
        let Some(go) = self.store.data_mut().go.as_mut() else {
            return Err(self.internal("go vanished"));
        };
        let event = go.start_export(name, args)?;
        let step = self.start_full("resume", &[], options, None, Some(GoPhase::Export(event)));
        if step.is_err() && self.call.is_none() {
            if let Some(go) = self.store.data_mut().go.as_mut() {
                go.clear_pending_event();
                let _ = go.finish_export(event);
            }
        }
        step
    }

    /// How long until the Go program's next timer fires (whole milliseconds, rounded up),
    /// `None` when it has none or has exited. The embedder calls
    /// [`Instance::start_go_timers`] then, so that goroutines waiting on timers (`time.Sleep`,
    /// tickers) run while the program is idle between calls, as under `wasm_exec.js`.
    pub fn go_next_timer_ms(&self) -> Option<u64> {
        let go = self.store.data().go.as_ref()?;
        if go.exit.is_some() || !go.main_started {
            return None;
        }
        let wait = go.next_timer()?;
        Some(u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX))
    }

    /// Runs the Go scheduler for the timers that are due now (none due: finishes at once
    /// without entering the guest), in one budget like any call; goroutines they wake may call
    /// capabilities. It does not wait for later timers: ask [`Instance::go_next_timer_ms`].
    ///
    /// # Errors
    ///
    /// As [`Instance::start_go_export`] (`INVALID_ARGUMENT` before `main` ran, `POISONED`
    /// after an exit or an interrupted call), and as the guest's code fails.
    pub fn start_go_timers(&mut self, options: &CallOptions) -> Result<Step, Error> {
        self.go_ready(false)?;
        let Some(go) = self.store.data_mut().go.as_mut() else {
            return Err(self.internal("go vanished"));
        };
        if !go.take_due_timer() {
            return Ok(Step::Finished(Outcome {
                results: Vec::new(),
                exit_code: None,
                metrics: crate::Metrics::default(),
                output: None,
                go_result: None,
            }));
        }
        go.clear_pending_event();
        self.start_full("resume", &[], options, None, Some(GoPhase::Timers))
    }

    /// Answers a [`Step::HostCall`] of a Go guest's capability ([`HostCall::go`](crate::HostCall::go))
    /// with its result, and continues the call.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` if the call is not waiting for one (state unchanged); `MEMORY_LIMIT`
    /// if the result does not fit the membrane (the call ends); `TIMEOUT`; or any error the
    /// next step ends in.
    pub fn resume_go(&mut self, result: &GoValue) -> Result<Step, Error> {
        let (handle, result_at, ok_at) = match self.take_pending(
            |p| matches!(p, Pending::GoHost { .. }),
            "a Go capability's answer",
        )? {
            Pending::GoHost {
                handle,
                result_at,
                ok_at,
                ..
            } => (handle, result_at, ok_at),
            _ => return Err(self.internal("pending kind changed")),
        };
        let Some(memory) = self.instance.get_memory(&self.store, "mem") else {
            return Err(self.end(self.internal("a Go guest without memory")));
        };
        let (data, state) = memory.data_and_store_mut(&mut self.store);
        let answered = match state.go.as_mut() {
            Some(go) => go.answer(data, result_at, ok_at, result),
            None => Err(self.internal("go vanished")),
        };
        if let Err(e) = answered {
            return Err(self.end(e));
        }
        self.check_deadline()?;
        let mut outputs = self.take_outputs();
        let result = handle.resume(&mut self.store, &[], &mut outputs);
        self.put_outputs(outputs);
        self.handle(result)
    }

    /// After an entry returned normally: deliver a due timer, wait for one, or finish.
    pub(super) fn go_after_entry(&mut self) -> Result<Step, Error> {
        let phase = self.call.as_ref().and_then(|c| c.go);
        let Some(go) = self.store.data_mut().go.as_mut() else {
            return Err(self.end(self.internal("a Go call without Go")));
        };
        if let Some(code) = go.exit {
            return self.go_exited(code);
        }
        match phase {
            Some(GoPhase::Export(event)) => {
                let result = go.finish_export(event);
                go.clear_pending_event();
                match result {
                    Ok(value) => self.go_finish(Some(value)),
                    Err(e) => Err(self.end(e)),
                }
            }
            Some(GoPhase::Timers) => {
                if go.take_due_timer() {
                    go.clear_pending_event();
                    return self.go_enter();
                }
                self.go_finish(None)
            }
            _ => {
                if go.take_due_timer() {
                    go.clear_pending_event();
                    return self.go_enter();
                }
                if !go.exports().is_empty() || !go.has_timers() {
                    return self.go_finish(None);
                }
                let wait = go.next_timer().unwrap_or_default();
                let duration_ns =
                    self.clip_to_deadline(u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX));
                self.check_deadline()?;
                if let Some(call) = self.call.as_mut() {
                    call.pending = Some(Pending::GoSleep { duration_ns });
                }
                Ok(Step::Yield)
            }
        }
    }

    /// Enters the guest again (`resume`) within the running call.
    fn go_enter(&mut self) -> Result<Step, Error> {
        self.check_deadline()?;
        let Some(func) = self.instance.get_func(&self.store, "resume") else {
            return Err(self.end(Error::invalid_argument("the Go guest exports no resume")));
        };
        let mut outputs = self.take_outputs();
        let result = func.call_resumable(&mut self.store, &[], &mut outputs);
        self.put_outputs(outputs);
        self.handle(result)
    }

    fn go_finish(&mut self, go_result: Option<GoValue>) -> Result<Step, Error> {
        let metrics = self.metrics();
        self.record_call("ok", &metrics, None);
        self.call = None;
        Ok(Step::Finished(Outcome {
            results: Vec::new(),
            exit_code: None,
            metrics,
            output: None,
            go_result,
        }))
    }

    /// `runtime.wasmExit`: a panic (Go's runtime printed one and exits non-zero) is `TRAP`
    /// with Go's message; any other exit is the call's `exit_code`.
    pub(super) fn go_exited(&mut self, code: i32) -> Result<Step, Error> {
        let runtime = match self.store.data_mut().go.as_mut() {
            Some(go) => {
                go.exit = Some(code);
                go.runtime_stderr()
            }
            None => String::new(),
        };
        let first = runtime
            .lines()
            .find(|l| l.starts_with("panic: ") || l.starts_with("fatal error: "));
        if let (true, Some(first)) = (code != 0, first) {
            let message = format!("Go {first}");
            return Err(self.end(
                Error::new(ErrorCode::Trap, message).with(|d| d.cause = Some(runtime.clone())),
            ));
        }
        Ok(self.exited(code))
    }
}
