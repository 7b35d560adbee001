//! `nestbox go MODULE.wasm [--call NAME [JSON]...]...`: a Go `js/wasm` guest
//! (`GOOS=js GOARCH=wasm`) natively, under the core's gojs membrane: `main` runs, then each
//! `--call` calls a function the program registered on `js.Global()` with JSON arguments and
//! prints one JSON line `{"call":NAME,"result":…,"fuelConsumed":…}`. The guest's stdout and
//! stderr go to ours. A `Uint8Array` is `{"$bytes":[…]}` in JSON, both ways.
//!
//! Exit status: 0; the program's own status when it exits non-zero; 125 when nestbox refuses;
//! 126 when the guest fails (a Go panic is `TRAP`, a limit, …).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;

use nestbox::{
    CallOptions, Digest, Error, GoConfig, GoValue, GuestMemory, Hooks, HostCall, Limits, Sandbox,
    Value, drive_go_export, drive_go_main,
};

use crate::run::{EXIT_REFUSED, error_line, status_of};

/// The default limits for Go guests (Go's runtime and scheduler consume fuel about 24×
/// faster than Rust for the same work).
pub fn go_limits() -> Limits {
    Limits {
        fuel: 20_000_000_000,
        timeout_ms: 30_000,
        ..Limits::default()
    }
}

pub fn usage() -> &'static str {
    "  go [OPTIONS] MODULE.wasm [--call NAME [JSON-ARG]...]...
                                        a Go js/wasm guest (GOOS=js GOARCH=wasm): main runs,
                                        then each --call calls a function it registered on
                                        js.Global() and prints {\"call\",\"result\",\"fuelConsumed\"}
    --global NAME=JSON                  plain data in js.Global() (repeatable)
    --cap PATH=echo|JSON                a capability token at js.Global().PATH (a.b for a
                                        method): echo answers its first argument, JSON a
                                        fixed value (repeatable)
    --fuel N, --timeout-ms MS           per call (defaults for Go: 20e9 fuel, 30000 ms)"
}

enum Cap {
    Echo,
    Fixed(GoValue),
}

struct GoHooks {
    caps: BTreeMap<u32, Cap>,
}

impl Hooks for GoHooks {
    fn host_call(
        &mut self,
        call: &HostCall,
        _m: &mut GuestMemory<'_>,
    ) -> Result<Vec<Value>, Error> {
        Err(Error::host_failed(format!(
            "{} is not a numeric capability",
            call.import
        )))
    }
    fn streams_output(&self) -> bool {
        true
    }
    fn output(&mut self, stdout: &[u8], stderr: &[u8]) {
        let _ = std::io::stdout().write_all(stdout);
        let _ = std::io::stderr().write_all(stderr);
    }
    fn go_call(&mut self, call: &HostCall, args: &[GoValue]) -> Result<GoValue, Error> {
        match self.caps.get(&call.capability.0) {
            Some(Cap::Echo) => Ok(args.first().cloned().unwrap_or(GoValue::Undefined)),
            Some(Cap::Fixed(v)) => Ok(v.clone()),
            None => Err(Error::host_failed(format!(
                "no capability {}",
                call.capability
            ))),
        }
    }
}

/// JSON to a membrane value (`{"$bytes":[…]}` is a Uint8Array).
pub fn from_json(v: &serde_json::Value) -> GoValue {
    use serde_json::Value as J;
    match v {
        J::Null => GoValue::Null,
        J::Bool(b) => GoValue::Bool(*b),
        J::Number(n) => GoValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        J::String(s) => GoValue::String(s.clone()),
        J::Array(a) => GoValue::Array(a.iter().map(from_json).collect()),
        J::Object(o) => match o.get("$bytes") {
            Some(J::Array(bytes)) if o.len() == 1 => GoValue::Bytes(
                bytes
                    .iter()
                    .map(|b| b.as_u64().unwrap_or(0).min(255) as u8)
                    .collect(),
            ),
            _ => GoValue::Object(o.iter().map(|(k, v)| (k.clone(), from_json(v))).collect()),
        },
    }
}

/// A membrane value as JSON (undefined is null).
pub fn to_json(v: &GoValue) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        GoValue::Undefined | GoValue::Null | GoValue::Capability(_) => J::Null,
        GoValue::Bool(b) => J::Bool(*b),
        GoValue::Number(n) => serde_json::Number::from_f64(*n).map_or(J::Null, J::Number),
        GoValue::String(s) => J::String(s.clone()),
        GoValue::Bytes(b) => serde_json::json!({ "$bytes": b }),
        GoValue::Array(a) => J::Array(a.iter().map(to_json).collect()),
        GoValue::Object(o) => J::Object(o.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

fn parse_json(text: &str, what: &str) -> Result<GoValue, Error> {
    serde_json::from_str::<serde_json::Value>(text)
        .map(|v| from_json(&v))
        .map_err(|e| Error::invalid_argument(format!("{what}: not JSON ({e}): {text}")))
}

/// Puts `value` at the dotted `path` of `globals`.
fn put(globals: &mut BTreeMap<String, GoValue>, path: &str, value: GoValue) -> Result<(), Error> {
    let mut parts = path.split('.');
    let first = parts.next().unwrap_or_default().to_owned();
    let rest: Vec<&str> = parts.collect();
    let Some((last, middle)) = rest.split_last() else {
        globals.insert(first, value);
        return Ok(());
    };
    let mut node = globals
        .entry(first)
        .or_insert_with(|| GoValue::Object(BTreeMap::new()));
    for part in middle {
        let GoValue::Object(map) = node else {
            return Err(Error::invalid_argument(format!("{path}: not an object")));
        };
        node = map
            .entry((*part).to_owned())
            .or_insert_with(|| GoValue::Object(BTreeMap::new()));
    }
    let GoValue::Object(map) = node else {
        return Err(Error::invalid_argument(format!("{path}: not an object")));
    };
    map.insert((*last).to_owned(), value);
    Ok(())
}

struct Options {
    module: String,
    config: GoConfig,
    caps: BTreeMap<u32, Cap>,
    calls: Vec<(String, Vec<GoValue>)>,
    options: CallOptions,
}

fn parse(items: Vec<String>) -> Result<Options, Error> {
    let mut it = items.into_iter().peekable();
    let mut module = None;
    let mut config = GoConfig::default();
    let mut caps = BTreeMap::new();
    let mut calls: Vec<(String, Vec<GoValue>)> = Vec::new();
    let mut options = CallOptions::default();
    let mut next_cap = 1u32;
    let value_of = |it: &mut std::iter::Peekable<std::vec::IntoIter<String>>, flag: &str| {
        it.next()
            .ok_or_else(|| Error::invalid_argument(format!("{flag} needs a value")))
    };
    while let Some(item) = it.next() {
        match item.as_str() {
            "--global" | "--cap" => {
                let v = value_of(&mut it, &item)?;
                let (name, json) = v.split_once('=').ok_or_else(|| {
                    Error::invalid_argument(format!("{item} NAME=VALUE, got {v}"))
                })?;
                if item == "--global" {
                    put(&mut config.globals, name, parse_json(json, &item)?)?;
                } else {
                    let cap = if json == "echo" {
                        Cap::Echo
                    } else {
                        Cap::Fixed(parse_json(json, &item)?)
                    };
                    caps.insert(next_cap, cap);
                    put(&mut config.globals, name, GoValue::Capability(next_cap))?;
                    next_cap += 1;
                }
            }
            "--fuel" | "--timeout-ms" => {
                let v = value_of(&mut it, &item)?;
                let n: u64 = v
                    .parse()
                    .map_err(|_| Error::invalid_argument(format!("{item}: not a number: {v}")))?;
                if item == "--fuel" {
                    options.fuel = Some(n);
                } else {
                    options.timeout_ms = Some(n);
                }
            }
            "--call" => {
                let name = value_of(&mut it, &item)?;
                let mut args = Vec::new();
                while let Some(next) = it.peek() {
                    if next.starts_with("--") {
                        break;
                    }
                    let text = it.next().unwrap_or_default();
                    args.push(parse_json(&text, "--call argument")?);
                }
                calls.push((name, args));
            }
            other if other.starts_with("--") => {
                return Err(Error::invalid_argument(format!("unknown option {other}")));
            }
            _ if module.is_none() => module = Some(item),
            other => {
                return Err(Error::invalid_argument(format!(
                    "unexpected {other:?} (arguments follow --call NAME)"
                )));
            }
        }
    }
    let module = module.ok_or_else(|| Error::invalid_argument("nestbox go needs MODULE.wasm"))?;
    config.argv = vec![module.clone()];
    Ok(Options {
        module,
        config,
        caps,
        calls,
        options,
    })
}

pub fn main(items: Vec<String>) -> ExitCode {
    let options = match parse(items) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}", error_line(&e));
            return ExitCode::from(EXIT_REFUSED);
        }
    };
    match run(options) {
        Ok(code) => code,
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("{}", error_line(&e));
            if let Some(cause) = &e.details().cause {
                eprintln!("{cause}");
            }
            ExitCode::from(status_of(e.code()))
        }
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn run(o: Options) -> Result<ExitCode, Error> {
    let bytes = std::fs::read(&o.module)
        .map_err(|e| Error::invalid_argument(format!("cannot read {}: {e}", o.module)))?;
    let sandbox = Sandbox::new(go_limits())?;
    let module = sandbox.load(&bytes, &Digest::of(&bytes))?;
    let mut instance = sandbox.instantiate_go(&module, &o.config)?;
    let mut hooks = GoHooks { caps: o.caps };
    let main = drive_go_main(&mut instance, &o.options, &mut hooks)?;
    hooks.output(&instance.take_output().0, &[]);
    if let Some(code) = main.exit_code {
        return Ok(exit_code(code));
    }
    for (name, args) in &o.calls {
        let outcome = drive_go_export(&mut instance, name, args, &o.options, &mut hooks)?;
        if let Some(code) = outcome.exit_code {
            let _ = std::io::stdout().flush();
            return Ok(exit_code(code));
        }
        let line = serde_json::json!({
            "call": name,
            "result": to_json(outcome.go_result.as_ref().unwrap_or(&GoValue::Undefined)),
            "fuelConsumed": outcome.metrics.fuel_consumed,
        });
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
