//! Linking: every import of a module matched against the caller's grants (and, for a WASI
//! instance, against the preview1 functions), and the trampoline's suspension type.

use crate::capability::{CapabilityId, Grants};
use crate::data::{self, DataFunc};
use crate::error::{Error, ErrorCode};
use crate::gojs;
use crate::module::{ItemKind, Module};
use crate::value::{Signature, Value};
use crate::wasi::{self, WasiFunc};

/// The trampoline's suspension: which link the guest called, with which arguments.
#[derive(Debug)]
pub(super) struct HostCallPending {
    pub(super) link: usize,
    pub(super) args: Vec<Value>,
    /// The direct host ran this call and suspended it: its fuel and count are paid, and the
    /// embedder owes the answer ([`HostCall::direct`](crate::HostCall::direct)).
    pub(super) direct: bool,
}

/// A direct host call ended the guest's call with this error.
#[derive(Debug)]
pub(super) struct DirectStop(pub(super) Error);

impl core::fmt::Display for DirectStop {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "direct host call failed: {}", self.0.message())
    }
}

impl wasmi::errors::HostError for DirectStop {}

/// The call's wall-clock limit passed during a direct host call.
#[derive(Debug)]
pub(super) struct DirectTimeout;

impl core::fmt::Display for DirectTimeout {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("wall-clock limit passed during a direct host call")
    }
}

impl wasmi::errors::HostError for DirectTimeout {}

impl core::fmt::Display for HostCallPending {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "host call pending on link {}", self.link)
    }
}

impl wasmi::errors::HostError for HostCallPending {}

/// A granted import as linked into this instance.
#[derive(Debug)]
pub(super) struct Link {
    pub(super) capability: CapabilityId,
    pub(super) module: String,
    pub(super) name: String,
    /// `module.name`, as reported in host calls and errors.
    pub(super) import: String,
    pub(super) signature: Signature,
    /// Answered by the instance's direct host ([`Grants::grant_direct`](crate::Grants::grant_direct)).
    pub(super) direct: bool,
}

/// The granted imports, the preview1 functions and the data-ABI functions a module links.
pub(super) type Linked = (
    Vec<Link>,
    Vec<&'static WasiFunc>,
    Vec<&'static DataFunc>,
    Vec<&'static str>,
);

/// Matches every import of `module` against `grants` (and, with `wasi`, imports under
/// `wasi_snapshot_preview1` against the preview1 functions; always, imports under
/// `extism:host/env` against the data ABI's functions): all missing imports are
/// `IMPORT_NOT_GRANTED`; then all mistyped ones are `SIGNATURE_MISMATCH`.
pub(super) fn link_imports(
    module: &Module,
    grants: &Grants,
    wasi: bool,
    go: bool,
) -> Result<Linked, Error> {
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    let mut mismatch_text = Vec::new();
    let mut links = Vec::new();
    let mut wasi_funcs: Vec<&'static WasiFunc> = Vec::new();
    let mut data_funcs: Vec<&'static DataFunc> = Vec::new();
    let mut go_funcs: Vec<&'static str> = Vec::new();
    for import in module.imports() {
        let qualified = import.qualified_name();
        if go && import.module == gojs::GO_MODULE {
            match gojs::FUNCTIONS.iter().find(|f| **f == import.name) {
                Some(name) if import.kind == ItemKind::Function => {
                    let expected = Signature::new([crate::value::ValueType::I32], []);
                    if import.signature.as_ref() != Some(&expected) {
                        mismatch_text.push(format!(
                            "{qualified}: guest imports {}, gojs defines {expected}",
                            import.type_text
                        ));
                        mismatched.push(qualified);
                    } else if !go_funcs.contains(name) {
                        go_funcs.push(name);
                    }
                }
                _ => missing.push(qualified),
            }
            continue;
        }
        if wasi && import.module == wasi::WASI_MODULE {
            match (import.kind, wasi::function(&import.name)) {
                (ItemKind::Function, Some(func)) => {
                    let expected = func.signature();
                    if import.signature.as_ref() != Some(&expected) {
                        mismatch_text.push(format!(
                            "{qualified}: guest imports {}, WASI preview1 defines {expected}",
                            import.type_text
                        ));
                        mismatched.push(qualified);
                    } else if !wasi_funcs.iter().any(|f| f.name == func.name) {
                        wasi_funcs.push(func);
                    }
                }
                // Not a preview1 function (or not a function): like any ungranted import.
                _ => missing.push(qualified),
            }
            continue;
        }
        if import.module == data::DATA_MODULE {
            match (import.kind, data::function(&import.name)) {
                (ItemKind::Function, Some(func)) => {
                    let expected = func.signature();
                    if import.signature.as_ref() != Some(&expected) {
                        mismatch_text.push(format!(
                            "{qualified}: guest imports {}, the data ABI defines {expected}",
                            import.type_text
                        ));
                        mismatched.push(qualified);
                    } else if !data_funcs.iter().any(|f| f.name == func.name) {
                        data_funcs.push(func);
                    }
                }
                _ => missing.push(qualified),
            }
            continue;
        }
        let grant = match import.kind {
            ItemKind::Function => grants.find(&import.module, &import.name),
            // Memories, tables and globals are never granted: the guest brings its own.
            _ => None,
        };
        let Some(grant) = grant else {
            missing.push(qualified);
            continue;
        };
        if import.signature.as_ref() != Some(&grant.signature) {
            mismatch_text.push(format!(
                "{qualified}: guest imports {}, granted {}",
                import.type_text, grant.signature
            ));
            mismatched.push(qualified);
            continue;
        }
        links.push(Link {
            capability: grant.capability,
            module: import.module.clone(),
            name: import.name.clone(),
            import: qualified,
            signature: grant.signature.clone(),
            direct: grant.direct,
        });
    }
    if !missing.is_empty() {
        return Err(Error::new(
            ErrorCode::ImportNotGranted,
            format!("imports not granted: {}", missing.join(", ")),
        )
        .with(|d| d.imports = missing));
    }
    if !mismatched.is_empty() {
        return Err(Error::new(
            ErrorCode::SignatureMismatch,
            format!(
                "granted imports of the wrong type: {}",
                mismatch_text.join("; ")
            ),
        )
        .with(|d| d.imports = mismatched));
    }
    Ok((links, wasi_funcs, data_funcs, go_funcs))
}
