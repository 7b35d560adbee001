//! The one place that maps a wasmi error to a nestbox [`Error`]: every trap, limit, host
//! stop and instantiation failure gets exactly one code here.

use crate::data::{DataStop, HttpPending};
use crate::error::{Error, ErrorCode, TrapCode};
use crate::gojs::{GoExit, GoPending, GoStop};
use crate::limits::Limiter;
use crate::wasi::{WasiStop, WasiSuspend};

use super::link::{HostCallPending, Link};

/// Maps a wasmi error to exactly one code. The limiter says which limit refused a growth.
pub(super) fn classify(
    error: wasmi::Error,
    limiter: &Limiter,
    links: &[Link],
    context: &str,
) -> Error {
    use wasmi::errors::{ErrorKind, InstantiationError};
    if let Some(stop) = error.downcast_ref::<WasiStop>() {
        // A WASI call ended the run with its own error (e.g. OUTPUT_LIMIT).
        return stop.0.clone();
    }
    if let Some(stop) = error.downcast_ref::<GoStop>() {
        // A gojs function ended the run (a forged reference, a bad pointer, a limit, …).
        return stop.0.clone();
    }
    if let Some(exit) = error.downcast_ref::<GoExit>() {
        return Error::new(
            ErrorCode::HostError,
            format!(
                "{context}: the Go program exited with status {} where it cannot",
                exit.0
            ),
        );
    }
    if let Some(pending) = error.downcast_ref::<GoPending>() {
        return Error::new(
            ErrorCode::HostError,
            format!(
                "{context}: {pending}, but the guest cannot be suspended here (inside a synchronous callback)"
            ),
        );
    }
    if let Some(stop) = error.downcast_ref::<DataStop>() {
        // A data-ABI function ended the run (bad handle, output over its cap, …).
        return stop.0.clone();
    }
    if error.downcast_ref::<HttpPending>().is_some() {
        // Only reachable where wasmi cannot resume (a start function, a tail call).
        return Error::new(
            ErrorCode::HostError,
            format!(
                "{context}: http_request waits for the host, but the guest cannot be suspended here (start function or tail call)"
            ),
        );
    }
    if let Some(suspend) = error.downcast_ref::<WasiSuspend>() {
        // Only reachable where wasmi cannot resume: a start function, or a WASI function
        // reached by a tail call that ends the call.
        return Error::new(
            ErrorCode::HostError,
            format!(
                "{context}: {suspend}, but the guest cannot be suspended here (start function or tail call)"
            ),
        );
    }
    if let Some(status) = error.i32_exit_status() {
        // Only reachable outside a call: a start function calling WASI `proc_exit` (a call
        // turns an exit into its result before classifying). Not a wasm trap: no trap code.
        return Error::new(
            ErrorCode::HostError,
            format!(
                "{context}: the start function exited with status {status}; a WASI command exits from _start, not while instantiating"
            ),
        );
    }
    if let Some(pending) = error.downcast_ref::<HostCallPending>() {
        // Only reachable outside a resumable call: a start function calling an import.
        let import = links
            .get(pending.link)
            .map_or_else(|| "?".to_owned(), |l| l.import.clone());
        return Error::new(
            ErrorCode::HostError,
            format!(
                "{context}: start function called {import}; capabilities cannot be called while instantiating"
            ),
        );
    }
    if let ErrorKind::Instantiation(e) = error.kind() {
        return match e {
            InstantiationError::TooManyInstances => Error::new(
                ErrorCode::InstanceLimit,
                format!("{context}: too many instances in one store"),
            ),
            InstantiationError::TooManyTables => Error::new(
                ErrorCode::TableLimit,
                format!("{context}: too many tables: {e}"),
            ),
            InstantiationError::TooManyMemories => Error::new(
                ErrorCode::MemoryLimit,
                format!("{context}: too many memories: {e}"),
            ),
            InstantiationError::FailedToInstantiateMemory(_) => match limiter.last_denied {
                Some(denied) => denied.to_error(context),
                None => Error::new(ErrorCode::MemoryLimit, format!("{context}: {e}")),
            },
            InstantiationError::FailedToInstantiateTable(_) => match limiter.last_denied {
                Some(denied) => denied.to_error(context),
                None => Error::new(ErrorCode::TableLimit, format!("{context}: {e}")),
            },
            InstantiationError::ElementSegmentDoesNotFit { .. } => {
                Error::trap(TrapCode::TableOutOfBounds, format!("{context}: {e}"))
            }
            _ => Error::new(ErrorCode::InvalidModule, format!("{context}: {e}")),
        };
    }
    if let ErrorKind::Linker(e) = error.kind() {
        return Error::new(ErrorCode::ImportNotGranted, format!("{context}: {e}"));
    }
    match error.as_trap_code() {
        Some(wasmi::TrapCode::StackOverflow) => Error::new(
            ErrorCode::StackOverflow,
            format!("{context}: call stack exhausted (recursion deeper than the limit)"),
        )
        .with(|d| d.trap_code = Some(TrapCode::StackOverflow)),
        Some(wasmi::TrapCode::OutOfFuel) => Error::new(
            ErrorCode::FuelExhausted,
            format!("{context}: fuel budget exhausted"),
        ),
        Some(
            code @ (wasmi::TrapCode::GrowthOperationLimited | wasmi::TrapCode::OutOfSystemMemory),
        ) => {
            let denied = limiter.last_denied.map(|d| d.to_error(context));
            denied
                .unwrap_or_else(|| {
                    Error::new(ErrorCode::MemoryLimit, format!("{context}: {error}"))
                })
                .with(|d| d.trap_code = Some(code.into()))
        }
        Some(code) => {
            let code = TrapCode::from(code);
            Error::trap(code, format!("{context}: wasm trap: {}", code.as_str()))
        }
        None => match limiter.last_denied {
            Some(denied) if matches!(error.kind(), ErrorKind::Memory(_) | ErrorKind::Table(_)) => {
                denied.to_error(context)
            }
            _ => Error::new(ErrorCode::Trap, format!("{context}: {error}")),
        },
    }
}
