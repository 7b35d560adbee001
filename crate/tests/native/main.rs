//! The native tier's instrumentation pass (`--features native-tier`): instrumented guests run
//! in wasmi natively, with a host that refills fuel from a budget (`harness.rs`), next to the
//! originals.
#![cfg(not(target_arch = "wasm32"))]

mod harness;

mod fuel;
mod indices;
mod limits;
mod overhead;
mod refusals;
mod results;
mod stack;
mod wasi;
