//! Limits: what one instance may consume, and what shape a module may have.
//!
//! Every limit has a bounded default (fail closed): a caller who sets nothing still gets a
//! sandbox that ends runaway guests. Names carry their units.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::Serialize;
use wasmi::ResourceLimiter;
use wasmi::errors::{MemoryError, TableError};
use wasmi_core::LimiterError;

use crate::error::{Error, ErrorCode};

/// Limits per instance, enforced by the core.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Fuel one call may consume (guest instructions plus host-call charges). Default 10^10
    /// (about 5 s natively, about a minute in a browser).
    pub fuel: u64,
    /// Fuel per slice: the call suspends after this much so the caller can yield, check its
    /// deadline and cancel. Default 10^6 (about 1 ms natively, 6 ms in a browser).
    pub fuel_per_slice: u64,
    /// Fuel charged for each host (capability) call, so a guest cannot run forever on free
    /// host calls. Default 1,000.
    pub host_call_fuel: u64,
    /// Wall-clock limit for one call, in milliseconds, checked between slices. Default 30,000.
    pub timeout_ms: u64,
    /// Largest linear memory, in bytes. Default 256 MiB.
    pub max_memory_bytes: u64,
    /// Largest table, in elements. Default 100,000.
    pub max_table_elements: u64,
    /// Live instances per sandbox. Default 16.
    pub max_instances: u32,
    /// Deepest guest call stack, in frames. Default 10,000.
    pub max_recursion_depth: u32,
    /// Largest module, in bytes, checked before hashing or parsing. Default 32 MiB.
    pub max_module_bytes: u64,
    /// Largest input of a data call ([`Instance::start_data`](crate::Instance::start_data)),
    /// in bytes; a larger one is refused with `INPUT_LIMIT` before the call runs. Default
    /// 16 MiB.
    pub max_input_bytes: u64,
    /// Largest output of a data call (`output_set`), and most bytes of log messages in one
    /// call, in bytes; past it the call ends with `OUTPUT_LIMIT`. Default 16 MiB.
    pub max_output_bytes: u64,
    /// When `memory.grow`/`table.grow` passes a limit: `false` (default, as the spec allows)
    /// returns -1 to the guest; `true` ends the call with `MEMORY_LIMIT`/`TABLE_LIMIT`.
    pub trap_on_grow_failure: bool,
    /// Module-shape limits, checked before the module is validated.
    pub module: ModuleLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 10_000_000_000,
            fuel_per_slice: 1_000_000,
            host_call_fuel: 1_000,
            timeout_ms: 30_000,
            max_memory_bytes: 256 << 20,
            max_table_elements: 100_000,
            max_instances: 16,
            max_recursion_depth: 10_000,
            max_module_bytes: 32 << 20,
            max_input_bytes: 16 << 20,
            max_output_bytes: 16 << 20,
            trap_on_grow_failure: false,
            module: ModuleLimits::default(),
        }
    }
}

impl Limits {
    /// Rejects limits that cannot work (a zero slice, a zero budget, …).
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` naming the bad field.
    pub fn validate(&self) -> Result<(), Error> {
        let positive = [
            ("fuel", self.fuel),
            ("fuelPerSlice", self.fuel_per_slice),
            ("timeoutMs", self.timeout_ms),
            ("maxModuleBytes", self.max_module_bytes),
            ("maxInstances", u64::from(self.max_instances)),
            ("maxRecursionDepth", u64::from(self.max_recursion_depth)),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(Error::invalid_argument(format!("limit {name} must be > 0")));
            }
        }
        // wasmi keeps guest memory in one host Vec, and a wasm32 host has 4 GiB in all (in
        // practice it cannot grow one Vec much past 1 GiB), so a larger limit could not hold.
        if self.max_memory_bytes > 4 << 30 {
            return Err(Error::invalid_argument(
                "limit maxMemoryBytes must be <= 4 GiB (32-bit linear memory)",
            ));
        }
        if self.max_recursion_depth > 1_000_000 {
            return Err(Error::invalid_argument(
                "limit maxRecursionDepth must be <= 1000000",
            ));
        }
        Ok(())
    }
}

/// Module-shape limits, checked by a pre-scan before wasmi validates or compiles anything.
/// Validation is not fuel-metered, so the shape bounds its cost.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleLimits {
    /// Functions defined plus imported. Default 100,000.
    pub max_functions: u32,
    /// Imports. Default 1,000.
    pub max_imports: u32,
    /// Exports. Default 10,000.
    pub max_exports: u32,
    /// Globals. Default 10,000.
    pub max_globals: u32,
    /// Data segments. Default 100,000.
    pub max_data_segments: u32,
    /// Element segments. Default 10,000.
    pub max_element_segments: u32,
    /// Tables. Default 16.
    pub max_tables: u32,
    /// Memories (multi-memory is off, so at most 1 either way). Default 1.
    pub max_memories: u32,
    /// Locals of one function, parameters included. wasmi zero-fills locals on every call for
    /// a flat fuel cost (wasmi #2038), so this bounds unmetered work. Default 10,000.
    pub max_locals_per_function: u32,
    /// Bytes of one function body. Default 2 MiB.
    pub max_function_body_bytes: u32,
}

impl Default for ModuleLimits {
    fn default() -> Self {
        Self {
            max_functions: 100_000,
            max_imports: 1_000,
            max_exports: 10_000,
            max_globals: 10_000,
            max_data_segments: 100_000,
            max_element_segments: 10_000,
            max_tables: 16,
            max_memories: 1,
            max_locals_per_function: 10_000,
            max_function_body_bytes: 2 << 20,
        }
    }
}

/// Which resource a growth or allocation was refused for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Denied {
    Memory { limit_bytes: u64 },
    Table { limit_elements: u64 },
}

/// wasmi's resource limiter for one store: enforces the memory and table limits, records the
/// peak memory size for the metrics and remembers the last refusal so that a trap can be
/// classified as `MEMORY_LIMIT` or `TABLE_LIMIT`.
#[derive(Debug)]
pub(crate) struct Limiter {
    /// The sandbox's memory limit.
    max_memory_bytes: u64,
    /// The limit in force: the sandbox's, or a call's tighter one ([`Limiter::set_call_memory_limit`]).
    memory_limit_bytes: u64,
    max_table_elements: u64,
    max_tables: usize,
    max_memories: usize,
    trap_on_grow_failure: bool,
    pub(crate) current_memory_bytes: u64,
    pub(crate) peak_memory_bytes: u64,
    pub(crate) last_denied: Option<Denied>,
}

impl Limiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            max_memory_bytes: limits.max_memory_bytes,
            memory_limit_bytes: limits.max_memory_bytes,
            max_table_elements: limits.max_table_elements,
            max_tables: limits.module.max_tables as usize,
            max_memories: limits.module.max_memories as usize,
            trap_on_grow_failure: limits.trap_on_grow_failure,
            current_memory_bytes: 0,
            peak_memory_bytes: 0,
            last_denied: None,
        }
    }

    /// Sets the memory limit of the next call: the sandbox's, or `cap` when tighter. Returns
    /// the limit now in force.
    pub(crate) fn set_call_memory_limit(&mut self, cap: Option<u64>) -> u64 {
        self.memory_limit_bytes =
            cap.map_or(self.max_memory_bytes, |c| c.min(self.max_memory_bytes));
        self.memory_limit_bytes
    }

    fn refuse(&mut self, denied: Denied) -> Result<bool, LimiterError> {
        self.last_denied = Some(denied);
        if self.trap_on_grow_failure {
            Err(LimiterError::ResourceLimiterDeniedAllocation)
        } else {
            Ok(false)
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        let desired64 = u64::try_from(desired).unwrap_or(u64::MAX);
        if desired64 > self.memory_limit_bytes {
            return self.refuse(Denied::Memory {
                limit_bytes: self.memory_limit_bytes,
            });
        }
        if maximum.is_some_and(|max| desired > max) {
            // The module's own maximum: not our limit, the spec's -1.
            return Ok(false);
        }
        self.current_memory_bytes = desired64;
        self.peak_memory_bytes = self.peak_memory_bytes.max(desired64);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: &MemoryError) -> Result<(), LimiterError> {
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        let desired64 = u64::try_from(desired).unwrap_or(u64::MAX);
        if desired64 > self.max_table_elements {
            return self.refuse(Denied::Table {
                limit_elements: self.max_table_elements,
            });
        }
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        Ok(true)
    }

    fn table_grow_failed(&mut self, _error: &TableError) -> Result<(), LimiterError> {
        Ok(())
    }

    fn instances(&self) -> usize {
        // One guest instance per store: nothing is shared between instances.
        1
    }

    fn tables(&self) -> usize {
        self.max_tables
    }

    fn memories(&self) -> usize {
        self.max_memories
    }
}

impl Denied {
    pub(crate) fn to_error(self, context: &str) -> Error {
        match self {
            Denied::Memory { limit_bytes } => Error::new(
                ErrorCode::MemoryLimit,
                format!("{context}: linear memory over the limit of {limit_bytes} bytes"),
            )
            .with(|d| d.limit = Some(limit_bytes)),
            Denied::Table { limit_elements } => Error::new(
                ErrorCode::TableLimit,
                format!("{context}: table over the limit of {limit_elements} elements"),
            )
            .with(|d| d.limit = Some(limit_elements)),
        }
    }
}

/// One counted place among a sandbox's live instances; released on drop.
#[derive(Debug)]
pub(crate) struct InstanceSlot(Arc<AtomicU32>);

impl InstanceSlot {
    pub(crate) fn acquire(counter: &Arc<AtomicU32>, max: u32) -> Result<Self, Error> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|n| {
                Error::new(
                    ErrorCode::InstanceLimit,
                    format!("{n} live instances, limit {max}: dispose one first"),
                )
                .with(|d| d.limit = Some(u64::from(max)))
            })?;
        Ok(Self(Arc::clone(counter)))
    }
}

impl Drop for InstanceSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
