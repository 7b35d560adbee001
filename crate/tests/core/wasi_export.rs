//! The end-of-run export of the filesystem (`WasiOutcome::files`, `Instance::wasi_files`)
//! stays within the quotas: every hard link counts against `max_files` and its bytes against
//! `max_fs_bytes` (the export copies a file's contents under each of its names), and exported
//! paths are at most 4096 bytes and 128 directories deep (`ENAMETOOLONG` beyond).

use nestbox::{FsEntry, Preopen, WasiConfig};
use wasip1::{ERRNO_DQUOT, ERRNO_NAMETOOLONG, ERRNO_NOSPC};

use crate::wasi_util::*;

fn sys(max_fs_bytes: u64, max_files: u64) -> Sys {
    Sys::new(WasiConfig {
        preopens: vec![Preopen::new("/").file("f", vec![b'x'; 100])],
        max_fs_bytes,
        max_files,
        ..WasiConfig::default()
    })
}

fn link(sys: &mut Sys, from: &str, to: &str) -> u16 {
    let (p, l) = sys.text(PATH, from);
    let (q, m) = sys.text(PATH2, to);
    sys.call("path_link", &[PREOPEN, 0, p, l, PREOPEN, q, m])
}

/// The bytes the export holds: every file's contents under every name.
fn exported_bytes(sys: &Sys) -> u64 {
    sys.instance
        .wasi_files()
        .values()
        .flat_map(|tree| tree.values())
        .map(|entry| match entry {
            FsEntry::File(data) => data.len() as u64,
            FsEntry::Symlink(target) => target.len() as u64,
            FsEntry::Dir => 0,
        })
        .sum()
}

#[test]
fn every_hard_link_counts_against_max_files() {
    let mut sys = sys(1 << 20, 3);
    assert_eq!(link(&mut sys, "f", "a"), 0);
    assert_eq!(link(&mut sys, "f", "b"), 0);
    assert_eq!(
        link(&mut sys, "f", "c"),
        e(ERRNO_DQUOT),
        "f, a and b are 3 names"
    );
    // Removing a name gives its place back.
    assert_eq!(sys.path_call("path_unlink_file", PREOPEN, "a"), 0);
    assert_eq!(link(&mut sys, "f", "c"), 0);
    assert_eq!(sys.instance.wasi_files()["/"].len(), 3);
}

#[test]
fn the_export_of_hard_links_is_bounded_by_the_byte_quota() {
    let mut sys = sys(350, 1000);
    assert_eq!(link(&mut sys, "f", "a"), 0);
    assert_eq!(link(&mut sys, "f", "b"), 0);
    assert_eq!(link(&mut sys, "f", "c"), e(ERRNO_NOSPC), "300 + 100 > 350");
    assert_eq!(exported_bytes(&sys), 300);
    // Growing a file with 3 names grows the export 3 times as fast: 50 bytes are left, so
    // 16 more bytes fit (48 exported).
    let fd = sys.open(PREOPEN, "f", 0, READ_WRITE, 0).expect("opens");
    assert_eq!(sys.call("fd_seek", &[fd, 0, 2, u64::from(OUT)]), 0);
    assert_eq!(sys.write(fd, &[b'y'; 40]), Ok(16), "a short write");
    assert_eq!(exported_bytes(&sys), 348);
    assert_eq!(sys.call("fd_filestat_set_size", &[fd, 200]), e(ERRNO_NOSPC));
    // Unlinking names frees their share.
    assert_eq!(sys.path_call("path_unlink_file", PREOPEN, "a"), 0);
    assert_eq!(sys.path_call("path_unlink_file", PREOPEN, "b"), 0);
    assert_eq!(sys.call("fd_filestat_set_size", &[fd, 300]), 0);
    assert_eq!(exported_bytes(&sys), 300);
}

#[test]
fn directories_nest_at_most_128_deep() {
    let mut sys = sys(1 << 20, 1000);
    let mut path = String::from("d");
    for depth in 1..=128 {
        assert_eq!(
            sys.path_call("path_create_directory", PREOPEN, &path),
            0,
            "depth {depth}"
        );
        path.push_str("/d");
    }
    assert_eq!(
        sys.path_call("path_create_directory", PREOPEN, &path),
        e(ERRNO_NAMETOOLONG),
        "a 129th level"
    );
    let deepest = path.strip_suffix("/d").expect("nested").to_owned();
    assert_eq!(
        sys.open(PREOPEN, &format!("{deepest}/file"), CREAT, READ_WRITE, 0),
        Err(e(ERRNO_NAMETOOLONG)),
        "a file is a level too"
    );
    // Moving a tree under another cannot make it deeper either.
    assert_eq!(sys.path_call("path_create_directory", PREOPEN, "e"), 0);
    assert_eq!(sys.path_call("path_create_directory", PREOPEN, "e/e"), 0);
    let (p, l) = sys.text(PATH, "e");
    let (q, m) = sys.text(PATH2, &format!("{}/e", "d/d/d"));
    assert_eq!(sys.call("path_rename", &[PREOPEN, p, l, PREOPEN, q, m]), 0);
    let (p, l) = sys.text(PATH, "d/d/d/e");
    let (q, m) = sys.text(PATH2, &format!("{deepest}/e"));
    assert_eq!(
        sys.call("path_rename", &[PREOPEN, p, l, PREOPEN, q, m]),
        e(ERRNO_NAMETOOLONG)
    );
    let files = sys.instance.wasi_files();
    assert!(files["/"].keys().all(|k| k.split('/').count() <= 128));
    assert!(
        files["/"].contains_key("d/d/d/e/e"),
        "moved with its subtree"
    );
}

#[test]
fn exported_paths_are_at_most_4096_bytes() {
    let mut sys = sys(1 << 20, 1000);
    // 16 levels of 255-byte names: 16 * 256 - 1 = 4095 bytes.
    let name = "n".repeat(255);
    let mut path = name.clone();
    for _ in 1..16 {
        assert_eq!(sys.path_call("path_create_directory", PREOPEN, &path), 0);
        path = format!("{path}/{name}");
    }
    // The 16th level is resolved from the 15th's fd (the guest's own path would be too
    // long for one call), and the full path would be 4095 bytes: allowed. Two more bytes
    // are not.
    let parent = path.rsplit_once('/').expect("nested").0.to_owned();
    let fd = sys
        .open(
            PREOPEN,
            &parent,
            wasip1::OFLAGS_DIRECTORY.into(),
            !wasip1::RIGHTS_FD_WRITE,
            0,
        )
        .unwrap_or_else(|e| panic!("opens the 15th level: {e}"));
    assert_eq!(sys.path_call("path_create_directory", fd, &name), 0);
    let longer = format!("{name}/ab");
    assert_eq!(
        sys.path_call("path_create_directory", fd, &longer),
        e(ERRNO_NAMETOOLONG)
    );
    let files = sys.instance.wasi_files();
    assert!(files["/"].keys().all(|k| k.len() <= 4096));
    assert!(files["/"].keys().any(|k| k.len() == 4095));
}
