//! preview1 rights are enforced (wasmtime's `preview_1.rs` rules, as wasi-testsuite's
//! `fd_fdstat_set_rights` and `truncation_rights` check them): `fd_fdstat_set_rights` only
//! drops rights (`ENOTCAPABLE` to add one), every fd operation needs its right — missing
//! `FD_READ`/`FD_WRITE` is `EBADF` (POSIX, for a file not open for it), any other missing
//! right `EPERM` — and `path_open` gets at most the directory's inheriting rights.

use nestbox::{FsEntry, Preopen, WasiConfig};
use wasip1::{
    ERRNO_BADF, ERRNO_NOTCAPABLE, ERRNO_PERM, OFLAGS_DIRECTORY, OFLAGS_TRUNC,
    RIGHTS_FD_FILESTAT_SET_SIZE, RIGHTS_FD_READ, RIGHTS_FD_READDIR, RIGHTS_FD_SEEK, RIGHTS_FD_TELL,
    RIGHTS_FD_WRITE, RIGHTS_PATH_CREATE_DIRECTORY, RIGHTS_PATH_CREATE_FILE,
    RIGHTS_PATH_FILESTAT_SET_SIZE, RIGHTS_PATH_OPEN, RIGHTS_PATH_UNLINK_FILE,
};

use crate::wasi_util::*;

fn sys() -> Sys {
    Sys::new(WasiConfig {
        preopens: vec![Preopen::new("/").file("file", "contents")],
        ..WasiConfig::default()
    })
}

/// `(base, inheriting)` of `fd`.
fn rights(sys: &mut Sys, fd: u64) -> (u64, u64) {
    assert_eq!(sys.call("fd_fdstat_get", &[fd, u64::from(OUT)]), 0);
    (sys.u64_at(OUT + 8), sys.u64_at(OUT + 16))
}

fn drop_rights(sys: &mut Sys, fd: u64, base: u64, inheriting: u64) {
    let (b, i) = rights(sys, fd);
    assert_eq!(
        sys.call("fd_fdstat_set_rights", &[fd, b & !base, i & !inheriting]),
        0,
        "dropping rights"
    );
}

fn contents(sys: &Sys) -> Option<FsEntry> {
    sys.instance.wasi_files()["/"].get("file").cloned()
}

#[test]
fn a_dropped_fd_read_right_stops_reads() {
    let mut sys = sys();
    let fd = sys.open(PREOPEN, "file", 0, READ_WRITE, 0).expect("opens");
    assert_eq!(sys.read(fd, 3).as_deref(), Ok(&b"con"[..]));
    drop_rights(&mut sys, fd, RIGHTS_FD_READ, 0);
    assert_eq!(rights(&mut sys, fd).0 & RIGHTS_FD_READ, 0);
    assert_eq!(sys.read(fd, 3), Err(e(ERRNO_BADF)));
    assert_eq!(
        sys.call("fd_pread", &[fd, u64::from(IOV), 1, 0, u64::from(OUT)]),
        e(ERRNO_BADF)
    );
    let (base, _) = rights(&mut sys, fd);
    assert_eq!(
        sys.call("fd_fdstat_set_rights", &[fd, base | RIGHTS_FD_READ, 0]),
        e(ERRNO_NOTCAPABLE),
        "a right cannot come back"
    );
    // Writes still work; then without FD_WRITE they do not.
    assert_eq!(sys.write(fd, b"X"), Ok(1));
    drop_rights(&mut sys, fd, RIGHTS_FD_WRITE, 0);
    assert_eq!(sys.write(fd, b"Y"), Err(e(ERRNO_BADF)));
    // Seeking and telling need their rights too.
    assert_eq!(sys.call("fd_tell", &[fd, u64::from(OUT)]), 0);
    drop_rights(&mut sys, fd, RIGHTS_FD_SEEK, 0);
    assert_eq!(
        sys.call("fd_seek", &[fd, 0, 0, u64::from(OUT)]),
        e(ERRNO_PERM)
    );
    assert_eq!(
        sys.call("fd_tell", &[fd, u64::from(OUT)]),
        0,
        "FD_TELL is left"
    );
    drop_rights(&mut sys, fd, RIGHTS_FD_TELL, 0);
    assert_eq!(sys.call("fd_tell", &[fd, u64::from(OUT)]), e(ERRNO_PERM));
    assert_eq!(contents(&sys), Some(FsEntry::File(b"conXents".to_vec())));
}

#[test]
fn truncating_needs_the_size_rights() {
    let mut sys = sys();
    // A directory fd of our own, as wasi-testsuite opens its scratch directory.
    let (base, inheriting) = rights(&mut sys, PREOPEN);
    let (p, l) = sys.text(PATH, ".");
    assert_eq!(
        sys.call(
            "path_open",
            &[
                PREOPEN,
                0,
                p,
                l,
                OFLAGS_DIRECTORY.into(),
                base,
                inheriting,
                0,
                u64::from(OUT)
            ],
        ),
        0
    );
    let dir = u64::from(sys.u32_at(OUT));
    assert_eq!(rights(&mut sys, dir).0 & RIGHTS_FD_FILESTAT_SET_SIZE, 0);
    // Without FD_FILESTAT_SET_SIZE in the inheriting rights, O_TRUNC still works...
    drop_rights(&mut sys, dir, 0, RIGHTS_FD_FILESTAT_SET_SIZE);
    let trunc = u64::from(OFLAGS_TRUNC);
    let fd = sys.open(dir, "file", trunc, 0, 0).expect("truncates");
    assert_eq!(sys.call("fd_close", &[fd]), 0);
    assert_eq!(contents(&sys), Some(FsEntry::File(Vec::new())));
    // ...and a file opened from it cannot set its size.
    let fd = sys.open(dir, "file", 0, READ_WRITE, 0).expect("opens");
    assert_eq!(sys.write(fd, b"kept"), Ok(4));
    assert_eq!(rights(&mut sys, fd).0 & RIGHTS_FD_FILESTAT_SET_SIZE, 0);
    assert_eq!(
        sys.call("fd_filestat_set_size", &[fd, 1]),
        e(ERRNO_PERM),
        "set_size without the right"
    );
    // Without PATH_FILESTAT_SET_SIZE, O_TRUNC is refused and the file is unchanged.
    drop_rights(&mut sys, dir, RIGHTS_PATH_FILESTAT_SET_SIZE, 0);
    assert_eq!(rights(&mut sys, dir).0 & RIGHTS_PATH_FILESTAT_SET_SIZE, 0);
    assert_eq!(sys.open(dir, "file", trunc, 0, 0), Err(e(ERRNO_PERM)));
    assert_eq!(contents(&sys), Some(FsEntry::File(b"kept".to_vec())));
    // A file fd with the right can truncate; dropping it stops that.
    let fd = sys.open(PREOPEN, "file", 0, READ_WRITE, 0).expect("opens");
    assert_eq!(sys.call("fd_filestat_set_size", &[fd, 2]), 0);
    drop_rights(&mut sys, fd, RIGHTS_FD_FILESTAT_SET_SIZE, 0);
    assert_eq!(sys.call("fd_filestat_set_size", &[fd, 1]), e(ERRNO_PERM));
    assert_eq!(contents(&sys), Some(FsEntry::File(b"ke".to_vec())));
}

#[test]
fn path_operations_need_the_directory_rights() {
    let mut sys = sys();
    drop_rights(
        &mut sys,
        PREOPEN,
        RIGHTS_PATH_CREATE_DIRECTORY | RIGHTS_PATH_UNLINK_FILE | RIGHTS_FD_READDIR,
        0,
    );
    assert_eq!(
        sys.path_call("path_create_directory", PREOPEN, "d"),
        e(ERRNO_PERM)
    );
    assert_eq!(
        sys.path_call("path_unlink_file", PREOPEN, "file"),
        e(ERRNO_PERM)
    );
    assert_eq!(
        sys.call(
            "fd_readdir",
            &[PREOPEN, u64::from(BUF), 256, 0, u64::from(OUT)]
        ),
        e(ERRNO_PERM)
    );
    assert!(contents(&sys).is_some(), "not unlinked");
    drop_rights(&mut sys, PREOPEN, RIGHTS_PATH_CREATE_FILE, 0);
    assert_eq!(
        sys.open(PREOPEN, "new", CREAT, READ_WRITE, 0),
        Err(e(ERRNO_PERM))
    );
    assert_eq!(sys.open(PREOPEN, "file", 0, READ, 0).map(|_| ()), Ok(()));
    drop_rights(&mut sys, PREOPEN, RIGHTS_PATH_OPEN, 0);
    assert_eq!(sys.open(PREOPEN, "file", 0, READ, 0), Err(e(ERRNO_PERM)));
}

#[test]
fn opened_fds_get_at_most_the_inheriting_rights() {
    let mut sys = sys();
    drop_rights(&mut sys, PREOPEN, 0, RIGHTS_FD_WRITE | RIGHTS_FD_SEEK);
    let fd = sys
        .open(PREOPEN, "file", 0, READ_WRITE, 0)
        .expect("opens, without the rights it may not have");
    let (base, _) = rights(&mut sys, fd);
    assert_eq!(base & (RIGHTS_FD_WRITE | RIGHTS_FD_SEEK), 0);
    assert_ne!(base & RIGHTS_FD_READ, 0);
    assert_eq!(sys.write(fd, b"no"), Err(e(ERRNO_BADF)));
    assert_eq!(contents(&sys), Some(FsEntry::File(b"contents".to_vec())));
    // A directory opened from it passes on no more than it got.
    let (p, l) = sys.text(PATH, ".");
    assert_eq!(
        sys.call(
            "path_open",
            &[
                PREOPEN,
                0,
                p,
                l,
                OFLAGS_DIRECTORY.into(),
                !RIGHTS_FD_WRITE,
                u64::MAX,
                0,
                u64::from(OUT)
            ],
        ),
        0
    );
    let dir = u64::from(sys.u32_at(OUT));
    assert_eq!(
        rights(&mut sys, dir).1 & (RIGHTS_FD_WRITE | RIGHTS_FD_SEEK),
        0
    );
}
