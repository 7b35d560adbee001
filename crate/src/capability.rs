//! Capabilities, as the core sees them: a numeric id granted under an import name with a
//! declared signature. The functions behind the ids live with the caller (the page's `WeakMap`,
//! the worker, or a native closure); the core only ever suspends with an id and resumes with
//! the caller's answer.

use core::fmt;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Error;
use crate::value::{GoValue, Signature, Value, ValueType};

/// The id of a granted capability. Meaningful only to whoever granted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct CapabilityId(pub u32);

impl fmt::Display for CapabilityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// One granted import: `module.name` is answered by capability `id`, whose function has
/// `signature`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Grant {
    /// Import namespace, e.g. `env`.
    pub module: String,
    /// Import field, e.g. `log`.
    pub name: String,
    /// The capability that answers calls.
    pub capability: CapabilityId,
    /// The signature the grantor declared; checked against the guest's import at link time.
    pub signature: Signature,
    /// Answered from inside the guest's call by the instance's [`DirectHost`], when it has
    /// one ([`Grants::grant_direct`]); otherwise (and always when the call is traced) a
    /// [`Step::HostCall`](crate::Step::HostCall) as any grant.
    #[serde(skip_serializing_if = "core::ops::Not::not")]
    pub direct: bool,
}

impl Grant {
    /// The normalised name, `module.name`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.module, self.name)
    }
}

/// The set of imports granted to one instance.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grants {
    list: Vec<Grant>,
}

impl Grants {
    /// No grants: the guest can only compute.
    pub fn new() -> Self {
        Self::default()
    }

    /// Grants `module.name` as capability `capability` with `signature` (builder style).
    ///
    /// # Errors
    ///
    /// `INVALID_ARGUMENT` if `module.name` is already granted.
    pub fn grant(
        mut self,
        module: impl Into<String>,
        name: impl Into<String>,
        capability: CapabilityId,
        signature: Signature,
    ) -> Result<Self, Error> {
        let (module, name) = (module.into(), name.into());
        if self.find(&module, &name).is_some() {
            return Err(Error::invalid_argument(format!(
                "import {module}.{name} is granted twice"
            )));
        }
        self.list.push(Grant {
            module,
            name,
            capability,
            signature,
            direct: false,
        });
        Ok(self)
    }

    /// As [`Grants::grant`], for a host function that answers synchronously: the instance's
    /// [`DirectHost`] (see [`Instance::set_direct_host`](crate::Instance::set_direct_host))
    /// answers it from inside the guest's call, with no host-call step.
    ///
    /// # Errors
    ///
    /// As [`Grants::grant`].
    pub fn grant_direct(
        self,
        module: impl Into<String>,
        name: impl Into<String>,
        capability: CapabilityId,
        signature: Signature,
    ) -> Result<Self, Error> {
        let mut grants = self.grant(module, name, capability, signature)?;
        if let Some(last) = grants.list.last_mut() {
            last.direct = true;
        }
        Ok(grants)
    }

    /// The grant for `module.name`, if any.
    pub fn find(&self, module: &str, name: &str) -> Option<&Grant> {
        self.list
            .iter()
            .find(|g| g.module == module && g.name == name)
    }

    /// All grants, in the order they were made.
    pub fn iter(&self) -> impl Iterator<Item = &Grant> {
        self.list.iter()
    }
}

/// A guest's call of a granted import, waiting for the host's answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HostCall {
    /// The capability that must answer.
    pub capability: CapabilityId,
    /// The import the guest called, `module.name`.
    pub import: String,
    /// The guest's arguments, typed as the granted signature says.
    pub args: Vec<Value>,
    /// The types the answer must have ([`Instance::resume_host`](crate::Instance::resume_host)).
    pub results: Vec<ValueType>,
    /// A data guest's HTTP request (`extism:host/env` `http_request`, to a host the HTTP
    /// capability allows): answer with [`Instance::resume_http`](crate::Instance::resume_http).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpRequest>,
    /// For a Go `js/wasm` guest ([`gojs`](crate::gojs)): the guest called a capability token
    /// of its `js.Global()` with these arguments (copied out of the membrane); answer with
    /// [`Instance::resume_go`](crate::Instance::resume_go). `args` is then empty.
    #[serde(skip)]
    pub go: Option<Vec<GoValue>>,
    /// The instance's [`DirectHost`] already ran this call and answered
    /// [`DirectAnswer::Suspend`]: it owes the answer (its function returned a promise, threw,
    /// or was refused), and the call's fuel and count are already charged. `false` for every
    /// other host call.
    #[serde(skip_serializing_if = "core::ops::Not::not")]
    pub direct: bool,
}

/// One call of a [`Grants::grant_direct`] import, made from inside the guest's call.
#[derive(Debug)]
pub struct DirectCall<'a> {
    /// The index of the import among the instance's granted imports (in module order).
    pub link: usize,
    /// The capability that must answer.
    pub capability: CapabilityId,
    /// The guest's arguments, typed as the granted signature says.
    pub args: &'a [Value],
    /// The answer, to be filled in: as many values as the signature has results, each
    /// starting as zero of its type. A value of another type ends the call with `HOST_ERROR`.
    pub results: &'a mut [Value],
    /// The guest's exported memory (empty when it exports none), valid for this call only.
    pub memory: &'a mut [u8],
}

/// How a [`DirectHost`] answered.
#[derive(Debug)]
pub enum DirectAnswer {
    /// `results` hold the answer: the guest continues at once.
    Answered,
    /// The host answers later: the call suspends with a [`Step::HostCall`](crate::Step::HostCall)
    /// whose `direct` is true (its fuel already paid), answered as any host call.
    Suspend,
    /// End the guest's call with this error (the instance is poisoned, as after `fail_host`).
    Fail(Error),
}

/// Synchronous host functions answered from inside the guest's call (no step, no
/// suspension): the fast path of [`Grants::grant_direct`] imports. Its `call` runs inside the
/// interpreter, so it cannot reach the instance (it has no handle to it): that is what keeps
/// the call re-entrancy free.
pub trait DirectHost {
    /// Answers one call (see [`DirectCall`]).
    fn call(&mut self, call: DirectCall<'_>) -> DirectAnswer;
}

/// An HTTP request of a data guest, as Extism's `HttpRequest` (its body as bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HttpRequest {
    /// An `http:` or `https:` URL whose host the capability allows.
    pub url: String,
    /// Upper-case (`GET` when the guest gave none).
    pub method: String,
    /// In the guest's order of keys (sorted).
    pub headers: BTreeMap<String, String>,
    /// Empty when the guest gave none.
    pub body: Vec<u8>,
}

/// The host's answer to an [`HttpRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code the guest reads with `http_status_code`.
    pub status: u16,
    /// The headers the guest reads with `http_headers` (as JSON).
    pub headers: BTreeMap<String, String>,
    /// The body, at most the capability's `max_response_bytes`.
    pub body: Vec<u8>,
}
