//! Files in a preopened in-memory directory: open flags, read/write/seek/tell, pread/pwrite,
//! sizes, append mode, fds; the caller reads the resulting tree back.

use nestbox::{FsEntry, Preopen, WasiConfig};
use wasip1::{
    ERRNO_BADF, ERRNO_EXIST, ERRNO_INVAL, ERRNO_ISDIR, ERRNO_NOENT, ERRNO_NOTDIR, FDFLAGS_APPEND,
    FILETYPE_DIRECTORY, FILETYPE_REGULAR_FILE, OFLAGS_DIRECTORY, OFLAGS_EXCL, OFLAGS_TRUNC,
    RIGHTS_FD_WRITE,
};

use crate::wasi_util::*;

fn sys_with(files: &[(&str, &str)]) -> Sys {
    let mut preopen = Preopen::new("/");
    for (path, contents) in files {
        preopen = preopen.file(*path, *contents);
    }
    Sys::new(WasiConfig {
        preopens: vec![preopen],
        ..WasiConfig::default()
    })
}

fn file(sys: &Sys, path: &str) -> Option<FsEntry> {
    sys.instance.wasi_files()["/"].get(path).cloned()
}

#[test]
fn preopens_are_announced_with_their_guest_path() {
    let mut sys = Sys::new(WasiConfig {
        preopens: vec![Preopen::new("/"), Preopen::new("/data/in")],
        ..WasiConfig::default()
    });
    for (fd, name) in [(3u64, "/"), (4, "/data/in")] {
        assert_eq!(sys.call("fd_prestat_get", &[fd, u64::from(OUT)]), 0);
        assert_eq!(sys.get(OUT, 1), [0], "tag: directory");
        assert_eq!(sys.u32_at(OUT + 4), name.len() as u32);
        assert_eq!(
            sys.call(
                "fd_prestat_dir_name",
                &[fd, u64::from(BUF), name.len() as u64]
            ),
            0
        );
        assert_eq!(sys.get(BUF, name.len() as u32), name.as_bytes());
    }
    assert_eq!(
        sys.call("fd_prestat_dir_name", &[4, u64::from(BUF), 3]),
        e(wasip1::ERRNO_NAMETOOLONG)
    );
    // Where wasi-libc and Go stop scanning; stdio is not a preopen either.
    assert_eq!(
        sys.call("fd_prestat_get", &[5, u64::from(OUT)]),
        e(ERRNO_BADF)
    );
    assert_eq!(
        sys.call("fd_prestat_get", &[1, u64::from(OUT)]),
        e(ERRNO_BADF)
    );
}

#[test]
fn read_an_initial_file() {
    let mut sys = sys_with(&[("dir/a.txt", "initial contents")]);
    let fd = sys.open(PREOPEN, "dir/a.txt", 0, READ, 0).expect("opens");
    assert_eq!(fd, 4, "the lowest free fd");
    assert_eq!(sys.read(fd, 7).as_deref(), Ok(&b"initial"[..]));
    assert_eq!(sys.read(fd, 100).as_deref(), Ok(&b" contents"[..]));
    assert_eq!(sys.read(fd, 100).as_deref(), Ok(&b""[..]), "end of file");
    assert_eq!(sys.call("fd_filestat_get", &[fd, u64::from(OUT)]), 0);
    assert_eq!(sys.get(OUT + 16, 1), [FILETYPE_REGULAR_FILE.raw()]);
    assert_eq!(sys.u64_at(OUT + 32), 16, "size");
    assert_eq!(sys.write(fd, b"x"), Err(e(ERRNO_BADF)), "opened read-only");
    assert_eq!(sys.call("fd_close", &[fd]), 0);
    assert_eq!(sys.call("fd_close", &[fd]), e(ERRNO_BADF));
}

#[test]
fn create_write_seek_read_and_read_back() {
    let mut sys = sys_with(&[]);
    let fd = sys
        .open(PREOPEN, "new.txt", CREAT, READ_WRITE, 0)
        .expect("creates");
    assert_eq!(sys.write(fd, b"hello world"), Ok(11));
    assert_eq!(sys.call("fd_tell", &[fd, u64::from(OUT)]), 0);
    assert_eq!(sys.u64_at(OUT), 11);
    assert_eq!(sys.call("fd_seek", &[fd, 0, 0, u64::from(OUT)]), 0, "SET 0");
    assert_eq!(sys.read(fd, 5).as_deref(), Ok(&b"hello"[..]));
    assert_eq!(
        sys.call("fd_seek", &[fd, (-3i64) as u64, 2, u64::from(OUT)]),
        0,
        "END -3"
    );
    assert_eq!(sys.u64_at(OUT), 8);
    assert_eq!(sys.read(fd, 10).as_deref(), Ok(&b"rld"[..]));
    assert_eq!(
        sys.call("fd_seek", &[fd, (-100i64) as u64, 1, u64::from(OUT)]),
        e(ERRNO_INVAL),
        "before the start"
    );
    assert_eq!(
        sys.call("fd_seek", &[fd, 0, 3, u64::from(OUT)]),
        e(ERRNO_INVAL),
        "bad whence"
    );

    // pwrite/pread do not move the position.
    sys.put(BUF, b"HELLO");
    sys.iovec(IOV, BUF, 5);
    assert_eq!(
        sys.call("fd_pwrite", &[fd, u64::from(IOV), 1, 0, u64::from(OUT)]),
        0
    );
    assert_eq!(sys.u32_at(OUT), 5);
    sys.iovec(IOV, BUF + 100, 5);
    assert_eq!(
        sys.call("fd_pread", &[fd, u64::from(IOV), 1, 6, u64::from(OUT)]),
        0
    );
    assert_eq!(
        (sys.u32_at(OUT), sys.get(BUF + 100, 5)),
        (5, b"world".to_vec())
    );
    assert_eq!(sys.call("fd_tell", &[fd, u64::from(OUT)]), 0);
    assert_eq!(sys.u64_at(OUT), 11);

    // Writing past the end zero-fills the gap; set_size truncates.
    assert_eq!(sys.call("fd_seek", &[fd, 13, 0, u64::from(OUT)]), 0);
    assert_eq!(sys.write(fd, b"!"), Ok(1));
    assert_eq!(
        file(&sys, "new.txt"),
        Some(FsEntry::File(b"HELLO world\0\0!".to_vec()))
    );
    assert_eq!(sys.call("fd_filestat_set_size", &[fd, 5]), 0);
    assert_eq!(sys.call("fd_allocate", &[fd, 0, 7]), 0, "extends to 7");
    assert_eq!(sys.call("fd_close", &[fd]), 0);
    assert_eq!(
        file(&sys, "new.txt"),
        Some(FsEntry::File(b"HELLO\0\0".to_vec()))
    );
}

#[test]
fn open_flags_follow_posix() {
    let mut sys = sys_with(&[("a.txt", "abc"), ("d/x", "")]);
    let excl = CREAT | u64::from(OFLAGS_EXCL);
    assert_eq!(
        sys.open(PREOPEN, "a.txt", excl, READ_WRITE, 0),
        Err(e(ERRNO_EXIST))
    );
    assert_eq!(
        sys.open(PREOPEN, "missing", 0, READ, 0),
        Err(e(ERRNO_NOENT))
    );
    assert_eq!(
        sys.open(PREOPEN, "missing/x", CREAT, READ_WRITE, 0),
        Err(e(ERRNO_NOENT))
    );
    assert_eq!(
        sys.open(PREOPEN, "a.txt/x", 0, READ, 0),
        Err(e(ERRNO_NOTDIR))
    );
    let directory = u64::from(OFLAGS_DIRECTORY);
    assert_eq!(
        sys.open(PREOPEN, "a.txt", directory, READ, 0),
        Err(e(ERRNO_NOTDIR))
    );
    assert_eq!(
        sys.open(PREOPEN, "d", directory | CREAT, READ, 0),
        Err(e(ERRNO_INVAL))
    );
    assert_eq!(
        sys.open(PREOPEN, "d", 0, READ_WRITE, 0),
        Err(e(ERRNO_ISDIR)),
        "write a dir"
    );
    assert_eq!(
        sys.open(PREOPEN, "new/", CREAT, READ_WRITE, 0),
        Err(e(ERRNO_ISDIR))
    );

    // A directory opens with or without O_DIRECTORY.
    let dir = sys
        .open(PREOPEN, "d", 0, READ, 0)
        .expect("dir without O_DIRECTORY");
    assert_eq!(sys.call("fd_fdstat_get", &[dir, u64::from(OUT)]), 0);
    assert_eq!(sys.get(OUT, 1), [FILETYPE_DIRECTORY.raw()]);
    assert_eq!(sys.read(dir, 1), Err(e(ERRNO_ISDIR)));
    // Paths resolve relative to it.
    let x = sys
        .open(dir, "x", 0, READ, 0)
        .expect("relative to a dir fd");
    assert_eq!(sys.call("fd_close", &[x]), 0);

    // O_TRUNC empties; O_EXCL creates.
    let fd = sys
        .open(PREOPEN, "a.txt", u64::from(OFLAGS_TRUNC), READ_WRITE, 0)
        .expect("truncates");
    assert_eq!(sys.read(fd, 10).as_deref(), Ok(&b""[..]));
    assert!(sys.open(PREOPEN, "fresh", excl, READ_WRITE, 0).is_ok());
    assert_eq!(file(&sys, "a.txt"), Some(FsEntry::File(vec![])));
    assert_eq!(file(&sys, "fresh"), Some(FsEntry::File(vec![])));
}

#[test]
fn append_mode_writes_at_the_end() {
    let mut sys = sys_with(&[("log", "one\n")]);
    let append = u64::from(FDFLAGS_APPEND);
    let fd = sys
        .open(PREOPEN, "log", 0, READ_WRITE, append)
        .expect("opens");
    assert_eq!(sys.write(fd, b"two\n"), Ok(4));
    assert_eq!(sys.call("fd_seek", &[fd, 0, 0, u64::from(OUT)]), 0);
    assert_eq!(sys.write(fd, b"three\n"), Ok(6));
    assert_eq!(
        file(&sys, "log"),
        Some(FsEntry::File(b"one\ntwo\nthree\n".to_vec()))
    );
    // Turning append off with fd_fdstat_set_flags writes at the position again.
    assert_eq!(sys.call("fd_fdstat_set_flags", &[fd, 0]), 0);
    assert_eq!(sys.call("fd_seek", &[fd, 0, 0, u64::from(OUT)]), 0);
    assert_eq!(sys.write(fd, b"ONE"), Ok(3));
    assert_eq!(
        file(&sys, "log"),
        Some(FsEntry::File(b"ONE\ntwo\nthree\n".to_vec()))
    );
}

#[test]
fn write_only_fds_cannot_read_and_rights_only_shrink() {
    let mut sys = sys_with(&[("f", "data")]);
    let fd = sys
        .open(PREOPEN, "f", 0, RIGHTS_FD_WRITE, 0)
        .expect("write-only");
    assert_eq!(sys.read(fd, 4), Err(e(ERRNO_BADF)));
    assert_eq!(sys.write(fd, b"DA"), Ok(2));
    assert_eq!(
        sys.call("fd_fdstat_set_rights", &[fd, 0, 0]),
        0,
        "dropping rights"
    );
    assert_eq!(
        sys.call("fd_fdstat_set_rights", &[fd, RIGHTS_FD_WRITE, 0]),
        e(wasip1::ERRNO_NOTCAPABLE),
        "cannot get them back"
    );
}

#[test]
fn renumber_moves_an_fd_and_closes_the_target() {
    let mut sys = sys_with(&[("a", "A"), ("b", "B")]);
    let a = sys.open(PREOPEN, "a", 0, READ, 0).expect("a");
    let b = sys.open(PREOPEN, "b", 0, READ, 0).expect("b");
    assert_eq!(sys.call("fd_renumber", &[a, b]), 0);
    assert_eq!(sys.read(b, 1).as_deref(), Ok(&b"A"[..]));
    assert_eq!(sys.read(a, 1), Err(e(ERRNO_BADF)));
    assert_eq!(
        sys.call("fd_renumber", &[b, 77]),
        e(ERRNO_BADF),
        "the target must be open"
    );
    assert_eq!(sys.call("fd_renumber", &[77, b]), e(ERRNO_BADF));
    // The freed number is reused.
    assert_eq!(sys.open(PREOPEN, "a", 0, READ, 0), Ok(a));
    assert_eq!(sys.call("fd_sync", &[b]), 0);
    assert_eq!(sys.call("fd_datasync", &[b]), 0);
    assert_eq!(sys.call("fd_sync", &[99]), e(ERRNO_BADF));
    assert_eq!(sys.call("fd_advise", &[b, 0, 0, 1]), 0);
    assert_eq!(sys.call("fd_advise", &[b, 0, 0, 9]), e(ERRNO_INVAL));
}

#[test]
fn unlinked_open_files_stay_readable() {
    let mut sys = sys_with(&[("tmp", "still here")]);
    let fd = sys.open(PREOPEN, "tmp", 0, READ, 0).expect("opens");
    assert_eq!(sys.path_call("path_unlink_file", PREOPEN, "tmp"), 0);
    assert_eq!(file(&sys, "tmp"), None);
    assert_eq!(sys.read(fd, 100).as_deref(), Ok(&b"still here"[..]));
}

#[test]
fn file_times_can_be_set() {
    let mut sys = sys_with(&[("t", "")]);
    let (p, l) = sys.text(PATH, "t");
    // atim = 5, mtim = 7 (ATIM | MTIM)
    assert_eq!(
        sys.call("path_filestat_set_times", &[PREOPEN, 0, p, l, 5, 7, 1 | 4]),
        0
    );
    assert_eq!(
        sys.call("path_filestat_get", &[PREOPEN, 0, p, l, u64::from(OUT)]),
        0
    );
    assert_eq!((sys.u64_at(OUT + 40), sys.u64_at(OUT + 48)), (5, 7));
    // ATIM together with ATIM_NOW is a contradiction.
    assert_eq!(
        sys.call("path_filestat_set_times", &[PREOPEN, 0, p, l, 5, 7, 1 | 2]),
        e(ERRNO_INVAL)
    );
    let fd = sys.open(PREOPEN, "t", 0, READ_WRITE, 0).expect("opens");
    assert_eq!(sys.call("fd_filestat_set_times", &[fd, 0, 9, 4]), 0);
    assert_eq!(sys.call("fd_filestat_get", &[fd, u64::from(OUT)]), 0);
    assert_eq!((sys.u64_at(OUT + 40), sys.u64_at(OUT + 48)), (5, 9));
}
