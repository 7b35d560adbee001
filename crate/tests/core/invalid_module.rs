//! Bytes that are not valid WebAssembly, or over the module-shape limits, are INVALID_MODULE.

use nestbox::{Digest, ErrorCode, Limits, ModuleLimits};

use crate::common::*;

fn load_err(limits: Limits, bytes: &[u8]) -> nestbox::Error {
    let sb = sandbox(limits);
    let err = sb
        .load(bytes, &Digest::of(bytes))
        .expect_err("must be refused");
    assert_sandbox_still_works(&sb);
    err
}

#[test]
fn empty_truncated_and_random_bytes() {
    let valid = fixture("add");
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("magic only", b"\0asm".to_vec()),
        ("wrong magic", b"\0wasm\x01\0\0\0".to_vec()),
        ("wrong version", b"\0asm\x02\0\0\0".to_vec()),
        ("truncated", valid[..valid.len() - 3].to_vec()),
        (
            "trailing garbage",
            [valid.as_slice(), b"\x0b\xff\xff"].concat(),
        ),
    ];
    // Deterministic pseudo-random bytes (xorshift), with and without a valid header.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for n in [1usize, 7, 64, 4096] {
        let mut bytes = Vec::with_capacity(n);
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.push(x as u8);
        }
        cases.push(("random", bytes.clone()));
        cases.push((
            "header + random",
            [b"\0asm\x01\0\0\0".as_slice(), &bytes].concat(),
        ));
    }
    for (what, bytes) in cases {
        let err = load_err(Limits::default(), &bytes);
        assert_eq!(err.code(), ErrorCode::InvalidModule, "{what}: {err}");
        assert!(err.message().starts_with("invalid module"), "{what}: {err}");
    }
}

#[test]
fn invalid_function_body_is_refused_at_load() {
    // Well-formed binary, ill-typed code: i32.add on an empty stack.
    let bytes = wat("(module (func (result i32) i32.add))");
    let err = load_err(Limits::default(), &bytes);
    assert_eq!(err.code(), ErrorCode::InvalidModule, "{err}");
}

fn shape(edit: impl FnOnce(&mut ModuleLimits)) -> Limits {
    let mut limits = Limits::default();
    edit(&mut limits.module);
    limits
}

#[test]
fn too_many_functions() {
    let funcs = "(func)".repeat(11);
    let err = load_err(
        shape(|m| m.max_functions = 10),
        &wat(&format!("(module {funcs})")),
    );
    assert_eq!(err.code(), ErrorCode::InvalidModule);
    assert!(err.message().contains("11 functions"), "{err}");
    assert_eq!(err.details().limit, Some(10));
}

#[test]
fn too_many_locals_by_default() {
    // 20,000 locals in one declaration: a tiny binary that zero-fills a lot per call.
    let locals = "i64 ".repeat(20_000);
    let err = load_err(
        Limits::default(),
        &wat(&format!("(module (func (local {locals})))")),
    );
    assert_eq!(err.code(), ErrorCode::InvalidModule);
    assert!(err.message().contains("locals"), "{err}");
}

#[test]
fn function_body_too_large() {
    let body = "(drop (i32.const 1))".repeat(200);
    let err = load_err(
        shape(|m| m.max_function_body_bytes = 100),
        &wat(&format!("(module (func {body}))")),
    );
    assert_eq!(err.code(), ErrorCode::InvalidModule);
    assert!(err.message().contains("function body"), "{err}");
}

#[test]
fn too_many_globals_data_segments_tables_and_memories() {
    let globals = "(global i32 (i32.const 0))".repeat(5);
    let err = load_err(
        shape(|m| m.max_globals = 4),
        &wat(&format!("(module {globals})")),
    );
    assert!(err.message().contains("globals"), "{err}");

    let data = "(data (i32.const 0) \"x\")".repeat(5);
    let err = load_err(
        shape(|m| m.max_data_segments = 4),
        &wat(&format!("(module (memory 1) {data})")),
    );
    assert!(err.message().contains("data segments"), "{err}");

    let tables = "(table 1 funcref)".repeat(3);
    let err = load_err(
        shape(|m| m.max_tables = 2),
        &wat(&format!("(module {tables})")),
    );
    assert!(err.message().contains("tables"), "{err}");

    // Multi-memory is off by default: two memories are refused either way.
    let bytes = wat("(module (memory 1) (memory 1))");
    let err = load_err(Limits::default(), &bytes);
    assert_eq!(err.code(), ErrorCode::InvalidModule, "{err}");
}

#[test]
fn too_many_imports_and_exports() {
    let imports = (0..4)
        .map(|i| format!("(import \"env\" \"f{i}\" (func))"))
        .collect::<String>();
    let err = load_err(
        shape(|m| m.max_imports = 3),
        &wat(&format!("(module {imports})")),
    );
    assert!(err.message().contains("imports"), "{err}");

    let exports = (0..4)
        .map(|i| format!("(func (export \"f{i}\"))"))
        .collect::<String>();
    let err = load_err(
        shape(|m| m.max_exports = 3),
        &wat(&format!("(module {exports})")),
    );
    assert!(err.message().contains("exports"), "{err}");
}

#[test]
fn imports_and_exports_are_listed_with_types() {
    let sb = sandbox(Limits::default());
    let m = load(&sb, &fixture("host_log"));
    let imports: Vec<_> = m
        .imports()
        .iter()
        .map(|i| (i.qualified_name(), i.type_text.clone()))
        .collect();
    assert_eq!(
        imports,
        vec![
            ("env.log".to_owned(), "(i32, i32) -> ()".to_owned()),
            ("env.double".to_owned(), "(i64) -> (i64)".to_owned()),
        ]
    );
    let exports: Vec<_> = m.exports().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(exports, vec!["greet", "log_at", "memory"], "sorted by name");
}
