//! The values that cross between the guest and its host: the four numeric WebAssembly types.
//!
//! Reference types (`funcref`, `externref`) and `v128` never cross: a capability or an export
//! whose signature uses them is refused with a clear error rather than half-supported.

use core::fmt;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Error;

/// A WebAssembly numeric value type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
}

impl ValueType {
    /// The WebAssembly text name (`"i32"`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::I32 => "i32",
            Self::I64 => "i64",
            Self::F32 => "f32",
            Self::F64 => "f64",
        }
    }

    /// Parses `"i32"`, `"i64"`, `"f32"` or `"f64"`.
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` for any other name.
    pub fn parse(name: &str) -> Result<Self, Error> {
        match name {
            "i32" => Ok(Self::I32),
            "i64" => Ok(Self::I64),
            "f32" => Ok(Self::F32),
            "f64" => Ok(Self::F64),
            other => Err(Error::invalid_argument(format!(
                "unknown value type {other:?}: expected i32, i64, f32 or f64"
            ))),
        }
    }

    pub(crate) fn from_wasmi(ty: wasmi::ValType) -> Option<Self> {
        match ty {
            wasmi::ValType::I32 => Some(Self::I32),
            wasmi::ValType::I64 => Some(Self::I64),
            wasmi::ValType::F32 => Some(Self::F32),
            wasmi::ValType::F64 => Some(Self::F64),
            _ => None,
        }
    }

    pub(crate) fn to_wasmi(self) -> wasmi::ValType {
        match self {
            Self::I32 => wasmi::ValType::I32,
            Self::I64 => wasmi::ValType::I64,
            Self::F32 => wasmi::ValType::F32,
            Self::F64 => wasmi::ValType::F64,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A numeric value passed to or returned from the guest.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum Value {
    /// 32-bit integer.
    I32(i32),
    /// 64-bit integer.
    I64(i64),
    /// 32-bit float.
    F32(f32),
    /// 64-bit float.
    F64(f64),
}

impl Value {
    /// The type of this value.
    pub fn ty(&self) -> ValueType {
        match self {
            Self::I32(_) => ValueType::I32,
            Self::I64(_) => ValueType::I64,
            Self::F32(_) => ValueType::F32,
            Self::F64(_) => ValueType::F64,
        }
    }

    /// The zero value of a type.
    pub fn zero(ty: ValueType) -> Self {
        match ty {
            ValueType::I32 => Self::I32(0),
            ValueType::I64 => Self::I64(0),
            ValueType::F32 => Self::F32(0.0),
            ValueType::F64 => Self::F64(0.0),
        }
    }

    pub(crate) fn to_wasmi(self) -> wasmi::Val {
        match self {
            Self::I32(v) => wasmi::Val::I32(v),
            Self::I64(v) => wasmi::Val::I64(v),
            Self::F32(v) => wasmi::Val::F32(v.into()),
            Self::F64(v) => wasmi::Val::F64(v.into()),
        }
    }

    pub(crate) fn from_wasmi(v: &wasmi::Val) -> Option<Self> {
        match v {
            wasmi::Val::I32(v) => Some(Self::I32(*v)),
            wasmi::Val::I64(v) => Some(Self::I64(*v)),
            wasmi::Val::F32(v) => Some(Self::F32(f32::from(*v))),
            wasmi::Val::F64(v) => Some(Self::F64(f64::from(*v))),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::I32(v) => write!(f, "{v}"),
            Self::I64(v) => write!(f, "{v}"),
            Self::F32(v) => write!(f, "{v}"),
            Self::F64(v) => write!(f, "{v}"),
        }
    }
}

/// A function signature in numeric value types, e.g. `(i32, i32) -> (i32)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Signature {
    /// Parameter types, in order.
    pub params: Vec<ValueType>,
    /// Result types, in order.
    pub results: Vec<ValueType>,
}

impl Signature {
    /// A signature from its parameter and result types.
    pub fn new(
        params: impl IntoIterator<Item = ValueType>,
        results: impl IntoIterator<Item = ValueType>,
    ) -> Self {
        Self {
            params: params.into_iter().collect(),
            results: results.into_iter().collect(),
        }
    }

    /// `None` when the wasmi type uses a non-numeric value type.
    pub(crate) fn from_wasmi(ty: &wasmi::FuncType) -> Option<Self> {
        let params = ty
            .params()
            .iter()
            .map(|t| ValueType::from_wasmi(*t))
            .collect::<Option<Vec<_>>>()?;
        let results = ty
            .results()
            .iter()
            .map(|t| ValueType::from_wasmi(*t))
            .collect::<Option<Vec<_>>>()?;
        Some(Self { params, results })
    }

    pub(crate) fn to_wasmi(&self) -> wasmi::FuncType {
        wasmi::FuncType::new(
            self.params.iter().map(|t| t.to_wasmi()),
            self.results.iter().map(|t| t.to_wasmi()),
        )
    }

    /// Whether `values` match `types` in number and type (no message: the hot path).
    pub(crate) fn matches(types: &[ValueType], values: &[Value]) -> bool {
        types.len() == values.len() && types.iter().zip(values).all(|(t, v)| *t == v.ty())
    }

    /// Checks that `values` match `types` in number and type.
    pub(crate) fn check(what: &str, types: &[ValueType], values: &[Value]) -> Result<(), Error> {
        if types.len() != values.len() {
            return Err(Error::invalid_argument(format!(
                "{what}: expected {} values, got {}",
                types.len(),
                values.len()
            )));
        }
        for (i, (t, v)) in types.iter().zip(values).enumerate() {
            if *t != v.ty() {
                return Err(Error::invalid_argument(format!(
                    "{what}: value {i} must be {t}, got {}",
                    v.ty()
                )));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |ts: &[ValueType]| ts.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ");
        write!(f, "({}) -> ({})", join(&self.params), join(&self.results))
    }
}

/// Describes a wasmi value type for messages, including the non-numeric ones.
pub(crate) fn describe_wasmi_type(ty: &wasmi::FuncType) -> String {
    let join = |ts: &[wasmi::ValType]| {
        ts.iter()
            .map(|t| format!("{t:?}").to_lowercase())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", join(ty.params()), join(ty.results()))
}

/// A JavaScript-like value crossing the membrane of a Go `js/wasm` guest
/// ([`gojs`](crate::gojs)): what the page grants in the guest's `js.Global()`, the arguments
/// and result of an exported Go function ([`Instance::start_go_export`](crate::Instance::start_go_export)),
/// and the arguments and answer of a capability the guest calls. Always plain data, copied
/// across: no object identity, no prototype, nothing the guest can reach beyond it.
#[derive(Clone, Debug, PartialEq)]
pub enum GoValue {
    /// `undefined` (also what a function or another non-data value becomes when copied out).
    Undefined,
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string.
    String(String),
    /// A `Uint8Array` (`js.CopyBytesToGo` / `js.CopyBytesToJS` read and write it).
    Bytes(Vec<u8>),
    /// An array.
    Array(Vec<GoValue>),
    /// A plain object (own enumerable properties only, in key order).
    Object(BTreeMap<String, GoValue>),
    /// A capability token (only in what the page grants): a function the guest may call;
    /// calling it suspends the guest with a host call naming this capability id.
    Capability(u32),
}
