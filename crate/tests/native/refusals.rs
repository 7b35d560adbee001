//! What the pass refuses, and that no input makes it panic.

use nestbox::ErrorCode;
use nestbox::native::{self, InstrumentConfig};

use crate::harness::{config, engine, fixture, wat};

fn refused(bytes: &[u8]) -> nestbox::Error {
    native::instrument(bytes, &config()).expect_err("refused")
}

#[test]
fn the_reserved_names_are_refused() {
    let e = refused(&wat(
        r#"(module (import "nestbox" "out_of_fuel" (func)) (import "nestbox" "x" (global i32)))"#,
    ));
    assert_eq!(e.code(), ErrorCode::ImportNotGranted, "{e}");
    assert_eq!(
        e.details().imports,
        vec!["nestbox.out_of_fuel".to_owned(), "nestbox.x".to_owned()]
    );
    for name in ["nestbox_fuel", "nestbox_depth"] {
        let e = refused(&wat(&format!(
            r#"(module (global i64 (i64.const 0)) (export "{name}" (global 0)))"#
        )));
        assert_eq!(e.code(), ErrorCode::InvalidModule, "{e}");
        assert!(e.message().contains(name), "{e}");
    }
}

#[test]
fn what_the_tier_does_not_meter_is_refused() {
    for text in [
        // memory64, shared memory (threads), SIMD, exceptions, typed function references.
        "(module (memory i64 1))",
        "(module (memory 1 1 shared))",
        "(module (func (drop (v128.const i64x2 0 0))))",
        "(module (tag $e) (func (try_table (catch_all 0) (throw $e))))",
        "(module (type $f (func)) (func (param (ref $f)) (call_ref $f (local.get 0))))",
    ] {
        let Ok(bytes) = wat::parse_str(text) else {
            panic!("wat: {text}");
        };
        let e = refused(&bytes);
        assert_eq!(e.code(), ErrorCode::InvalidModule, "{text}: {e}");
    }
}

#[test]
fn a_configuration_that_cannot_work_is_invalid_argument() {
    let bytes = fixture("add");
    for config in [
        InstrumentConfig {
            max_call_depth: 0,
            ..config()
        },
        InstrumentConfig {
            max_call_depth: 1_000_001,
            ..config()
        },
        InstrumentConfig {
            start_fuel: u64::MAX,
            ..config()
        },
    ] {
        let e = native::instrument(&bytes, &config).expect_err("refused");
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{config:?}");
    }
}

/// Every prefix of a real module, and seeded random corruptions of it: an error with a code
/// of the pass, or a module wasmi accepts — never a panic.
#[test]
fn no_input_makes_it_panic() {
    let bytes = fixture("native_mix");
    let allowed = [
        ErrorCode::InvalidModule,
        ErrorCode::ImportNotGranted,
        ErrorCode::MemoryLimit,
        ErrorCode::TableLimit,
    ];
    let engine = engine();
    let check = |input: &[u8]| match native::instrument(input, &config()) {
        Ok(out) => {
            wasmi::Module::new(&engine, &out.bytes[..]).expect("the output validates");
        }
        Err(e) => assert!(allowed.contains(&e.code()), "{e}"),
    };
    for len in 0..bytes.len() {
        check(&bytes[..len]);
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut accepted = 0;
    for _ in 0..3_000 {
        let mut corrupt = bytes.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % corrupt.len() as u64) as usize;
            corrupt[at] = next() as u8;
        }
        if native::instrument(&corrupt, &config()).is_ok() {
            accepted += 1;
        }
        check(&corrupt);
    }
    // Many corruptions land in data, names or constants and stay valid.
    assert!(accepted > 0);
    check(b"");
    check(b"\0asm");
    check(b"\0asm\x01\0\0\0");
    check(&[0xff; 64]);
}
