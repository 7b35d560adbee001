//! The descriptor table and the `fd_*` functions.
//!
//! Fds 0–2 are stdin, stdout and stderr; preopens follow from 3 in the configured order; new
//! fds take the lowest free number (POSIX). Stdio is a character device without seek or tell
//! (see the module docs of `wasi` for why), never answers `EAGAIN`, and accepts every fd flag
//! (`NONBLOCK` is stored and reported, and changes nothing).

use std::collections::BTreeMap;

use wasip1::{
    ADVICE_NOREUSE, ERRNO_BADF, ERRNO_FBIG, ERRNO_INVAL, ERRNO_ISDIR, ERRNO_MFILE,
    ERRNO_NAMETOOLONG, ERRNO_NOTCAPABLE, ERRNO_NOTDIR, ERRNO_PERM, ERRNO_SPIPE, Errno,
    FDFLAGS_APPEND, FDFLAGS_DSYNC, FDFLAGS_NONBLOCK, FDFLAGS_RSYNC, FDFLAGS_SYNC,
    FILETYPE_CHARACTER_DEVICE, FILETYPE_DIRECTORY, FSTFLAGS_ATIM, FSTFLAGS_ATIM_NOW, FSTFLAGS_MTIM,
    FSTFLAGS_MTIM_NOW, Filetype, RIGHTS_FD_ADVISE, RIGHTS_FD_ALLOCATE, RIGHTS_FD_DATASYNC,
    RIGHTS_FD_FDSTAT_SET_FLAGS, RIGHTS_FD_FILESTAT_GET, RIGHTS_FD_FILESTAT_SET_SIZE,
    RIGHTS_FD_FILESTAT_SET_TIMES, RIGHTS_FD_READ, RIGHTS_FD_READDIR, RIGHTS_FD_SEEK,
    RIGHTS_FD_SYNC, RIGHTS_FD_TELL, RIGHTS_FD_WRITE, RIGHTS_PATH_CREATE_DIRECTORY,
    RIGHTS_PATH_CREATE_FILE, RIGHTS_PATH_FILESTAT_GET, RIGHTS_PATH_FILESTAT_SET_SIZE,
    RIGHTS_PATH_FILESTAT_SET_TIMES, RIGHTS_PATH_LINK_SOURCE, RIGHTS_PATH_LINK_TARGET,
    RIGHTS_PATH_OPEN, RIGHTS_PATH_READLINK, RIGHTS_PATH_REMOVE_DIRECTORY,
    RIGHTS_PATH_RENAME_SOURCE, RIGHTS_PATH_RENAME_TARGET, RIGHTS_PATH_SYMLINK,
    RIGHTS_PATH_UNLINK_FILE, RIGHTS_POLL_FD_READWRITE, Rights, WHENCE_CUR, WHENCE_END, WHENCE_SET,
};

use super::fs::{Fs, NodeId, Stat};
use super::memory::{Iovec, total_len};
use super::{Cx, Fail, Suspended, SysResult, WasiSuspend};

/// Bytes of a `dirent` before its name.
const DIRENT_BYTES: u64 = 24;

/// Open fds at most (Linux's default `RLIMIT_NOFILE`); `EMFILE` beyond.
const MAX_FDS: usize = 1024;

/// Every fd flag preview1 defines.
const ALL_FDFLAGS: u32 =
    (FDFLAGS_APPEND | FDFLAGS_DSYNC | FDFLAGS_NONBLOCK | FDFLAGS_RSYNC | FDFLAGS_SYNC) as u32;

/// What a regular file fd can do.
pub(crate) const FILE_RIGHTS: Rights = RIGHTS_FD_DATASYNC
    | RIGHTS_FD_READ
    | RIGHTS_FD_SEEK
    | RIGHTS_FD_FDSTAT_SET_FLAGS
    | RIGHTS_FD_SYNC
    | RIGHTS_FD_TELL
    | RIGHTS_FD_WRITE
    | RIGHTS_FD_ADVISE
    | RIGHTS_FD_ALLOCATE
    | RIGHTS_FD_FILESTAT_GET
    | RIGHTS_FD_FILESTAT_SET_SIZE
    | RIGHTS_FD_FILESTAT_SET_TIMES
    | RIGHTS_POLL_FD_READWRITE;

/// What a directory fd can do.
pub(crate) const DIR_RIGHTS: Rights = RIGHTS_FD_FDSTAT_SET_FLAGS
    | RIGHTS_FD_SYNC
    | RIGHTS_FD_DATASYNC
    | RIGHTS_PATH_CREATE_DIRECTORY
    | RIGHTS_PATH_CREATE_FILE
    | RIGHTS_PATH_LINK_SOURCE
    | RIGHTS_PATH_LINK_TARGET
    | RIGHTS_PATH_OPEN
    | RIGHTS_FD_READDIR
    | RIGHTS_PATH_READLINK
    | RIGHTS_PATH_RENAME_SOURCE
    | RIGHTS_PATH_RENAME_TARGET
    | RIGHTS_PATH_FILESTAT_GET
    | RIGHTS_PATH_FILESTAT_SET_SIZE
    | RIGHTS_PATH_FILESTAT_SET_TIMES
    | RIGHTS_FD_FILESTAT_GET
    | RIGHTS_FD_FILESTAT_SET_TIMES
    | RIGHTS_PATH_SYMLINK
    | RIGHTS_PATH_REMOVE_DIRECTORY
    | RIGHTS_PATH_UNLINK_FILE;

const STDIN_RIGHTS: Rights =
    RIGHTS_FD_READ | RIGHTS_FD_FDSTAT_SET_FLAGS | RIGHTS_FD_FILESTAT_GET | RIGHTS_POLL_FD_READWRITE;
const STDOUT_RIGHTS: Rights = RIGHTS_FD_WRITE
    | RIGHTS_FD_FDSTAT_SET_FLAGS
    | RIGHTS_FD_FILESTAT_GET
    | RIGHTS_POLL_FD_READWRITE;

/// What an fd refers to.
#[derive(Debug)]
pub(crate) enum Handle {
    Stdin,
    Stdout,
    Stderr,
    File {
        node: NodeId,
        pos: u64,
        read: bool,
        write: bool,
    },
    Dir {
        node: NodeId,
    },
}

/// One open fd.
#[derive(Debug)]
pub(crate) struct FdEntry {
    pub handle: Handle,
    pub flags: u16,
    pub rights_base: Rights,
    pub rights_inheriting: Rights,
    /// For a preopened directory: its index in the preopen list.
    pub preopen: Option<usize>,
}

impl FdEntry {
    pub(crate) fn new_file(
        node: NodeId,
        read: bool,
        write: bool,
        flags: u16,
        rights: Rights,
    ) -> Self {
        Self {
            handle: Handle::File {
                node,
                pos: 0,
                read,
                write,
            },
            flags,
            rights_base: rights,
            rights_inheriting: 0,
            preopen: None,
        }
    }

    pub(crate) fn new_dir(node: NodeId, flags: u16, base: Rights, inheriting: Rights) -> Self {
        Self {
            handle: Handle::Dir { node },
            flags,
            rights_base: base,
            rights_inheriting: inheriting,
            preopen: None,
        }
    }

    /// `Ok` if the fd has every one of `rights`. A missing `FD_READ` or `FD_WRITE` is
    /// `EBADF` (POSIX's answer for a file not open for it), any other missing right `EPERM`,
    /// as wasmtime's `preview_1.rs` answers.
    pub(crate) fn need(&self, rights: Rights) -> Result<(), Errno> {
        let missing = rights & !self.rights_base;
        if missing == 0 {
            Ok(())
        } else if missing & (RIGHTS_FD_READ | RIGHTS_FD_WRITE) != 0 {
            Err(ERRNO_BADF)
        } else {
            Err(ERRNO_PERM)
        }
    }

    /// The inode this fd keeps open, if any.
    fn node(&self) -> Option<NodeId> {
        match self.handle {
            Handle::File { node, .. } | Handle::Dir { node } => Some(node),
            _ => None,
        }
    }
}

/// The open fds of one instance.
pub(crate) struct FdTable {
    map: BTreeMap<u32, FdEntry>,
}

impl FdTable {
    /// stdin, stdout and stderr as fds 0, 1 and 2.
    pub(crate) fn with_stdio() -> Self {
        let stdio = |handle, rights| FdEntry {
            handle,
            flags: 0,
            rights_base: rights,
            rights_inheriting: 0,
            preopen: None,
        };
        let map = BTreeMap::from([
            (0, stdio(Handle::Stdin, STDIN_RIGHTS)),
            (1, stdio(Handle::Stdout, STDOUT_RIGHTS)),
            (2, stdio(Handle::Stderr, STDOUT_RIGHTS)),
        ]);
        Self { map }
    }

    /// Opens the preopened directory `root` (number `index`) as the next fd. Read-only
    /// preopens report the same rights (see the `wasi` module docs for why).
    pub(crate) fn insert_preopen(
        &mut self,
        fs: &mut Fs,
        root: NodeId,
        index: usize,
    ) -> Result<u32, Errno> {
        let mut entry = FdEntry::new_dir(root, 0, DIR_RIGHTS, DIR_RIGHTS | FILE_RIGHTS);
        entry.preopen = Some(index);
        self.insert(fs, entry)
    }

    pub(crate) fn get(&self, fd: u32) -> Result<&FdEntry, Errno> {
        self.map.get(&fd).ok_or(ERRNO_BADF)
    }

    pub(crate) fn get_mut(&mut self, fd: u32) -> Result<&mut FdEntry, Errno> {
        self.map.get_mut(&fd).ok_or(ERRNO_BADF)
    }

    /// Adds `entry` under the lowest free fd (`EMFILE` when full).
    pub(crate) fn insert(&mut self, fs: &mut Fs, entry: FdEntry) -> Result<u32, Errno> {
        if self.map.len() >= MAX_FDS {
            return Err(ERRNO_MFILE);
        }
        let fd = (0u32..)
            .find(|n| !self.map.contains_key(n))
            .ok_or(ERRNO_MFILE)?;
        if let Some(node) = entry.node() {
            fs.open(node);
        }
        self.map.insert(fd, entry);
        Ok(fd)
    }

    /// Closes `fd`.
    pub(crate) fn close(&mut self, fs: &mut Fs, fd: u32) -> Result<(), Errno> {
        let entry = self.map.remove(&fd).ok_or(ERRNO_BADF)?;
        if let Some(node) = entry.node() {
            fs.close(node);
        }
        Ok(())
    }

    /// Moves `fd` to `to`, closing what `to` was.
    fn renumber(&mut self, fs: &mut Fs, fd: u32, to: u32) -> Result<(), Errno> {
        if !self.map.contains_key(&fd) || !self.map.contains_key(&to) {
            return Err(ERRNO_BADF);
        }
        if fd == to {
            return Ok(());
        }
        self.close(fs, to)?;
        let entry = self.map.remove(&fd).ok_or(ERRNO_BADF)?;
        self.map.insert(to, entry);
        Ok(())
    }

    /// The directory inode behind `fd` (`ENOTDIR` for another kind of fd), which must have
    /// `rights` ([`FdEntry::need`]).
    pub(crate) fn dir(&self, fd: u32, rights: Rights) -> Result<NodeId, Errno> {
        let entry = self.get(fd)?;
        match entry.handle {
            Handle::Dir { node } => {
                entry.need(rights)?;
                Ok(node)
            }
            _ => Err(ERRNO_NOTDIR),
        }
    }
}

/// Writes a `filestat` (64 bytes) at `buf_ptr`.
pub(crate) fn write_filestat(cx: &mut Cx<'_>, buf_ptr: u32, stat: &Stat) -> Result<(), Errno> {
    let mut buf = [0u8; 64];
    buf[0..8].copy_from_slice(&stat.dev.to_le_bytes());
    buf[8..16].copy_from_slice(&stat.ino.to_le_bytes());
    buf[16] = stat.filetype.raw();
    buf[24..32].copy_from_slice(&stat.nlink.to_le_bytes());
    buf[32..40].copy_from_slice(&stat.size.to_le_bytes());
    buf[40..48].copy_from_slice(&stat.atim.to_le_bytes());
    buf[48..56].copy_from_slice(&stat.mtim.to_le_bytes());
    buf[56..64].copy_from_slice(&stat.ctim.to_le_bytes());
    cx.mem.write(buf_ptr, &buf)
}

/// Decodes `fst_flags` into the times to set (`EINVAL` for a time given both ways or an
/// unknown flag).
pub(crate) fn times_to_set(
    atim: u64,
    mtim: u64,
    fst_flags: u32,
    now: u64,
) -> Result<(Option<u64>, Option<u64>), Errno> {
    let known = (FSTFLAGS_ATIM | FSTFLAGS_ATIM_NOW | FSTFLAGS_MTIM | FSTFLAGS_MTIM_NOW) as u32;
    let has = |flag: u16| fst_flags & u32::from(flag) != 0;
    if fst_flags & !known != 0
        || (has(FSTFLAGS_ATIM) && has(FSTFLAGS_ATIM_NOW))
        || (has(FSTFLAGS_MTIM) && has(FSTFLAGS_MTIM_NOW))
    {
        return Err(ERRNO_INVAL);
    }
    let pick = |set: u16, set_now: u16, value: u64| {
        if has(set) {
            Some(value)
        } else if has(set_now) {
            Some(now)
        } else {
            None
        }
    };
    Ok((
        pick(FSTFLAGS_ATIM, FSTFLAGS_ATIM_NOW, atim),
        pick(FSTFLAGS_MTIM, FSTFLAGS_MTIM_NOW, mtim),
    ))
}

/// `fd_advise(fd, offset, len, advice)`: accepted for files and ignored.
pub(crate) fn fd_advise(
    cx: &mut Cx<'_>,
    fd: u32,
    _offset: u64,
    _len: u64,
    advice: u32,
) -> SysResult {
    if advice > u32::from(ADVICE_NOREUSE.raw()) {
        return Err(ERRNO_INVAL.into());
    }
    let entry = cx.wasi.fds.get(fd)?;
    match entry.handle {
        Handle::File { .. } => Ok(entry.need(RIGHTS_FD_ADVISE)?),
        Handle::Dir { .. } => Err(ERRNO_BADF.into()),
        _ => Err(ERRNO_SPIPE.into()),
    }
}

/// `fd_allocate(fd, offset, len)`: makes the file at least `offset + len` bytes long.
pub(crate) fn fd_allocate(cx: &mut Cx<'_>, fd: u32, offset: u64, len: u64) -> SysResult {
    let entry = cx.wasi.fds.get(fd)?;
    let (node, write) = match entry.handle {
        Handle::File { node, write, .. } => (node, write),
        Handle::Dir { .. } => return Err(ERRNO_BADF.into()),
        _ => return Err(ERRNO_SPIPE.into()),
    };
    if !write {
        return Err(ERRNO_BADF.into());
    }
    entry.need(RIGHTS_FD_ALLOCATE)?;
    let end = offset.checked_add(len).ok_or(ERRNO_FBIG)?;
    let size = cx.wasi.fs.data(node)?.len() as u64;
    if end > size {
        cx.reserve(end - size)?;
        let now = cx.now();
        cx.wasi.fs.set_size(node, end, now)?;
        cx.moved += end - size;
    }
    Ok(())
}

/// `fd_close(fd)`.
pub(crate) fn fd_close(cx: &mut Cx<'_>, fd: u32) -> SysResult {
    let wasi = &mut *cx.wasi;
    wasi.fds.close(&mut wasi.fs, fd)?;
    Ok(())
}

/// `fd_datasync(fd)`: nothing to flush in memory.
pub(crate) fn fd_datasync(cx: &mut Cx<'_>, fd: u32) -> SysResult {
    need_unless_stdio(cx, fd, RIGHTS_FD_DATASYNC)
}

/// `fd_sync(fd)`: nothing to flush in memory.
pub(crate) fn fd_sync(cx: &mut Cx<'_>, fd: u32) -> SysResult {
    need_unless_stdio(cx, fd, RIGHTS_FD_SYNC)
}

/// Checks `rights` on a file or directory fd; stdio, where the operation does nothing,
/// passes (its rights describe a terminal, see the module docs).
fn need_unless_stdio(cx: &Cx<'_>, fd: u32, rights: Rights) -> SysResult {
    let entry = cx.wasi.fds.get(fd)?;
    match entry.handle {
        Handle::File { .. } | Handle::Dir { .. } => Ok(entry.need(rights)?),
        Handle::Stdin | Handle::Stdout | Handle::Stderr => Ok(()),
    }
}

fn filetype_of(cx: &Cx<'_>, handle: &Handle) -> Result<Filetype, Errno> {
    Ok(match handle {
        Handle::Stdin | Handle::Stdout | Handle::Stderr => FILETYPE_CHARACTER_DEVICE,
        Handle::File { node, .. } => cx.wasi.fs.get(*node)?.filetype(),
        Handle::Dir { .. } => FILETYPE_DIRECTORY,
    })
}

/// `fd_fdstat_get(fd) -> fdstat` (24 bytes: filetype, flags, rights base and inheriting).
pub(crate) fn fd_fdstat_get(cx: &mut Cx<'_>, fd: u32, stat_ptr: u32) -> SysResult {
    let entry = cx.wasi.fds.get(fd)?;
    let filetype = filetype_of(cx, &entry.handle)?;
    let mut buf = [0u8; 24];
    buf[0] = filetype.raw();
    buf[2..4].copy_from_slice(&entry.flags.to_le_bytes());
    buf[8..16].copy_from_slice(&entry.rights_base.to_le_bytes());
    buf[16..24].copy_from_slice(&entry.rights_inheriting.to_le_bytes());
    cx.mem.write(stat_ptr, &buf)?;
    Ok(())
}

/// `fd_fdstat_set_flags(fd, flags)`: `APPEND` changes where writes go; the others are
/// stored (everything in memory is synchronous and never blocks).
pub(crate) fn fd_fdstat_set_flags(cx: &mut Cx<'_>, fd: u32, flags: u32) -> SysResult {
    if flags & !ALL_FDFLAGS != 0 {
        return Err(ERRNO_INVAL.into());
    }
    let entry = cx.wasi.fds.get_mut(fd)?;
    entry.need(RIGHTS_FD_FDSTAT_SET_FLAGS)?;
    entry.flags = flags as u16;
    Ok(())
}

/// `fd_fdstat_set_rights(fd, fs_rights_base, fs_rights_inheriting)`: rights can only be
/// dropped (`ENOTCAPABLE` for more).
pub(crate) fn fd_fdstat_set_rights(
    cx: &mut Cx<'_>,
    fd: u32,
    fs_rights_base: u64,
    fs_rights_inheriting: u64,
) -> SysResult {
    let entry = cx.wasi.fds.get_mut(fd)?;
    if fs_rights_base & !entry.rights_base != 0
        || fs_rights_inheriting & !entry.rights_inheriting != 0
    {
        return Err(ERRNO_NOTCAPABLE.into());
    }
    entry.rights_base = fs_rights_base;
    entry.rights_inheriting = fs_rights_inheriting;
    Ok(())
}

/// `fd_filestat_get(fd) -> filestat`.
pub(crate) fn fd_filestat_get(cx: &mut Cx<'_>, fd: u32, buf_ptr: u32) -> SysResult {
    let entry = cx.wasi.fds.get(fd)?;
    entry.need(RIGHTS_FD_FILESTAT_GET)?;
    let stat = match entry.handle {
        Handle::File { node, .. } | Handle::Dir { node } => cx.wasi.fs.stat(node)?,
        Handle::Stdin | Handle::Stdout | Handle::Stderr => Stat {
            dev: 0,
            ino: 0,
            filetype: FILETYPE_CHARACTER_DEVICE,
            nlink: 1,
            size: 0,
            atim: 0,
            mtim: 0,
            ctim: 0,
        },
    };
    write_filestat(cx, buf_ptr, &stat)?;
    Ok(())
}

/// `fd_filestat_set_size(fd, size)`: truncates or zero-extends a file opened for writing.
pub(crate) fn fd_filestat_set_size(cx: &mut Cx<'_>, fd: u32, size: u64) -> SysResult {
    let entry = cx.wasi.fds.get(fd)?;
    match entry.handle {
        Handle::File {
            node, write: true, ..
        } => {
            entry.need(RIGHTS_FD_FILESTAT_SET_SIZE)?;
            let old = cx.wasi.fs.data(node)?.len() as u64;
            cx.reserve(size.saturating_sub(old))?;
            let now = cx.now();
            cx.wasi.fs.set_size(node, size, now)?;
            cx.moved += size.saturating_sub(old);
            Ok(())
        }
        Handle::File { .. } => Err(ERRNO_BADF.into()),
        Handle::Dir { .. } => Err(ERRNO_ISDIR.into()),
        _ => Err(ERRNO_INVAL.into()),
    }
}

/// `fd_filestat_set_times(fd, atim, mtim, fst_flags)`.
pub(crate) fn fd_filestat_set_times(
    cx: &mut Cx<'_>,
    fd: u32,
    atim: u64,
    mtim: u64,
    fst_flags: u32,
) -> SysResult {
    let now = cx.now();
    let (atim, mtim) = times_to_set(atim, mtim, fst_flags, now)?;
    let entry = cx.wasi.fds.get(fd)?;
    match entry.handle {
        Handle::File { node, .. } | Handle::Dir { node } => {
            entry.need(RIGHTS_FD_FILESTAT_SET_TIMES)?;
            cx.wasi.fs.check_writable(node)?;
            cx.wasi.fs.set_times(node, atim, mtim, now)?;
            Ok(())
        }
        // A terminal's times are not kept.
        _ => Ok(()),
    }
}

/// Copies file bytes from `offset` into the iovecs (paid before they are copied); returns
/// the count.
fn read_file(cx: &mut Cx<'_>, node: NodeId, offset: u64, iovs: &[Iovec]) -> Result<u32, Fail> {
    let len = cx.wasi.fs.data(node)?.len();
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(len);
    let want = total_len(iovs) as usize;
    let end = start.saturating_add(want).min(len);
    cx.reserve((end - start) as u64)?;
    let data = cx.wasi.fs.data(node)?;
    let chunk = data.get(start..end).unwrap_or_default();
    let n = cx.mem.scatter(iovs, 0, chunk)?;
    let now = cx.now();
    cx.wasi.fs.touch_read(node, now);
    cx.moved += n as u64;
    Ok(n as u32)
}

/// `fd_pread(fd, iovs, offset) -> nread`.
pub(crate) fn fd_pread(
    cx: &mut Cx<'_>,
    fd: u32,
    iovs_ptr: u32,
    iovs_len: u32,
    offset: u64,
    nread_ptr: u32,
) -> SysResult {
    let iovs = cx.mem.read_iovecs(iovs_ptr, iovs_len)?;
    cx.mem.check(nread_ptr, 4)?;
    let entry = cx.wasi.fds.get(fd)?;
    let n = match entry.handle {
        Handle::File {
            node, read: true, ..
        } => {
            entry.need(RIGHTS_FD_READ | RIGHTS_FD_SEEK)?;
            read_file(cx, node, offset, &iovs)?
        }
        Handle::File { .. } | Handle::Stdout | Handle::Stderr => return Err(ERRNO_BADF.into()),
        Handle::Stdin => return Err(ERRNO_SPIPE.into()),
        Handle::Dir { .. } => return Err(ERRNO_ISDIR.into()),
    };
    cx.mem.write_u32(nread_ptr, n)?;
    Ok(())
}

/// `fd_prestat_get(fd) -> prestat`: tag 0 (a directory) and the length of its name. `EBADF`
/// for an fd that is not a preopen, which is where wasi-libc and Go stop scanning.
pub(crate) fn fd_prestat_get(cx: &mut Cx<'_>, fd: u32, prestat_ptr: u32) -> SysResult {
    let name_len = preopen_name(cx, fd)?.len() as u32;
    let mut buf = [0u8; 8];
    buf[4..8].copy_from_slice(&name_len.to_le_bytes());
    cx.mem.write(prestat_ptr, &buf)?;
    Ok(())
}

fn preopen_name<'a>(cx: &'a Cx<'_>, fd: u32) -> Result<&'a str, Errno> {
    let index = cx.wasi.fds.get(fd)?.preopen.ok_or(ERRNO_BADF)?;
    let preopen = cx.wasi.preopens.get(index).ok_or(ERRNO_BADF)?;
    Ok(&preopen.guest_path)
}

/// `fd_prestat_dir_name(fd, path, path_len)`: the preopen's name, without NUL
/// (`ENAMETOOLONG` if `path_len` is too short for it).
pub(crate) fn fd_prestat_dir_name(
    cx: &mut Cx<'_>,
    fd: u32,
    path_ptr: u32,
    path_len: u32,
) -> SysResult {
    let name = preopen_name(cx, fd)?.as_bytes().to_vec();
    if (path_len as usize) < name.len() {
        return Err(ERRNO_NAMETOOLONG.into());
    }
    cx.mem.write(path_ptr, &name)?;
    Ok(())
}

/// Writes the iovecs to a file at its position (or its end in append mode); returns the
/// count.
fn write_file(cx: &mut Cx<'_>, fd: u32, node: NodeId, iovs: &[Iovec]) -> Result<u32, Fail> {
    let entry = cx.wasi.fds.get(fd)?;
    let append = entry.flags & FDFLAGS_APPEND != 0;
    let Handle::File { pos, .. } = entry.handle else {
        return Err(ERRNO_BADF.into());
    };
    let offset = if append {
        cx.wasi.fs.data(node)?.len() as u64
    } else {
        pos
    };
    let n = write_iovecs_at(cx, node, offset, iovs)?;
    if let Handle::File { pos, .. } = &mut cx.wasi.fds.get_mut(fd)?.handle {
        *pos = offset.saturating_add(n);
    }
    Ok(n as u32)
}

/// Writes the iovecs one after the other at `offset` of a file, straight from guest memory
/// (no host-side copy of the whole list). Everything the write will move — the bytes that
/// fit under the quota and the zero-filled gap before `offset` (if any) — is paid before
/// the first byte is copied. Short when the quota stops it, `ENOSPC` when not one byte
/// fits. Returns the count written.
fn write_iovecs_at(
    cx: &mut Cx<'_>,
    node: NodeId,
    offset: u64,
    iovs: &[Iovec],
) -> Result<u64, Fail> {
    let total = u64::from(total_len(iovs));
    if total == 0 {
        return Ok(0);
    }
    let old_len = cx.wasi.fs.data(node)?.len() as u64;
    let end = cx.wasi.fs.write_end(node, offset, total)?;
    cx.reserve(end - offset.min(old_len))?;
    cx.wasi.fs.reserve_len(node, end)?;
    let now = cx.now();
    let mut done = 0u64;
    for iov in iovs {
        if iov.len == 0 {
            continue;
        }
        let at = offset.checked_add(done).ok_or(ERRNO_FBIG)?;
        // Only what the quota lets in is read: the native tier copies what it reads.
        let take = u32::try_from(u64::from(iov.len).min(end.saturating_sub(at))).unwrap_or(0);
        let bytes = cx.mem.read(iov.ptr, take)?;
        match cx.wasi.fs.write_at(node, at, &bytes, now) {
            Ok(n) => {
                done += n as u64;
                if n < iov.len as usize {
                    break;
                }
            }
            // A short write: what was written counts.
            Err(_) if done > 0 => break,
            Err(errno) => return Err(errno.into()),
        }
    }
    cx.moved += offset.saturating_sub(old_len) + done;
    Ok(done)
}

/// Appends the iovecs to stdout or stderr, straight from guest memory; the bytes that fit
/// under the cap are paid before the first is copied. Past the cap the call ends with
/// `OUTPUT_LIMIT`, keeping the bytes up to it.
fn write_output(cx: &mut Cx<'_>, stdout: bool, iovs: &[Iovec]) -> Result<u32, Fail> {
    let room = if stdout {
        cx.wasi.stdout.room()
    } else {
        cx.wasi.stderr.room()
    };
    cx.reserve(u64::from(total_len(iovs)).min(room))?;
    let mut written = 0u32;
    for iov in iovs {
        let output = if stdout {
            &mut cx.wasi.stdout
        } else {
            &mut cx.wasi.stderr
        };
        let before = output.room();
        // One byte past the cap is enough to go over it: the native tier copies what it
        // reads, so a huge iovec at a full output is not copied whole.
        let take = u32::try_from(u64::from(iov.len).min(before.saturating_add(1))).unwrap_or(0);
        let bytes = cx.mem.read(iov.ptr, take)?;
        let result = output.write(&bytes);
        cx.moved += before - output.room();
        result.map_err(Fail::fatal)?;
        written = written.saturating_add(iov.len);
    }
    Ok(written)
}

/// `fd_pwrite(fd, iovs, offset) -> nwritten`. The fd is checked before anything else.
pub(crate) fn fd_pwrite(
    cx: &mut Cx<'_>,
    fd: u32,
    iovs_ptr: u32,
    iovs_len: u32,
    offset: u64,
    nwritten_ptr: u32,
) -> SysResult {
    let entry = cx.wasi.fds.get(fd)?;
    let node = match entry.handle {
        Handle::File {
            node, write: true, ..
        } => {
            entry.need(RIGHTS_FD_WRITE | RIGHTS_FD_SEEK)?;
            node
        }
        Handle::File { .. } | Handle::Stdin => return Err(ERRNO_BADF.into()),
        Handle::Stdout | Handle::Stderr => return Err(ERRNO_SPIPE.into()),
        Handle::Dir { .. } => return Err(ERRNO_ISDIR.into()),
    };
    let iovs = cx.mem.read_iovecs(iovs_ptr, iovs_len)?;
    cx.mem.check(nwritten_ptr, 4)?;
    let n = write_iovecs_at(cx, node, offset, &iovs)?;
    cx.mem.write_u32(nwritten_ptr, n as u32)?;
    Ok(())
}

/// `fd_read(fd, iovs) -> nread`. On an empty, open async stdin the guest is suspended with
/// [`WasiWait::ReadStdin`](crate::WasiWait::ReadStdin) and the read completes when the caller
/// resumes it.
pub(crate) fn fd_read(
    cx: &mut Cx<'_>,
    fd: u32,
    iovs_ptr: u32,
    iovs_len: u32,
    nread_ptr: u32,
) -> SysResult {
    let iovs = cx.mem.read_iovecs(iovs_ptr, iovs_len)?;
    cx.mem.check(nread_ptr, 4)?;
    let entry = cx.wasi.fds.get(fd)?;
    if matches!(
        entry.handle,
        Handle::File { read: true, .. } | Handle::Stdin
    ) {
        entry.need(RIGHTS_FD_READ)?;
    }
    let n = match entry.handle {
        Handle::File {
            node,
            pos,
            read: true,
            ..
        } => {
            let n = read_file(cx, node, pos, &iovs)?;
            if let Handle::File { pos, .. } = &mut cx.wasi.fds.get_mut(fd)?.handle {
                *pos += u64::from(n);
            }
            n
        }
        Handle::Stdin => {
            let max_bytes = total_len(&iovs);
            if max_bytes > 0 && !cx.wasi.stdin_ready() {
                cx.wasi.suspended = Some(Suspended::Read { iovs, nread_ptr });
                return Err(Fail::suspend(WasiSuspend::ReadStdin { max_bytes }));
            }
            let want = total_len(&iovs) as usize;
            cx.reserve(want.min(cx.wasi.stdin.data.len()) as u64)?;
            read_stdin(cx, &iovs)?
        }
        Handle::File { .. } | Handle::Stdout | Handle::Stderr => return Err(ERRNO_BADF.into()),
        Handle::Dir { .. } => return Err(ERRNO_ISDIR.into()),
    };
    cx.mem.write_u32(nread_ptr, n)?;
    Ok(())
}

/// Moves buffered stdin bytes into the iovecs (0 at end of file), straight from the buffer.
fn read_stdin(cx: &mut Cx<'_>, iovs: &[Iovec]) -> Result<u32, Errno> {
    let want = (total_len(iovs) as usize).min(cx.wasi.stdin.data.len());
    let (front, back) = cx.wasi.stdin.data.as_slices();
    let front = front.get(..want.min(front.len())).unwrap_or_default();
    let back = back
        .get(..(want - front.len()).min(back.len()))
        .unwrap_or_default();
    let mut n = cx.mem.scatter(iovs, 0, front)?;
    if n == front.len() {
        n += cx.mem.scatter(iovs, n, back)?;
    }
    cx.wasi.stdin.data.drain(..n);
    cx.moved += n as u64;
    Ok(n as u32)
}

/// Completes a suspended stdin `fd_read` once data (or end of file) is there.
pub(crate) fn complete_read(cx: &mut Cx<'_>, iovs: &[Iovec], nread_ptr: u32) -> Result<(), Errno> {
    cx.mem.check(nread_ptr, 4)?;
    let n = read_stdin(cx, iovs)?;
    cx.mem.write_u32(nread_ptr, n)
}

/// `fd_readdir(fd, buf, buf_len, cookie) -> bufused`: `.` and `..` first, then the entries
/// in name order; the cookie of an entry is its index + 1. The last entry is cut off when
/// the buffer is full (`bufused == buf_len` tells the guest to ask again with a bigger one).
pub(crate) fn fd_readdir(
    cx: &mut Cx<'_>,
    fd: u32,
    buf_ptr: u32,
    buf_len: u32,
    cookie: u64,
    bufused_ptr: u32,
) -> SysResult {
    cx.mem.check(buf_ptr, buf_len)?;
    cx.mem.check(bufused_ptr, 4)?;
    let node = cx.wasi.fds.dir(fd, RIGHTS_FD_READDIR)?;
    // Two passes over the entries, without building the listing on the host: the first
    // counts the bytes the guest gets (and the entries passed over), which are paid before
    // the second writes them straight into the guest's buffer, entry by entry.
    let limit = u64::from(buf_len);
    let (mut size, mut steps) = (0u64, 0u64);
    {
        let fs = &cx.wasi.fs;
        let entries = fs.entries(node)?;
        for (index, name) in (0u64..).zip(
            [".", ".."]
                .into_iter()
                .chain(entries.keys().map(String::as_str)),
        ) {
            steps += 1;
            if index < cookie {
                continue;
            }
            if size >= limit {
                break;
            }
            size = (size + DIRENT_BYTES + name.len() as u64).min(limit);
        }
    }
    cx.step(steps)?;
    cx.reserve(size)?;
    let fs = &cx.wasi.fs;
    let parent = fs.get(node)?.parent;
    let entries = fs.entries(node)?;
    let all = [(".", node), ("..", parent)]
        .into_iter()
        .chain(entries.iter().map(|(name, &id)| (name.as_str(), id)));
    let mut used = 0u64;
    for (index, (name, id)) in (0u64..).zip(all) {
        if index < cookie {
            continue;
        }
        if used >= limit {
            break;
        }
        let filetype = fs.node(id).map_or(FILETYPE_DIRECTORY, |n| n.filetype());
        let mut head = [0u8; DIRENT_BYTES as usize];
        head[0..8].copy_from_slice(&(index + 1).to_le_bytes());
        head[8..16].copy_from_slice(&(id as u64 + 1).to_le_bytes());
        head[16..20].copy_from_slice(&(name.len() as u32).to_le_bytes());
        head[20] = filetype.raw();
        for part in [&head[..], name.as_bytes()] {
            let room = usize::try_from(limit - used).unwrap_or(usize::MAX);
            let piece = part.get(..part.len().min(room)).unwrap_or_default();
            let at = u32::try_from(used)
                .ok()
                .and_then(|u| buf_ptr.checked_add(u))
                .ok_or(ERRNO_INVAL)?;
            cx.mem.write(at, piece)?;
            used += piece.len() as u64;
        }
    }
    cx.mem.write_u32(bufused_ptr, used as u32)?;
    cx.moved += used;
    Ok(())
}

/// `fd_renumber(fd, to)`: both must be open; `to` is closed first.
pub(crate) fn fd_renumber(cx: &mut Cx<'_>, fd: u32, to: u32) -> SysResult {
    let wasi = &mut *cx.wasi;
    wasi.fds.renumber(&mut wasi.fs, fd, to)?;
    Ok(())
}

/// `fd_seek(fd, offset, whence) -> newoffset`. Stdio cannot seek (`ESPIPE`), nor can
/// directories (`EBADF`; they are read by cookie).
pub(crate) fn fd_seek(
    cx: &mut Cx<'_>,
    fd: u32,
    offset: i64,
    whence: u32,
    newoffset_ptr: u32,
) -> SysResult {
    cx.mem.check(newoffset_ptr, 8)?;
    let entry = cx.wasi.fds.get(fd)?;
    let (node, pos) = match entry.handle {
        Handle::File { node, pos, .. } => (node, pos),
        Handle::Dir { .. } => return Err(ERRNO_BADF.into()),
        _ => return Err(ERRNO_SPIPE.into()),
    };
    // Asking where the fd is (offset 0 from the current position) is `fd_tell`'s right, or
    // `FD_SEEK`'s (which implies it); moving needs `FD_SEEK`.
    if offset == 0 && whence == u32::from(WHENCE_CUR.raw()) {
        if entry.need(RIGHTS_FD_SEEK).is_err() {
            entry.need(RIGHTS_FD_TELL)?;
        }
    } else {
        entry.need(RIGHTS_FD_SEEK)?;
    }
    let base = match whence {
        w if w == u32::from(WHENCE_SET.raw()) => 0,
        w if w == u32::from(WHENCE_CUR.raw()) => pos,
        w if w == u32::from(WHENCE_END.raw()) => cx.wasi.fs.data(node)?.len() as u64,
        _ => return Err(ERRNO_INVAL.into()),
    };
    let new = i128::from(base) + i128::from(offset);
    let new = u64::try_from(new).map_err(|_| ERRNO_INVAL)?;
    if new > i64::MAX as u64 {
        return Err(ERRNO_INVAL.into());
    }
    if let Handle::File { pos, .. } = &mut cx.wasi.fds.get_mut(fd)?.handle {
        *pos = new;
    }
    cx.mem.write_u64(newoffset_ptr, new)?;
    Ok(())
}

/// `fd_tell(fd) -> offset`.
pub(crate) fn fd_tell(cx: &mut Cx<'_>, fd: u32, offset_ptr: u32) -> SysResult {
    fd_seek(cx, fd, 0, u32::from(WHENCE_CUR.raw()), offset_ptr)
}

/// `fd_write(fd, iovs) -> nwritten`. To stdout/stderr: captured; going over the cap keeps
/// the bytes that fit and ends the call with `OUTPUT_LIMIT`.
pub(crate) fn fd_write(
    cx: &mut Cx<'_>,
    fd: u32,
    iovs_ptr: u32,
    iovs_len: u32,
    nwritten_ptr: u32,
) -> SysResult {
    // The fd first: a write that cannot happen touches nothing.
    let entry = cx.wasi.fds.get(fd)?;
    if matches!(
        entry.handle,
        Handle::Stdout | Handle::Stderr | Handle::File { write: true, .. }
    ) {
        entry.need(RIGHTS_FD_WRITE)?;
    }
    let target = match entry.handle {
        Handle::Stdout => None,
        Handle::Stderr => None,
        Handle::File {
            node, write: true, ..
        } => Some(node),
        Handle::File { .. } | Handle::Stdin => return Err(ERRNO_BADF.into()),
        Handle::Dir { .. } => return Err(ERRNO_ISDIR.into()),
    };
    let is_stdout = matches!(cx.wasi.fds.get(fd)?.handle, Handle::Stdout);
    let iovs = cx.mem.read_iovecs(iovs_ptr, iovs_len)?;
    cx.mem.check(nwritten_ptr, 4)?;
    let n = match target {
        Some(node) => write_file(cx, fd, node, &iovs)?,
        None => write_output(cx, is_stdout, &iovs)?,
    };
    cx.mem.write_u32(nwritten_ptr, n)?;
    Ok(())
}
