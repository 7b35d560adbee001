//! The sandbox: one wasmi engine configured from [`Limits`], which loads modules and creates
//! instances. Compiled code may be shared between instances of one sandbox; nothing else is:
//! every instance has its own `Store`, memory, tables, globals and fuel.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use wasmi::{CompilationMode, Config, CustomFuelCosts, Engine};

use crate::capability::Grants;
use crate::error::{Error, ErrorCode};
use crate::instance::Instance;
use crate::integrity::Digest;
use crate::limits::Limits;
use crate::module::Module;
use crate::wasi::{WasiConfig, WasiCtx};

/// Loads, verifies and instantiates guest modules under one set of [`Limits`].
pub struct Sandbox {
    engine: Engine,
    limits: Limits,
    live_instances: Arc<AtomicU32>,
}

impl core::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sandbox")
            .field("limits", &self.limits)
            .field("live_instances", &self.live_instances())
            .finish()
    }
}

impl Sandbox {
    /// A sandbox enforcing `limits`.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` if the limits cannot work (see [`Limits::validate`]).
    pub fn new(limits: Limits) -> Result<Self, Error> {
        limits.validate()?;
        let mut config = Config::default();
        config
            // Fuel is always on: it is how calls are sliced, bounded and measured.
            .consume_fuel(true)
            .compilation_mode(CompilationMode::LazyTranslation)
            // Translation and validation cost no fuel: running out of fuel while lazily
            // translating a callee is not resumable in wasmi 2.0 (PR #2032). Their cost is
            // bounded by the module-size and shape limits instead.
            .fuel_cost(CustomFuelCosts {
                bytes_copied_per_fuel: 64,
                fuel_per_bytes_translated: 0,
                fuel_per_bytes_validated: 0,
            })
            .set_max_recursion_depth(limits.max_recursion_depth as usize)
            // Proposals that widen the attack surface without a use here.
            .wasm_multi_memory(limits.module.max_memories > 1)
            .wasm_wide_arithmetic(false)
            .wasm_custom_page_sizes(false);
        Ok(Self {
            engine: Engine::new(&config),
            limits,
            live_instances: Arc::new(AtomicU32::new(0)),
        })
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
    /// unless their size and digest are right.
    ///
    /// # Errors
    ///
    /// `MODULE_TOO_LARGE`, `INTEGRITY_MISMATCH`, `INVALID_MODULE` (with the parser's message).
    pub fn load(&self, bytes: &[u8], expected: &Digest) -> Result<Module, Error> {
        Module::load(&self.engine, bytes, expected, &self.limits)
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
        if !Engine::same(module.wasmi().engine(), &self.engine) {
            return Err(Error::invalid_argument(
                "module was loaded by another sandbox",
            ));
        }
        let slot = InstanceSlot::acquire(&self.live_instances, self.limits.max_instances)?;
        Instance::new(&self.engine, module, grants, None, &self.limits, slot)
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
        if !Engine::same(module.wasmi().engine(), &self.engine) {
            return Err(Error::invalid_argument(
                "module was loaded by another sandbox",
            ));
        }
        let wasi = WasiCtx::new(config)?;
        let slot = InstanceSlot::acquire(&self.live_instances, self.limits.max_instances)?;
        Instance::new(
            &self.engine,
            module,
            &config.grants,
            Some(wasi),
            &self.limits,
            slot,
        )
    }
}

/// One counted place among a sandbox's live instances; released on drop.
#[derive(Debug)]
pub(crate) struct InstanceSlot(Arc<AtomicU32>);

impl InstanceSlot {
    fn acquire(counter: &Arc<AtomicU32>, max: u32) -> Result<Self, Error> {
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
