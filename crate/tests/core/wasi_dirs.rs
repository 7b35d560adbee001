//! Directories: fd_readdir with `.` and `..` and cookies, mkdir, rmdir, unlink, rename,
//! hard and symbolic links, with the errnos libc, Rust and Go expect.

use nestbox::{FsEntry, Preopen, WasiConfig};
use wasip1::{
    ERRNO_BADF, ERRNO_EXIST, ERRNO_INVAL, ERRNO_ISDIR, ERRNO_NOENT, ERRNO_NOTDIR, ERRNO_NOTEMPTY,
    FILETYPE_DIRECTORY, FILETYPE_REGULAR_FILE, FILETYPE_SYMBOLIC_LINK, OFLAGS_DIRECTORY,
};

use crate::wasi_util::*;

fn sys() -> Sys {
    Sys::new(WasiConfig {
        preopens: vec![
            Preopen::new("/work")
                .file("b.txt", "bee")
                .file("sub/inner.txt", "in")
                .dir("empty")
                .file("a", "A"),
        ],
        ..WasiConfig::default()
    })
}

/// `(d_next, name, d_type)` of every entry in a readdir buffer (complete entries only).
fn entries(sys: &mut Sys, used: u32) -> Vec<(u64, String, u8)> {
    let buf = sys.get(BUF, used);
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 24 <= buf.len() {
        let next = u64::from_le_bytes(buf[at..at + 8].try_into().expect("8"));
        let len = u32::from_le_bytes(buf[at + 16..at + 20].try_into().expect("4")) as usize;
        let ty = buf[at + 20];
        if at + 24 + len > buf.len() {
            break;
        }
        out.push((
            next,
            String::from_utf8(buf[at + 24..at + 24 + len].to_vec()).expect("utf-8"),
            ty,
        ));
        at += 24 + len;
    }
    out
}

fn readdir(sys: &mut Sys, fd: u64, buf_len: u32, cookie: u64) -> (u32, Vec<(u64, String, u8)>) {
    assert_eq!(
        sys.call(
            "fd_readdir",
            &[
                fd,
                u64::from(BUF),
                u64::from(buf_len),
                cookie,
                u64::from(OUT)
            ]
        ),
        0
    );
    let used = sys.u32_at(OUT);
    (used, entries(sys, used))
}

#[test]
fn readdir_lists_dot_dotdot_and_entries_in_order_with_cookies() {
    let mut sys = sys();
    let (used, all) = readdir(&mut sys, PREOPEN, 4096, 0);
    let dir = FILETYPE_DIRECTORY.raw();
    let file = FILETYPE_REGULAR_FILE.raw();
    let names: Vec<_> = all
        .iter()
        .map(|(n, name, t)| (*n, name.as_str(), *t))
        .collect();
    assert_eq!(
        names,
        [
            (1, ".", dir),
            (2, "..", dir),
            (3, "a", file),
            (4, "b.txt", file),
            (5, "empty", dir),
            (6, "sub", dir)
        ]
    );
    assert!(used < 4096, "everything fit");
    // Resume after "a" with its cookie.
    let (_, rest) = readdir(&mut sys, PREOPEN, 4096, 3);
    assert_eq!(rest.first().map(|e| e.1.as_str()), Some("b.txt"));
    assert_eq!(rest.len(), 3);
    // Past the end: nothing.
    assert_eq!(readdir(&mut sys, PREOPEN, 4096, 6).0, 0);
    // A small buffer is filled completely: the guest knows to ask again.
    let (used, some) = readdir(&mut sys, PREOPEN, 60, 0);
    assert_eq!(used, 60);
    assert_eq!(some.len(), 2, "., .. and a cut-off third entry");
    // Only directories can be listed.
    let f = sys.open(PREOPEN, "a", 0, READ, 0).expect("opens");
    assert_eq!(
        sys.call("fd_readdir", &[f, u64::from(BUF), 100, 0, u64::from(OUT)]),
        e(ERRNO_NOTDIR)
    );
    assert_eq!(
        sys.call("fd_readdir", &[42, u64::from(BUF), 100, 0, u64::from(OUT)]),
        e(ERRNO_BADF)
    );
    // A subdirectory opened with O_DIRECTORY: its `..` is the preopen.
    let sub = sys
        .open(PREOPEN, "sub", u64::from(OFLAGS_DIRECTORY), READ, 0)
        .expect("opens");
    let (_, listed) = readdir(&mut sys, sub, 4096, 0);
    let names: Vec<_> = listed.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(names, [".", "..", "inner.txt"]);
}

#[test]
fn mkdir_rmdir_and_unlink_use_the_posix_errnos() {
    let mut sys = sys();
    assert_eq!(sys.path_call("path_create_directory", PREOPEN, "new"), 0);
    assert_eq!(
        sys.path_call("path_create_directory", PREOPEN, "new"),
        e(ERRNO_EXIST)
    );
    assert_eq!(
        sys.path_call("path_create_directory", PREOPEN, "a"),
        e(ERRNO_EXIST)
    );
    assert_eq!(
        sys.path_call("path_create_directory", PREOPEN, "x/y"),
        e(ERRNO_NOENT)
    );
    assert_eq!(
        sys.path_call("path_create_directory", PREOPEN, "new/deeper/"),
        0
    );
    assert_eq!(
        sys.path_call("path_remove_directory", PREOPEN, "sub"),
        e(ERRNO_NOTEMPTY)
    );
    assert_eq!(
        sys.path_call("path_remove_directory", PREOPEN, "a"),
        e(ERRNO_NOTDIR)
    );
    assert_eq!(
        sys.path_call("path_remove_directory", PREOPEN, "nope"),
        e(ERRNO_NOENT)
    );
    assert_eq!(
        sys.path_call("path_remove_directory", PREOPEN, "."),
        e(ERRNO_INVAL)
    );
    assert_eq!(sys.path_call("path_remove_directory", PREOPEN, "empty"), 0);
    assert_eq!(
        sys.path_call("path_unlink_file", PREOPEN, "sub"),
        e(ERRNO_ISDIR)
    );
    assert_eq!(
        sys.path_call("path_unlink_file", PREOPEN, "nope"),
        e(ERRNO_NOENT)
    );
    assert_eq!(
        sys.path_call("path_unlink_file", PREOPEN, "a/"),
        e(ERRNO_NOTDIR)
    );
    assert_eq!(
        sys.path_call("path_unlink_file", PREOPEN, "sub/inner.txt"),
        0
    );
    assert_eq!(sys.path_call("path_remove_directory", PREOPEN, "sub"), 0);
    assert_eq!(
        sys.path_call("path_create_directory", 1, "x"),
        e(ERRNO_NOTDIR),
        "stdout"
    );
    assert_eq!(
        sys.path_call("path_create_directory", 99, "x"),
        e(ERRNO_BADF)
    );
    let tree = &sys.instance.wasi_files()["/work"];
    let paths: Vec<_> = tree.keys().map(String::as_str).collect();
    assert_eq!(paths, ["a", "b.txt", "new", "new/deeper"]);
    assert_eq!(tree["new/deeper"], FsEntry::Dir);
}

fn rename(sys: &mut Sys, from: &str, to: &str) -> u16 {
    let (p, l) = sys.text(PATH, from);
    let (q, m) = sys.text(PATH2, to);
    sys.call("path_rename", &[PREOPEN, p, l, PREOPEN, q, m])
}

#[test]
fn rename_follows_posix() {
    let mut sys = sys();
    assert_eq!(rename(&mut sys, "a", "sub/moved"), 0);
    assert_eq!(rename(&mut sys, "b.txt", "sub/moved"), 0, "replaces a file");
    assert_eq!(rename(&mut sys, "nope", "x"), e(ERRNO_NOENT));
    assert_eq!(
        rename(&mut sys, "sub", "sub/inside"),
        e(ERRNO_INVAL),
        "into itself"
    );
    assert_eq!(rename(&mut sys, "empty", "sub"), e(ERRNO_NOTEMPTY));
    assert_eq!(rename(&mut sys, "sub/moved", "empty"), e(ERRNO_ISDIR));
    assert_eq!(rename(&mut sys, "empty", "sub/moved"), e(ERRNO_NOTDIR));
    assert_eq!(
        rename(&mut sys, "sub", "renamed"),
        0,
        "a directory and its contents"
    );
    assert_eq!(
        rename(&mut sys, "renamed", "renamed"),
        0,
        "to itself: nothing happens"
    );
    let tree = &sys.instance.wasi_files()["/work"];
    let paths: Vec<_> = tree.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        ["empty", "renamed", "renamed/inner.txt", "renamed/moved"]
    );
    assert_eq!(tree["renamed/moved"], FsEntry::File(b"bee".to_vec()));
}

#[test]
fn symlinks_and_hard_links_inside_a_preopen() {
    let mut sys = sys();
    let (t, tl) = sys.text(PATH2, "sub/inner.txt");
    let (p, l) = sys.text(PATH, "link");
    assert_eq!(sys.call("path_symlink", &[t, tl, PREOPEN, p, l]), 0);
    assert_eq!(
        sys.call("path_symlink", &[t, tl, PREOPEN, p, l]),
        e(ERRNO_EXIST)
    );
    // readlink gives the target, cut to the buffer.
    assert_eq!(
        sys.call(
            "path_readlink",
            &[PREOPEN, p, l, u64::from(BUF), 100, u64::from(OUT)]
        ),
        0
    );
    let used = sys.u32_at(OUT);
    assert_eq!(sys.get(BUF, used), b"sub/inner.txt");
    assert_eq!(
        sys.call(
            "path_readlink",
            &[PREOPEN, p, l, u64::from(BUF), 3, u64::from(OUT)]
        ),
        0
    );
    assert_eq!(sys.u32_at(OUT), 3);
    let (f, fl) = sys.text(PATH, "a");
    assert_eq!(
        sys.call(
            "path_readlink",
            &[PREOPEN, f, fl, u64::from(BUF), 100, u64::from(OUT)]
        ),
        e(ERRNO_INVAL)
    );
    // Opening follows it; lstat does not.
    let fd = sys.open(PREOPEN, "link", 0, READ, 0).expect("follows");
    assert_eq!(sys.read(fd, 10).as_deref(), Ok(&b"in"[..]));
    let (p, l) = sys.text(PATH, "link");
    assert_eq!(
        sys.call("path_filestat_get", &[PREOPEN, 0, p, l, u64::from(OUT)]),
        0
    );
    assert_eq!(sys.get(OUT + 16, 1), [FILETYPE_SYMBOLIC_LINK.raw()]);
    assert_eq!(
        sys.call("path_filestat_get", &[PREOPEN, 1, p, l, u64::from(OUT)]),
        0
    );
    assert_eq!(sys.get(OUT + 16, 1), [FILETYPE_REGULAR_FILE.raw()]);
    // Not following a final symlink on open is ELOOP (O_NOFOLLOW).
    let (p, l) = sys.text(PATH, "link");
    assert_eq!(
        sys.call(
            "path_open",
            &[PREOPEN, 0, p, l, 0, READ, READ, 0, u64::from(OUT)]
        ),
        e(wasip1::ERRNO_LOOP)
    );
    // A hard link shares the file; unlinking one name keeps the other.
    let (p, l) = sys.text(PATH, "b.txt");
    let (q, m) = sys.text(PATH2, "hard");
    assert_eq!(sys.call("path_link", &[PREOPEN, 0, p, l, PREOPEN, q, m]), 0);
    assert_eq!(
        sys.call("path_filestat_get", &[PREOPEN, 0, q, m, u64::from(OUT)]),
        0
    );
    assert_eq!(sys.u64_at(OUT + 24), 2, "nlink");
    let (p, l) = sys.text(PATH, "sub");
    assert_eq!(
        sys.call("path_link", &[PREOPEN, 0, p, l, PREOPEN, q, m]),
        e(ERRNO_EXIST)
    );
    assert_eq!(sys.path_call("path_unlink_file", PREOPEN, "b.txt"), 0);
    let tree = &sys.instance.wasi_files()["/work"];
    assert_eq!(tree["hard"], FsEntry::File(b"bee".to_vec()));
    assert_eq!(tree["link"], FsEntry::Symlink("sub/inner.txt".into()));
    // Unlinking a symlink removes the link, not its target.
    assert_eq!(sys.path_call("path_unlink_file", PREOPEN, "link"), 0);
    assert!(sys.instance.wasi_files()["/work"].contains_key("sub/inner.txt"));
}
