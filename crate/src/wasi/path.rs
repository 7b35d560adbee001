//! The `path_*` functions. Every path is resolved relative to a directory fd by
//! [`Fs::resolve`](super::fs::Fs::resolve), which never leaves that directory; errnos follow
//! POSIX as libc, Rust std and Go expect them (`EEXIST`, `ENOENT`, `ENOTDIR`, `EISDIR`,
//! `ENOTEMPTY`, …).

use std::collections::BTreeMap;

use wasip1::{
    ERRNO_BUSY, ERRNO_EXIST, ERRNO_INVAL, ERRNO_ISDIR, ERRNO_LOOP, ERRNO_NOENT, ERRNO_NOTCAPABLE,
    ERRNO_NOTDIR, Errno, LOOKUPFLAGS_SYMLINK_FOLLOW, OFLAGS_CREAT, OFLAGS_DIRECTORY, OFLAGS_EXCL,
    OFLAGS_TRUNC, RIGHTS_FD_READ, RIGHTS_FD_WRITE, RIGHTS_PATH_CREATE_DIRECTORY,
    RIGHTS_PATH_CREATE_FILE, RIGHTS_PATH_FILESTAT_GET, RIGHTS_PATH_FILESTAT_SET_SIZE,
    RIGHTS_PATH_FILESTAT_SET_TIMES, RIGHTS_PATH_LINK_SOURCE, RIGHTS_PATH_LINK_TARGET,
    RIGHTS_PATH_OPEN, RIGHTS_PATH_READLINK, RIGHTS_PATH_REMOVE_DIRECTORY,
    RIGHTS_PATH_RENAME_SOURCE, RIGHTS_PATH_RENAME_TARGET, RIGHTS_PATH_SYMLINK,
    RIGHTS_PATH_UNLINK_FILE, Rights,
};

use super::fd::{DIR_RIGHTS, FILE_RIGHTS, FdEntry, times_to_set, write_filestat};
use super::fs::{Lookup, NodeId, NodeKind};
use super::{Cx, SysResult};

const ALL_OFLAGS: u32 = (OFLAGS_CREAT | OFLAGS_DIRECTORY | OFLAGS_EXCL | OFLAGS_TRUNC) as u32;

/// Reads the path at (`path_ptr`, `path_len`) and resolves it from directory fd `fd`, which
/// must have `rights` (`EPERM` otherwise, see [`FdEntry::need`]).
fn lookup(
    cx: &mut Cx<'_>,
    fd: u32,
    rights: Rights,
    path_ptr: u32,
    path_len: u32,
    follow: bool,
) -> Result<Lookup, Errno> {
    let dir = cx.wasi.fds.dir(fd, rights)?;
    let path = cx.mem.read_path(path_ptr, path_len)?;
    cx.moved += u64::from(path_len);
    let mut steps = 0;
    let lookup = cx.wasi.fs.resolve(dir, &path, follow, &mut steps);
    cx.work += steps * super::FUEL_PER_STEP;
    lookup
}

fn follows(flags: u32) -> bool {
    flags & LOOKUPFLAGS_SYMLINK_FOLLOW != 0
}

/// The existing inode a path names (`ENOENT` if it does not exist).
fn existing(lookup: Lookup) -> Result<NodeId, Errno> {
    match lookup {
        Lookup::Found { node, .. } => Ok(node),
        Lookup::Missing { .. } => Err(ERRNO_NOENT),
    }
}

/// `path_create_directory(fd, path)`.
pub(crate) fn path_create_directory(
    cx: &mut Cx<'_>,
    fd: u32,
    path_ptr: u32,
    path_len: u32,
) -> SysResult {
    match lookup(
        cx,
        fd,
        RIGHTS_PATH_CREATE_DIRECTORY,
        path_ptr,
        path_len,
        false,
    )? {
        Lookup::Found { .. } => Err(ERRNO_EXIST.into()),
        Lookup::Missing { parent, name, .. } => {
            let now = cx.now();
            cx.wasi
                .fs
                .create(parent, &name, NodeKind::Dir(BTreeMap::new()), now)?;
            Ok(())
        }
    }
}

/// `path_filestat_get(fd, flags, path) -> filestat`.
pub(crate) fn path_filestat_get(
    cx: &mut Cx<'_>,
    fd: u32,
    flags: u32,
    path_ptr: u32,
    path_len: u32,
    buf_ptr: u32,
) -> SysResult {
    cx.mem.check(buf_ptr, 64)?;
    let node = existing(lookup(
        cx,
        fd,
        RIGHTS_PATH_FILESTAT_GET,
        path_ptr,
        path_len,
        follows(flags),
    )?)?;
    let stat = cx.wasi.fs.stat(node)?;
    write_filestat(cx, buf_ptr, &stat)?;
    Ok(())
}

/// `path_filestat_set_times(fd, flags, path, atim, mtim, fst_flags)`.
#[allow(clippy::too_many_arguments)] // the spec's parameters
pub(crate) fn path_filestat_set_times(
    cx: &mut Cx<'_>,
    fd: u32,
    flags: u32,
    path_ptr: u32,
    path_len: u32,
    atim: u64,
    mtim: u64,
    fst_flags: u32,
) -> SysResult {
    let now = cx.now();
    let (atim, mtim) = times_to_set(atim, mtim, fst_flags, now)?;
    let node = existing(lookup(
        cx,
        fd,
        RIGHTS_PATH_FILESTAT_SET_TIMES,
        path_ptr,
        path_len,
        follows(flags),
    )?)?;
    cx.wasi.fs.check_writable(node)?;
    cx.wasi.fs.set_times(node, atim, mtim, now)?;
    Ok(())
}

/// `path_link(old_fd, old_flags, old_path, new_fd, new_path)`: a hard link to a file, within
/// one preopen (`EXDEV` across, `EPERM` for a directory).
#[allow(clippy::too_many_arguments)] // the spec's parameters
pub(crate) fn path_link(
    cx: &mut Cx<'_>,
    old_fd: u32,
    old_flags: u32,
    old_path_ptr: u32,
    old_path_len: u32,
    new_fd: u32,
    new_path_ptr: u32,
    new_path_len: u32,
) -> SysResult {
    let src = existing(lookup(
        cx,
        old_fd,
        RIGHTS_PATH_LINK_SOURCE,
        old_path_ptr,
        old_path_len,
        follows(old_flags),
    )?)?;
    match lookup(
        cx,
        new_fd,
        RIGHTS_PATH_LINK_TARGET,
        new_path_ptr,
        new_path_len,
        false,
    )? {
        Lookup::Found { .. } => Err(ERRNO_EXIST.into()),
        Lookup::Missing {
            trailing_slash: true,
            ..
        } => Err(ERRNO_NOENT.into()),
        Lookup::Missing { parent, name, .. } => {
            let now = cx.now();
            cx.wasi.fs.link(src, parent, &name, now)?;
            Ok(())
        }
    }
}

/// `path_open(fd, dirflags, path, oflags, fs_rights_base, fs_rights_inheriting, fdflags) ->
/// fd`.
///
/// - `CREAT` creates a missing file (in a writable preopen, under the quotas); with `EXCL`
///   an existing one (even a dangling symlink) is `EEXIST`; `TRUNC` empties a file.
/// - `DIRECTORY` requires a directory (`ENOTDIR`) and cannot be combined with
///   `CREAT`/`EXCL`/`TRUNC` (`EINVAL`, as wasmtime).
/// - A directory opens without `DIRECTORY` too, unless write access or `TRUNC` is asked
///   (`EISDIR`). A final symlink that is not followed is `ELOOP` (`O_NOFOLLOW`).
/// - Read access is `FD_READ` in the base rights, write access `FD_WRITE` (asking for
///   neither gives a read-only fd); write access in a read-only preopen is `EROFS`.
#[allow(clippy::too_many_arguments)] // the spec's parameters
pub(crate) fn path_open(
    cx: &mut Cx<'_>,
    fd: u32,
    dirflags: u32,
    path_ptr: u32,
    path_len: u32,
    oflags: u32,
    fs_rights_base: u64,
    fs_rights_inheriting: u64,
    fdflags: u32,
    opened_fd_ptr: u32,
) -> SysResult {
    cx.mem.check(opened_fd_ptr, 4)?;
    if oflags & !ALL_OFLAGS != 0 || fdflags > u32::from(u16::MAX) {
        return Err(ERRNO_INVAL.into());
    }
    let has = |flag: u16| oflags & u32::from(flag) != 0;
    let (creat, directory, excl, trunc) = (
        has(OFLAGS_CREAT),
        has(OFLAGS_DIRECTORY),
        has(OFLAGS_EXCL),
        has(OFLAGS_TRUNC),
    );
    if directory && (creat || excl || trunc) {
        return Err(ERRNO_INVAL.into());
    }
    // The directory needs PATH_OPEN, PATH_CREATE_FILE to create, PATH_FILESTAT_SET_SIZE to
    // truncate; the new fd gets at most the directory's inheriting rights (wasi-libc, Rust
    // and Go ask for everything they might use and expect to be cut down, not refused).
    let mut needed = RIGHTS_PATH_OPEN;
    if creat {
        needed |= RIGHTS_PATH_CREATE_FILE;
    }
    if trunc {
        needed |= RIGHTS_PATH_FILESTAT_SET_SIZE;
    }
    let inheritable = cx.wasi.fds.get(fd)?.rights_inheriting;
    let fs_rights_base = fs_rights_base & inheritable;
    let fs_rights_inheriting = fs_rights_inheriting & inheritable;
    let write = fs_rights_base & RIGHTS_FD_WRITE != 0;
    let read = fs_rights_base & RIGHTS_FD_READ != 0 || !write;
    let node = match lookup(cx, fd, needed, path_ptr, path_len, follows(dirflags))? {
        Lookup::Found { .. } if creat && excl => return Err(ERRNO_EXIST.into()),
        Lookup::Found { node, .. } => node,
        Lookup::Missing { .. } if !creat => return Err(ERRNO_NOENT.into()),
        Lookup::Missing {
            trailing_slash: true,
            ..
        } => return Err(ERRNO_ISDIR.into()),
        Lookup::Missing { parent, name, .. } => {
            let now = cx.now();
            cx.wasi
                .fs
                .create(parent, &name, NodeKind::File(Vec::new()), now)?
        }
    };
    let fs = &cx.wasi.fs;
    let entry = match &fs.get(node)?.kind {
        NodeKind::Symlink(_) => return Err(ERRNO_LOOP.into()),
        NodeKind::Dir(_) => {
            if write || trunc {
                return Err(ERRNO_ISDIR.into());
            }
            let base = fs_rights_base & DIR_RIGHTS;
            let inheriting = fs_rights_inheriting & (DIR_RIGHTS | FILE_RIGHTS);
            FdEntry::new_dir(node, fdflags as u16, base, inheriting)
        }
        NodeKind::File(_) => {
            if directory {
                return Err(ERRNO_NOTDIR.into());
            }
            if write || trunc {
                fs.check_writable(node)?;
            }
            if trunc {
                let now = cx.now();
                cx.wasi.fs.set_size(node, 0, now)?;
            }
            let mut base = fs_rights_base & FILE_RIGHTS;
            if read {
                // An open asking for neither reads (a read-only fd), if it may.
                base |= RIGHTS_FD_READ & inheritable;
            }
            FdEntry::new_file(node, read, write, fdflags as u16, base)
        }
    };
    let wasi = &mut *cx.wasi;
    let new_fd = wasi.fds.insert(&mut wasi.fs, entry)?;
    cx.mem.write_u32(opened_fd_ptr, new_fd)?;
    Ok(())
}

/// `path_readlink(fd, path, buf, buf_len) -> bufused`: the target, cut to `buf_len` (as
/// POSIX `readlink`; `bufused == buf_len` tells the guest to retry bigger). `EINVAL` for
/// something that is not a symlink.
pub(crate) fn path_readlink(
    cx: &mut Cx<'_>,
    fd: u32,
    path_ptr: u32,
    path_len: u32,
    buf_ptr: u32,
    buf_len: u32,
    bufused_ptr: u32,
) -> SysResult {
    cx.mem.check(buf_ptr, buf_len)?;
    cx.mem.check(bufused_ptr, 4)?;
    let node = existing(lookup(
        cx,
        fd,
        RIGHTS_PATH_READLINK,
        path_ptr,
        path_len,
        false,
    )?)?;
    let NodeKind::Symlink(target) = &cx.wasi.fs.get(node)?.kind else {
        return Err(ERRNO_INVAL.into());
    };
    let bytes = target.as_bytes();
    let n = bytes.len().min(buf_len as usize);
    let chunk = bytes.get(..n).unwrap_or_default().to_vec();
    cx.mem.write(buf_ptr, &chunk)?;
    cx.mem.write_u32(bufused_ptr, n as u32)?;
    Ok(())
}

/// `path_remove_directory(fd, path)`: `ENOTDIR` for a non-directory, `ENOTEMPTY` unless
/// empty, `EINVAL` for `.`.
pub(crate) fn path_remove_directory(
    cx: &mut Cx<'_>,
    fd: u32,
    path_ptr: u32,
    path_len: u32,
) -> SysResult {
    match lookup(
        cx,
        fd,
        RIGHTS_PATH_REMOVE_DIRECTORY,
        path_ptr,
        path_len,
        false,
    )? {
        Lookup::Missing { .. } => Err(ERRNO_NOENT.into()),
        Lookup::Found { entry: None, .. } => Err(ERRNO_INVAL.into()),
        Lookup::Found {
            node,
            entry: Some((parent, name)),
        } => {
            if !cx.wasi.fs.get(node)?.is_dir() {
                return Err(ERRNO_NOTDIR.into());
            }
            let now = cx.now();
            cx.wasi.fs.rmdir(parent, &name, now)?;
            Ok(())
        }
    }
}

/// `path_rename(fd, old_path, new_fd, new_path)`, with POSIX `rename` semantics (see
/// [`Fs::rename`](super::fs::Fs::rename)); `EBUSY` for `.` or a preopen itself.
pub(crate) fn path_rename(
    cx: &mut Cx<'_>,
    fd: u32,
    old_path_ptr: u32,
    old_path_len: u32,
    new_fd: u32,
    new_path_ptr: u32,
    new_path_len: u32,
) -> SysResult {
    let (old_parent, old_name, src) = match lookup(
        cx,
        fd,
        RIGHTS_PATH_RENAME_SOURCE,
        old_path_ptr,
        old_path_len,
        false,
    )? {
        Lookup::Missing { .. } => return Err(ERRNO_NOENT.into()),
        Lookup::Found { entry: None, .. } => return Err(ERRNO_BUSY.into()),
        Lookup::Found {
            node,
            entry: Some((parent, name)),
        } => (parent, name, node),
    };
    let (new_parent, new_name) = match lookup(
        cx,
        new_fd,
        RIGHTS_PATH_RENAME_TARGET,
        new_path_ptr,
        new_path_len,
        false,
    )? {
        Lookup::Found { entry: None, .. } => return Err(ERRNO_BUSY.into()),
        Lookup::Found {
            entry: Some(entry), ..
        } => entry,
        Lookup::Missing {
            parent,
            name,
            trailing_slash,
        } => {
            if trailing_slash && !cx.wasi.fs.get(src)?.is_dir() {
                return Err(ERRNO_NOTDIR.into());
            }
            (parent, name)
        }
    };
    let now = cx.now();
    let renamed = cx
        .wasi
        .fs
        .rename(old_parent, &old_name, new_parent, &new_name, now);
    // Moving a directory walks its tree (to bound and update the paths under it).
    cx.work += cx.wasi.fs.take_walked() * super::FUEL_PER_STEP;
    renamed?;
    Ok(())
}

/// `path_symlink(old_path, fd, new_path)`: a symlink at `new_path` whose target is the text
/// `old_path`. Absolute targets could never be followed inside the sandbox and are refused
/// (`ENOTCAPABLE`); relative ones are stored as given and checked when followed.
pub(crate) fn path_symlink(
    cx: &mut Cx<'_>,
    old_path_ptr: u32,
    old_path_len: u32,
    fd: u32,
    new_path_ptr: u32,
    new_path_len: u32,
) -> SysResult {
    let target = cx.mem.read_path(old_path_ptr, old_path_len)?;
    if target.is_empty() {
        return Err(ERRNO_NOENT.into());
    }
    if target.starts_with('/') {
        return Err(ERRNO_NOTCAPABLE.into());
    }
    match lookup(
        cx,
        fd,
        RIGHTS_PATH_SYMLINK,
        new_path_ptr,
        new_path_len,
        false,
    )? {
        Lookup::Found { .. } => Err(ERRNO_EXIST.into()),
        Lookup::Missing {
            trailing_slash: true,
            ..
        } => Err(ERRNO_NOENT.into()),
        Lookup::Missing { parent, name, .. } => {
            let now = cx.now();
            cx.wasi
                .fs
                .create(parent, &name, NodeKind::Symlink(target), now)?;
            Ok(())
        }
    }
}

/// `path_unlink_file(fd, path)`: `EISDIR` for a directory.
pub(crate) fn path_unlink_file(
    cx: &mut Cx<'_>,
    fd: u32,
    path_ptr: u32,
    path_len: u32,
) -> SysResult {
    match lookup(cx, fd, RIGHTS_PATH_UNLINK_FILE, path_ptr, path_len, false)? {
        Lookup::Missing { .. } => Err(ERRNO_NOENT.into()),
        Lookup::Found { entry: None, .. } => Err(ERRNO_ISDIR.into()),
        Lookup::Found {
            node,
            entry: Some((parent, name)),
        } => {
            if cx.wasi.fs.get(node)?.is_dir() {
                return Err(ERRNO_ISDIR.into());
            }
            let now = cx.now();
            cx.wasi.fs.unlink(parent, &name, now)?;
            Ok(())
        }
    }
}
