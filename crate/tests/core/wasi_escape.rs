//! Nothing escapes a preopen: `..` past the directory fd, absolute paths and symlinks that
//! climb out or are absolute are `ENOTCAPABLE`, and the tree is left untouched. Read-only
//! preopens refuse every change with `EROFS`; preopens are separate (`EXDEV`).

use nestbox::{FsEntry, FsTree, Preopen, WasiConfig};
use wasip1::{ERRNO_LOOP, ERRNO_NOTCAPABLE, ERRNO_ROFS, ERRNO_XDEV, OFLAGS_DIRECTORY};

use crate::wasi_util::*;

fn sys() -> Sys {
    Sys::new(WasiConfig {
        preopens: vec![
            Preopen::new("/box")
                .file("a.txt", "A")
                .file("sub/b.txt", "B"),
            Preopen::new("/other").file("c.txt", "C"),
            Preopen::new("/ro").file("r.txt", "R").dir("d").read_only(),
        ],
        ..WasiConfig::default()
    })
}

fn tree(sys: &Sys, preopen: &str) -> FsTree {
    sys.instance.wasi_files()[preopen].clone()
}

#[test]
fn dotdot_and_absolute_paths_cannot_leave_the_preopen() {
    let mut sys = sys();
    let before = sys.instance.wasi_files();
    let notcapable = e(ERRNO_NOTCAPABLE);
    for path in [
        "..",
        "../other/c.txt",
        "sub/../../other/c.txt",
        "/etc/passwd",
        "/box/a.txt",
        "./../x",
    ] {
        assert_eq!(
            sys.open(PREOPEN, path, 0, READ, 0),
            Err(notcapable),
            "open {path}"
        );
        assert_eq!(
            sys.open(PREOPEN, path, CREAT, READ_WRITE, 0),
            Err(notcapable),
            "create {path}"
        );
    }
    assert_eq!(
        sys.path_call("path_create_directory", PREOPEN, "../evil"),
        notcapable
    );
    assert_eq!(
        sys.path_call("path_unlink_file", PREOPEN, "../other/c.txt"),
        notcapable
    );
    assert_eq!(
        sys.path_call("path_remove_directory", PREOPEN, "sub/../.."),
        notcapable
    );
    let (p, l) = sys.text(PATH, "a.txt");
    let (q, m) = sys.text(PATH2, "../a.txt");
    assert_eq!(
        sys.call("path_rename", &[PREOPEN, p, l, PREOPEN, q, m]),
        notcapable
    );
    let (q, m) = sys.text(PATH2, "../../x");
    assert_eq!(
        sys.call("path_filestat_get", &[PREOPEN, 1, q, m, u64::from(OUT)]),
        notcapable
    );
    // Inside the preopen `..` is fine.
    assert!(sys.open(PREOPEN, "sub/../a.txt", 0, READ, 0).is_ok());
    assert_eq!(sys.instance.wasi_files(), before, "nothing changed");
}

#[test]
fn a_directory_fd_is_its_own_root() {
    let mut sys = sys();
    let sub = sys
        .open(PREOPEN, "sub", u64::from(OFLAGS_DIRECTORY), READ, 0)
        .expect("opens");
    assert!(sys.open(sub, "b.txt", 0, READ, 0).is_ok());
    // As in wasmtime (cap-std): `..` from a directory fd leaves that capability.
    assert_eq!(
        sys.open(sub, "../a.txt", 0, READ, 0),
        Err(e(ERRNO_NOTCAPABLE))
    );
}

#[test]
fn symlinks_cannot_point_outside() {
    let mut sys = sys();
    let notcapable = e(ERRNO_NOTCAPABLE);
    // An absolute target is refused when the link is made.
    let (t, tl) = sys.text(PATH2, "/etc/passwd");
    let (p, l) = sys.text(PATH, "abs");
    assert_eq!(
        sys.call("path_symlink", &[t, tl, PREOPEN, p, l]),
        notcapable
    );
    // A relative one that climbs out can be made, but never followed.
    let (t, tl) = sys.text(PATH2, "../other");
    let (p, l) = sys.text(PATH, "up");
    assert_eq!(sys.call("path_symlink", &[t, tl, PREOPEN, p, l]), 0);
    let (t, tl) = sys.text(PATH2, "sub/../..");
    let (p, l) = sys.text(PATH, "sneaky");
    assert_eq!(sys.call("path_symlink", &[t, tl, PREOPEN, p, l]), 0);
    let before = sys.instance.wasi_files();
    for path in ["up", "up/c.txt", "sneaky/other/c.txt", "sub/../up/c.txt"] {
        assert_eq!(
            sys.open(PREOPEN, path, 0, READ, 0),
            Err(notcapable),
            "open {path}"
        );
        assert_eq!(
            sys.open(PREOPEN, path, CREAT, READ_WRITE, 0),
            Err(notcapable),
            "create {path}"
        );
    }
    assert_eq!(
        sys.path_call("path_create_directory", PREOPEN, "up/evil"),
        notcapable
    );
    let (p, l) = sys.text(PATH, "up/c.txt");
    assert_eq!(
        sys.call("path_filestat_get", &[PREOPEN, 1, p, l, u64::from(OUT)]),
        notcapable
    );
    // Loops end.
    let (t, tl) = sys.text(PATH2, "loop");
    let (p, l) = sys.text(PATH, "loop");
    assert_eq!(sys.call("path_symlink", &[t, tl, PREOPEN, p, l]), 0);
    assert_eq!(sys.open(PREOPEN, "loop", 0, READ, 0), Err(e(ERRNO_LOOP)));
    let mut after = sys.instance.wasi_files();
    after.get_mut("/box").expect("box").remove("loop");
    assert_eq!(after, before, "escape attempts changed nothing");
    assert_eq!(tree(&sys, "/other").len(), 1);
}

#[test]
fn read_only_preopens_refuse_every_change() {
    let mut sys = sys();
    let ro = PREOPEN + 2;
    let before = tree(&sys, "/ro");
    let rofs = e(ERRNO_ROFS);
    assert_eq!(sys.open(ro, "new", CREAT, READ_WRITE, 0), Err(rofs));
    assert_eq!(
        sys.open(ro, "r.txt", 0, READ_WRITE, 0),
        Err(rofs),
        "write access"
    );
    assert_eq!(
        sys.open(ro, "r.txt", u64::from(wasip1::OFLAGS_TRUNC), READ, 0),
        Err(rofs)
    );
    assert_eq!(sys.path_call("path_create_directory", ro, "x"), rofs);
    assert_eq!(sys.path_call("path_unlink_file", ro, "r.txt"), rofs);
    assert_eq!(sys.path_call("path_remove_directory", ro, "d"), rofs);
    let (t, tl) = sys.text(PATH2, "r.txt");
    let (p, l) = sys.text(PATH, "link");
    assert_eq!(sys.call("path_symlink", &[t, tl, ro, p, l]), rofs);
    let (p, l) = sys.text(PATH, "r.txt");
    let (q, m) = sys.text(PATH2, "s.txt");
    assert_eq!(sys.call("path_rename", &[ro, p, l, ro, q, m]), rofs);
    assert_eq!(
        sys.call("path_filestat_set_times", &[ro, 0, p, l, 1, 1, 1 | 4]),
        rofs
    );
    // Reading works.
    let fd = sys.open(ro, "r.txt", 0, READ, 0).expect("reads");
    assert_eq!(sys.read(fd, 10).as_deref(), Ok(&b"R"[..]));
    assert_eq!(sys.write(fd, b"x"), Err(e(wasip1::ERRNO_BADF)));
    // It reports write rights all the same: wasi-libc masks what it asks for with them, and
    // an O_WRONLY open must arrive as one to fail with EROFS.
    assert_eq!(sys.call("fd_fdstat_get", &[ro, u64::from(OUT)]), 0);
    let inheriting = sys.u64_at(OUT + 16);
    assert_ne!(inheriting & wasip1::RIGHTS_FD_WRITE, 0);
    assert_eq!(tree(&sys, "/ro"), before);
    assert_eq!(before["d"], FsEntry::Dir);
}

#[test]
fn preopens_are_separate_filesystems() {
    let mut sys = sys();
    let (p, l) = sys.text(PATH, "a.txt");
    let (q, m) = sys.text(PATH2, "moved.txt");
    assert_eq!(
        sys.call("path_rename", &[PREOPEN, p, l, PREOPEN + 1, q, m]),
        e(ERRNO_XDEV)
    );
    assert_eq!(
        sys.call("path_link", &[PREOPEN, 0, p, l, PREOPEN + 1, q, m]),
        e(ERRNO_XDEV)
    );
    assert_eq!(tree(&sys, "/box")["a.txt"], FsEntry::File(b"A".to_vec()));
    assert!(!tree(&sys, "/other").contains_key("moved.txt"));
}

#[test]
fn preopened_symlinks_resolve_inside_and_never_out() {
    let mut sys = Sys::new(WasiConfig {
        preopens: vec![
            Preopen::new("/box")
                .file("v2/data.txt", "DATA")
                .symlink("latest", "v2/data.txt")
                .symlink("up", "../other/c.txt")
                .read_only(),
            Preopen::new("/other").file("c.txt", "C"),
        ],
        ..WasiConfig::default()
    });
    let fd = sys
        .open(PREOPEN, "latest", 0, READ, 0)
        .expect("follows the link");
    assert_eq!(sys.read(fd, 16).expect("reads"), b"DATA");
    assert_eq!(
        sys.open(PREOPEN, "up", 0, READ, 0),
        Err(e(ERRNO_NOTCAPABLE)),
        "a link that climbs out is never followed"
    );
    assert_eq!(
        tree(&sys, "/box").get("latest"),
        Some(&FsEntry::Symlink("v2/data.txt".into()))
    );
    // Absolute targets are refused when the preopen is built.
    for target in ["/etc/passwd", ""] {
        let err = nestbox::Sandbox::new(nestbox::Limits::default())
            .and_then(|sb| {
                let bytes = crate::common::fixture("wasi_syscalls");
                let m = sb.load(&bytes, &nestbox::Digest::of(&bytes))?;
                sb.instantiate_wasi(
                    &m,
                    &WasiConfig {
                        preopens: vec![Preopen::new("/box").symlink("bad", target)],
                        ..WasiConfig::default()
                    },
                )
            })
            .expect_err("refused");
        assert_eq!(
            err.code(),
            nestbox::ErrorCode::InvalidArgument,
            "{target:?}"
        );
    }
}
