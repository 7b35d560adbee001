//! The module cache: sandboxes given one `ModuleCache` share the compiled code of the same
//! bytes under the same engine configuration, while every load is still checked in full and
//! every instance keeps its own store.

use nestbox::policy::TrustPolicy;
use nestbox::{
    CacheLimits, Digest, ErrorCode, Grants, Limits, ModuleCache, ModuleLimits, Sandbox, Value,
};

use crate::common::{call, fixture, wat};

fn cached(cache: &ModuleCache, limits: Limits) -> Sandbox {
    Sandbox::with_cache(limits, TrustPolicy::permissive(), cache).expect("valid limits")
}

fn load_entry_cached(sandbox: &Sandbox) -> Option<String> {
    sandbox
        .audit_entries()
        .iter()
        .rev()
        .find(|e| e.event == nestbox::audit::AuditEvent::Load)
        .and_then(|e| e.extra.get("cached").cloned())
}

/// A guest with state in every place an instance has it: memory (a data segment and a
/// counter), a mutable global and a table slot.
const STATEFUL: &str = r#"(module
  (memory (export "memory") 1)
  (data (i32.const 0) "\2a")
  (global $g (mut i32) (i32.const 7))
  (table 1 funcref)
  (func $one (result i32) (i32.const 1))
  (func $two (result i32) (i32.const 2))
  (elem (i32.const 0) $one)
  (type $t (func (result i32)))
  (func (export "poke") (param i32)
    (i32.store8 (i32.const 0) (local.get 0))
    (global.set $g (local.get 0))
    (table.set 0 (i32.const 0) (ref.func $two)))
  (func (export "peek_memory") (result i32) (i32.load8_u (i32.const 0)))
  (func (export "peek_global") (result i32) (global.get $g))
  (func (export "peek_table") (result i32) (call_indirect (type $t) (i32.const 0)))
  (elem declare func $two))"#;

#[test]
fn a_second_sandbox_reuses_the_compiled_module() {
    let cache = ModuleCache::new(CacheLimits::default());
    let bytes = fixture("add");
    let a = cached(&cache, Limits::default());
    let b = cached(&cache, Limits::default());
    let ma = a.load(&bytes, &Digest::of(&bytes)).expect("loads");
    assert_eq!(load_entry_cached(&a), None);
    let mb = b.load(&bytes, &Digest::of(&bytes)).expect("loads");
    assert!(ma.shares_code_with(&mb));
    assert_eq!(load_entry_cached(&b).as_deref(), Some("true"));
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.hits, stats.entries), (1, 1, 1));
    // The same sandbox loading the same bytes again hits too.
    let again = b.load(&bytes, &Digest::of(&bytes)).expect("loads");
    assert!(again.shares_code_with(&ma));
    let mut inst = b.instantiate(&mb, &Grants::new()).expect("instantiates");
    assert_eq!(
        call(&mut inst, "add", &[Value::I32(40), Value::I32(2)]).expect("runs"),
        vec![Value::I32(42)]
    );
}

#[test]
fn sandboxes_without_a_cache_compile_their_own() {
    let bytes = fixture("add");
    let a = Sandbox::new(Limits::default()).expect("sandbox");
    let b = Sandbox::new(Limits::default()).expect("sandbox");
    let ma = a.load(&bytes, &Digest::of(&bytes)).expect("loads");
    let mb = b.load(&bytes, &Digest::of(&bytes)).expect("loads");
    assert!(!ma.shares_code_with(&mb));
}

#[test]
fn another_engine_configuration_compiles_again() {
    let cache = ModuleCache::new(CacheLimits::default());
    let bytes = fixture("add");
    let a = cached(&cache, Limits::default());
    let b = cached(
        &cache,
        Limits {
            max_recursion_depth: 50,
            ..Limits::default()
        },
    );
    let ma = a.load(&bytes, &Digest::of(&bytes)).expect("loads");
    let mb = b.load(&bytes, &Digest::of(&bytes)).expect("loads");
    assert!(!ma.shares_code_with(&mb));
    assert_eq!(load_entry_cached(&b), None);
    assert_eq!(cache.stats().misses, 2);
    // Limits that are not engine configuration (fuel, memory, …) share the code.
    let c = cached(
        &cache,
        Limits {
            fuel: 1_000,
            max_memory_bytes: 1 << 20,
            ..Limits::default()
        },
    );
    assert!(
        c.load(&bytes, &Digest::of(&bytes))
            .expect("loads")
            .shares_code_with(&ma)
    );
}

#[test]
fn each_sandbox_keeps_its_recursion_limit() {
    let recurse = wat(r#"(module
      (func $r (export "r") (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0))
          (then (i32.const 0))
          (else (i32.add (i32.const 1) (call $r (i32.sub (local.get 0) (i32.const 1))))))))"#);
    let cache = ModuleCache::new(CacheLimits::default());
    let deep = cached(&cache, Limits::default());
    let shallow = cached(
        &cache,
        Limits {
            max_recursion_depth: 50,
            ..Limits::default()
        },
    );
    for (sandbox, ok) in [(&deep, true), (&shallow, false), (&deep, true)] {
        let module = sandbox
            .load(&recurse, &Digest::of(&recurse))
            .expect("loads");
        let mut inst = sandbox.instantiate(&module, &Grants::new()).expect("inst");
        let result = call(&mut inst, "r", &[Value::I32(500)]);
        match ok {
            true => assert_eq!(result.expect("depth 500 runs"), vec![Value::I32(500)]),
            false => assert_eq!(
                result.expect_err("too deep").code(),
                ErrorCode::StackOverflow
            ),
        }
    }
}

#[test]
fn a_hit_still_checks_the_callers_bytes_and_digest() {
    let cache = ModuleCache::new(CacheLimits::default());
    let good = fixture("host_log");
    let warm = cached(&cache, Limits::default());
    warm.load(&good, &Digest::of(&good)).expect("loads");
    let sb = cached(&cache, Limits::default());
    // Other bytes under the cached digest: refused before the cache is looked at.
    let at = good
        .windows(5)
        .position(|w| w == b"hello")
        .expect("data segment");
    let mut tampered = good.clone();
    tampered[at] = b'j';
    let err = sb
        .load(&tampered, &Digest::of(&good))
        .expect_err("tampered");
    assert_eq!(err.code(), ErrorCode::IntegrityMismatch);
    // The cached bytes under another digest: refused too.
    let err = sb
        .load(&good, &Digest::of(&tampered))
        .expect_err("wrong digest");
    assert_eq!(err.code(), ErrorCode::IntegrityMismatch);
    // Over this sandbox's size cap: refused, cached or not.
    let small = cached(
        &cache,
        Limits {
            max_module_bytes: 16,
            ..Limits::default()
        },
    );
    let err = small
        .load(&good, &Digest::of(&good))
        .expect_err("too large");
    assert_eq!(err.code(), ErrorCode::ModuleTooLarge);
    assert_eq!(cache.stats().hits, 0);
}

#[test]
fn a_hit_still_passes_the_sandboxs_policy_and_shape_limits() {
    let cache = ModuleCache::new(CacheLimits::default());
    let bytes = fixture("add");
    cached(&cache, Limits::default())
        .load(&bytes, &Digest::of(&bytes))
        .expect("loads");
    let other = fixture("host_log");
    let strict = Sandbox::with_cache(
        Limits::default(),
        TrustPolicy {
            allowed_digests: vec![Digest::of(&other)],
            ..TrustPolicy::default()
        },
        &cache,
    )
    .expect("sandbox");
    let err = strict
        .load(&bytes, &Digest::of(&bytes))
        .expect_err("not allowed");
    assert_eq!(err.code(), ErrorCode::PolicyDenied);
    let narrow = cached(
        &cache,
        Limits {
            module: ModuleLimits {
                max_functions: 0,
                ..ModuleLimits::default()
            },
            ..Limits::default()
        },
    );
    let err = narrow
        .load(&bytes, &Digest::of(&bytes))
        .expect_err("over the shape limit");
    assert_eq!(err.code(), ErrorCode::InvalidModule);
    assert_eq!(cache.stats().hits, 0);
}

#[test]
fn a_module_belongs_to_the_sandbox_that_loaded_it() {
    let cache = ModuleCache::new(CacheLimits::default());
    let bytes = fixture("add");
    let a = cached(&cache, Limits::default());
    let b = cached(&cache, Limits::default());
    let ma = a.load(&bytes, &Digest::of(&bytes)).expect("loads");
    let _mb = b.load(&bytes, &Digest::of(&bytes)).expect("loads");
    let err = b.instantiate(&ma, &Grants::new()).expect_err("a's module");
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    // a's instance limit is a's alone.
    assert_eq!((a.live_instances(), b.live_instances()), (0, 0));
}

#[test]
fn instances_of_one_cached_module_share_no_state() {
    let cache = ModuleCache::new(CacheLimits::default());
    let bytes = wat(STATEFUL);
    let a = cached(&cache, Limits::default());
    let b = cached(&cache, Limits::default());
    let ma = a.load(&bytes, &Digest::of(&bytes)).expect("loads");
    let mb = b.load(&bytes, &Digest::of(&bytes)).expect("loads");
    assert!(ma.shares_code_with(&mb));
    let mut first = a.instantiate(&ma, &Grants::new()).expect("inst");
    call(&mut first, "poke", &[Value::I32(99)]).expect("poke");
    let peek = |inst: &mut nestbox::Instance| {
        ["peek_memory", "peek_global", "peek_table"].map(|e| call(inst, e, &[]).expect("peek")[0])
    };
    assert_eq!(peek(&mut first), [99, 99, 2].map(Value::I32));
    // Another sandbox's instance, another instance of the same sandbox and one created
    // after the poke: each starts from the module's own initial state.
    let mut second = b.instantiate(&mb, &Grants::new()).expect("inst");
    let mut third = a.instantiate(&ma, &Grants::new()).expect("inst");
    for inst in [&mut second, &mut third] {
        assert_eq!(peek(inst), [42, 7, 1].map(Value::I32));
    }
    call(&mut second, "poke", &[Value::I32(5)]).expect("poke");
    assert_eq!(peek(&mut first), [99, 99, 2].map(Value::I32));
    assert_eq!(peek(&mut third), [42, 7, 1].map(Value::I32));
    assert_eq!(peek(&mut second), [5, 5, 2].map(Value::I32));
}

#[test]
fn eviction_and_retirement_keep_loaded_modules_working() {
    let cache = ModuleCache::new(CacheLimits {
        max_entries: 1,
        max_bytes: 1 << 20,
        max_engine_bytes: 64,
    });
    let sb = cached(&cache, Limits::default());
    let add = fixture("add");
    let stateful = wat(STATEFUL);
    let m_add = sb.load(&add, &Digest::of(&add)).expect("loads");
    let m_state = sb.load(&stateful, &Digest::of(&stateful)).expect("loads");
    let stats = cache.stats();
    assert!(stats.entries <= 1);
    assert!(stats.evictions + stats.engines_retired >= 1);
    // Both still instantiate and run: a module lives as long as its holders.
    let mut inst = sb.instantiate(&m_add, &Grants::new()).expect("inst");
    assert_eq!(
        call(&mut inst, "add", &[Value::I32(1), Value::I32(2)]).expect("runs"),
        vec![Value::I32(3)]
    );
    let mut inst = sb.instantiate(&m_state, &Grants::new()).expect("inst");
    assert_eq!(
        call(&mut inst, "peek_memory", &[]).expect("runs"),
        vec![Value::I32(42)]
    );
    // Reloading the evicted one compiles it again.
    let misses = cache.stats().misses;
    sb.load(&add, &Digest::of(&add)).expect("loads");
    assert_eq!(cache.stats().misses, misses + 1);
}
