//! The one error type of the core, with a stable string code per failure.
//!
//! Every failure the sandbox can report maps to exactly one [`ErrorCode`]. The code is the
//! contract: callers match on it, never on the message. Messages are lower-case fragments that
//! carry their values ("module hash mismatch: expected …, found …"). Errors cross to JavaScript
//! as plain `{code, message, details}` records, converted in `bindings/` only.

use core::fmt;

use serde::Serialize;

use crate::metrics::Metrics;

/// The stable code of an [`Error`]. Its string form (see [`ErrorCode::as_str`]) is the same in
/// Rust, in JavaScript and in the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// SHA-256 of the bytes differs from the expected digest.
    IntegrityMismatch,
    /// Signature missing or wrong under the trust policy.
    SignatureInvalid,
    /// The trust policy forbids this module or origin.
    PolicyDenied,
    /// Bytes over the size cap (checked before parsing).
    ModuleTooLarge,
    /// Not valid WebAssembly, or over the module-shape limits.
    InvalidModule,
    /// The guest imports something that was not granted.
    ImportNotGranted,
    /// A granted host function's type differs from the import.
    SignatureMismatch,
    /// The fuel budget ran out.
    FuelExhausted,
    /// The wall-clock limit passed.
    Timeout,
    /// The caller cancelled the call.
    Cancelled,
    /// A memory growth or instantiation over the limit.
    MemoryLimit,
    /// A table growth or instantiation over the limit.
    TableLimit,
    /// More live instances than allowed.
    InstanceLimit,
    /// Recursion deeper than the limit.
    StackOverflow,
    /// Any other wasm trap; `details.trap_code` says which.
    Trap,
    /// A host function failed; `details.cause` holds its message.
    HostError,
    /// A revoked capability was called.
    CapabilityRevoked,
    /// A capability's quota (calls, bytes) is exhausted.
    CapabilityQuota,
    /// stdout/stderr, or a data call's output or log messages, over its cap.
    OutputLimit,
    /// A data call's input over `max_input_bytes` (refused before the call runs).
    InputLimit,
    /// A data call's guest reported a failure: a non-zero status or an error message
    /// (`extism:host/env` `error_set`); `details.cause` holds its message. The guest returned
    /// normally, so the instance stays usable.
    GuestError,
    /// The worker died (browser side only).
    WorkerCrashed,
    /// Use after dispose.
    Disposed,
    /// A second call while one is running.
    Busy,
    /// The API was misused: unknown export, wrong argument count or type, malformed digest,
    /// a resume that does not match the pending step. JavaScript raises it as a `TypeError`.
    InvalidArgument,
    /// The instance's previous call was interrupted mid-flight (trap, limit, cancellation), so
    /// the guest's own state may be inconsistent; instantiate the module again.
    Poisoned,
}

impl ErrorCode {
    /// Every code, in the order of the README's table.
    pub const ALL: [ErrorCode; 26] = [
        Self::IntegrityMismatch,
        Self::SignatureInvalid,
        Self::PolicyDenied,
        Self::ModuleTooLarge,
        Self::InvalidModule,
        Self::ImportNotGranted,
        Self::SignatureMismatch,
        Self::FuelExhausted,
        Self::Timeout,
        Self::Cancelled,
        Self::MemoryLimit,
        Self::TableLimit,
        Self::InstanceLimit,
        Self::StackOverflow,
        Self::Trap,
        Self::HostError,
        Self::CapabilityRevoked,
        Self::CapabilityQuota,
        Self::OutputLimit,
        Self::WorkerCrashed,
        Self::Disposed,
        Self::Busy,
        Self::InvalidArgument,
        Self::Poisoned,
        Self::InputLimit,
        Self::GuestError,
    ];

    /// The codes a host function may end a guest call with ([`Instance::fail_host`]): its own
    /// failure, a denial by the capability table (revoked or forged id, quota), its deadline,
    /// or a trap (e.g. a guest pointer out of bounds).
    ///
    /// [`Instance::fail_host`]: crate::Instance::fail_host
    pub const HOST_FAILURES: [ErrorCode; 5] = [
        Self::HostError,
        Self::CapabilityRevoked,
        Self::CapabilityQuota,
        Self::Timeout,
        Self::Trap,
    ];

    /// The code whose [`as_str`](Self::as_str) is `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// Whether the code means a limit was hit (recorded as a `limit` event in the audit log
    /// too).
    pub const fn is_limit(self) -> bool {
        matches!(
            self,
            Self::FuelExhausted
                | Self::Timeout
                | Self::MemoryLimit
                | Self::TableLimit
                | Self::InstanceLimit
                | Self::StackOverflow
                | Self::OutputLimit
                | Self::InputLimit
                | Self::CapabilityQuota
        )
    }

    /// The stable string form, e.g. `"INTEGRITY_MISMATCH"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::IntegrityMismatch => "INTEGRITY_MISMATCH",
            Self::SignatureInvalid => "SIGNATURE_INVALID",
            Self::PolicyDenied => "POLICY_DENIED",
            Self::ModuleTooLarge => "MODULE_TOO_LARGE",
            Self::InvalidModule => "INVALID_MODULE",
            Self::ImportNotGranted => "IMPORT_NOT_GRANTED",
            Self::SignatureMismatch => "SIGNATURE_MISMATCH",
            Self::FuelExhausted => "FUEL_EXHAUSTED",
            Self::Timeout => "TIMEOUT",
            Self::Cancelled => "CANCELLED",
            Self::MemoryLimit => "MEMORY_LIMIT",
            Self::TableLimit => "TABLE_LIMIT",
            Self::InstanceLimit => "INSTANCE_LIMIT",
            Self::StackOverflow => "STACK_OVERFLOW",
            Self::Trap => "TRAP",
            Self::HostError => "HOST_ERROR",
            Self::CapabilityRevoked => "CAPABILITY_REVOKED",
            Self::CapabilityQuota => "CAPABILITY_QUOTA",
            Self::OutputLimit => "OUTPUT_LIMIT",
            Self::InputLimit => "INPUT_LIMIT",
            Self::GuestError => "GUEST_ERROR",
            Self::WorkerCrashed => "WORKER_CRASHED",
            Self::Disposed => "DISPOSED",
            Self::Busy => "BUSY",
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::Poisoned => "POISONED",
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which WebAssembly trap ended a call with [`ErrorCode::Trap`] (or a more specific code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TrapCode {
    /// `unreachable` was executed.
    Unreachable,
    /// A load, store or bulk-memory operation left linear memory, or a host function was
    /// handed a (pointer, length) outside it.
    MemoryOutOfBounds,
    /// A table access out of bounds.
    TableOutOfBounds,
    /// `call_indirect` on a null entry.
    IndirectCallToNull,
    /// Integer division by zero.
    IntegerDivisionByZero,
    /// Integer overflow (e.g. `i32.div_s` of `INT_MIN / -1`).
    IntegerOverflow,
    /// Float to integer conversion out of range or NaN.
    BadConversionToInteger,
    /// Recursion or value stack exhausted.
    StackOverflow,
    /// `call_indirect` signature mismatch.
    BadSignature,
    /// Fuel ran out.
    OutOfFuel,
    /// A growth operation was refused by the limiter with trapping enabled.
    GrowthOperationLimited,
    /// The host could not allocate memory for the guest.
    OutOfSystemMemory,
}

impl TrapCode {
    /// Every trap code.
    pub const ALL: [TrapCode; 12] = [
        Self::Unreachable,
        Self::MemoryOutOfBounds,
        Self::TableOutOfBounds,
        Self::IndirectCallToNull,
        Self::IntegerDivisionByZero,
        Self::IntegerOverflow,
        Self::BadConversionToInteger,
        Self::StackOverflow,
        Self::BadSignature,
        Self::OutOfFuel,
        Self::GrowthOperationLimited,
        Self::OutOfSystemMemory,
    ];

    /// The stable string form, e.g. `"memory_out_of_bounds"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::MemoryOutOfBounds => "memory_out_of_bounds",
            Self::TableOutOfBounds => "table_out_of_bounds",
            Self::IndirectCallToNull => "indirect_call_to_null",
            Self::IntegerDivisionByZero => "integer_division_by_zero",
            Self::IntegerOverflow => "integer_overflow",
            Self::BadConversionToInteger => "bad_conversion_to_integer",
            Self::StackOverflow => "stack_overflow",
            Self::BadSignature => "bad_signature",
            Self::OutOfFuel => "out_of_fuel",
            Self::GrowthOperationLimited => "growth_operation_limited",
            Self::OutOfSystemMemory => "out_of_system_memory",
        }
    }
}

impl Serialize for TrapCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl From<wasmi::TrapCode> for TrapCode {
    fn from(code: wasmi::TrapCode) -> Self {
        use wasmi::TrapCode as W;
        match code {
            W::UnreachableCodeReached => Self::Unreachable,
            W::MemoryOutOfBounds => Self::MemoryOutOfBounds,
            W::TableOutOfBounds => Self::TableOutOfBounds,
            W::IndirectCallToNull => Self::IndirectCallToNull,
            W::IntegerDivisionByZero => Self::IntegerDivisionByZero,
            W::IntegerOverflow => Self::IntegerOverflow,
            W::BadConversionToInteger => Self::BadConversionToInteger,
            W::StackOverflow => Self::StackOverflow,
            W::BadSignature => Self::BadSignature,
            W::OutOfFuel => Self::OutOfFuel,
            W::GrowthOperationLimited => Self::GrowthOperationLimited,
            W::OutOfSystemMemory => Self::OutOfSystemMemory,
        }
    }
}

/// Structured facts about an [`Error`]; which fields are set depends on the code.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Details {
    /// The trap behind `TRAP`, `STACK_OVERFLOW` and growth limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trap_code: Option<TrapCode>,
    /// `INTEGRITY_MISMATCH`: the digest the caller expected, as `sha256-<base64>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_digest: Option<String>,
    /// `INTEGRITY_MISMATCH`: the digest of the bytes received, as `sha256-<base64>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_digest: Option<String>,
    /// `IMPORT_NOT_GRANTED` / `SIGNATURE_MISMATCH`: every offending import, as `module.name`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<String>,
    /// `HOST_ERROR` and capability errors: the capability id involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capability: Option<u32>,
    /// `HOST_ERROR`: the host function's own error message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Limit errors: the limit that was hit, in its own unit (bytes, elements, fuel, ms, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Errors during a call: the metrics at the moment of failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
}

/// The core's error: a stable [`ErrorCode`], a human message and structured [`Details`].
///
/// Boxed so that `Result<T, Error>` stays one pointer wide on the hot path.
#[derive(Clone, PartialEq)]
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Clone, Debug, PartialEq)]
struct Inner {
    code: ErrorCode,
    message: String,
    details: Details,
}

impl Error {
    /// A new error with empty details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                code,
                message: message.into(),
                details: Details::default(),
            }),
        }
    }

    /// Shorthand for [`ErrorCode::InvalidArgument`].
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// Shorthand for [`ErrorCode::Trap`] with its trap code in the details.
    pub fn trap(trap_code: TrapCode, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Trap, message).with(|d| d.trap_code = Some(trap_code))
    }

    /// A host function's own failure: `HOST_ERROR` with `cause` in the details.
    pub fn host_failed(cause: impl Into<String>) -> Self {
        let cause = cause.into();
        Error::new(
            ErrorCode::HostError,
            format!("host function failed: {cause}"),
        )
        .with(|d| d.cause = Some(cause))
    }

    /// Edits the details in place and returns the error (builder style).
    pub fn with(mut self, edit: impl FnOnce(&mut Details)) -> Self {
        edit(&mut self.inner.details);
        self
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.inner.code
    }

    /// The human-readable message (lower case, carries its values).
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// Structured details.
    pub fn details(&self) -> &Details {
        &self.inner.details
    }

    /// The metrics at the moment of failure, when the error ended a call.
    pub fn metrics(&self) -> Option<&Metrics> {
        self.inner.details.metrics.as_ref()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("code", &self.inner.code)
            .field("message", &self.inner.message)
            .field("details", &self.inner.details)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.inner.code, self.inner.message)
    }
}

impl std::error::Error for Error {}

impl Serialize for Error {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Error", 3)?;
        st.serialize_field("code", &self.inner.code)?;
        st.serialize_field("message", &self.inner.message)?;
        st.serialize_field("details", &self.inner.details)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_one_pointer_wide() {
        assert_eq!(core::mem::size_of::<Error>(), core::mem::size_of::<usize>());
    }

    #[test]
    fn codes_are_unique_and_screaming_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
        }
    }

    #[test]
    fn display_leads_with_the_code() {
        let e = Error::new(ErrorCode::Timeout, "wall-clock limit of 5 ms passed");
        assert_eq!(e.to_string(), "TIMEOUT: wall-clock limit of 5 ms passed");
    }
}
