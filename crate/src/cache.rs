//! Compiled guest modules shared between sandboxes: one wasmi `Engine` per engine
//! configuration, and the modules verified under it, by digest.
//!
//! Validating and compiling a guest is most of a load's cost. A [`ModuleCache`] given to
//! several sandboxes ([`Sandbox::with_cache`](crate::Sandbox::with_cache)) compiles a module
//! once per engine configuration and hands the same compiled code to every later load of the
//! same bytes. What is shared and what is not:
//!
//! - **Shared:** the `Engine` (compiled code, function types) and the `Module` (the
//!   validated module, its imports and exports). Both are immutable once built, apart from
//!   wasmi translating a function lazily at its first call — the same translation whichever
//!   store calls it first.
//! - **Never shared:** every instance still gets its own `Store` — linear memory, tables,
//!   globals, fuel, limiter, WASI and data state — exactly as without a cache.
//! - **Never skipped:** a load still checks the size cap, the SHA-256 of the caller's bytes,
//!   the sandbox's deny list and trust policy, and the module shape under the sandbox's own
//!   limits, in that order, before it looks here. The cache is keyed by that verified digest
//!   and the engine configuration ([`EngineKey`]), so a hit is only ever the code of bytes
//!   that hashed to the same SHA-256, compiled under the same configuration.
//!
//! It is bounded: at most [`CacheLimits::max_entries`] modules and
//! [`CacheLimits::max_bytes`] bytes of their wasm, the least recently used evicted first.
//! wasmi never frees code from an engine while the engine lives, so an engine that has
//! compiled [`CacheLimits::max_engine_bytes`] bytes of wasm is retired: its cached modules
//! are dropped and later compilations go to a fresh engine; the old one is freed once the
//! last module and instance using it are gone. Compilation failures are not cached.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use wasmi::{CompilationMode, Config, CustomFuelCosts, Engine};

use crate::error::Error;
use crate::integrity::Digest;
use crate::limits::Limits;
use crate::module::Compiled;

/// The part of [`Limits`] that configures a wasmi engine: two sandboxes whose keys are equal
/// compile a module to the same code, so they may share it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EngineKey {
    /// [`Limits::max_recursion_depth`].
    pub max_recursion_depth: u32,
    /// Whether more than one memory is allowed ([`ModuleLimits::max_memories`](crate::ModuleLimits)).
    pub multi_memory: bool,
}

impl EngineKey {
    /// The engine configuration `limits` need.
    pub fn of(limits: &Limits) -> Self {
        Self {
            max_recursion_depth: limits.max_recursion_depth,
            multi_memory: limits.module.max_memories > 1,
        }
    }

    /// A new engine with this configuration.
    pub(crate) fn engine(self) -> Engine {
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
            .set_max_recursion_depth(self.max_recursion_depth as usize)
            // Proposals that widen the attack surface without a use here.
            .wasm_multi_memory(self.multi_memory)
            .wasm_wide_arithmetic(false)
            .wasm_custom_page_sizes(false);
        Engine::new(&config)
    }
}

/// How much a [`ModuleCache`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    /// Modules kept at most (0: nothing is kept, every load compiles).
    pub max_entries: usize,
    /// Bytes of the kept modules' wasm at most; a module larger than this is never kept.
    pub max_bytes: u64,
    /// Bytes of wasm one engine may compile before it is retired for a fresh one (wasmi
    /// frees an engine's code only with the engine).
    pub max_engine_bytes: u64,
}

impl Default for CacheLimits {
    /// 32 modules, 32 MiB of wasm, engines retired after 128 MiB of wasm compiled.
    fn default() -> Self {
        Self {
            max_entries: 32,
            max_bytes: 32 << 20,
            max_engine_bytes: 128 << 20,
        }
    }
}

/// What a [`ModuleCache`] did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Loads that reused compiled code.
    pub hits: u64,
    /// Loads that compiled (including those that failed to).
    pub misses: u64,
    /// Modules dropped to stay within the limits (not counting retired engines').
    pub evictions: u64,
    /// Engines retired after compiling `max_engine_bytes`.
    pub engines_retired: u64,
    /// Modules kept now.
    pub entries: usize,
    /// Bytes of wasm of the modules kept now.
    pub bytes: u64,
}

/// Compiled modules and their engines, shared by the sandboxes given it (cheap to clone:
/// clones share one cache). See the [module docs](self).
#[derive(Clone, Default)]
pub struct ModuleCache {
    inner: Arc<Mutex<Inner>>,
}

impl core::fmt::Debug for ModuleCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let inner = self.lock();
        f.debug_struct("ModuleCache")
            .field("limits", &inner.limits)
            .field("stats", &inner.stats())
            .finish()
    }
}

#[derive(Default)]
struct Inner {
    limits: CacheLimits,
    engines: BTreeMap<EngineKey, EngineSlot>,
    entries: BTreeMap<(EngineKey, [u8; 32]), Entry>,
    /// Incremented at every use: an entry's `used` orders them for eviction.
    clock: u64,
    hits: u64,
    misses: u64,
    evictions: u64,
    engines_retired: u64,
}

struct EngineSlot {
    engine: Engine,
    /// Bytes of wasm compiled in it so far.
    compiled_bytes: u64,
}

struct Entry {
    compiled: Arc<Compiled>,
    used: u64,
}

impl Inner {
    fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits,
            misses: self.misses,
            evictions: self.evictions,
            engines_retired: self.engines_retired,
            entries: self.entries.len(),
            bytes: self.bytes(),
        }
    }

    fn bytes(&self) -> u64 {
        self.entries.values().map(|e| e.compiled.size_bytes()).sum()
    }

    /// The engine to compile `size` more bytes in for `key`, retiring a full one first.
    fn engine_for(&mut self, key: EngineKey, size: u64) -> Engine {
        let max = self.limits.max_engine_bytes;
        let full = self
            .engines
            .get(&key)
            .is_some_and(|slot| slot.compiled_bytes > 0 && slot.compiled_bytes + size > max);
        if full {
            self.engines.remove(&key);
            self.entries.retain(|(k, _), _| *k != key);
            self.engines_retired += 1;
        }
        let slot = self.engines.entry(key).or_insert_with(|| EngineSlot {
            engine: key.engine(),
            compiled_bytes: 0,
        });
        slot.compiled_bytes = slot.compiled_bytes.saturating_add(size);
        slot.engine.clone()
    }

    /// Keeps `compiled` (if its engine is still the current one for `key`), then evicts the
    /// least recently used entries until the limits hold.
    fn insert(&mut self, key: EngineKey, compiled: &Arc<Compiled>) {
        let current = self
            .engines
            .get(&key)
            .is_some_and(|slot| Engine::same(&slot.engine, compiled.engine()));
        if !current || compiled.size_bytes() > self.limits.max_bytes || self.limits.max_entries == 0
        {
            return;
        }
        self.clock += 1;
        self.entries.insert(
            (key, *compiled.digest().as_bytes()),
            Entry {
                compiled: compiled.clone(),
                used: self.clock,
            },
        );
        while self.entries.len() > self.limits.max_entries || self.bytes() > self.limits.max_bytes {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.entries.remove(&oldest);
            self.evictions += 1;
        }
    }
}

impl ModuleCache {
    /// An empty cache keeping at most what `limits` allow.
    pub fn new(limits: CacheLimits) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                limits,
                ..Inner::default()
            })),
        }
    }

    /// What it did so far, and what it keeps now.
    pub fn stats(&self) -> CacheStats {
        self.lock().stats()
    }

    /// Drops every kept module (the statistics stay).
    pub fn clear(&self) {
        self.lock().entries.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The compiled code of `bytes` under `key`: the kept one when `digest` is there (`true`),
    /// else compiled now and kept (`false`). The caller has verified that `bytes` hash to
    /// `digest`, cleared them with its policy and checked their shape.
    pub(crate) fn compile(
        &self,
        key: EngineKey,
        digest: Digest,
        bytes: &[u8],
    ) -> Result<(Arc<Compiled>, bool), Error> {
        let engine = {
            let mut inner = self.lock();
            inner.clock += 1;
            let now = inner.clock;
            if let Some(entry) = inner.entries.get_mut(&(key, *digest.as_bytes())) {
                entry.used = now;
                let compiled = entry.compiled.clone();
                inner.hits += 1;
                return Ok((compiled, true));
            }
            inner.misses += 1;
            inner.engine_for(key, bytes.len() as u64)
        };
        // Compiled without the lock: another thread may load meanwhile (natively).
        let compiled = Compiled::compile(&engine, bytes, digest)?;
        self.lock().insert(key, &compiled);
        Ok((compiled, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(n: i32) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(module (func (export "f") (result i32) (i32.const {n})))"#
        ))
        .expect("valid wat")
    }

    fn key(depth: u32) -> EngineKey {
        EngineKey {
            max_recursion_depth: depth,
            multi_memory: false,
        }
    }

    fn load(cache: &ModuleCache, key: EngineKey, bytes: &[u8]) -> (Arc<Compiled>, bool) {
        cache
            .compile(key, Digest::of(bytes), bytes)
            .expect("compiles")
    }

    #[test]
    fn same_digest_and_key_is_a_hit() {
        let cache = ModuleCache::new(CacheLimits::default());
        let bytes = module(1);
        let (a, hit_a) = load(&cache, key(100), &bytes);
        let (b, hit_b) = load(&cache, key(100), &bytes);
        assert!(!hit_a && hit_b);
        assert!(Arc::ptr_eq(&a, &b));
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.entries), (1, 1, 1));
        assert_eq!(stats.bytes, bytes.len() as u64);
    }

    #[test]
    fn another_engine_configuration_is_a_miss() {
        let cache = ModuleCache::new(CacheLimits::default());
        let bytes = module(1);
        let (a, _) = load(&cache, key(100), &bytes);
        let (b, hit) = load(&cache, key(200), &bytes);
        assert!(!hit);
        assert!(!Engine::same(a.engine(), b.engine()));
        assert_eq!(cache.stats().entries, 2);
    }

    #[test]
    fn least_recently_used_is_evicted_by_count() {
        let cache = ModuleCache::new(CacheLimits {
            max_entries: 2,
            ..CacheLimits::default()
        });
        let (one, two, three) = (module(1), module(2), module(3));
        load(&cache, key(100), &one);
        load(&cache, key(100), &two);
        assert!(
            load(&cache, key(100), &one).1,
            "one is kept and now the most recent"
        );
        load(&cache, key(100), &three); // evicts two
        let stats = cache.stats();
        assert_eq!((stats.entries, stats.evictions), (2, 1));
        assert!(load(&cache, key(100), &one).1);
        assert!(load(&cache, key(100), &three).1);
        assert!(!load(&cache, key(100), &two).1, "two was evicted");
    }

    #[test]
    fn bounded_by_bytes() {
        let one = module(1);
        let cache = ModuleCache::new(CacheLimits {
            max_bytes: one.len() as u64 * 2,
            ..CacheLimits::default()
        });
        load(&cache, key(100), &module(1));
        load(&cache, key(100), &module(2));
        load(&cache, key(100), &module(3));
        let stats = cache.stats();
        assert_eq!(stats.entries, 2);
        assert!(stats.bytes <= one.len() as u64 * 2);
        // Larger than the whole cache: compiled, never kept.
        let big = ModuleCache::new(CacheLimits {
            max_bytes: 8,
            ..CacheLimits::default()
        });
        assert!(!load(&big, key(100), &one).1);
        assert!(!load(&big, key(100), &one).1);
        assert_eq!(big.stats().entries, 0);
    }

    #[test]
    fn zero_entries_keeps_nothing() {
        let cache = ModuleCache::new(CacheLimits {
            max_entries: 0,
            ..CacheLimits::default()
        });
        let bytes = module(1);
        load(&cache, key(100), &bytes);
        assert!(!load(&cache, key(100), &bytes).1);
        assert_eq!(cache.stats().entries, 0);
    }

    #[test]
    fn a_full_engine_is_retired_with_its_modules() {
        let bytes = module(1);
        let cache = ModuleCache::new(CacheLimits {
            max_engine_bytes: bytes.len() as u64 * 2,
            ..CacheLimits::default()
        });
        let (first, _) = load(&cache, key(100), &module(1));
        load(&cache, key(100), &module(2));
        // The third would pass the engine's budget: a new engine, the old modules dropped.
        let (third, _) = load(&cache, key(100), &module(3));
        assert!(!Engine::same(first.engine(), third.engine()));
        let stats = cache.stats();
        assert_eq!((stats.engines_retired, stats.entries), (1, 1));
        // The retired engine's module still works for whoever holds it.
        assert_eq!(first.digest(), Digest::of(&module(1)));
        assert!(!load(&cache, key(100), &module(1)).1);
    }

    #[test]
    fn failures_are_not_cached() {
        let cache = ModuleCache::new(CacheLimits::default());
        let bytes = b"\0asm\x01\0\0\0\x01\xff".to_vec();
        for _ in 0..2 {
            let Err(err) = cache.compile(key(100), Digest::of(&bytes), &bytes) else {
                panic!("invalid bytes compiled");
            };
            assert_eq!(err.code(), crate::error::ErrorCode::InvalidModule);
        }
        let stats = cache.stats();
        assert_eq!((stats.misses, stats.hits, stats.entries), (2, 0, 0));
    }
}
