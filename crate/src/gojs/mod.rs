//! Go `js/wasm` guests (`GOOS=js GOARCH=wasm`): the `gojs` import module that Go's
//! `wasm_exec.js` provides, implemented over a **membrane** instead of the page's
//! `globalThis`.
//!
//! **The ABI** (Go ≥ 1.21, read from the Go distribution's `lib/wasm/wasm_exec.js`): every
//! import takes the guest's stack pointer `sp`; arguments and results live at fixed offsets
//! from `sp + 8` in linear memory (8-byte slots; strings and slices are `(ptr, len)` pairs of
//! int64). A `js.Value` is a NaN-boxed `ref`: a float64 that is not NaN is a number, `0.0` is
//! `undefined`, and otherwise the low 32 bits are an id into the instance's reference table and
//! the high 32 bits `0x7FF80000 | typeFlag` (1 object, 2 string, 3 symbol, 4 function).
//! Ids 0–6 are predefined (NaN, 0, null, true, false, the global object, the Go object). The
//! guest exports `run(argc, argv)`, `resume()`, `getsp()` and its memory `mem`; a callback
//! (`js.FuncOf`) is entered by setting the Go object's `_pendingEvent` to
//! `{ id, this, args }` and calling `resume`; Go writes the callback's `result` into the event.
//!
//! **The membrane.** `js.Global()` is a fresh object of this module: the values the caller
//! granted ([`GoConfig::globals`], plain data copied in, and capability tokens) plus the few
//! runtime shims Go's standard library reads at start-up, implemented here — `Object`,
//! `Array`, `Uint8Array` and `Date` constructors (they build membrane objects; they have no
//! properties and no prototype), an `fs` whose `write` appends to captured stdout/stderr
//! (every other `fs` function answers `ENOSYS`), a `process` of `-1`s and `ENOSYS`, and a
//! `console` writing to stderr. Nothing else exists: `window`, `document`, `fetch`, `eval`,
//! `Function`, `constructor`, `__proto__` are all `undefined`, and calling one throws a
//! `TypeError` into the guest. Reference ids are per instance and never reused: an id that is
//! not live (forged, or released by `finalizeRef`) ends the call with `TRAP`, so a stale id
//! can never name another object.
//!
//! **Capabilities.** Calling a token (`js.Global().Get("name").Invoke(…)`, or
//! `.Call("method", …)` on an object holding one) suspends the guest with a host call
//! ([`HostCall::go`](crate::HostCall::go)) whose arguments are copied out of the membrane;
//! the caller runs its capability (quotas, revocation and audit are the caller's, as for any
//! capability) and answers with [`Instance::resume_go`](crate::Instance::resume_go).
//!
//! **Fuel and bounds.** Each `gojs` call costs `Limits::host_call_fuel` plus 1 per 64 bytes it
//! copies. Guest pointers are bounds-checked (`TRAP`, `memory_out_of_bounds`). The membrane's
//! heap is garbage-collected (its roots are the references Go holds) and bounded by
//! `Limits::max_memory_bytes` (`MEMORY_LIMIT`); values copied out are at most 64 levels deep
//! and [`MAX_COPY_NODES`] nodes. A callback the membrane itself must run synchronously (the
//! completion callback of `fs.write`, as `wasm_exec.js` does) re-enters the guest inside the
//! import: that nested run is metered by the rest of the call's budget but not sliced.

use std::collections::{BTreeMap, HashMap};

use wasmi::{Caller, Linker};
use web_time::Instant;

use crate::error::{Error, ErrorCode, TrapCode};
use crate::fuel::FuelLedger;
use crate::value::{GoValue, Signature, ValueType};

/// The import namespace of Go's `js/wasm` target (`go.importObject`).
pub const GO_MODULE: &str = "gojs";

/// The functions of the `gojs` module, each `(sp: i32) -> ()`.
pub const FUNCTIONS: &[&str] = &[
    "runtime.wasmExit",
    "runtime.wasmWrite",
    "runtime.resetMemoryDataView",
    "runtime.nanotime1",
    "runtime.walltime",
    "runtime.scheduleTimeoutEvent",
    "runtime.clearTimeoutEvent",
    "runtime.getRandomData",
    "syscall/js.finalizeRef",
    "syscall/js.stringVal",
    "syscall/js.valueGet",
    "syscall/js.valueSet",
    "syscall/js.valueDelete",
    "syscall/js.valueIndex",
    "syscall/js.valueSetIndex",
    "syscall/js.valueCall",
    "syscall/js.valueInvoke",
    "syscall/js.valueNew",
    "syscall/js.valueLength",
    "syscall/js.valuePrepareString",
    "syscall/js.valueLoadString",
    "syscall/js.valueInstanceOf",
    "syscall/js.copyBytesToGo",
    "syscall/js.copyBytesToJS",
    "debug",
];

/// Names of `js.Global()` the membrane defines itself; a grant may not use them.
pub const RESERVED_GLOBALS: &[&str] = &[
    "Object",
    "Array",
    "Uint8Array",
    "Date",
    "fs",
    "process",
    "console",
];

/// At most this many values are copied out of the membrane in one value.
pub const MAX_COPY_NODES: usize = 1 << 20;
/// Values copied out are at most this deep.
pub const MAX_COPY_DEPTH: usize = 64;
/// Synchronous callbacks nest at most this deep.
const MAX_NESTING: u32 = 16;
/// At most this many live membrane objects.
const MAX_OBJECTS: usize = 1 << 20;
/// The panic text Go's runtime wrote is kept up to this many bytes.
const MAX_RUNTIME_STDERR: usize = 64 << 10;

/// The `js.Global()` of a Go guest and its command line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GoConfig {
    /// `os.Args` (`argv[0]` included); `["js"]` when empty, as `wasm_exec.js`.
    pub argv: Vec<String>,
    /// The environment (`os.Getenv`), exactly this.
    pub env: Vec<(String, String)>,
    /// What the page grants: each name becomes a property of `js.Global()` (data is copied
    /// in; [`GoValue::Capability`] becomes a callable token).
    pub globals: BTreeMap<String, GoValue>,
}

impl GoConfig {
    /// Refuses reserved or duplicate names.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` for a name of [`RESERVED_GLOBALS`].
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(name) = self
            .globals
            .keys()
            .find(|k| RESERVED_GLOBALS.contains(&k.as_str()))
        {
            return Err(Error::invalid_argument(format!(
                "js.Global().{name} is the membrane's own runtime shim and cannot be granted"
            )));
        }
        Ok(())
    }
}

/// A JavaScript value inside the membrane.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Js {
    Undefined,
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Obj(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Builtin {
    ObjectCtor,
    ArrayCtor,
    Uint8ArrayCtor,
    DateCtor,
    MakeFuncWrapper,
    FsWrite,
    FsFsync,
    FsEnosys,
    MinusOne,
    ThrowEnosys,
    Console,
    Zero,
    Now,
}

#[derive(Clone, Debug)]
enum Kind {
    Plain,
    Array(Vec<Js>),
    Bytes(Vec<u8>),
    GoFunc(u32),
    Capability { id: u32, name: String },
    Builtin(Builtin),
}

#[derive(Clone, Debug)]
struct Obj {
    kind: Kind,
    props: BTreeMap<String, Js>,
}

impl Obj {
    fn callable(&self) -> bool {
        matches!(
            self.kind,
            Kind::GoFunc(_) | Kind::Capability { .. } | Kind::Builtin(_)
        )
    }

    fn size(&self) -> u64 {
        let payload = match &self.kind {
            Kind::Array(items) => items.iter().map(js_size).sum::<u64>(),
            Kind::Bytes(bytes) => bytes.len() as u64,
            Kind::Capability { name, .. } => name.len() as u64,
            _ => 0,
        };
        64 + payload
            + self
                .props
                .iter()
                .map(|(k, v)| k.len() as u64 + js_size(v))
                .sum::<u64>()
    }
}

fn js_size(v: &Js) -> u64 {
    match v {
        Js::Str(s) => 16 + s.len() as u64,
        _ => 16,
    }
}

struct RefSlot {
    value: Js,
    count: u64,
}

/// The guest called a capability token: the call suspends until
/// [`Instance::resume_go`](crate::Instance::resume_go).
#[derive(Debug)]
pub(crate) struct GoPending {
    pub(crate) capability: u32,
    pub(crate) name: String,
    pub(crate) args: Vec<GoValue>,
    /// Where the result goes (`sp`-relative offsets resolved) and the ok flag.
    pub(crate) result_at: u32,
    pub(crate) ok_at: Option<u32>,
}

impl core::fmt::Display for GoPending {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "Go guest calls capability {} ({})",
            self.capability, self.name
        )
    }
}

impl wasmi::errors::HostError for GoPending {}

/// The guest exited (`runtime.wasmExit`): the call ends with this status.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GoExit(pub(crate) i32);

impl core::fmt::Display for GoExit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Go program exited with status {}", self.0)
    }
}

impl wasmi::errors::HostError for GoExit {}

/// A `gojs` function ended the call with this error.
#[derive(Debug, Clone)]
pub(crate) struct GoStop(pub(crate) Error);

impl core::fmt::Display for GoStop {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0.message())
    }
}

impl wasmi::errors::HostError for GoStop {}

fn stop(error: Error) -> wasmi::Error {
    wasmi::Error::host(GoStop(error))
}

fn oob(what: &str) -> wasmi::Error {
    stop(Error::trap(
        TrapCode::MemoryOutOfBounds,
        format!("gojs: {what} is outside the guest's memory"),
    ))
}

/// The store state's view of the Go context.
pub(crate) trait GoView {
    fn go_view(&mut self) -> Option<(&mut GoCtx, &mut FuelLedger)>;
}

/// The state of one Go guest: its membrane, timers, captured output and exit.
pub struct GoCtx {
    objs: Vec<Option<Obj>>,
    free_objs: Vec<u32>,
    refs: HashMap<u32, RefSlot>,
    next_ref: u32,
    str_ids: HashMap<String, u32>,
    obj_ids: HashMap<u32, u32>,
    global: u32,
    go: u32,
    /// Events being handled (GC roots), innermost last.
    in_flight: Vec<u32>,
    nesting: u32,
    heap_bytes: u64,
    next_gc: u64,
    heap_cap: u64,
    timers: BTreeMap<i32, Instant>,
    next_timer: i32,
    started: Instant,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    written: u64,
    output_cap: u64,
    runtime_stderr: Vec<u8>,
    pub(crate) exit: Option<i32>,
    pub(crate) main_started: bool,
    fuel_per_slice: u64,
    config: GoConfig,
}

impl core::fmt::Debug for GoCtx {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GoCtx")
            .field("refs", &self.refs.len())
            .field("exit", &self.exit)
            .finish_non_exhaustive()
    }
}

impl GoCtx {
    /// A fresh membrane holding `config.globals`.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` for a reserved global name.
    pub fn new(
        config: &GoConfig,
        heap_cap: u64,
        output_cap: u64,
        fuel_per_slice: u64,
    ) -> Result<Self, Error> {
        config.validate()?;
        let mut ctx = Self {
            objs: Vec::new(),
            free_objs: Vec::new(),
            refs: HashMap::new(),
            next_ref: 7,
            str_ids: HashMap::new(),
            obj_ids: HashMap::new(),
            global: 0,
            go: 0,
            in_flight: Vec::new(),
            nesting: 0,
            heap_bytes: 0,
            next_gc: 1 << 20,
            heap_cap,
            timers: BTreeMap::new(),
            next_timer: 1,
            started: Instant::now(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            written: 0,
            output_cap,
            runtime_stderr: Vec::new(),
            exit: None,
            main_started: false,
            fuel_per_slice,
            config: config.clone(),
        };
        let global = ctx.alloc_raw(Kind::Plain);
        let go = ctx.alloc_raw(Kind::Plain);
        ctx.global = global;
        ctx.go = go;
        let wrapper = ctx.alloc_raw(Kind::Builtin(Builtin::MakeFuncWrapper));
        ctx.set_prop(go, "_makeFuncWrapper", Js::Obj(wrapper));
        ctx.set_prop(go, "_pendingEvent", Js::Null);
        for (name, builtin) in [
            ("Object", Builtin::ObjectCtor),
            ("Array", Builtin::ArrayCtor),
            ("Uint8Array", Builtin::Uint8ArrayCtor),
            ("Date", Builtin::DateCtor),
        ] {
            let id = ctx.alloc_raw(Kind::Builtin(builtin));
            ctx.set_prop(global, name, Js::Obj(id));
        }
        // fs: write to captured stdout/stderr; everything else ENOSYS (as wasm_exec.js's stub).
        let fs = ctx.alloc_raw(Kind::Plain);
        let constants = ctx.alloc_raw(Kind::Plain);
        for name in [
            "O_WRONLY",
            "O_RDWR",
            "O_CREAT",
            "O_TRUNC",
            "O_APPEND",
            "O_EXCL",
            "O_DIRECTORY",
        ] {
            ctx.set_prop(constants, name, Js::Num(-1.0));
        }
        ctx.set_prop(fs, "constants", Js::Obj(constants));
        let write = ctx.alloc_raw(Kind::Builtin(Builtin::FsWrite));
        ctx.set_prop(fs, "write", Js::Obj(write));
        let fsync = ctx.alloc_raw(Kind::Builtin(Builtin::FsFsync));
        ctx.set_prop(fs, "fsync", Js::Obj(fsync));
        for name in [
            "chmod",
            "chown",
            "close",
            "fchmod",
            "fchown",
            "fstat",
            "ftruncate",
            "lchown",
            "link",
            "lstat",
            "mkdir",
            "open",
            "read",
            "readdir",
            "readlink",
            "rename",
            "rmdir",
            "stat",
            "symlink",
            "truncate",
            "unlink",
            "utimes",
        ] {
            let f = ctx.alloc_raw(Kind::Builtin(Builtin::FsEnosys));
            ctx.set_prop(fs, name, Js::Obj(f));
        }
        ctx.set_prop(global, "fs", Js::Obj(fs));
        let process = ctx.alloc_raw(Kind::Plain);
        for name in ["getuid", "getgid", "geteuid", "getegid"] {
            let f = ctx.alloc_raw(Kind::Builtin(Builtin::MinusOne));
            ctx.set_prop(process, name, Js::Obj(f));
        }
        for name in ["getgroups", "umask", "cwd", "chdir"] {
            let f = ctx.alloc_raw(Kind::Builtin(Builtin::ThrowEnosys));
            ctx.set_prop(process, name, Js::Obj(f));
        }
        ctx.set_prop(process, "pid", Js::Num(-1.0));
        ctx.set_prop(process, "ppid", Js::Num(-1.0));
        ctx.set_prop(global, "process", Js::Obj(process));
        let console = ctx.alloc_raw(Kind::Plain);
        for name in ["log", "error", "warn", "info", "debug"] {
            let f = ctx.alloc_raw(Kind::Builtin(Builtin::Console));
            ctx.set_prop(console, name, Js::Obj(f));
        }
        ctx.set_prop(global, "console", Js::Obj(console));
        for (name, value) in &config.globals {
            let js = ctx.import_value(value, name, 0)?;
            ctx.set_prop(global, name, js);
        }
        Ok(ctx)
    }

    /// The command line and environment.
    pub(crate) fn config(&self) -> &GoConfig {
        &self.config
    }

    /// The names of `js.Global()` that hold a Go function (`js.FuncOf`), sorted.
    pub fn exports(&self) -> Vec<String> {
        let Some(Some(global)) = self.objs.get(self.global as usize) else {
            return Vec::new();
        };
        global
            .props
            .iter()
            .filter(|(_, v)| match v {
                Js::Obj(id) => matches!(self.obj(*id).map(|o| &o.kind), Some(Kind::GoFunc(_))),
                _ => false,
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The Go function id registered as `js.Global().<name>`, if any.
    pub(crate) fn export_func(&self, name: &str) -> Option<u32> {
        let global = self.obj(self.global)?;
        match global.props.get(name)? {
            Js::Obj(id) => match self.obj(*id)?.kind {
                Kind::GoFunc(f) => Some(f),
                _ => None,
            },
            _ => None,
        }
    }

    /// Takes what the guest wrote to stdout and stderr so far.
    pub fn take_output(&mut self) -> (Vec<u8>, Vec<u8>) {
        (
            core::mem::take(&mut self.stdout),
            core::mem::take(&mut self.stderr),
        )
    }

    /// What Go's runtime itself wrote to stderr (its panic and fatal-error messages).
    pub(crate) fn runtime_stderr(&self) -> String {
        String::from_utf8_lossy(&self.runtime_stderr).into_owned()
    }

    /// How long until the earliest timer the runtime scheduled fires (`None`: no timer).
    pub(crate) fn next_timer(&self) -> Option<core::time::Duration> {
        let now = Instant::now();
        self.timers
            .values()
            .min()
            .map(|t| t.saturating_duration_since(now))
    }

    /// Removes one timer that is due; true if there was one.
    pub(crate) fn take_due_timer(&mut self) -> bool {
        let now = Instant::now();
        let due = self
            .timers
            .iter()
            .find(|(_, t)| **t <= now)
            .map(|(id, _)| *id);
        due.is_some_and(|id| self.timers.remove(&id).is_some())
    }

    pub(crate) fn has_timers(&self) -> bool {
        !self.timers.is_empty()
    }

    // ---- objects ----

    fn obj(&self, id: u32) -> Option<&Obj> {
        self.objs.get(id as usize).and_then(Option::as_ref)
    }

    fn obj_mut(&mut self, id: u32) -> Option<&mut Obj> {
        self.objs.get_mut(id as usize).and_then(Option::as_mut)
    }

    fn alloc_raw(&mut self, kind: Kind) -> u32 {
        let obj = Obj {
            kind,
            props: BTreeMap::new(),
        };
        self.heap_bytes += obj.size();
        if let Some(id) = self.free_objs.pop() {
            self.objs[id as usize] = Some(obj);
            id
        } else {
            self.objs.push(Some(obj));
            u32::try_from(self.objs.len() - 1).unwrap_or(u32::MAX)
        }
    }

    /// A new object, after a collection if the heap grew; `MEMORY_LIMIT` past the cap.
    fn alloc(&mut self, kind: Kind) -> Result<u32, Error> {
        let extra = match &kind {
            Kind::Bytes(b) => b.len() as u64,
            Kind::Array(a) => a.len() as u64 * 16,
            _ => 0,
        };
        self.reserve(extra + 64)?;
        Ok(self.alloc_raw(kind))
    }

    fn reserve(&mut self, bytes: u64) -> Result<(), Error> {
        if self.heap_bytes + bytes > self.next_gc || self.objs.len() >= MAX_OBJECTS {
            self.collect();
        }
        let live = self.objs.len() - self.free_objs.len();
        if self.heap_bytes + bytes > self.heap_cap || live >= MAX_OBJECTS {
            let cap = self.heap_cap;
            return Err(Error::new(
                ErrorCode::MemoryLimit,
                format!(
                    "the Go guest's JavaScript values are over the limit of {cap} bytes ({live} objects)"
                ),
            )
            .with(|d| d.limit = Some(cap)));
        }
        self.heap_bytes += bytes;
        Ok(())
    }

    fn set_prop(&mut self, id: u32, name: &str, value: Js) {
        let size = name.len() as u64 + js_size(&value);
        if let Some(obj) = self.obj_mut(id) {
            obj.props.insert(name.to_owned(), value);
            self.heap_bytes += size;
        }
    }

    /// Mark and sweep: the roots are the references Go holds, the global and Go objects and
    /// the events being handled.
    fn collect(&mut self) {
        let mut marked = vec![false; self.objs.len()];
        let mut stack: Vec<u32> = vec![self.global, self.go];
        stack.extend(self.in_flight.iter().copied());
        stack.extend(self.refs.values().filter_map(|s| match s.value {
            Js::Obj(id) => Some(id),
            _ => None,
        }));
        while let Some(id) = stack.pop() {
            let Some(slot) = marked.get_mut(id as usize) else {
                continue;
            };
            if *slot {
                continue;
            }
            *slot = true;
            if let Some(obj) = self.obj(id) {
                let children = obj.props.values().chain(match &obj.kind {
                    Kind::Array(items) => items.iter(),
                    _ => [].iter(),
                });
                stack.extend(children.filter_map(|v| match v {
                    Js::Obj(c) => Some(*c),
                    _ => None,
                }));
            }
        }
        let mut bytes = 0;
        for (id, slot) in self.objs.iter_mut().enumerate() {
            match slot {
                Some(obj) if marked[id] => bytes += obj.size(),
                Some(_) => {
                    *slot = None;
                    self.free_objs.push(u32::try_from(id).unwrap_or(u32::MAX));
                }
                None => {}
            }
        }
        bytes += self.refs.values().map(|s| js_size(&s.value)).sum::<u64>();
        self.heap_bytes = bytes;
        self.next_gc = (bytes * 2).max(1 << 20);
    }

    /// A page value copied into the membrane.
    fn import_value(&mut self, value: &GoValue, path: &str, depth: usize) -> Result<Js, Error> {
        if depth > MAX_COPY_DEPTH {
            return Err(Error::invalid_argument(format!(
                "{path}: value nested deeper than {MAX_COPY_DEPTH} levels"
            )));
        }
        Ok(match value {
            GoValue::Undefined => Js::Undefined,
            GoValue::Null => Js::Null,
            GoValue::Bool(b) => Js::Bool(*b),
            GoValue::Number(n) => Js::Num(*n),
            GoValue::String(s) => {
                self.reserve(s.len() as u64 + 16)?;
                Js::Str(s.clone())
            }
            GoValue::Bytes(b) => Js::Obj(self.alloc(Kind::Bytes(b.clone()))?),
            GoValue::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(self.import_value(item, &format!("{path}[{i}]"), depth + 1)?);
                }
                Js::Obj(self.alloc(Kind::Array(out))?)
            }
            GoValue::Object(map) => {
                let id = self.alloc(Kind::Plain)?;
                self.in_flight.push(id);
                for (k, v) in map {
                    let js = self.import_value(v, &format!("{path}.{k}"), depth + 1);
                    let js = match js {
                        Ok(js) => js,
                        Err(e) => {
                            self.in_flight.pop();
                            return Err(e);
                        }
                    };
                    self.set_prop(id, k, js);
                }
                self.in_flight.pop();
                Js::Obj(id)
            }
            GoValue::Capability(cap) => Js::Obj(self.alloc(Kind::Capability {
                id: *cap,
                name: path.to_owned(),
            })?),
        })
    }

    /// A membrane value copied out as plain data (functions become `undefined`).
    pub(crate) fn export_value(&self, value: &Js) -> Result<GoValue, Error> {
        let mut budget = MAX_COPY_NODES;
        self.export_inner(value, 0, &mut budget)
    }

    fn export_inner(&self, value: &Js, depth: usize, budget: &mut usize) -> Result<GoValue, Error> {
        if depth > MAX_COPY_DEPTH || *budget == 0 {
            return Err(Error::new(
                ErrorCode::HostError,
                format!(
                    "a value the Go guest passed out is deeper than {MAX_COPY_DEPTH} levels or has more than {MAX_COPY_NODES} parts (a cycle?)"
                ),
            ));
        }
        *budget -= 1;
        Ok(match value {
            Js::Undefined => GoValue::Undefined,
            Js::Null => GoValue::Null,
            Js::Bool(b) => GoValue::Bool(*b),
            Js::Num(n) => GoValue::Number(*n),
            Js::Str(s) => GoValue::String(s.clone()),
            Js::Obj(id) => match self.obj(*id) {
                None => GoValue::Undefined,
                Some(obj) => match &obj.kind {
                    Kind::Plain => {
                        let mut map = BTreeMap::new();
                        for (k, v) in &obj.props {
                            let v = self.export_inner(v, depth + 1, budget)?;
                            if v != GoValue::Undefined {
                                map.insert(k.clone(), v);
                            }
                        }
                        GoValue::Object(map)
                    }
                    Kind::Array(items) => GoValue::Array(
                        items
                            .iter()
                            .map(|v| self.export_inner(v, depth + 1, budget))
                            .collect::<Result<_, _>>()?,
                    ),
                    Kind::Bytes(b) => GoValue::Bytes(b.clone()),
                    _ => GoValue::Undefined,
                },
            },
        })
    }

    // ---- references (what Go holds) ----

    fn load_ref(&self, bits: u64) -> Result<Js, Error> {
        let f = f64::from_bits(bits);
        if f == 0.0 {
            return Ok(Js::Undefined);
        }
        if !f.is_nan() {
            return Ok(Js::Num(f));
        }
        let id = (bits & 0xFFFF_FFFF) as u32;
        Ok(match id {
            0 => Js::Num(f64::NAN),
            1 => Js::Num(0.0),
            2 => Js::Null,
            3 => Js::Bool(true),
            4 => Js::Bool(false),
            5 => Js::Obj(self.global),
            6 => Js::Obj(self.go),
            _ => match self.refs.get(&id) {
                Some(slot) => slot.value.clone(),
                None => {
                    return Err(Error::trap(
                        TrapCode::Unreachable,
                        format!(
                            "syscall/js: reference {id} is not live in this instance (forged, or already released)"
                        ),
                    ));
                }
            },
        })
    }

    fn store_ref(&mut self, value: Js) -> Result<u64, Error> {
        const NAN_HEAD: u64 = 0x7FF8_0000;
        let (id, flag) = match value {
            Js::Num(n) if n != 0.0 => {
                if n.is_nan() {
                    return Ok(NAN_HEAD << 32);
                }
                return Ok(n.to_bits());
            }
            Js::Undefined => return Ok(0),
            Js::Num(_) => (1, 0),
            Js::Null => (2, 0),
            Js::Bool(true) => (3, 0),
            Js::Bool(false) => (4, 0),
            Js::Obj(o) if o == self.global => (5, 1),
            Js::Obj(o) if o == self.go => (6, 1),
            Js::Str(s) => {
                let id = match self.str_ids.get(&s) {
                    Some(id) => *id,
                    None => {
                        let id = self.new_ref(Js::Str(s.clone()))?;
                        self.str_ids.insert(s, id);
                        id
                    }
                };
                self.bump(id);
                (id, 2)
            }
            Js::Obj(o) => {
                let flag = if self.obj(o).is_some_and(Obj::callable) {
                    4
                } else {
                    1
                };
                let id = match self.obj_ids.get(&o) {
                    Some(id) => *id,
                    None => {
                        let id = self.new_ref(Js::Obj(o))?;
                        self.obj_ids.insert(o, id);
                        id
                    }
                };
                self.bump(id);
                (id, flag)
            }
        };
        Ok(((NAN_HEAD | flag) << 32) | u64::from(id))
    }

    fn new_ref(&mut self, value: Js) -> Result<u32, Error> {
        // Ids are never reused: a stale id stays dead.
        let id = self.next_ref;
        self.next_ref = id.checked_add(1).ok_or_else(|| {
            Error::trap(
                TrapCode::Unreachable,
                "syscall/js: this instance used up its 2^32 reference ids",
            )
        })?;
        self.reserve(js_size(&value))?;
        self.refs.insert(id, RefSlot { value, count: 0 });
        Ok(id)
    }

    fn bump(&mut self, id: u32) {
        if let Some(slot) = self.refs.get_mut(&id) {
            slot.count += 1;
        }
    }

    fn finalize(&mut self, id: u32) -> Result<(), Error> {
        if id <= 6 {
            return Ok(());
        }
        let Some(slot) = self.refs.get_mut(&id) else {
            return Err(Error::trap(
                TrapCode::Unreachable,
                format!("syscall/js: finalizeRef of reference {id}, which is not live"),
            ));
        };
        slot.count = slot.count.saturating_sub(1);
        if slot.count == 0 {
            if let Some(slot) = self.refs.remove(&id) {
                match slot.value {
                    Js::Str(s) => {
                        self.str_ids.remove(&s);
                    }
                    Js::Obj(o) => {
                        self.obj_ids.remove(&o);
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    // ---- JavaScript semantics, membrane style ----

    fn get(&self, target: &Js, name: &str) -> Js {
        let Js::Obj(id) = target else {
            return Js::Undefined;
        };
        let Some(obj) = self.obj(*id) else {
            return Js::Undefined;
        };
        match (&obj.kind, name) {
            (Kind::Array(items), "length") => return Js::Num(items.len() as f64),
            (Kind::Bytes(b), "length" | "byteLength") => return Js::Num(b.len() as f64),
            _ => {}
        }
        obj.props.get(name).cloned().unwrap_or(Js::Undefined)
    }

    fn index(&self, target: &Js, i: i64) -> Js {
        let Js::Obj(id) = target else {
            return Js::Undefined;
        };
        let Ok(i) = usize::try_from(i) else {
            return Js::Undefined;
        };
        match self.obj(*id).map(|o| &o.kind) {
            Some(Kind::Array(items)) => items.get(i).cloned().unwrap_or(Js::Undefined),
            Some(Kind::Bytes(b)) => b.get(i).map_or(Js::Undefined, |b| Js::Num(f64::from(*b))),
            _ => Js::Undefined,
        }
    }

    fn set_index(&mut self, target: &Js, i: i64, value: Js) -> Result<(), Error> {
        let Js::Obj(id) = target else {
            return Ok(());
        };
        let Ok(i) = usize::try_from(i) else {
            return Ok(());
        };
        let grow = match self.obj(*id).map(|o| &o.kind) {
            Some(Kind::Array(items)) if i >= items.len() => (i + 1 - items.len()) as u64 * 16,
            _ => 0,
        };
        self.reserve(grow + js_size(&value))?;
        match self.obj_mut(*id).map(|o| &mut o.kind) {
            Some(Kind::Array(items)) => {
                if i >= items.len() {
                    items.resize(i + 1, Js::Undefined);
                }
                items[i] = value;
            }
            Some(Kind::Bytes(b)) => {
                if let Some(slot) = b.get_mut(i) {
                    *slot = to_byte(&value);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn length(&self, v: &Js) -> i64 {
        match v {
            Js::Str(s) => s.encode_utf16().count() as i64,
            Js::Obj(id) => match self.obj(*id).map(|o| &o.kind) {
                Some(Kind::Array(items)) => items.len() as i64,
                Some(Kind::Bytes(b)) => b.len() as i64,
                _ => match self.get(v, "length") {
                    Js::Num(n) if n.is_finite() => n.trunc() as i64,
                    _ => 0,
                },
            },
            _ => 0,
        }
    }

    fn to_string(&self, v: &Js, depth: usize) -> String {
        match v {
            Js::Undefined => "undefined".into(),
            Js::Null => "null".into(),
            Js::Bool(b) => b.to_string(),
            Js::Num(n) => number_string(*n),
            Js::Str(s) => s.clone(),
            Js::Obj(id) => match self.obj(*id).map(|o| &o.kind) {
                _ if depth > 8 => String::new(),
                Some(Kind::Array(items)) => items
                    .iter()
                    .map(|i| match i {
                        Js::Undefined | Js::Null => String::new(),
                        other => self.to_string(other, depth + 1),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                Some(Kind::Bytes(b)) => b.iter().map(u8::to_string).collect::<Vec<_>>().join(","),
                Some(Kind::Plain) => match self.get(v, "message") {
                    Js::Str(m) => format!("Error: {m}"),
                    _ => "[object Object]".into(),
                },
                _ => "function () { [native code] }".into(),
            },
        }
    }

    fn error_obj(&mut self, name: &str, message: &str, code: Option<&str>) -> Result<Js, Error> {
        let id = self.alloc(Kind::Plain)?;
        self.set_prop(id, "name", Js::Str(name.to_owned()));
        self.set_prop(id, "message", Js::Str(message.to_owned()));
        if let Some(code) = code {
            self.set_prop(id, "code", Js::Str(code.to_owned()));
        }
        Ok(Js::Obj(id))
    }

    fn enosys(&mut self) -> Result<Js, Error> {
        self.error_obj("Error", "not implemented", Some("ENOSYS"))
    }

    fn write_output(&mut self, fd: i64, bytes: &[u8]) -> Result<(), Error> {
        let total = self.written + bytes.len() as u64;
        if total > self.output_cap {
            let cap = self.output_cap;
            return Err(Error::new(
                ErrorCode::OutputLimit,
                format!("the Go guest wrote more than {cap} bytes of output"),
            )
            .with(|d| d.limit = Some(cap)));
        }
        self.written = total;
        if fd == 1 {
            self.stdout.extend_from_slice(bytes);
        } else {
            self.stderr.extend_from_slice(bytes);
        }
        Ok(())
    }

    /// An event `{ id, this, args }` for a Go function, made the pending one.
    fn make_event(&mut self, func: u32, this: Js, args: Vec<Js>) -> Result<u32, Error> {
        let array = self.alloc(Kind::Array(args))?;
        self.in_flight.push(array);
        let event = self.alloc(Kind::Plain);
        self.in_flight.pop();
        let event = event?;
        self.set_prop(event, "id", Js::Num(f64::from(func)));
        self.set_prop(event, "this", this);
        self.set_prop(event, "args", Js::Obj(array));
        let go = self.go;
        self.set_prop(go, "_pendingEvent", Js::Obj(event));
        Ok(event)
    }

    /// Sets up the call of exported function `name` with `args`; returns the event.
    pub(crate) fn start_export(&mut self, name: &str, args: &[GoValue]) -> Result<u32, Error> {
        let Some(func) = self.export_func(name) else {
            let known = self.exports().join(", ");
            return Err(Error::invalid_argument(format!(
                "the Go guest registered no function js.Global().{name} (it has: {known})"
            )));
        };
        let mut values = Vec::with_capacity(args.len());
        for (i, arg) in args.iter().enumerate() {
            let js = self.import_value(arg, &format!("argument {i}"), 0)?;
            if let Js::Obj(id) = js {
                self.in_flight.push(id);
            }
            values.push(js);
        }
        let event = self.make_event(func, Js::Undefined, values);
        self.in_flight.clear();
        let event = event?;
        self.in_flight.push(event);
        Ok(event)
    }

    /// The `result` Go wrote into `event`, copied out; the event is released.
    pub(crate) fn finish_export(&mut self, event: u32) -> Result<GoValue, Error> {
        self.in_flight.retain(|e| *e != event);
        let result = self.get(&Js::Obj(event), "result");
        self.export_value(&result)
    }

    /// Clears the pending event (a timer wake-up has none).
    pub(crate) fn clear_pending_event(&mut self) {
        let go = self.go;
        self.set_prop(go, "_pendingEvent", Js::Null);
    }

    /// Writes the answer of a capability into the suspended guest's memory.
    pub(crate) fn answer(
        &mut self,
        mem: &mut [u8],
        result_at: u32,
        ok_at: Option<u32>,
        value: &GoValue,
    ) -> Result<(), Error> {
        let js = self.import_value(value, "capability result", 0)?;
        let bits = self.store_ref(js)?;
        let mut m = Mem(mem);
        m.set_u64(result_at, bits)
            .map_err(|()| oob_error("capability result"))?;
        if let Some(ok) = ok_at {
            m.set_u8(ok, 1)
                .map_err(|()| oob_error("capability result"))?;
        }
        Ok(())
    }
}

fn oob_error(what: &str) -> Error {
    Error::trap(
        TrapCode::MemoryOutOfBounds,
        format!("gojs: {what} is outside the guest's memory"),
    )
}

fn to_byte(v: &Js) -> u8 {
    match v {
        Js::Num(n) if n.is_finite() => (n.trunc() as i64).rem_euclid(256) as u8,
        Js::Bool(true) => 1,
        _ => 0,
    }
}

/// `String(n)` for the numbers Go prints.
fn number_string(n: f64) -> String {
    if n.is_nan() {
        "NaN".into()
    } else if n.is_infinite() {
        if n > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if n == n.trunc() && n.abs() < 1e21 {
        format!("{}", n as i128)
    } else {
        format!("{n}")
    }
}

/// Checked little-endian access to guest memory.
struct Mem<'a>(&'a mut [u8]);

impl Mem<'_> {
    fn range(&self, addr: u64, len: u64) -> Result<core::ops::Range<usize>, ()> {
        let end = addr.checked_add(len).ok_or(())?;
        if end > self.0.len() as u64 {
            return Err(());
        }
        Ok(usize::try_from(addr).map_err(|_| ())?..usize::try_from(end).map_err(|_| ())?)
    }
    fn u64(&self, addr: u32) -> Result<u64, ()> {
        let r = self.range(u64::from(addr), 8)?;
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[r]);
        Ok(u64::from_le_bytes(b))
    }
    fn i64(&self, addr: u32) -> Result<i64, ()> {
        self.u64(addr).map(|v| v as i64)
    }
    fn u32(&self, addr: u32) -> Result<u32, ()> {
        let r = self.range(u64::from(addr), 4)?;
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[r]);
        Ok(u32::from_le_bytes(b))
    }
    fn set_u64(&mut self, addr: u32, v: u64) -> Result<(), ()> {
        let r = self.range(u64::from(addr), 8)?;
        self.0[r].copy_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn set_u32(&mut self, addr: u32, v: u32) -> Result<(), ()> {
        let r = self.range(u64::from(addr), 4)?;
        self.0[r].copy_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn set_u8(&mut self, addr: u32, v: u8) -> Result<(), ()> {
        let r = self.range(u64::from(addr), 1)?;
        self.0[r.start] = v;
        Ok(())
    }
    /// A `(ptr, len)` pair of int64 at `addr`: the range it names.
    fn slice(&self, addr: u32) -> Result<core::ops::Range<usize>, ()> {
        let ptr = self.u64(addr)?;
        let len = self.u64(addr + 8)?;
        self.range(ptr, len)
    }
    fn string(&self, addr: u32) -> Result<String, ()> {
        let r = self.slice(addr)?;
        Ok(String::from_utf8_lossy(&self.0[r]).into_owned())
    }
}

/// Writes the command line at 4096 as `wasm_exec.js` does; returns `(argc, argv)`.
pub(crate) fn write_args(mem: &mut [u8], config: &GoConfig) -> Result<(i32, i32), Error> {
    const MIN_DATA_ADDR: usize = 4096 + 8192;
    let too_long = || {
        Error::invalid_argument(
            "total length of the Go guest's command line and environment exceeds 8 KiB",
        )
    };
    let mut offset = 4096usize;
    let mut ptrs: Vec<u32> = Vec::new();
    let put = |s: &str, mem: &mut [u8], offset: &mut usize| -> Result<u32, Error> {
        let ptr = *offset;
        let end = ptr + s.len() + 1;
        if end > MIN_DATA_ADDR || end > mem.len() {
            return Err(too_long());
        }
        mem[ptr..ptr + s.len()].copy_from_slice(s.as_bytes());
        mem[ptr + s.len()] = 0;
        *offset = end.div_ceil(8) * 8;
        Ok(ptr as u32)
    };
    let default = vec!["js".to_owned()];
    let argv = if config.argv.is_empty() {
        &default
    } else {
        &config.argv
    };
    for a in argv {
        ptrs.push(put(a, mem, &mut offset)?);
    }
    ptrs.push(0);
    let mut env = config.env.clone();
    env.sort();
    for (k, v) in &env {
        ptrs.push(put(&format!("{k}={v}"), mem, &mut offset)?);
    }
    ptrs.push(0);
    let argv_at = offset;
    for p in ptrs {
        if offset + 8 > MIN_DATA_ADDR || offset + 8 > mem.len() {
            return Err(too_long());
        }
        mem[offset..offset + 4].copy_from_slice(&p.to_le_bytes());
        mem[offset + 4..offset + 8].copy_from_slice(&[0; 4]);
        offset += 8;
    }
    let argc = i32::try_from(argv.len()).map_err(|_| too_long())?;
    Ok((argc, argv_at as i32))
}

/// What an import does after its synchronous part.
enum After {
    Done,
    /// Run Go function `func` now (re-entering the guest); then store `result` (or the Go
    /// function's own result when `None`) at `sp + at` and set the ok flag at `sp + ok`.
    CallGo {
        func: u32,
        this: Js,
        args: Vec<Js>,
        result: Option<Js>,
        at: u32,
        ok: Option<u32>,
    },
    Suspend(GoPending),
}

/// Links one `gojs` function.
pub(crate) fn define<T: GoView>(
    linker: &mut Linker<T>,
    name: &'static str,
    host_call_fuel: u64,
) -> Result<(), Error> {
    let signature = Signature::new([ValueType::I32], []);
    linker
        .func_new(
            GO_MODULE,
            name,
            signature.to_wasmi(),
            move |mut caller: Caller<'_, T>, params, _results| {
                let sp = params
                    .first()
                    .and_then(wasmi::Val::i32)
                    .map_or(0, |v| v as u32);
                let memory = caller
                    .get_export("mem")
                    .and_then(wasmi::Extern::into_memory);
                let (after, moved) = {
                    let (data, state): (&mut [u8], &mut T) = match memory {
                        Some(m) => m.data_and_store_mut(&mut caller),
                        None => (&mut [], caller.data_mut()),
                    };
                    let Some((ctx, _)) = state.go_view() else {
                        return Err(wasmi::Error::new("gojs is not configured"));
                    };
                    call(name, ctx, &mut Mem(data), sp)?
                };
                charge(
                    &mut caller,
                    host_call_fuel.saturating_add(moved.div_ceil(64)),
                )?;
                match after {
                    After::Done => Ok(()),
                    After::Suspend(pending) => Err(wasmi::Error::host(pending)),
                    After::CallGo {
                        func,
                        this,
                        args,
                        result,
                        at,
                        ok,
                    } => {
                        let returned = call_go(&mut caller, func, this, args)?;
                        let value = result.unwrap_or(returned);
                        // Go may have moved its stack meanwhile: ask for sp again.
                        let getsp = caller
                            .get_export("getsp")
                            .and_then(wasmi::Extern::into_func)
                            .ok_or_else(|| {
                                stop(Error::invalid_argument("the Go guest exports no getsp"))
                            })?;
                        let mut out = [wasmi::Val::I32(0)];
                        getsp.call(&mut caller, &[], &mut out)?;
                        let sp = out[0].i32().map_or(0, |v| v as u32);
                        let (data, state): (&mut [u8], &mut T) = match memory {
                            Some(m) => m.data_and_store_mut(&mut caller),
                            None => (&mut [], caller.data_mut()),
                        };
                        let Some((ctx, _)) = state.go_view() else {
                            return Err(wasmi::Error::new("gojs is not configured"));
                        };
                        let bits = ctx.store_ref(value).map_err(stop)?;
                        let mut m = Mem(data);
                        m.set_u64(sp + at, bits).map_err(|()| oob("a result"))?;
                        if let Some(ok) = ok {
                            m.set_u8(sp + ok, 1).map_err(|()| oob("a result"))?;
                        }
                        Ok(())
                    }
                }
            },
        )
        .map_err(|e| Error::invalid_argument(format!("cannot link {name}: {e}")))?;
    Ok(())
}

fn charge<T: GoView>(caller: &mut Caller<'_, T>, cost: u64) -> Result<(), wasmi::Error> {
    let fuel = caller.get_fuel()?;
    let left = match caller.data_mut().go_view() {
        Some((_, ledger)) => {
            if ledger.remaining(fuel) < cost {
                let budget = ledger.budget();
                return Err(stop(
                    Error::new(
                        ErrorCode::FuelExhausted,
                        format!("fuel budget of {budget} exhausted"),
                    )
                    .with(|d| d.limit = Some(budget)),
                ));
            }
            ledger.charge(fuel, cost)
        }
        None => fuel.saturating_sub(cost),
    };
    caller.set_fuel(left)?;
    Ok(())
}

/// Runs Go function `func` synchronously (the guest is inside an import): its event is made
/// pending and `resume` is called, under the rest of the call's budget; then the store is back
/// to slices.
fn call_go<T: GoView>(
    caller: &mut Caller<'_, T>,
    func: u32,
    this: Js,
    args: Vec<Js>,
) -> Result<Js, wasmi::Error> {
    let in_store = caller.get_fuel()?;
    let (event, remaining, per_slice) = {
        let Some((ctx, ledger)) = caller.data_mut().go_view() else {
            return Err(wasmi::Error::new("gojs is not configured"));
        };
        if ctx.nesting >= MAX_NESTING {
            return Err(stop(Error::trap(
                TrapCode::StackOverflow,
                format!("gojs: synchronous callbacks nested deeper than {MAX_NESTING}"),
            )));
        }
        let event = ctx.make_event(func, this, args).map_err(stop)?;
        ctx.in_flight.push(event);
        ctx.nesting += 1;
        let remaining = ledger.remaining(in_store);
        ledger.refilled(in_store, remaining);
        (event, remaining, ctx.fuel_per_slice)
    };
    caller.set_fuel(remaining)?;
    let resume = caller
        .get_export("resume")
        .and_then(wasmi::Extern::into_func)
        .ok_or_else(|| stop(Error::invalid_argument("the Go guest exports no resume")))?;
    let ran = resume.call(&mut *caller, &[], &mut []);
    let left = caller.get_fuel()?;
    let slice = left.min(per_slice);
    let (exit, result) = {
        let Some((ctx, ledger)) = caller.data_mut().go_view() else {
            return Err(wasmi::Error::new("gojs is not configured"));
        };
        ledger.refilled(left, slice);
        ctx.nesting -= 1;
        ctx.in_flight.retain(|e| *e != event);
        (ctx.exit, ctx.get(&Js::Obj(event), "result"))
    };
    caller.set_fuel(slice)?;
    ran?;
    if let Some(code) = exit {
        return Err(wasmi::Error::host(GoExit(code)));
    }
    Ok(result)
}

/// The synchronous part of one `gojs` function. Returns what comes next and the bytes moved.
fn call(
    name: &str,
    ctx: &mut GoCtx,
    m: &mut Mem<'_>,
    sp: u32,
) -> Result<(After, u64), wasmi::Error> {
    let at = |off: u32| sp.checked_add(off).ok_or_else(|| oob("the stack pointer"));
    let bad = |what: &'static str| move |()| oob(what);
    let load = |ctx: &GoCtx, m: &Mem<'_>, addr: u32| -> Result<Js, wasmi::Error> {
        let bits = m.u64(addr).map_err(|()| oob("a js.Value"))?;
        ctx.load_ref(bits).map_err(stop)
    };
    let mut moved = 0u64;
    match name {
        "runtime.wasmExit" => {
            let code = m.u32(at(8)?).map_err(bad("exit code"))? as i32;
            ctx.exit = Some(code);
            return Err(wasmi::Error::host(GoExit(code)));
        }
        "runtime.wasmWrite" => {
            let fd = m.i64(at(8)?).map_err(bad("fd"))?;
            let p = m.u64(at(16)?).map_err(bad("pointer"))?;
            let n = u64::from(m.u32(at(24)?).map_err(bad("length"))?);
            let r = m.range(p, n).map_err(bad("wasmWrite's buffer"))?;
            let bytes = m.0[r].to_vec();
            moved = n;
            if fd == 2 && ctx.runtime_stderr.len() < MAX_RUNTIME_STDERR {
                let room = MAX_RUNTIME_STDERR - ctx.runtime_stderr.len();
                ctx.runtime_stderr
                    .extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            ctx.write_output(if fd == 1 { 1 } else { 2 }, &bytes)
                .map_err(stop)?;
        }
        "runtime.resetMemoryDataView" | "debug" => {}
        "runtime.nanotime1" => {
            // Monotonic, starting at 1 s (never 0).
            let ns = ctx.started.elapsed().as_nanos() + 1_000_000_000;
            let ns = u64::try_from(ns).unwrap_or(u64::MAX);
            m.set_u64(at(8)?, ns).map_err(bad("nanotime"))?;
        }
        "runtime.walltime" => {
            let now = web_time::SystemTime::now()
                .duration_since(web_time::SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            m.set_u64(at(8)?, now.as_secs()).map_err(bad("walltime"))?;
            m.set_u32(at(16)?, now.subsec_nanos())
                .map_err(bad("walltime"))?;
        }
        "runtime.scheduleTimeoutEvent" => {
            let delay = m.i64(at(8)?).map_err(bad("delay"))?.clamp(0, 1 << 40);
            let id = ctx.next_timer;
            ctx.next_timer = ctx.next_timer.wrapping_add(1).max(1);
            let when = Instant::now() + core::time::Duration::from_millis(delay as u64);
            ctx.timers.insert(id, when);
            m.set_u32(at(16)?, id as u32).map_err(bad("timer id"))?;
        }
        "runtime.clearTimeoutEvent" => {
            let id = m.u32(at(8)?).map_err(bad("timer id"))? as i32;
            ctx.timers.remove(&id);
        }
        "runtime.getRandomData" => {
            let r = m.slice(at(8)?).map_err(bad("getRandomData's buffer"))?;
            moved = r.len() as u64;
            getrandom::getrandom(&mut m.0[r])
                .map_err(|e| stop(Error::host_failed(format!("no randomness: {e}"))))?;
        }
        "syscall/js.finalizeRef" => {
            let id = m.u32(at(8)?).map_err(bad("a reference"))?;
            ctx.finalize(id).map_err(stop)?;
        }
        "syscall/js.stringVal" => {
            let s = m.string(at(8)?).map_err(bad("a string"))?;
            moved = s.len() as u64;
            let bits = ctx.store_ref(Js::Str(s)).map_err(stop)?;
            m.set_u64(at(24)?, bits).map_err(bad("a result"))?;
        }
        "syscall/js.valueGet" => {
            let v = load(ctx, m, at(8)?)?;
            let key = m.string(at(16)?).map_err(bad("a property name"))?;
            let result = ctx.get(&v, &key);
            let bits = ctx.store_ref(result).map_err(stop)?;
            m.set_u64(at(32)?, bits).map_err(bad("a result"))?;
        }
        "syscall/js.valueSet" => {
            let v = load(ctx, m, at(8)?)?;
            let key = m.string(at(16)?).map_err(bad("a property name"))?;
            let x = load(ctx, m, at(32)?)?;
            if let Js::Obj(id) = v {
                ctx.reserve(key.len() as u64 + js_size(&x)).map_err(stop)?;
                ctx.set_prop(id, &key, x);
            }
        }
        "syscall/js.valueDelete" => {
            let v = load(ctx, m, at(8)?)?;
            let key = m.string(at(16)?).map_err(bad("a property name"))?;
            if let Js::Obj(id) = v {
                if let Some(obj) = ctx.obj_mut(id) {
                    obj.props.remove(&key);
                }
            }
        }
        "syscall/js.valueIndex" => {
            let v = load(ctx, m, at(8)?)?;
            let i = m.i64(at(16)?).map_err(bad("an index"))?;
            let result = ctx.index(&v, i);
            let bits = ctx.store_ref(result).map_err(stop)?;
            m.set_u64(at(24)?, bits).map_err(bad("a result"))?;
        }
        "syscall/js.valueSetIndex" => {
            let v = load(ctx, m, at(8)?)?;
            let i = m.i64(at(16)?).map_err(bad("an index"))?;
            let x = load(ctx, m, at(24)?)?;
            ctx.set_index(&v, i, x).map_err(stop)?;
        }
        "syscall/js.valueCall" => {
            let v = load(ctx, m, at(8)?)?;
            let key = m.string(at(16)?).map_err(bad("a method name"))?;
            let args = load_args(ctx, m, at(32)?)?;
            let method = ctx.get(&v, &key);
            return apply(ctx, m, &method, v, args, &key, sp, (56, 64), false);
        }
        "syscall/js.valueInvoke" => {
            let v = load(ctx, m, at(8)?)?;
            let args = load_args(ctx, m, at(16)?)?;
            return apply(
                ctx,
                m,
                &v.clone(),
                Js::Undefined,
                args,
                "",
                sp,
                (40, 48),
                false,
            );
        }
        "syscall/js.valueNew" => {
            let v = load(ctx, m, at(8)?)?;
            let args = load_args(ctx, m, at(16)?)?;
            return apply(ctx, m, &v, Js::Undefined, args, "", sp, (40, 48), true);
        }
        "syscall/js.valueLength" => {
            let v = load(ctx, m, at(8)?)?;
            let n = ctx.length(&v);
            m.set_u64(at(16)?, n as u64).map_err(bad("a result"))?;
        }
        "syscall/js.valuePrepareString" => {
            let v = load(ctx, m, at(8)?)?;
            let s = ctx.to_string(&v, 0).into_bytes();
            let n = s.len() as u64;
            moved = n;
            let bytes = ctx.alloc(Kind::Bytes(s)).map_err(stop)?;
            let bits = ctx.store_ref(Js::Obj(bytes)).map_err(stop)?;
            m.set_u64(at(16)?, bits).map_err(bad("a result"))?;
            m.set_u64(at(24)?, n).map_err(bad("a result"))?;
        }
        "syscall/js.valueLoadString" => {
            let v = load(ctx, m, at(8)?)?;
            let r = m.slice(at(16)?).map_err(bad("valueLoadString's buffer"))?;
            if let Js::Obj(id) = v {
                if let Some(Kind::Bytes(b)) = ctx.obj(id).map(|o| &o.kind) {
                    let n = b.len().min(r.len());
                    m.0[r.start..r.start + n].copy_from_slice(&b[..n]);
                    moved = n as u64;
                }
            }
        }
        "syscall/js.valueInstanceOf" => {
            let v = load(ctx, m, at(8)?)?;
            let t = load(ctx, m, at(16)?)?;
            let kind = |js: &Js| match js {
                Js::Obj(id) => ctx.obj(*id).map(|o| o.kind.clone()),
                _ => None,
            };
            let yes = matches!(
                (kind(&v), kind(&t)),
                (Some(_), Some(Kind::Builtin(Builtin::ObjectCtor)))
                    | (
                        Some(Kind::Array(_)),
                        Some(Kind::Builtin(Builtin::ArrayCtor))
                    )
                    | (
                        Some(Kind::Bytes(_)),
                        Some(Kind::Builtin(Builtin::Uint8ArrayCtor))
                    )
            );
            m.set_u8(at(24)?, u8::from(yes)).map_err(bad("a result"))?;
        }
        "syscall/js.copyBytesToGo" => {
            let dst = m.slice(at(8)?).map_err(bad("copyBytesToGo's buffer"))?;
            let src = load(ctx, m, at(32)?)?;
            let bytes = match src {
                Js::Obj(id) => match ctx.obj(id).map(|o| &o.kind) {
                    Some(Kind::Bytes(b)) => Some(b),
                    _ => None,
                },
                _ => None,
            };
            let Some(bytes) = bytes else {
                m.set_u8(at(48)?, 0).map_err(bad("a result"))?;
                return Ok((After::Done, 0));
            };
            let n = bytes.len().min(dst.len());
            m.0[dst.start..dst.start + n].copy_from_slice(&bytes[..n]);
            moved = n as u64;
            m.set_u64(at(40)?, n as u64).map_err(bad("a result"))?;
            m.set_u8(at(48)?, 1).map_err(bad("a result"))?;
        }
        "syscall/js.copyBytesToJS" => {
            let dst = load(ctx, m, at(8)?)?;
            let src = m.slice(at(16)?).map_err(bad("copyBytesToJS's buffer"))?;
            let target = match dst {
                Js::Obj(id) => match ctx.obj_mut(id).map(|o| &mut o.kind) {
                    Some(Kind::Bytes(b)) => Some(b),
                    _ => None,
                },
                _ => None,
            };
            let Some(target) = target else {
                m.set_u8(at(48)?, 0).map_err(bad("a result"))?;
                return Ok((After::Done, 0));
            };
            let n = target.len().min(src.len());
            target[..n].copy_from_slice(&m.0[src.start..src.start + n]);
            moved = n as u64;
            m.set_u64(at(40)?, n as u64).map_err(bad("a result"))?;
            m.set_u8(at(48)?, 1).map_err(bad("a result"))?;
        }
        other => {
            return Err(stop(Error::new(
                ErrorCode::ImportNotGranted,
                format!("gojs.{other} is not provided"),
            )));
        }
    }
    Ok((After::Done, moved))
}

fn load_args(ctx: &GoCtx, m: &Mem<'_>, addr: u32) -> Result<Vec<Js>, wasmi::Error> {
    let ptr = m.u64(addr).map_err(|()| oob("an argument slice"))?;
    let len = m.u64(addr + 8).map_err(|()| oob("an argument slice"))?;
    let bytes = len.checked_mul(8).ok_or_else(|| oob("an argument slice"))?;
    m.range(ptr, bytes).map_err(|()| oob("an argument slice"))?;
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(1 << 16));
    for i in 0..len {
        let addr = u32::try_from(ptr + i * 8).map_err(|_| oob("an argument"))?;
        let bits = m.u64(addr).map_err(|()| oob("an argument"))?;
        out.push(ctx.load_ref(bits).map_err(stop)?);
    }
    Ok(out)
}

/// Calls (or constructs) `f` with `this` and `args`; the result goes to `result_at`, the ok
/// flag to `ok_at` (0 and a `TypeError` when `f` cannot be called).
#[allow(clippy::too_many_arguments)]
fn apply(
    ctx: &mut GoCtx,
    m: &mut Mem<'_>,
    f: &Js,
    this: Js,
    args: Vec<Js>,
    method: &str,
    sp: u32,
    (res_off, ok_off): (u32, u32),
    construct: bool,
) -> Result<(After, u64), wasmi::Error> {
    let result_at = sp
        .checked_add(res_off)
        .ok_or_else(|| oob("the stack pointer"))?;
    let ok_at = sp
        .checked_add(ok_off)
        .ok_or_else(|| oob("the stack pointer"))?;
    let kind = match f {
        Js::Obj(id) => ctx.obj(*id).map(|o| o.kind.clone()),
        _ => None,
    };
    let outcome: Result<Js, Js> = match (kind, construct) {
        (Some(Kind::Capability { id, name }), false) => {
            let mut copied = Vec::with_capacity(args.len());
            for a in &args {
                copied.push(ctx.export_value(a).map_err(stop)?);
            }
            return Ok((
                After::Suspend(GoPending {
                    capability: id,
                    name,
                    args: copied,
                    result_at,
                    ok_at: Some(ok_at),
                }),
                0,
            ));
        }
        (Some(Kind::GoFunc(func)), false) => {
            return Ok((
                After::CallGo {
                    func,
                    this,
                    args,
                    result: None,
                    at: res_off,
                    ok: Some(ok_off),
                },
                0,
            ));
        }
        (Some(Kind::Builtin(b)), construct) => builtin(ctx, b, &args, construct).map_err(stop)?,
        _ => {
            let what = if method.is_empty() {
                "the value".to_owned()
            } else {
                format!("{method:?}")
            };
            let message = if construct {
                format!("{what} is not a constructor")
            } else {
                format!("{what} is not a function")
            };
            Err(ctx.error_obj("TypeError", &message, None).map_err(stop)?)
        }
    };
    // Builtins with a completion callback (fs.*) run it now, as wasm_exec.js does.
    if let Ok(Js::Undefined) | Err(_) = &outcome {
        if let Some(callback) = callback_of(ctx, f, &args) {
            let cb_args = match &outcome {
                Ok(_) => completion_args(ctx, f, &args),
                Err(e) => vec![e.clone()],
            };
            return Ok((
                After::CallGo {
                    func: callback,
                    this: Js::Undefined,
                    args: cb_args,
                    result: Some(Js::Undefined),
                    at: res_off,
                    ok: Some(ok_off),
                },
                0,
            ));
        }
    }
    let (value, ok) = match outcome {
        Ok(v) => (v, 1),
        Err(e) => (e, 0),
    };
    let bits = ctx.store_ref(value).map_err(stop)?;
    m.set_u64(result_at, bits).map_err(|()| oob("a result"))?;
    m.set_u8(ok_at, ok).map_err(|()| oob("a result"))?;
    Ok((After::Done, 0))
}

/// The Go function a builtin of `fs` completes through: its last argument.
fn callback_of(ctx: &GoCtx, f: &Js, args: &[Js]) -> Option<u32> {
    let Js::Obj(fid) = f else { return None };
    let Some(Kind::Builtin(Builtin::FsWrite | Builtin::FsFsync | Builtin::FsEnosys)) =
        ctx.obj(*fid).map(|o| &o.kind)
    else {
        return None;
    };
    match args.last()? {
        Js::Obj(id) => match ctx.obj(*id)?.kind {
            Kind::GoFunc(func) => Some(func),
            _ => None,
        },
        _ => None,
    }
}

/// The arguments an `fs` builtin completes with: `(null, n)` after a write, `(null)` after a
/// fsync, `(ENOSYS)` otherwise.
fn completion_args(ctx: &mut GoCtx, f: &Js, args: &[Js]) -> Vec<Js> {
    let Js::Obj(fid) = f else { return vec![] };
    match ctx.obj(*fid).map(|o| o.kind.clone()) {
        Some(Kind::Builtin(Builtin::FsWrite)) => {
            let n = match args.get(3) {
                Some(Js::Num(n)) => *n,
                _ => 0.0,
            };
            vec![Js::Null, Js::Num(n)]
        }
        Some(Kind::Builtin(Builtin::FsFsync)) => vec![Js::Null],
        _ => vec![ctx.enosys().unwrap_or(Js::Null)],
    }
}

/// A builtin's synchronous part: `Ok(value)` or `Err(thrown)`.
fn builtin(
    ctx: &mut GoCtx,
    b: Builtin,
    args: &[Js],
    construct: bool,
) -> Result<Result<Js, Js>, Error> {
    let num = |i: usize| match args.get(i) {
        Some(Js::Num(n)) => *n,
        _ => 0.0,
    };
    Ok(match (b, construct) {
        (Builtin::ObjectCtor, _) => Ok(Js::Obj(ctx.alloc(Kind::Plain)?)),
        (Builtin::ArrayCtor, _) => {
            let items = match args {
                [Js::Num(n)] if *n >= 0.0 && n.fract() == 0.0 => {
                    let n = *n as u64;
                    ctx.reserve(n.saturating_mul(16))?;
                    vec![Js::Undefined; usize::try_from(n).unwrap_or(usize::MAX)]
                }
                other => other.to_vec(),
            };
            Ok(Js::Obj(ctx.alloc(Kind::Array(items))?))
        }
        (Builtin::Uint8ArrayCtor, true) => {
            let bytes = match args.first() {
                Some(Js::Num(n)) if *n >= 0.0 && n.fract() == 0.0 && *n <= 9e15 => {
                    let n = *n as u64;
                    ctx.reserve(n)?;
                    vec![0; usize::try_from(n).unwrap_or(usize::MAX)]
                }
                Some(Js::Obj(id)) => match ctx.obj(*id).map(|o| &o.kind) {
                    Some(Kind::Bytes(b)) => b.clone(),
                    Some(Kind::Array(items)) => items.iter().map(to_byte).collect(),
                    _ => Vec::new(),
                },
                None | Some(Js::Undefined) => Vec::new(),
                _ => {
                    return Ok(Err(ctx.error_obj(
                        "RangeError",
                        "invalid typed array length",
                        None,
                    )?));
                }
            };
            Ok(Js::Obj(ctx.alloc(Kind::Bytes(bytes))?))
        }
        (Builtin::DateCtor, true) => {
            let id = ctx.alloc(Kind::Plain)?;
            let tz = ctx.alloc(Kind::Builtin(Builtin::Zero))?;
            ctx.set_prop(id, "getTimezoneOffset", Js::Obj(tz));
            let now = ctx.alloc(Kind::Builtin(Builtin::Now))?;
            ctx.set_prop(id, "getTime", Js::Obj(now));
            Ok(Js::Obj(id))
        }
        (Builtin::MakeFuncWrapper, false) => {
            let id = num(0);
            if !(0.0..=f64::from(u32::MAX)).contains(&id) {
                return Ok(Err(ctx.error_obj("TypeError", "bad function id", None)?));
            }
            Ok(Js::Obj(ctx.alloc(Kind::GoFunc(id as u32))?))
        }
        (Builtin::FsWrite, false) => {
            let fd = num(0) as i64;
            let bytes = match args.get(1) {
                Some(Js::Obj(id)) => match ctx.obj(*id).map(|o| &o.kind) {
                    Some(Kind::Bytes(b)) => Some(b.clone()),
                    _ => None,
                },
                _ => None,
            };
            let (offset, length) = (num(2), num(3));
            let positioned = !matches!(args.get(4), Some(Js::Null) | Some(Js::Undefined) | None);
            match bytes {
                Some(b)
                    if (fd == 1 || fd == 2)
                        && offset == 0.0
                        && length == b.len() as f64
                        && !positioned =>
                {
                    ctx.write_output(fd, &b)?;
                    Ok(Js::Undefined)
                }
                _ => Err(ctx.enosys()?),
            }
        }
        (Builtin::FsFsync, false) => Ok(Js::Undefined),
        (Builtin::FsEnosys | Builtin::ThrowEnosys, false) => Err(ctx.enosys()?),
        (Builtin::MinusOne, false) => Ok(Js::Num(-1.0)),
        (Builtin::Zero, false) => Ok(Js::Num(0.0)),
        (Builtin::Now, false) => {
            let now = web_time::SystemTime::now()
                .duration_since(web_time::SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            Ok(Js::Num(now.as_millis() as f64))
        }
        (Builtin::Console, false) => {
            let line = args
                .iter()
                .map(|a| ctx.to_string(a, 0))
                .collect::<Vec<_>>()
                .join(" ");
            ctx.write_output(2, format!("{line}\n").as_bytes())?;
            Ok(Js::Undefined)
        }
        (_, true) => Err(ctx.error_obj("TypeError", "not a constructor", None)?),
        (_, false) => Err(ctx.error_obj("TypeError", "not a function", None)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_with(name: &str, value: GoValue) -> GoCtx {
        let config = GoConfig {
            globals: [(name.to_owned(), value)].into_iter().collect(),
            ..GoConfig::default()
        };
        GoCtx::new(&config, 1 << 20, 1 << 20, 1000).expect("ctx")
    }

    #[test]
    fn granted_data_is_copied_into_the_global_object() {
        let value = GoValue::Object(
            [
                ("name".to_owned(), GoValue::String("box".into())),
                ("size".to_owned(), GoValue::Number(3.0)),
            ]
            .into_iter()
            .collect(),
        );
        let ctx = ctx_with("config", value.clone());
        let config = ctx.get(&Js::Obj(ctx.global), "config");
        assert_eq!(ctx.get(&config, "size"), Js::Num(3.0));
        assert_eq!(ctx.export_value(&config).expect("copy"), value);
    }
}
