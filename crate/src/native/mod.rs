//! The native tier (in progress; cargo feature `native-tier`): guests that run on the
//! browser's own WebAssembly engine instead of the interpreter, metered by instrumentation.
//!
//! In the interpreter tier, wasmi meters fuel and call depth and the limiter bounds memory and
//! tables. An engine that compiles the guest does none of that, so the guest is rewritten to do
//! it itself: [`instrument`] takes a module that already passed the core's checks and
//! validation and returns one that charges fuel per basic block (calling the injected
//! `nestbox.out_of_fuel` when it goes negative), counts its call depth (`nestbox.stack_overflow`
//! past the limit) and cannot grow its memories or tables past the limits. The cost model, and
//! how it relates to the interpreter's fuel, is in [`cost`].
//!
//! Built so far: the pass, tested natively by running instrumented guests in wasmi. Not built
//! yet: the engine that runs them in the worker (JSPI suspension at `out_of_fuel` and host
//! calls) and its JavaScript.
//!
//! This pass is security-critical: in the native tier it is the only thing that bounds a
//! guest's fuel and stack, so a mistake in it (an unmetered loop, a shifted index) is a
//! sandbox escape from those limits, not a wrong answer.

pub mod cost;
pub mod instrument;

pub use instrument::{
    DEPTH_EXPORT, FUEL_EXPORT, IMPORT_MODULE, InstrumentConfig, Instrumented,
    MAX_INSTRUMENTED_BODY_BYTES, OUT_OF_FUEL_IMPORT, STACK_OVERFLOW_IMPORT, instrument,
};
