//! A sandbox holds at most `max_instances` live instances; dropping one frees its place.

use nestbox::{ErrorCode, Grants, Limits};

use crate::common::*;

#[test]
fn over_the_limit_is_instance_limit_and_drop_frees_a_place() {
    let sb = sandbox(Limits {
        max_instances: 2,
        ..Limits::default()
    });
    let m = load(&sb, &fixture("add"));
    let a = sb.instantiate(&m, &Grants::new()).expect("first");
    let _b = sb.instantiate(&m, &Grants::new()).expect("second");
    let err = sb.instantiate(&m, &Grants::new()).expect_err("third");
    assert_eq!(err.code(), ErrorCode::InstanceLimit);
    assert_eq!(err.details().limit, Some(2));
    assert_eq!(sb.live_instances(), 2);
    drop(a);
    assert_eq!(sb.live_instances(), 1);
    sb.instantiate(&m, &Grants::new())
        .expect("a place was freed");
}

#[test]
fn instances_share_nothing() {
    let sb = sandbox(Limits::default());
    let bytes = wat(
        r#"(module (memory (export "memory") 1) (global $g (mut i32) (i32.const 0))
            (func (export "bump") (result i32)
              (global.set $g (i32.add (global.get $g) (i32.const 1)))
              (i32.store (i32.const 0) (global.get $g))
              (global.get $g)))"#,
    );
    let m = load(&sb, &bytes);
    let mut a = sb.instantiate(&m, &Grants::new()).expect("a");
    let mut b = sb.instantiate(&m, &Grants::new()).expect("b");
    for _ in 0..3 {
        call(&mut a, "bump", &[]).expect("a runs");
    }
    assert_eq!(
        call(&mut b, "bump", &[]).expect("b runs"),
        vec![nestbox::Value::I32(1)]
    );
    assert_eq!(a.memory().expect("memory").read_u32(0).expect("read"), 3);
    assert_eq!(b.memory().expect("memory").read_u32(0).expect("read"), 1);
}
