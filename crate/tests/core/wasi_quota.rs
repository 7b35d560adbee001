//! Filesystem quotas: bytes over `max_fs_bytes` are `ENOSPC` (a write is short when part
//! fits), inodes over `max_files` are `EDQUOT`; an errno to the guest, never a trap.
//! Initial files count too.

use nestbox::{ErrorCode, FsEntry, InstanceState, Limits, Preopen, WasiConfig};
use wasip1::{ERRNO_DQUOT, ERRNO_NOSPC};

use crate::common::{fixture, load, sandbox};
use crate::wasi_util::*;

fn sys(max_fs_bytes: u64, max_files: u64) -> Sys {
    Sys::new(WasiConfig {
        preopens: vec![Preopen::new("/").file("initial", vec![b'i'; 40])],
        max_fs_bytes,
        max_files,
        ..WasiConfig::default()
    })
}

#[test]
fn bytes_over_the_quota_are_enospc() {
    let mut sys = sys(100, 100);
    let fd = sys
        .open(PREOPEN, "big", CREAT, READ_WRITE, 0)
        .expect("creates");
    assert_eq!(
        sys.write(fd, &[b'x'; 100]),
        Ok(60),
        "a short write: 40 + 60 = 100"
    );
    assert_eq!(sys.write(fd, b"y"), Err(e(ERRNO_NOSPC)));
    assert_eq!(sys.call("fd_filestat_set_size", &[fd, 61]), e(ERRNO_NOSPC));
    assert_eq!(sys.call("fd_allocate", &[fd, 0, 1000]), e(ERRNO_NOSPC));
    // Overwriting in place needs no new bytes.
    assert_eq!(sys.call("fd_seek", &[fd, 0, 0, u64::from(OUT)]), 0);
    assert_eq!(sys.write(fd, b"OVER"), Ok(4));
    // Freeing bytes makes room again.
    assert_eq!(sys.path_call("path_unlink_file", PREOPEN, "initial"), 0);
    assert_eq!(
        sys.call("fd_seek", &[fd, 0, 2, u64::from(OUT)]),
        0,
        "to the end"
    );
    assert_eq!(sys.write(fd, &[b'z'; 50]), Ok(40), "60 + 40");
    assert_eq!(sys.instance.state(), InstanceState::Idle, "no trap");
    let tree = &sys.instance.wasi_files()["/"];
    let FsEntry::File(big) = &tree["big"] else {
        panic!("a file")
    };
    assert_eq!(big.len(), 100);
    assert_eq!(&big[..4], b"OVER");
}

#[test]
fn inodes_over_the_quota_are_edquot() {
    let mut sys = sys(1 << 20, 3);
    assert_eq!(sys.path_call("path_create_directory", PREOPEN, "d"), 0);
    let fd = sys
        .open(PREOPEN, "d/f", CREAT, READ_WRITE, 0)
        .expect("creates");
    let dquot = e(ERRNO_DQUOT);
    assert_eq!(sys.open(PREOPEN, "g", CREAT, READ_WRITE, 0), Err(dquot));
    assert_eq!(sys.path_call("path_create_directory", PREOPEN, "e"), dquot);
    let (t, tl) = sys.text(PATH2, "initial");
    let (p, l) = sys.text(PATH, "link");
    assert_eq!(sys.call("path_symlink", &[t, tl, PREOPEN, p, l]), dquot);
    assert_eq!(sys.path_call("path_unlink_file", PREOPEN, "d/f"), 0);
    assert_eq!(
        sys.open(PREOPEN, "g", CREAT, READ_WRITE, 0),
        Err(dquot),
        "an unlinked file counts until its last fd closes"
    );
    assert_eq!(sys.call("fd_close", &[fd]), 0);
    assert!(
        sys.open(PREOPEN, "g", CREAT, READ_WRITE, 0).is_ok(),
        "room again"
    );
}

#[test]
fn initial_files_over_a_quota_are_refused() {
    let sb = sandbox(Limits::default());
    let module = load(&sb, &fixture("wasi_syscalls"));
    for config in [
        WasiConfig {
            preopens: vec![Preopen::new("/").file("f", vec![0; 11])],
            max_fs_bytes: 10,
            ..WasiConfig::default()
        },
        WasiConfig {
            preopens: vec![Preopen::new("/").file("a", "").file("b", "")],
            max_files: 1,
            ..WasiConfig::default()
        },
        WasiConfig {
            preopens: vec![Preopen::new("/").file("../up", "")],
            ..WasiConfig::default()
        },
        WasiConfig {
            preopens: vec![Preopen::new("/").file("a", "x").file("a/b", "y")],
            ..WasiConfig::default()
        },
        WasiConfig {
            preopens: vec![Preopen::new("/x"), Preopen::new("/x")],
            ..WasiConfig::default()
        },
    ] {
        let error = sb.instantiate_wasi(&module, &config).expect_err("refused");
        assert_eq!(error.code(), ErrorCode::InvalidArgument, "{error}");
    }
}
