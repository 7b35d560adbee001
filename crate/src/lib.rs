//! nestbox: run untrusted WebAssembly without trusting it.
//!
//! This crate is the core of nestbox — pure Rust, tested natively with `cargo test`, and
//! compiled to wasm32 for the browser, where it runs inside a dedicated Web Worker. A guest
//! module is
//!
//! 1. **verified** before it is parsed ([`integrity`]: size cap, SHA-256 against the expected
//!    digest, compared in constant time),
//! 2. **validated** under module-shape limits ([`ModuleLimits`]),
//! 3. **linked** only against the imports the caller granted ([`Grants`]), each checked
//!    against the declared signature, and
//! 4. **run** in its own wasmi `Store` in *steps* ([`Step`]): the call suspends after every
//!    fuel slice and at every host call, so the caller can yield to its event loop, cancel,
//!    enforce a deadline, or await an async host function, then resume.
//!
//! ```
//! use nestbox::{Digest, Grants, Limits, Sandbox, Value};
//!
//! # fn main() -> Result<(), nestbox::Error> {
//! let bytes = wat_bytes(); // untrusted bytes from anywhere
//! let expected = Digest::of(&bytes); // in real use: a digest pinned by the caller
//! let sandbox = Sandbox::new(Limits::default())?;
//! let module = sandbox.load(&bytes, &expected)?;
//! let mut instance = sandbox.instantiate(&module, &Grants::new())?;
//! let outcome = instance.call("add", &[Value::I32(2), Value::I32(40)], |_, _| {
//!     unreachable!("no capabilities were granted")
//! })?;
//! assert_eq!(outcome.results, vec![Value::I32(42)]);
//! assert!(outcome.metrics.fuel_consumed > 0);
//! # Ok(()) }
//! # fn wat_bytes() -> Vec<u8> {
//! #     wat::parse_str(r#"(module (func (export "add") (param i32 i32) (result i32)
//! #         local.get 0 local.get 1 i32.add))"#).expect("valid wat")
//! # }
//! ```
//!
//! Every failure is an [`Error`] with a stable [`ErrorCode`].
//!
//! [`wasi`] runs WASI preview1 programs (Rust `wasm32-wasip1`, C with wasi-libc, Go
//! `GOOS=wasip1`) over an in-memory filesystem, with captured output and real or
//! deterministic clocks and randomness: [`run_wasi`] natively, or
//! [`Sandbox::instantiate_wasi`] step by step.
//!
//! [`data`] is the data ABI (Extism's `extism:host/env`): calls that pass bytes in and out
//! ([`Instance::start_data`], [`drive_data`]), so Extism plugins run unchanged.
//!
//! Only `bindings/` (compiled for wasm32 only) knows about JavaScript.

// The layers, bottom up; a module uses only the ones above it in this list
// (`scripts/check-rust-layers.mjs` enforces it).
pub mod error;
pub mod metrics;
pub mod value;

pub mod audit;
pub mod capability;
pub mod fuel;
pub mod integrity;
pub mod limits;
pub mod memory;
pub mod policy;
pub mod trace;

pub mod cache;
pub mod module;
#[cfg(feature = "native-tier")]
pub mod native;

pub mod data;
pub mod gojs;
pub mod wasi;

pub mod instance;

pub mod sandbox;

#[cfg(target_arch = "wasm32")]
pub mod bindings;

/// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

pub use cache::{CacheLimits, CacheStats, EngineKey, ModuleCache};
pub use capability::{
    CapabilityId, DirectAnswer, DirectCall, DirectHost, Grant, Grants, HostCall, HttpRequest,
    HttpResponse,
};
pub use data::{DataConfig, HttpGrant, LogLine};
pub use error::{Details, Error, ErrorCode, TrapCode};
pub use gojs::GoConfig;
pub use instance::driver::{
    Hooks, HostFn, StdinFeed, drive, drive_data, drive_go_export, drive_go_main, drive_go_timers,
};
pub use instance::{CallOptions, Instance, InstanceState, Outcome, Step};
pub use integrity::Digest;
pub use limits::{Limits, ModuleLimits};
pub use memory::GuestMemory;
pub use metrics::Metrics;
pub use module::{ExportInfo, ImportInfo, ItemKind, Module};
pub use sandbox::{Sandbox, run_wasi, run_wasi_hooked, run_wasi_with};
pub use trace::{AttrValue, Span, Trace};
pub use value::{GoValue, Signature, Value, ValueType};
pub use wasi::{Deterministic, FsEntry, FsTree, Preopen, Stdin, WasiConfig, WasiOutcome, WasiWait};
