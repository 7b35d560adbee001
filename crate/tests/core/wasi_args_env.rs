//! WASI args and environment are exactly what the caller gave, in order, with a settable
//! argv[0]; nothing comes from the host.

use nestbox::{ErrorCode, Limits, WasiConfig};

use crate::common::{fixture, load, sandbox};
use crate::wasi_util::*;

/// The NUL-terminated strings a `*_get` call wrote, following its pointer list.
fn strings(sys: &mut Sys, list: u32, count: u32) -> Vec<String> {
    (0..count)
        .map(|i| {
            let ptr = sys.u32_at(list + i * 4);
            let bytes = sys.get(ptr, 64);
            let end = bytes.iter().position(|b| *b == 0).expect("NUL-terminated");
            String::from_utf8(bytes[..end].to_vec()).expect("utf-8")
        })
        .collect()
}

#[test]
fn args_are_exactly_the_callers_with_argv0_first() {
    let mut sys = Sys::new(WasiConfig {
        args: vec!["my-prog".into(), "a b".into(), "ünï".into()],
        ..WasiConfig::default()
    });
    assert_eq!(
        sys.call("args_sizes_get", &[u64::from(OUT), u64::from(OUT) + 4]),
        0
    );
    assert_eq!(sys.u32_at(OUT), 3);
    assert_eq!(sys.u32_at(OUT + 4), 8 + 4 + 6, "each with its NUL");
    assert_eq!(sys.call("args_get", &[u64::from(OUT), u64::from(BUF)]), 0);
    assert_eq!(strings(&mut sys, OUT, 3), ["my-prog", "a b", "ünï"]);
    assert_eq!(sys.get(BUF, 18), b"my-prog\0a b\0\xc3\xbcn\xc3\xaf\0");
}

#[test]
fn environment_is_ordered_and_only_the_callers() {
    let mut sys = Sys::new(WasiConfig {
        env: vec![("B".into(), "2".into()), ("A".into(), "1=x".into())],
        ..WasiConfig::default()
    });
    assert_eq!(
        sys.call("environ_sizes_get", &[u64::from(OUT), u64::from(OUT) + 4]),
        0
    );
    assert_eq!((sys.u32_at(OUT), sys.u32_at(OUT + 4)), (2, 4 + 6));
    assert_eq!(
        sys.call("environ_get", &[u64::from(OUT), u64::from(BUF)]),
        0
    );
    assert_eq!(strings(&mut sys, OUT, 2), ["B=2", "A=1=x"]);

    // The default: one argument, no environment at all, whatever the host process has.
    assert!(std::env::vars().count() > 0);
    let mut sys = Sys::new(WasiConfig::default());
    assert_eq!(
        sys.call("environ_sizes_get", &[u64::from(OUT), u64::from(OUT) + 4]),
        0
    );
    assert_eq!((sys.u32_at(OUT), sys.u32_at(OUT + 4)), (0, 0));
    assert_eq!(
        sys.call("args_sizes_get", &[u64::from(OUT), u64::from(OUT) + 4]),
        0
    );
    assert_eq!(
        (sys.u32_at(OUT), sys.u32_at(OUT + 4)),
        (1, 6),
        "[\"guest\"]"
    );
}

#[test]
fn no_arguments_at_all_is_allowed() {
    let mut sys = Sys::new(WasiConfig {
        args: vec![],
        ..WasiConfig::default()
    });
    assert_eq!(
        sys.call("args_sizes_get", &[u64::from(OUT), u64::from(OUT) + 4]),
        0
    );
    assert_eq!((sys.u32_at(OUT), sys.u32_at(OUT + 4)), (0, 0));
    assert_eq!(sys.call("args_get", &[u64::from(OUT), u64::from(BUF)]), 0);
}

#[test]
fn strings_the_guest_could_not_see_are_refused_up_front() {
    let sb = sandbox(Limits::default());
    let module = load(&sb, &fixture("wasi_syscalls"));
    let bad_configs = [
        WasiConfig {
            args: vec!["a\0b".into()],
            ..WasiConfig::default()
        },
        WasiConfig {
            env: vec![("A=B".into(), "1".into())],
            ..WasiConfig::default()
        },
        WasiConfig {
            env: vec![(String::new(), "1".into())],
            ..WasiConfig::default()
        },
        WasiConfig {
            env: vec![("A".into(), "\0".into())],
            ..WasiConfig::default()
        },
    ];
    for config in bad_configs {
        let error = sb
            .instantiate_wasi(&module, &config)
            .expect_err("bad config");
        assert_eq!(error.code(), ErrorCode::InvalidArgument, "{error}");
    }
    assert_eq!(sb.live_instances(), 0);
}
