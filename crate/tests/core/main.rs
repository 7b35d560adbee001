//! Native integration tests of the core: one file per behaviour, WAT fixtures in
//! `tests/fixtures/` (the source of truth; their compiled digests are pinned by `fixtures.rs`).
#![cfg(not(target_arch = "wasm32"))]

mod common;

mod audit_log;
mod call_memory_limit;
mod cancel;
mod data_abi;
mod data_guests;
mod direct_host;
mod fixtures;
mod fuel;
mod host_calls;
mod instance_limit;
mod integrity;
mod invalid_module;
mod linking;
mod memory_limit;
mod metrics;
mod module_cache;
mod policy;
mod stack;
mod start_function;
mod table_limit;
mod timeout;
mod trace;
mod traps;
mod wasi_args_env;
mod wasi_bounds;
mod wasi_clock_poll;
mod wasi_dirs;
mod wasi_escape;
mod wasi_exit;
mod wasi_export;
mod wasi_files;
mod wasi_fuel;
mod wasi_linking;
mod wasi_memory;
mod wasi_quota;
mod wasi_random;
mod wasi_rights;
mod wasi_stdin;
mod wasi_stdio;
mod wasi_util;
