//! The one native driver: runs a call step by step to its end and asks its embedder, through
//! [`Hooks`], for what the steps need — host functions, sleeps, stdin, and where streamed
//! output goes. [`Instance::call`], [`run_wasi`](crate::run_wasi), the CLI and the tests all
//! drive calls through [`drive`]; the browser's driver is the JavaScript loop over the same
//! steps (it has to yield to its event loop between them).

use core::time::Duration;

use crate::capability::{HostCall, HttpRequest, HttpResponse};
use crate::error::Error;
use crate::memory::GuestMemory;
use crate::value::{GoValue, Value};
use crate::wasi::WasiWait;

use super::{CallOptions, Instance, Outcome, Step};

/// What [`drive`] asks its embedder between steps. Only [`Hooks::host_call`] is required.
pub trait Hooks {
    /// Runs the host function of a granted import the guest called, with a checked view of
    /// the guest's memory. An error ends the call with that error
    /// ([`Instance::fail_host`]).
    ///
    /// # Errors
    ///
    /// Whatever the host function fails with.
    fn host_call(
        &mut self,
        call: &HostCall,
        memory: &mut GuestMemory<'_>,
    ) -> Result<Vec<Value>, Error>;

    /// Answers a data guest's HTTP request to a host its HTTP capability allows
    /// ([`DataConfig::http`](crate::DataConfig::http)). The default refuses: a native
    /// embedder that grants HTTP brings its own client.
    ///
    /// # Errors
    ///
    /// The error to end the call with.
    fn http(&mut self, request: &HttpRequest) -> Result<HttpResponse, Error> {
        Err(Error::host_failed(format!(
            "no HTTP client answers {} {}",
            request.method, request.url
        )))
    }

    /// A Go guest's call of a capability token ([`HostCall::go`] holds its arguments):
    /// its result. By default, no capability answers.
    ///
    /// # Errors
    ///
    /// Ends the call with this error (`HOST_ERROR`, `CAPABILITY_REVOKED`, …).
    fn go_call(&mut self, call: &HostCall, _args: &[GoValue]) -> Result<GoValue, Error> {
        Err(Error::host_failed(format!(
            "no host function answers {} (capability {})",
            call.import, call.capability
        )))
    }

    /// Whether [`Hooks::output`] wants the output after every step. When `false` (the
    /// default) the output stays in the instance ([`Instance::take_output`]).
    fn streams_output(&self) -> bool {
        false
    }

    /// What a WASI guest wrote to stdout and stderr since the last step (at least one of
    /// them is non-empty), when [`Hooks::streams_output`].
    fn output(&mut self, _stdout: &[u8], _stderr: &[u8]) {}

    /// After a fuel slice, before the call resumes. An error ends the call with it (say,
    /// `CANCELLED` when the embedder was asked to stop).
    ///
    /// # Errors
    ///
    /// The error to end the call with.
    fn slice(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// A WASI guest sleeps (`poll_oneoff`) for `duration_ns`, already cut to the call's
    /// deadline. The default blocks the thread (natively; on wasm32 it returns at once, as a
    /// browser thread cannot block). Stdin may be fed meanwhile.
    ///
    /// # Errors
    ///
    /// The error to end the call with.
    fn sleep(&mut self, _stdin: &mut StdinFeed<'_>, duration_ns: u64) -> Result<(), Error> {
        #[cfg(not(target_arch = "wasm32"))]
        std::thread::sleep(Duration::from_nanos(duration_ns));
        #[cfg(target_arch = "wasm32")]
        let _ = duration_ns;
        Ok(())
    }

    /// A WASI guest reads its async stdin and it is empty: feed it (bytes, its end, or
    /// nothing yet — then the guest keeps waiting and this is asked again). The default ends
    /// stdin: a native caller without a source has nothing more to give.
    ///
    /// # Errors
    ///
    /// The error to end the call with.
    fn read_stdin(&mut self, stdin: &mut StdinFeed<'_>, _max_bytes: u32) -> Result<(), Error> {
        stdin.push(&[], true)
    }
}

/// Hooks that answer host calls with a closure and keep every default.
pub struct HostFn<F>(pub F);

impl<F> Hooks for HostFn<F>
where
    F: FnMut(&HostCall, &mut GuestMemory<'_>) -> Result<Vec<Value>, Error>,
{
    fn host_call(
        &mut self,
        call: &HostCall,
        memory: &mut GuestMemory<'_>,
    ) -> Result<Vec<Value>, Error> {
        (self.0)(call, memory)
    }
}

/// The suspended guest's async stdin, as the hooks may feed it.
pub struct StdinFeed<'a>(&'a mut Instance);

impl StdinFeed<'_> {
    /// Appends `bytes` to stdin and/or ends it ([`Instance::push_stdin`]).
    ///
    /// # Errors
    ///
    /// As [`Instance::push_stdin`].
    pub fn push(&mut self, bytes: &[u8], eof: bool) -> Result<(), Error> {
        self.0.push_stdin(bytes, eof)
    }

    /// The time left before the call's deadline.
    pub fn time_left(&self) -> Duration {
        self.0.time_left()
    }
}

/// Runs `export` with `args` under `options` to its end, answering every step through
/// `hooks`.
///
/// # Errors
///
/// As [`Instance::start_with`]; any error a step ends in; an error of a hook ends the call
/// with that error (the instance is then poisoned, as after any failed call).
pub fn drive<H: Hooks + ?Sized>(
    instance: &mut Instance,
    export: &str,
    args: &[Value],
    options: &CallOptions,
    hooks: &mut H,
) -> Result<Outcome, Error> {
    let step = instance.start_with(export, args, options);
    drive_from(instance, step, hooks)
}

/// Runs a data call of `export` with `input` ([`Instance::start_data`]) to its end, as
/// [`drive`]: the outcome's `output` holds the guest's output.
///
/// # Errors
///
/// As [`Instance::start_data`] and [`drive`].
pub fn drive_data<H: Hooks + ?Sized>(
    instance: &mut Instance,
    export: &str,
    input: &[u8],
    options: &CallOptions,
    hooks: &mut H,
) -> Result<Outcome, Error> {
    let step = instance.start_data(export, input, options);
    drive_from(instance, step, hooks)
}

/// Runs a Go guest's `main` ([`Instance::start_go_main`]) as [`drive`].
///
/// # Errors
///
/// As [`Instance::start_go_main`] and [`drive`].
pub fn drive_go_main<H: Hooks + ?Sized>(
    instance: &mut Instance,
    options: &CallOptions,
    hooks: &mut H,
) -> Result<Outcome, Error> {
    let step = instance.start_go_main(options);
    drive_from(instance, step, hooks)
}

/// Calls a Go guest's exported function ([`Instance::start_go_export`]) as [`drive`]; the
/// outcome's `go_result` is its result.
///
/// # Errors
///
/// As [`Instance::start_go_export`] and [`drive`].
pub fn drive_go_export<H: Hooks + ?Sized>(
    instance: &mut Instance,
    name: &str,
    args: &[GoValue],
    options: &CallOptions,
    hooks: &mut H,
) -> Result<Outcome, Error> {
    let step = instance.start_go_export(name, args, options);
    drive_from(instance, step, hooks)
}

/// Runs a Go guest's due timers ([`Instance::start_go_timers`]) as [`drive`]: call it when
/// [`Instance::go_next_timer_ms`] has passed, so goroutines waiting on timers run while the
/// program is idle between calls.
///
/// # Errors
///
/// As [`Instance::start_go_timers`] and [`drive`].
pub fn drive_go_timers<H: Hooks + ?Sized>(
    instance: &mut Instance,
    options: &CallOptions,
    hooks: &mut H,
) -> Result<Outcome, Error> {
    let step = instance.start_go_timers(options);
    drive_from(instance, step, hooks)
}

fn drive_from<H: Hooks + ?Sized>(
    instance: &mut Instance,
    mut step: Result<Step, Error>,
    hooks: &mut H,
) -> Result<Outcome, Error> {
    loop {
        if hooks.streams_output() {
            let (stdout, stderr) = instance.take_output();
            if !stdout.is_empty() || !stderr.is_empty() {
                hooks.output(&stdout, &stderr);
            }
        }
        step = match step? {
            Step::Finished(outcome) => return Ok(outcome),
            Step::Yield => {
                let waited = match instance.wasi_wait() {
                    Some(WasiWait::Sleep { duration_ns }) => {
                        hooks.sleep(&mut StdinFeed(instance), duration_ns)
                    }
                    Some(WasiWait::ReadStdin { max_bytes }) => {
                        hooks.read_stdin(&mut StdinFeed(instance), max_bytes)
                    }
                    None => hooks.slice(),
                };
                if let Err(error) = waited {
                    return Err(instance.abort(error));
                }
                instance.resume()
            }
            Step::HostCall(call) if call.go.is_some() => {
                match hooks.go_call(&call, call.go.as_deref().unwrap_or_default()) {
                    Ok(result) => instance.resume_go(&result),
                    Err(error) => return Err(instance.fail_host(error)),
                }
            }
            Step::HostCall(HostCall {
                http: Some(request),
                ..
            }) => match hooks.http(&request) {
                Ok(response) => instance.resume_http(response),
                Err(error) => return Err(instance.fail_host(error)),
            },
            Step::HostCall(call) => {
                let answer = match instance.memory() {
                    Some(mut memory) => hooks.host_call(&call, &mut memory),
                    None => hooks.host_call(&call, &mut GuestMemory::empty()),
                };
                match answer {
                    Ok(results) => instance.resume_host(&results),
                    Err(error) => return Err(instance.fail_host(error)),
                }
            }
        };
    }
}

impl Instance {
    /// Runs `export` to completion, answering host calls with `host` — [`drive`] with
    /// [`HostFn`] hooks: WASI sleeps block the thread (on wasm32 they end at once); a read of
    /// an async stdin finds end of file.
    ///
    /// # Errors
    ///
    /// As [`Instance::start`]; an error returned by `host` ends the call with that error.
    pub fn call<H>(&mut self, export: &str, args: &[Value], host: H) -> Result<Outcome, Error>
    where
        H: FnMut(&HostCall, &mut GuestMemory<'_>) -> Result<Vec<Value>, Error>,
    {
        drive(
            self,
            export,
            args,
            &CallOptions::default(),
            &mut HostFn(host),
        )
    }

    /// A data call of `export` with `input` to completion ([`drive_data`] with [`HostFn`]
    /// hooks); the outcome's `output` holds the guest's output.
    ///
    /// # Errors
    ///
    /// As [`Instance::start_data`]; an error returned by `host` ends the call with that error.
    pub fn call_data<H>(&mut self, export: &str, input: &[u8], host: H) -> Result<Outcome, Error>
    where
        H: FnMut(&HostCall, &mut GuestMemory<'_>) -> Result<Vec<Value>, Error>,
    {
        drive_data(
            self,
            export,
            input,
            &CallOptions::default(),
            &mut HostFn(host),
        )
    }

    /// [`Instance::call`] with per-call options.
    ///
    /// # Errors
    ///
    /// As [`Instance::call`].
    pub fn call_with<H>(
        &mut self,
        export: &str,
        args: &[Value],
        options: &CallOptions,
        host: H,
    ) -> Result<Outcome, Error>
    where
        H: FnMut(&HostCall, &mut GuestMemory<'_>) -> Result<Vec<Value>, Error>,
    {
        drive(self, export, args, options, &mut HostFn(host))
    }
}
