//! Helpers shared by the behaviour files.

use nestbox::{Digest, Error, Grants, Instance, Limits, Module, Sandbox, Value};

/// The bytes of `tests/fixtures/<name>.wat`, compiled.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}.wat", env!("CARGO_MANIFEST_DIR"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// Compiles inline WAT.
pub fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid wat")
}

pub fn sandbox(limits: Limits) -> Sandbox {
    Sandbox::new(limits).expect("valid limits")
}

/// Loads bytes pinned to their own digest.
pub fn load(sandbox: &Sandbox, bytes: &[u8]) -> Module {
    sandbox
        .load(bytes, &Digest::of(bytes))
        .expect("module loads")
}

pub fn instance(sandbox: &Sandbox, fixture_name: &str) -> Instance {
    let module = load(sandbox, &fixture(fixture_name));
    sandbox
        .instantiate(&module, &Grants::new())
        .expect("instantiates")
}

/// Calls an export of a guest that was granted nothing.
pub fn call(instance: &mut Instance, export: &str, args: &[Value]) -> Result<Vec<Value>, Error> {
    instance
        .call(export, args, |call, _| {
            panic!("no capability was granted, yet {} was called", call.import)
        })
        .map(|o| o.results)
}

/// After any failure the same sandbox must load and run the next module correctly.
pub fn assert_sandbox_still_works(sandbox: &Sandbox) {
    let mut inst = instance(sandbox, "add");
    assert_eq!(
        call(&mut inst, "add", &[Value::I32(40), Value::I32(2)]).expect("add runs"),
        vec![Value::I32(42)]
    );
}
