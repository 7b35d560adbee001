//! The instrumentation pass: a guest rewritten so that it meters itself.
//!
//! [`instrument`] re-encodes the module with wasm-encoder's `reencode` (every index, type and
//! section goes through wasm-encoder, nothing is hand-encoded) and adds:
//!
//! - two imports from [`IMPORT_MODULE`], appended after the guest's own function imports:
//!   [`OUT_OF_FUEL_IMPORT`] and [`STACK_OVERFLOW_IMPORT`], both `() -> ()`. Every defined
//!   function's index moves up by two, everywhere it is named: calls, `ref.func`, element
//!   segments, exports, the start function, the name section;
//! - two mutable globals, appended after the guest's own, exported as [`FUEL_EXPORT`] (i64,
//!   the fuel left, initially [`InstrumentConfig::start_fuel`]) and [`DEPTH_EXPORT`] (i32,
//!   the guest frames live now);
//! - one function, appended last: the refuel path, which calls `out_of_fuel` and traps
//!   (`unreachable`) if the host returned without making the fuel non-negative;
//! - in every function: at its entry, `depth += 1` and, past
//!   [`InstrumentConfig::max_call_depth`], a call of `stack_overflow` followed by
//!   `unreachable`; `depth -= 1` before every `return`, `return_call*` and at its end (a branch
//!   to the function's own label is turned into one to a block around the body, so it passes
//!   the decrement too); at the start of every basic block, `fuel -= its static cost`; at a
//!   function's entry, a loop's header and before every bulk operator (after `fuel -=` its
//!   dynamic cost), when the fuel is negative, the refuel path (see [`cost`](super::cost) for
//!   the model and where blocks start). The counter is a local of each function between calls,
//!   written back to the global before every call, bulk operator and exit, and read again after
//!   every call; every injected `if` is hinted unlikely (`metadata.code.branch_hint`);
//! - memory and table maxima clamped to the limits (set when absent).
//!
//! The host's side of the contract: it sets `nestbox_fuel` before each call (and reads it
//! after); `out_of_fuel` either adds fuel until `nestbox_fuel >= 0` and returns (the guest
//! carries on where it was, so it can suspend there first), or traps to end the call;
//! `stack_overflow` traps (it is followed by `unreachable` in case it returns). The start
//! function runs before the host can reach the export, so it has exactly `start_fuel` and the
//! host's `out_of_fuel` must trap if called during instantiation. Every other import is left as
//! it is: the host routes it through the capability table as in the interpreter tier.
//!
//! Custom sections other than `name` are dropped (code offsets change, so debug information
//! would be wrong); label names are dropped (the pass adds labels).

use std::collections::BTreeMap;
use std::convert::Infallible;

use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{
    BlockType, BranchHint, BranchHints, CodeSection, ConstExpr, EntityType, ExportKind,
    ExportSection, Function, FunctionSection, GlobalSection, GlobalType, ImportSection,
    Instruction, NameSection, TypeSection, ValType,
};
use wasmparser::{
    CompositeInnerType, FunctionBody, KnownCustom, Name, Parser, Payload, TypeRef, Validator,
    WasmFeatures,
};

use super::cost::{self, Dynamic, Flow};
use crate::error::{Error, ErrorCode};
use crate::limits::Limits;

/// The import namespace of the injected functions. A guest that imports anything from it
/// itself is refused (`IMPORT_NOT_GRANTED`): nothing can grant those names.
pub const IMPORT_MODULE: &str = "nestbox";
/// The injected import called when the fuel is negative: `nestbox.out_of_fuel: () -> ()`.
pub const OUT_OF_FUEL_IMPORT: &str = "out_of_fuel";
/// The injected import called past the call-depth limit: `nestbox.stack_overflow: () -> ()`.
pub const STACK_OVERFLOW_IMPORT: &str = "stack_overflow";
/// The export of the fuel counter (mutable i64). A guest exporting this name is refused.
pub const FUEL_EXPORT: &str = "nestbox_fuel";
/// The export of the call-depth counter (mutable i32). A guest exporting this name is refused.
pub const DEPTH_EXPORT: &str = "nestbox_depth";

/// The largest function body the JS API lets an engine compile (WebAssembly JS API, "Limits":
/// 7,654,321 bytes). An instrumented body over it is refused here instead of at compile time.
pub const MAX_INSTRUMENTED_BODY_BYTES: usize = 7_654_321;

/// The most locals a function may have under the JS API limits (parameters included); the
/// pass adds one scratch local to functions with bulk operators.
const MAX_LOCALS: u64 = 50_000;

/// What the pass enforces, baked into the instrumented module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstrumentConfig {
    /// Most guest frames live at once; one more is `stack_overflow`. 1 to 1,000,000.
    pub max_call_depth: u32,
    /// Largest linear memory, in bytes: every memory's maximum is clamped to it (in whole
    /// 64 KiB pages), and a memory whose minimum is over it is refused (`MEMORY_LIMIT`).
    pub max_memory_bytes: u64,
    /// Largest table, in elements: every table's maximum is clamped to it, and a table whose
    /// minimum is over it is refused (`TABLE_LIMIT`).
    pub max_table_elements: u64,
    /// The initial value of `nestbox_fuel`: the start function's whole budget (it runs
    /// during instantiation, before the host can refill). At most `i64::MAX`.
    pub start_fuel: u64,
}

impl InstrumentConfig {
    /// The configuration that enforces `limits` as the interpreter tier does: its recursion
    /// depth, memory and table limits, and its per-call fuel for the start function.
    pub fn from_limits(limits: &Limits) -> Self {
        Self {
            max_call_depth: limits.max_recursion_depth,
            max_memory_bytes: limits.max_memory_bytes,
            max_table_elements: limits.max_table_elements,
            start_fuel: limits.fuel.min(i64::MAX as u64),
        }
    }

    /// Rejects a configuration that cannot work.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` naming the bad field.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_call_depth == 0 || self.max_call_depth > 1_000_000 {
            return Err(Error::invalid_argument(
                "maxCallDepth must be between 1 and 1000000",
            ));
        }
        if self.start_fuel > i64::MAX as u64 {
            return Err(Error::invalid_argument("startFuel must be <= 2^63 - 1"));
        }
        Ok(())
    }
}

impl Default for InstrumentConfig {
    fn default() -> Self {
        Self::from_limits(&Limits::default())
    }
}

/// An instrumented module and where the pass put its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instrumented {
    /// The instrumented module's bytes.
    pub bytes: Vec<u8>,
    /// Function index of the injected `nestbox.out_of_fuel` import.
    pub out_of_fuel_function: u32,
    /// Function index of the injected `nestbox.stack_overflow` import.
    pub stack_overflow_function: u32,
    /// Function index of the injected refuel path (the last function).
    pub refuel_function: u32,
    /// Global index of the fuel counter (exported as [`FUEL_EXPORT`]).
    pub fuel_global: u32,
    /// Global index of the call-depth counter (exported as [`DEPTH_EXPORT`]).
    pub depth_global: u32,
    /// How many function imports the guest declared itself (their indices did not move;
    /// every defined function's index is its original one plus 2).
    pub guest_function_imports: u32,
}

/// How many function imports the pass injects (before the guest's defined functions).
const INJECTED_IMPORTS: u32 = 2;

/// The WebAssembly the pass understands, which is what the interpreter tier's wasmi accepts
/// (its default feature set, without SIMD, memory64, custom page sizes or wide arithmetic).
/// Everything outside it is refused by the validator before the pass reads a function.
fn features() -> WasmFeatures {
    WasmFeatures::MUTABLE_GLOBAL
        | WasmFeatures::MULTI_VALUE
        | WasmFeatures::MULTI_MEMORY
        | WasmFeatures::SATURATING_FLOAT_TO_INT
        | WasmFeatures::SIGN_EXTENSION
        | WasmFeatures::BULK_MEMORY
        | WasmFeatures::REFERENCE_TYPES
        | WasmFeatures::GC_TYPES
        | WasmFeatures::TAIL_CALL
        | WasmFeatures::EXTENDED_CONST
        | WasmFeatures::FLOATS
}

fn invalid(message: impl core::fmt::Display) -> Error {
    Error::new(
        ErrorCode::InvalidModule,
        format!("invalid module: {message}"),
    )
}

fn reencode_error(e: reencode::Error<Infallible>) -> Error {
    invalid(format!("cannot re-encode: {e}"))
}

/// Rewrites `bytes` so that it meters its own fuel and call depth and cannot grow past the
/// memory and table limits (see the [module docs](self)).
///
/// Precondition: `bytes` already passed the core's checks (size cap, digest, trust policy,
/// module shape) and wasmi's validation; the pass is not a substitute for them. It still
/// validates the module itself against the feature set it meters (which also bounds its own
/// work by the module's size), and never panics: any input it cannot handle is an error.
///
/// # Errors
///
/// - `INVALID_ARGUMENT`: `config` cannot work ([`InstrumentConfig::validate`]).
/// - `INVALID_MODULE`: not valid WebAssembly of the supported features, a 64-bit, shared or
///   custom-page-size memory or table, an export named [`FUEL_EXPORT`] or [`DEPTH_EXPORT`],
///   or an instrumented body over [`MAX_INSTRUMENTED_BODY_BYTES`].
/// - `IMPORT_NOT_GRANTED`: the guest imports from [`IMPORT_MODULE`] itself (`details.imports`).
/// - `MEMORY_LIMIT` / `TABLE_LIMIT`: a memory's or table's minimum is over the limit.
pub fn instrument(bytes: &[u8], config: &InstrumentConfig) -> Result<Instrumented, Error> {
    config.validate()?;
    Validator::new_with_features(features())
        .validate_all(bytes)
        .map_err(invalid)?;
    let info = Info::scan(bytes, config)?;
    Emitter::new(&info, config).run(bytes)
}

/// One function type's parameter count and results.
struct FuncSig {
    params: u32,
    results: Vec<wasmparser::ValType>,
}

/// What the emitter must know before it writes the first section.
struct Info {
    types: Vec<FuncSig>,
    /// The type index of every function, imports first.
    func_types: Vec<u32>,
    imported_functions: u32,
    imported_globals: u32,
    defined_globals: u32,
    defined_functions: u32,
}

impl Info {
    fn scan(bytes: &[u8], config: &InstrumentConfig) -> Result<Self, Error> {
        let mut info = Info {
            types: Vec::new(),
            func_types: Vec::new(),
            imported_functions: 0,
            imported_globals: 0,
            defined_globals: 0,
            defined_functions: 0,
        };
        let mut reserved = Vec::new();
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.map_err(invalid)? {
                Payload::TypeSection(reader) => {
                    for group in reader {
                        for sub in group.map_err(invalid)?.into_types() {
                            let CompositeInnerType::Func(f) = &sub.composite_type.inner else {
                                return Err(invalid("a type that is not a function type"));
                            };
                            info.types.push(FuncSig {
                                params: u32::try_from(f.params().len())
                                    .map_err(|_| invalid("too many parameters"))?,
                                results: f.results().to_vec(),
                            });
                        }
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader {
                        let import = import.map_err(invalid)?;
                        if import.module == IMPORT_MODULE {
                            reserved.push(format!("{}.{}", import.module, import.name));
                        }
                        match import.ty {
                            TypeRef::Func(ty) => {
                                info.func_types.push(ty);
                                info.imported_functions += 1;
                            }
                            TypeRef::Global(_) => info.imported_globals += 1,
                            TypeRef::Memory(m) => check_memory(&m, config)?,
                            TypeRef::Table(t) => check_table(&t, config)?,
                            TypeRef::Tag(_) => return Err(invalid("a tag import")),
                        }
                    }
                }
                Payload::FunctionSection(reader) => {
                    for ty in reader {
                        info.func_types.push(ty.map_err(invalid)?);
                        info.defined_functions += 1;
                    }
                }
                Payload::MemorySection(reader) => {
                    for memory in reader {
                        check_memory(&memory.map_err(invalid)?, config)?;
                    }
                }
                Payload::TableSection(reader) => {
                    for table in reader {
                        check_table(&table.map_err(invalid)?.ty, config)?;
                    }
                }
                Payload::GlobalSection(reader) => info.defined_globals = reader.count(),
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let export = export.map_err(invalid)?;
                        if export.name == FUEL_EXPORT || export.name == DEPTH_EXPORT {
                            return Err(invalid(format!(
                                "the export name {:?} is reserved for the native tier",
                                export.name
                            )));
                        }
                    }
                }
                _ => {}
            }
        }
        if !reserved.is_empty() {
            return Err(Error::new(
                ErrorCode::ImportNotGranted,
                format!(
                    "imports in the namespace {IMPORT_MODULE:?}, reserved for the native tier: {}",
                    reserved.join(", ")
                ),
            )
            .with(|d| d.imports = reserved));
        }
        Ok(info)
    }

    fn sig_of_function(&self, index: u32) -> Result<&FuncSig, Error> {
        self.func_types
            .get(index as usize)
            .and_then(|ty| self.types.get(*ty as usize))
            .ok_or_else(|| invalid(format!("function {index} has no type")))
    }
}

const PAGE_BYTES: u64 = 65_536;

fn memory_limit_pages(config: &InstrumentConfig) -> u64 {
    (config.max_memory_bytes / PAGE_BYTES).min(65_536)
}

fn table_limit_elements(config: &InstrumentConfig) -> u64 {
    config.max_table_elements.min(u64::from(u32::MAX))
}

fn check_memory(m: &wasmparser::MemoryType, config: &InstrumentConfig) -> Result<(), Error> {
    if m.memory64 || m.shared || m.page_size_log2.is_some() {
        return Err(invalid(
            "64-bit, shared and custom-page-size memories are not supported",
        ));
    }
    let limit = memory_limit_pages(config);
    if m.initial > limit {
        return Err(Error::new(
            ErrorCode::MemoryLimit,
            format!(
                "instantiation: linear memory over the limit of {} bytes ({} pages declared)",
                config.max_memory_bytes, m.initial
            ),
        )
        .with(|d| d.limit = Some(config.max_memory_bytes)));
    }
    Ok(())
}

fn check_table(t: &wasmparser::TableType, config: &InstrumentConfig) -> Result<(), Error> {
    if t.table64 || t.shared {
        return Err(invalid("64-bit and shared tables are not supported"));
    }
    let limit = table_limit_elements(config);
    if t.initial > limit {
        return Err(Error::new(
            ErrorCode::TableLimit,
            format!(
                "instantiation: table over the limit of {} elements ({} declared)",
                config.max_table_elements, t.initial
            ),
        )
        .with(|d| d.limit = Some(config.max_table_elements)));
    }
    Ok(())
}

/// The index mapping and clamping, applied by wasm-encoder's re-encoder wherever an index or
/// a limit occurs.
struct Shift {
    imported_functions: u32,
    memory_pages: u64,
    table_elements: u64,
}

impl Reencode for Shift {
    type Error = Infallible;

    fn function_index(&mut self, func: u32) -> u32 {
        if func < self.imported_functions {
            func
        } else {
            // Validated: `func` < the function count (at most a few million).
            func.saturating_add(INJECTED_IMPORTS)
        }
    }

    fn memory_type(&mut self, m: wasmparser::MemoryType) -> wasm_encoder::MemoryType {
        let limit = self.memory_pages;
        wasm_encoder::MemoryType {
            minimum: m.initial,
            maximum: Some(m.maximum.map_or(limit, |max| max.min(limit))),
            memory64: m.memory64,
            shared: m.shared,
            page_size_log2: m.page_size_log2,
        }
    }

    fn table_type(
        &mut self,
        t: wasmparser::TableType,
    ) -> Result<wasm_encoder::TableType, reencode::Error<Infallible>> {
        let limit = self.table_elements;
        Ok(wasm_encoder::TableType {
            element_type: self.ref_type(t.element_type)?,
            table64: t.table64,
            minimum: t.initial,
            maximum: Some(t.maximum.map_or(limit, |max| max.min(limit))),
            shared: t.shared,
        })
    }

    fn parse_custom_name_subsection(
        &mut self,
        names: &mut NameSection,
        section: Name<'_>,
    ) -> Result<(), reencode::Error<Infallible>> {
        match section {
            // The pass adds labels, so label indices no longer match.
            Name::Label(_) => Ok(()),
            other => reencode::utils::parse_custom_name_subsection(self, names, other),
        }
    }
}

/// The sections the pass adds to or creates, in the binary format's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Order {
    Type = 1,
    Import = 2,
    Function = 3,
    Table = 4,
    Memory = 5,
    Global = 6,
    Export = 7,
    Start = 8,
    Element = 9,
    DataCount = 10,
    Code = 11,
    Data = 12,
    End = 13,
}

struct Emitter<'i> {
    info: &'i Info,
    config: &'i InstrumentConfig,
    shift: Shift,
    module: wasm_encoder::Module,
    /// Sections the pass must still write (appended to the guest's, or on their own).
    pending: Vec<Order>,
    /// The type `() -> ()` of the injected functions.
    unit_type: u32,
    /// A type `() -> results` for every multi-value result list (the body-wrapping block).
    result_types: BTreeMap<Vec<wasmparser::ValType>, u32>,
    out_of_fuel: u32,
    stack_overflow: u32,
    refuel: u32,
    fuel_global: u32,
    depth_global: u32,
    /// The code section while its entries are read.
    code: Option<CodeSection>,
    /// The index (original numbering) of the next defined function body.
    next_body: u32,
    names: Option<NameSection>,
    /// Every injected `if` as unlikely (`metadata.code.branch_hint`), written just before the
    /// code section: an engine then keeps the refuel and overflow paths out of line. Without
    /// it V8 spills a loop's values around the refuel call on every iteration (2.7x slower).
    hints: BranchHints,
}

impl<'i> Emitter<'i> {
    fn new(info: &'i Info, config: &'i InstrumentConfig) -> Self {
        let type_count = info.types.len() as u32;
        let mut result_types = BTreeMap::new();
        for ty in info
            .func_types
            .iter()
            .skip(info.imported_functions as usize)
        {
            if let Some(sig) = info.types.get(*ty as usize) {
                if sig.results.len() > 1 {
                    result_types.insert(sig.results.clone(), 0);
                }
            }
        }
        // Numbered in the order `add_types` writes them: the map's (sorted), not the order
        // they were found in.
        for (i, index) in result_types.values_mut().enumerate() {
            *index = type_count + 1 + i as u32;
        }
        let total_functions = info.imported_functions + info.defined_functions;
        let globals = info.imported_globals + info.defined_globals;
        Self {
            info,
            config,
            shift: Shift {
                imported_functions: info.imported_functions,
                memory_pages: memory_limit_pages(config),
                table_elements: table_limit_elements(config),
            },
            module: wasm_encoder::Module::new(),
            pending: vec![
                Order::Type,
                Order::Import,
                Order::Function,
                Order::Global,
                Order::Export,
                Order::Code,
            ],
            unit_type: type_count,
            result_types,
            out_of_fuel: info.imported_functions,
            stack_overflow: info.imported_functions + 1,
            refuel: total_functions + INJECTED_IMPORTS,
            fuel_global: globals,
            depth_global: globals + 1,
            code: None,
            next_body: info.imported_functions,
            names: None,
            hints: BranchHints::new(),
        }
    }

    fn run(mut self, bytes: &[u8]) -> Result<Instrumented, Error> {
        for payload in Parser::new(0).parse_all(bytes) {
            let payload = payload.map_err(invalid)?;
            if !matches!(payload, Payload::CodeSectionEntry(_)) {
                self.close_code();
            }
            match payload {
                Payload::Version { .. } => {}
                Payload::TypeSection(reader) => {
                    self.flush_before(Order::Type);
                    let mut types = TypeSection::new();
                    reencode::utils::parse_type_section(&mut self.shift, &mut types, reader)
                        .map_err(reencode_error)?;
                    self.add_types(&mut types)?;
                    self.module.section(&types);
                }
                Payload::ImportSection(reader) => {
                    self.flush_before(Order::Import);
                    let mut imports = ImportSection::new();
                    reencode::utils::parse_import_section(&mut self.shift, &mut imports, reader)
                        .map_err(reencode_error)?;
                    self.add_imports(&mut imports);
                    self.module.section(&imports);
                }
                Payload::FunctionSection(reader) => {
                    self.flush_before(Order::Function);
                    let mut functions = FunctionSection::new();
                    reencode::utils::parse_function_section(
                        &mut self.shift,
                        &mut functions,
                        reader,
                    )
                    .map_err(reencode_error)?;
                    self.add_functions(&mut functions);
                    self.module.section(&functions);
                }
                Payload::TableSection(reader) => {
                    self.flush_before(Order::Table);
                    let mut tables = wasm_encoder::TableSection::new();
                    reencode::utils::parse_table_section(&mut self.shift, &mut tables, reader)
                        .map_err(reencode_error)?;
                    self.module.section(&tables);
                }
                Payload::MemorySection(reader) => {
                    self.flush_before(Order::Memory);
                    let mut memories = wasm_encoder::MemorySection::new();
                    reencode::utils::parse_memory_section(&mut self.shift, &mut memories, reader)
                        .map_err(reencode_error)?;
                    self.module.section(&memories);
                }
                Payload::GlobalSection(reader) => {
                    self.flush_before(Order::Global);
                    let mut globals = GlobalSection::new();
                    reencode::utils::parse_global_section(&mut self.shift, &mut globals, reader)
                        .map_err(reencode_error)?;
                    self.add_globals(&mut globals);
                    self.module.section(&globals);
                }
                Payload::ExportSection(reader) => {
                    self.flush_before(Order::Export);
                    let mut exports = ExportSection::new();
                    reencode::utils::parse_export_section(&mut self.shift, &mut exports, reader)
                        .map_err(reencode_error)?;
                    self.add_exports(&mut exports);
                    self.module.section(&exports);
                }
                Payload::StartSection { func, .. } => {
                    self.flush_before(Order::Start);
                    let function_index = self.shift.start_section(func);
                    self.module
                        .section(&wasm_encoder::StartSection { function_index });
                }
                Payload::ElementSection(reader) => {
                    self.flush_before(Order::Element);
                    let mut elements = wasm_encoder::ElementSection::new();
                    reencode::utils::parse_element_section(&mut self.shift, &mut elements, reader)
                        .map_err(reencode_error)?;
                    self.module.section(&elements);
                }
                Payload::DataCountSection { count, .. } => {
                    self.flush_before(Order::DataCount);
                    self.module
                        .section(&wasm_encoder::DataCountSection { count });
                }
                Payload::CodeSectionStart { .. } => {
                    self.flush_before(Order::Code);
                    self.pending.retain(|o| *o != Order::Code);
                    self.code = Some(CodeSection::new());
                }
                Payload::CodeSectionEntry(body) => {
                    let function = self.instrument_body(&body)?;
                    let Some(code) = self.code.as_mut() else {
                        return Err(invalid("a function body outside the code section"));
                    };
                    code.function(&function);
                }
                Payload::DataSection(reader) => {
                    self.flush_before(Order::Data);
                    let mut data = wasm_encoder::DataSection::new();
                    reencode::utils::parse_data_section(&mut self.shift, &mut data, reader)
                        .map_err(reencode_error)?;
                    self.module.section(&data);
                }
                Payload::CustomSection(section) => {
                    if let KnownCustom::Name(reader) = section.as_known() {
                        // A malformed name section is ignored, as engines do.
                        self.names =
                            reencode::utils::custom_name_section(&mut self.shift, reader).ok();
                    }
                }
                Payload::End(_) => self.flush_before(Order::End),
                other => {
                    return Err(invalid(format!(
                        "a section the native tier does not support ({:?})",
                        other.as_section().map(|(id, _)| id)
                    )));
                }
            }
        }
        if !self.pending.is_empty() {
            return Err(invalid("the module ended early"));
        }
        if let Some(names) = &self.names {
            self.module.section(names);
        }
        let bytes = self.module.finish();
        Ok(Instrumented {
            bytes,
            out_of_fuel_function: self.out_of_fuel,
            stack_overflow_function: self.stack_overflow,
            refuel_function: self.refuel,
            fuel_global: self.fuel_global,
            depth_global: self.depth_global,
            guest_function_imports: self.info.imported_functions,
        })
    }

    /// Writes, on their own, the sections the pass needs that come before `next` and that the
    /// guest did not have.
    fn flush_before(&mut self, next: Order) {
        while let Some(&order) = self.pending.first() {
            if order >= next {
                break;
            }
            self.pending.remove(0);
            match order {
                Order::Type => {
                    let mut types = TypeSection::new();
                    // No guest types: no multi-value results either, so this cannot fail.
                    let _ = self.add_types(&mut types);
                    self.module.section(&types);
                }
                Order::Import => {
                    let mut imports = ImportSection::new();
                    self.add_imports(&mut imports);
                    self.module.section(&imports);
                }
                Order::Function => {
                    let mut functions = FunctionSection::new();
                    self.add_functions(&mut functions);
                    self.module.section(&functions);
                }
                Order::Global => {
                    let mut globals = GlobalSection::new();
                    self.add_globals(&mut globals);
                    self.module.section(&globals);
                }
                Order::Export => {
                    let mut exports = ExportSection::new();
                    self.add_exports(&mut exports);
                    self.module.section(&exports);
                }
                Order::Code => {
                    let mut code = CodeSection::new();
                    code.function(&self.refuel_body());
                    self.module.section(&code);
                }
                _ => {}
            }
        }
    }

    fn close_code(&mut self) {
        if let Some(mut code) = self.code.take() {
            code.function(&self.refuel_body());
            if !self.hints.is_empty() {
                self.module.section(&self.hints);
            }
            self.module.section(&code);
        }
    }

    fn add_types(&mut self, types: &mut TypeSection) -> Result<(), Error> {
        self.pending.retain(|o| *o != Order::Type);
        types.ty().function([], []);
        for results in self.result_types.keys() {
            let mut encoded = Vec::with_capacity(results.len());
            for r in results {
                encoded.push(self.shift.val_type(*r).map_err(reencode_error)?);
            }
            types.ty().function([], encoded);
        }
        Ok(())
    }

    fn add_imports(&mut self, imports: &mut ImportSection) {
        self.pending.retain(|o| *o != Order::Import);
        let unit = EntityType::Function(self.unit_type);
        imports.import(IMPORT_MODULE, OUT_OF_FUEL_IMPORT, unit);
        imports.import(IMPORT_MODULE, STACK_OVERFLOW_IMPORT, unit);
    }

    fn add_functions(&mut self, functions: &mut FunctionSection) {
        self.pending.retain(|o| *o != Order::Function);
        functions.function(self.unit_type);
    }

    fn add_globals(&mut self, globals: &mut GlobalSection) {
        self.pending.retain(|o| *o != Order::Global);
        let start_fuel = i64::try_from(self.config.start_fuel).unwrap_or(i64::MAX);
        globals.global(
            GlobalType {
                val_type: ValType::I64,
                mutable: true,
                shared: false,
            },
            &ConstExpr::i64_const(start_fuel),
        );
        globals.global(
            GlobalType {
                val_type: ValType::I32,
                mutable: true,
                shared: false,
            },
            &ConstExpr::i32_const(0),
        );
    }

    fn add_exports(&mut self, exports: &mut ExportSection) {
        self.pending.retain(|o| *o != Order::Export);
        exports.export(FUEL_EXPORT, ExportKind::Global, self.fuel_global);
        exports.export(DEPTH_EXPORT, ExportKind::Global, self.depth_global);
    }

    /// `call out_of_fuel; if fuel < 0 { unreachable }`.
    fn refuel_body(&self) -> Function {
        let mut f = Function::new([]);
        f.instruction(&Instruction::Call(self.out_of_fuel));
        self.fuel_is_negative(&mut f);
        f.instruction(&Instruction::If(BlockType::Empty));
        f.instruction(&Instruction::Unreachable);
        f.instruction(&Instruction::End);
        f.instruction(&Instruction::End);
        f
    }

    fn fuel_is_negative(&self, f: &mut Function) {
        f.instruction(&Instruction::GlobalGet(self.fuel_global));
        f.instruction(&Instruction::I64Const(0));
        f.instruction(&Instruction::I64LtS);
    }

    /// `if` (empty block type) hinted as not taken.
    fn unlikely_if(f: &mut Function, hints: &mut Vec<BranchHint>) {
        hints.push(BranchHint {
            branch_func_offset: f.byte_len() as u32,
            branch_hint_value: 0,
        });
        f.instruction(&Instruction::If(BlockType::Empty));
    }

    /// `global fuel = local fuel`: before every call and exit, so the host (and the callee)
    /// always sees the exact fuel left.
    fn flush(&self, f: &mut Function, fuel: u32) {
        f.instruction(&Instruction::LocalGet(fuel));
        f.instruction(&Instruction::GlobalSet(self.fuel_global));
    }

    /// `local fuel = global fuel`: at the entry and after every call returns.
    fn reload(&self, f: &mut Function, fuel: u32) {
        f.instruction(&Instruction::GlobalGet(self.fuel_global));
        f.instruction(&Instruction::LocalSet(fuel));
    }

    /// `fuel -= cost`, then, where `check`, `if fuel < 0 { refuel() }`.
    ///
    /// Only a function's entry and a loop's header check (and bulk operators, before they
    /// run): every endless path passes one of them, and between two of them a function runs
    /// each of its blocks at most once, so the fuel can go below zero by at most one function's
    /// straight-line cost before a check refuels or ends the call. The host sees that
    /// overdraft as fuel consumed (and `FUEL_EXHAUSTED` past the budget).
    fn charge(
        &self,
        f: &mut Function,
        cost: u64,
        check: bool,
        fuel: u32,
        hints: &mut Vec<BranchHint>,
    ) {
        if cost == 0 && !check {
            return;
        }
        f.instruction(&Instruction::LocalGet(fuel));
        if cost > 0 {
            f.instruction(&Instruction::I64Const(
                i64::try_from(cost).unwrap_or(i64::MAX),
            ));
            f.instruction(&Instruction::I64Sub);
        }
        if check {
            f.instruction(&Instruction::LocalTee(fuel));
            self.refuel_if_negative(f, fuel, hints);
        } else {
            f.instruction(&Instruction::LocalSet(fuel));
        }
    }

    /// With the new fuel on the stack: `if fuel < 0 { flush; refuel(); reload }`.
    fn refuel_if_negative(&self, f: &mut Function, fuel: u32, hints: &mut Vec<BranchHint>) {
        f.instruction(&Instruction::I64Const(0));
        f.instruction(&Instruction::I64LtS);
        Self::unlikely_if(f, hints);
        self.flush(f, fuel);
        f.instruction(&Instruction::Call(self.refuel));
        self.reload(f, fuel);
        f.instruction(&Instruction::End);
    }

    /// With the length (i32) on top of the stack, left there: `fuel -= dynamic(len)`.
    fn charge_dynamic(
        &self,
        f: &mut Function,
        dynamic: Dynamic,
        scratch: u32,
        fuel: u32,
        hints: &mut Vec<BranchHint>,
    ) {
        let (left, shift) = dynamic.shift();
        f.instruction(&Instruction::LocalTee(scratch));
        f.instruction(&Instruction::LocalGet(fuel));
        if dynamic == Dynamic::Pages {
            // `min(pages, limit)`: a growth past the limit fails (-1) as in the interpreter,
            // charged for at most the pages the limit allows rather than all it asked for.
            let cap = i64::try_from(memory_limit_pages(self.config)).unwrap_or(i64::MAX);
            f.instruction(&Instruction::I64Const(cap));
            f.instruction(&Instruction::LocalGet(scratch));
            f.instruction(&Instruction::I64ExtendI32U);
            f.instruction(&Instruction::LocalGet(scratch));
            f.instruction(&Instruction::I64ExtendI32U);
            f.instruction(&Instruction::I64Const(cap));
            f.instruction(&Instruction::I64GtU);
            f.instruction(&Instruction::Select);
        } else {
            f.instruction(&Instruction::LocalGet(scratch));
            f.instruction(&Instruction::I64ExtendI32U);
        }
        f.instruction(&Instruction::I64Const(shift));
        f.instruction(&if left {
            Instruction::I64Shl
        } else {
            Instruction::I64ShrU
        });
        f.instruction(&Instruction::I64Sub);
        f.instruction(&Instruction::LocalTee(fuel));
        self.refuel_if_negative(f, fuel, hints);
    }

    /// `depth` (a local) = the call depth at the entry; the global counts this frame too.
    fn depth_enter(&self, f: &mut Function, depth: u32) {
        f.instruction(&Instruction::GlobalGet(self.depth_global));
        f.instruction(&Instruction::LocalTee(depth));
        f.instruction(&Instruction::I32Const(1));
        f.instruction(&Instruction::I32Add);
        f.instruction(&Instruction::GlobalSet(self.depth_global));
    }

    /// Leaving the frame: the global back to its value at the entry (every callee restores
    /// it before returning, so it is the entry's value minus nothing).
    fn depth_leave(&self, f: &mut Function, depth: u32) {
        f.instruction(&Instruction::LocalGet(depth));
        f.instruction(&Instruction::GlobalSet(self.depth_global));
    }

    fn instrument_body(&mut self, body: &FunctionBody<'_>) -> Result<Function, Error> {
        let index = self.next_body;
        self.next_body += 1;
        let sig = self.info.sig_of_function(index)?;
        let mut locals = Vec::new();
        let mut declared = 0u64;
        for entry in body.get_locals_reader().map_err(invalid)? {
            let (count, ty) = entry.map_err(invalid)?;
            declared += u64::from(count);
            locals.push((count, self.shift.val_type(ty).map_err(reencode_error)?));
        }
        let plan = plan(body, declared)?;
        let scratch = u64::from(sig.params) + declared;
        if plan.needs_scratch {
            if scratch + 1 > MAX_LOCALS {
                return Err(invalid(format!(
                    "function {index} has too many locals to instrument"
                )));
            }
            locals.push((1, ValType::I32));
        }
        // The fuel left, kept in a local between calls (a register, for the engine) and
        // written back to the global before every call and exit.
        let fuel = scratch + u64::from(plan.needs_scratch);
        if fuel + 2 > MAX_LOCALS {
            return Err(invalid(format!(
                "function {index} has too many locals to instrument"
            )));
        }
        locals.push((1, ValType::I64));
        // The call depth at the entry, restored at every exit.
        locals.push((1, ValType::I32));
        let scratch = u32::try_from(scratch).map_err(|_| invalid("too many locals"))?;
        let fuel = u32::try_from(fuel).map_err(|_| invalid("too many locals"))?;
        let depth_local = fuel + 1;
        let wrapper = if plan.branches_to_function {
            Some(match sig.results.as_slice() {
                [] => BlockType::Empty,
                [one] => BlockType::Result(self.shift.val_type(*one).map_err(reencode_error)?),
                many => BlockType::FunctionType(
                    *self
                        .result_types
                        .get(many)
                        .ok_or_else(|| invalid("a result list without its block type"))?,
                ),
            })
        } else {
            None
        };

        let mut f = Function::new(locals);
        // Entry: the call-depth check, the body's wrapping block, the first block's fuel.
        self.depth_enter(&mut f, depth_local);
        f.instruction(&Instruction::LocalGet(depth_local));
        f.instruction(&Instruction::I32Const(self.config.max_call_depth as i32));
        f.instruction(&Instruction::I32GeU);
        let mut hints = Vec::new();
        Self::unlikely_if(&mut f, &mut hints);
        f.instruction(&Instruction::Call(self.stack_overflow));
        f.instruction(&Instruction::Unreachable);
        f.instruction(&Instruction::End);
        if let Some(ty) = wrapper {
            f.instruction(&Instruction::Block(ty));
        }
        self.reload(&mut f, fuel);
        let mut costs = plan.block_costs.iter().copied();
        self.charge(&mut f, costs.next().unwrap_or(0), true, fuel, &mut hints);

        let mut depth = 0u32;
        let mut reader = body.get_operators_reader().map_err(invalid)?;
        while !reader.eof() {
            let op = reader.read().map_err(invalid)?;
            let c = cost::classify(&op)?;
            match c.flow {
                Flow::Block | Flow::Loop | Flow::If => depth += 1,
                Flow::End if depth == 0 => {
                    // The function's own end: close the wrapper, then leave.
                    if wrapper.is_some() {
                        f.instruction(&Instruction::End);
                    }
                    self.flush(&mut f, fuel);
                    self.depth_leave(&mut f, depth_local);
                    f.instruction(&Instruction::End);
                    break;
                }
                Flow::End => depth -= 1,
                Flow::Exit => {
                    self.flush(&mut f, fuel);
                    self.depth_leave(&mut f, depth_local);
                }
                _ => {}
            }
            // A call (of a guest function, an import or through a table) sees and leaves the
            // exact fuel in the global, and so does a bulk operator (it may trap once charged).
            let calls = matches!(
                op,
                wasmparser::Operator::Call { .. }
                    | wasmparser::Operator::CallIndirect { .. }
                    | wasmparser::Operator::CallRef { .. }
            );
            if let Some(dynamic) = c.dynamic {
                self.charge_dynamic(&mut f, dynamic, scratch, fuel, &mut hints);
                self.flush(&mut f, fuel);
            } else if calls {
                self.flush(&mut f, fuel);
            }
            f.instruction(&self.shift.instruction(op).map_err(reencode_error)?);
            if calls {
                self.reload(&mut f, fuel);
            }
            if c.flow.ends_block() {
                let next = costs
                    .next()
                    .ok_or_else(|| invalid("a basic block the plan did not see"))?;
                self.charge(&mut f, next, c.flow == Flow::Loop, fuel, &mut hints);
            }
        }
        if f.byte_len() > MAX_INSTRUMENTED_BODY_BYTES {
            return Err(invalid(format!(
                "function {index} is over {MAX_INSTRUMENTED_BODY_BYTES} bytes once instrumented"
            )));
        }
        self.hints
            .function_hints(self.shift.function_index(index), hints);
        Ok(f)
    }
}

/// The first pass over a body: the static cost of each basic block, in order, and what the
/// second pass must add.
struct Plan {
    block_costs: Vec<u64>,
    needs_scratch: bool,
    branches_to_function: bool,
}

fn plan(body: &FunctionBody<'_>, declared_locals: u64) -> Result<Plan, Error> {
    let mut plan = Plan {
        block_costs: Vec::new(),
        needs_scratch: false,
        branches_to_function: false,
    };
    let mut cost = cost::locals_fuel(declared_locals);
    let mut depth = 0u32;
    let mut reader = body.get_operators_reader().map_err(invalid)?;
    while !reader.eof() {
        let op = reader.read().map_err(invalid)?;
        let c = cost::classify(&op)?;
        cost = cost.saturating_add(c.fuel);
        plan.needs_scratch |= c.dynamic.is_some();
        match &op {
            wasmparser::Operator::Br { relative_depth }
            | wasmparser::Operator::BrIf { relative_depth } => {
                plan.branches_to_function |= *relative_depth == depth;
            }
            wasmparser::Operator::BrTable { targets } => {
                plan.branches_to_function |= targets.default() == depth;
                for target in targets.targets() {
                    plan.branches_to_function |= target.map_err(invalid)? == depth;
                }
            }
            _ => {}
        }
        match c.flow {
            Flow::Block | Flow::Loop | Flow::If => depth += 1,
            Flow::End if depth == 0 => break,
            Flow::End => depth -= 1,
            _ => {}
        }
        if c.flow.ends_block() {
            plan.block_costs.push(cost);
            cost = 0;
        }
    }
    // The function's last block, ended by its final `end`.
    plan.block_costs.push(cost);
    Ok(plan)
}
