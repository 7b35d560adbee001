//! Loading a guest: integrity first, then the module-shape pre-scan, then wasmi's validation.
//!
//! The order is the point (Extism's JS SDK compiles before it checks the hash; we do not):
//! 1. size cap — before hashing;
//! 2. SHA-256 against the expected digest — before parsing;
//! 3. the sandbox's deny list and trust policy ([`policy`](crate::policy)) — before parsing;
//! 4. module-shape limits — a cheap single pass of `wasmparser` that counts sections, locals
//!    and body sizes, so wasmi's (unmetered) validation only ever sees bounded modules;
//! 5. wasmi's validation and lazy compilation.

use std::sync::Arc;

use serde::Serialize;
use wasmparser::{Parser, Payload, TypeRef};

use crate::error::{Error, ErrorCode};
use crate::integrity::Digest;
use crate::limits::ModuleLimits;
use crate::value::{Signature, describe_wasmi_type};

/// What kind of item an import or export is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    /// A function.
    Function,
    /// A linear memory.
    Memory,
    /// A table.
    Table,
    /// A global.
    Global,
}

/// One import a module declares.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImportInfo {
    /// The import's module namespace, e.g. `env`.
    pub module: String,
    /// The import's field name, e.g. `log`.
    pub name: String,
    /// What is imported.
    pub kind: ItemKind,
    /// For functions with only numeric types: the signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    /// The type in text form, for messages, e.g. `(i32, i32) -> ()`.
    #[serde(rename = "type")]
    pub type_text: String,
}

impl ImportInfo {
    /// The normalised name, `module.name`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.module, self.name)
    }
}

/// One export a module declares.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExportInfo {
    /// The export name.
    pub name: String,
    /// What is exported.
    pub kind: ItemKind,
    /// For functions with only numeric types: the signature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    /// The type in text form.
    #[serde(rename = "type")]
    pub type_text: String,
}

/// A verified, validated guest module. Cheap to clone; usable only with the
/// [`Sandbox`](crate::Sandbox) that loaded it.
#[derive(Clone)]
pub struct Module {
    inner: Arc<Compiled>,
    /// The sandbox that loaded it ([`Module::owner`]): a module compiled once may be shared
    /// through a [`ModuleCache`](crate::cache::ModuleCache), but each load is its sandbox's.
    owner: u64,
}

/// What compiling verified bytes produced: the wasmi module (whose engine it belongs to)
/// and its imports and exports. Immutable once built, so it may be shared by every sandbox
/// whose engine configuration it was compiled under ([`cache`](crate::cache)).
pub(crate) struct Compiled {
    wasmi: wasmi::Module,
    digest: Digest,
    size_bytes: u64,
    imports: Vec<ImportInfo>,
    exports: Vec<ExportInfo>,
}

impl core::fmt::Debug for Module {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Module")
            .field("digest", &self.inner.digest)
            .field("size_bytes", &self.inner.size_bytes)
            .field("imports", &self.inner.imports.len())
            .field("exports", &self.inner.exports.len())
            .finish()
    }
}

impl Compiled {
    /// Validates and compiles `bytes` in `engine`. The caller has verified their size and
    /// `digest` ([`integrity::verify`](crate::integrity::verify)), cleared them with the
    /// trust policy and checked their shape ([`check_shape`]) — see the module docs for the
    /// order.
    pub(crate) fn compile(
        engine: &wasmi::Engine,
        bytes: &[u8],
        digest: Digest,
    ) -> Result<Arc<Self>, Error> {
        let wasmi = wasmi::Module::new(engine, bytes)
            .map_err(|e| Error::new(ErrorCode::InvalidModule, format!("invalid module: {e}")))?;
        let imports = wasmi
            .imports()
            .map(|i| {
                let (kind, signature, type_text) = describe(i.ty());
                ImportInfo {
                    module: i.module().to_owned(),
                    name: i.name().to_owned(),
                    kind,
                    signature,
                    type_text,
                }
            })
            .collect();
        let exports = wasmi
            .exports()
            .map(|e| {
                let (kind, signature, type_text) = describe(e.ty());
                ExportInfo {
                    name: e.name().to_owned(),
                    kind,
                    signature,
                    type_text,
                }
            })
            .collect();
        Ok(Arc::new(Self {
            wasmi,
            digest,
            size_bytes: bytes.len() as u64,
            imports,
            exports,
        }))
    }

    /// SHA-256 of the bytes it was compiled from.
    pub(crate) fn digest(&self) -> Digest {
        self.digest
    }

    /// Size of the bytes it was compiled from.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// The engine its code lives in.
    pub(crate) fn engine(&self) -> &wasmi::Engine {
        self.wasmi.engine()
    }
}

impl Module {
    /// Sandbox `owner`'s module from compiled code (its own, or shared from a cache).
    pub(crate) fn new(inner: Arc<Compiled>, owner: u64) -> Self {
        Self { inner, owner }
    }

    /// The id of the sandbox that loaded it.
    pub(crate) fn owner(&self) -> u64 {
        self.owner
    }

    /// Whether `self` and `other` share compiled code (the same [`Compiled`]).
    pub fn shares_code_with(&self, other: &Module) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// SHA-256 of the module's bytes.
    pub fn digest(&self) -> Digest {
        self.inner.digest
    }

    /// Size of the module's bytes.
    pub fn size_bytes(&self) -> u64 {
        self.inner.size_bytes
    }

    /// Every import, in declaration order.
    pub fn imports(&self) -> &[ImportInfo] {
        &self.inner.imports
    }

    /// Every export, sorted by name.
    pub fn exports(&self) -> &[ExportInfo] {
        &self.inner.exports
    }

    pub(crate) fn wasmi(&self) -> &wasmi::Module {
        &self.inner.wasmi
    }
}

fn describe(ty: &wasmi::ExternType) -> (ItemKind, Option<Signature>, String) {
    match ty {
        wasmi::ExternType::Func(f) => (
            ItemKind::Function,
            Signature::from_wasmi(f),
            describe_wasmi_type(f),
        ),
        wasmi::ExternType::Memory(m) => (ItemKind::Memory, None, format!("{m:?}")),
        wasmi::ExternType::Table(t) => (ItemKind::Table, None, format!("{t:?}")),
        wasmi::ExternType::Global(g) => (ItemKind::Global, None, format!("{g:?}")),
    }
}

/// The module-shape pre-scan: one pass over the sections, counting. Run on every load,
/// before the bytes are compiled or a compiled module is taken from a cache: the limits are
/// the loading sandbox's.
pub(crate) fn check_shape(bytes: &[u8], limits: &ModuleLimits) -> Result<(), Error> {
    let invalid = |e: wasmparser::BinaryReaderError| {
        Error::new(ErrorCode::InvalidModule, format!("invalid module: {e}"))
    };
    let over = |what: &str, count: u64, limit: u32| {
        Error::new(
            ErrorCode::InvalidModule,
            format!("module shape over the limit: {count} {what}, limit {limit}"),
        )
        .with(|d| d.limit = Some(u64::from(limit)))
    };
    let check = |what: &str, count: u64, limit: u32| -> Result<(), Error> {
        if count > u64::from(limit) {
            Err(over(what, count, limit))
        } else {
            Ok(())
        }
    };
    let (mut functions, mut memories, mut tables, mut globals) = (0u64, 0u64, 0u64, 0u64);
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::ImportSection(reader) => {
                check("imports", u64::from(reader.count()), limits.max_imports)?;
                for import in reader {
                    match import.map_err(invalid)?.ty {
                        TypeRef::Func(_) => functions += 1,
                        TypeRef::Memory(_) => memories += 1,
                        TypeRef::Table(_) => tables += 1,
                        TypeRef::Global(_) => globals += 1,
                        TypeRef::Tag(_) => {}
                    }
                }
            }
            Payload::FunctionSection(r) => functions += u64::from(r.count()),
            Payload::MemorySection(r) => memories += u64::from(r.count()),
            Payload::TableSection(r) => tables += u64::from(r.count()),
            Payload::GlobalSection(r) => globals += u64::from(r.count()),
            Payload::ExportSection(r) => {
                check("exports", u64::from(r.count()), limits.max_exports)?
            }
            Payload::DataSection(r) => check(
                "data segments",
                u64::from(r.count()),
                limits.max_data_segments,
            )?,
            Payload::ElementSection(r) => check(
                "element segments",
                u64::from(r.count()),
                limits.max_element_segments,
            )?,
            Payload::CodeSectionEntry(body) => {
                let size = body.range().len() as u64;
                check(
                    "bytes in one function body",
                    size,
                    limits.max_function_body_bytes,
                )?;
                let mut locals = 0u64;
                for entry in body.get_locals_reader().map_err(invalid)? {
                    let (count, _ty) = entry.map_err(invalid)?;
                    locals = locals.saturating_add(u64::from(count));
                }
                check(
                    "locals in one function",
                    locals,
                    limits.max_locals_per_function,
                )?;
            }
            _ => {}
        }
        // Checked as they accumulate, so a huge count fails before the rest is read.
        check("functions", functions, limits.max_functions)?;
        check("memories", memories, limits.max_memories)?;
        check("tables", tables, limits.max_tables)?;
        check("globals", globals, limits.max_globals)?;
    }
    Ok(())
}
