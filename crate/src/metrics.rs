//! Per-call measurements, returned with every result and every error.

use serde::Serialize;

/// What one call cost. Attached to every [`Outcome`](crate::Outcome) and to every error that
/// ended a call ([`Error::metrics`](crate::Error::metrics)).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Fuel consumed by guest instructions plus the fuel charged for host calls.
    pub fuel_consumed: u64,
    /// Fuel slices the call ran in; the caller could yield between any two.
    pub slices: u64,
    /// Host (capability) calls the guest made.
    pub host_calls: u64,
    /// The largest linear memory the instance had during the call, in bytes.
    pub peak_memory_bytes: u64,
    /// Wall-clock time from the start of the call to its end, in microseconds (including time
    /// spent in host functions and yielded to the caller).
    pub wall_time_us: u64,
}
