//! The in-memory filesystem behind the preopened directories.
//!
//! One arena of inodes holds every preopen's tree: directories map names to inodes, files
//! hold their bytes, symlinks their target text. A directory knows its parent (there are no
//! hard links to directories), so `..` is a pointer walk, and path resolution is done here,
//! component by component, with two rules that keep a guest inside its capability (the
//! cap-std rules wasmtime follows):
//!
//! - resolution starts at the directory fd the guest passed and never leaves it: `..` at
//!   that directory, an absolute path and an absolute symlink target are all `ENOTCAPABLE`;
//! - symlinks are followed at most 40 times per resolution (`ELOOP` beyond, as Linux).
//!
//! Quotas bound the host memory a guest can make us hold, and the size of the tree exported
//! after the run: file and symlink bytes against `max_fs_bytes` (`ENOSPC`) once per name
//! (hard links included, as the export copies contents under each name), names against
//! `max_files` (`EDQUOT`), entries at most [`MAX_DEPTH`] deep with paths of at most
//! `PATH_MAX` bytes from their root (`ENAMETOOLONG`). A file unlinked while open stays
//! readable through its fd and is freed (and uncounted) at the last close.

use std::collections::BTreeMap;

use wasip1::{
    ERRNO_EXIST, ERRNO_FBIG, ERRNO_INVAL, ERRNO_ISDIR, ERRNO_LOOP, ERRNO_NAMETOOLONG, ERRNO_NOENT,
    ERRNO_NOSPC, ERRNO_NOTCAPABLE, ERRNO_NOTDIR, ERRNO_NOTEMPTY, ERRNO_PERM, ERRNO_ROFS,
    ERRNO_XDEV, Errno, FILETYPE_DIRECTORY, FILETYPE_REGULAR_FILE, FILETYPE_SYMBOLIC_LINK, Filetype,
};

use super::FsEntry;
use super::memory::PATH_MAX;

/// An index into the inode arena.
pub(crate) type NodeId = usize;

/// Longest name of one directory entry, as Linux's `NAME_MAX`.
pub(crate) const NAME_MAX: usize = 255;

/// Symlinks followed in one resolution before `ELOOP` (Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: u32 = 40;

/// Deepest entry in a preopen: a name in the root is at depth 1 (`ENAMETOOLONG` beyond).
pub(crate) const MAX_DEPTH: u32 = 128;

/// What an inode is.
#[derive(Debug)]
pub(crate) enum NodeKind {
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A directory: name -> inode, sorted (so `fd_readdir` order is stable).
    Dir(BTreeMap<String, NodeId>),
    /// A symbolic link and its target text.
    Symlink(String),
}

/// One inode.
#[derive(Debug)]
pub(crate) struct Node {
    pub kind: NodeKind,
    /// Directory entries naming this inode; 0 once unlinked (a root is pinned at 1).
    pub nlink: u64,
    /// Open fds on this inode; it is freed when both counts are 0.
    pub open: u32,
    /// For directories: the directory containing it (a root is its own parent).
    pub parent: NodeId,
    /// Which preopen tree it belongs to.
    pub root: usize,
    /// For directories: how deep it is (a root is at 0) and the length of its path from
    /// the root (`a/b` is 3), which bound the paths of its entries.
    pub depth: u32,
    pub path_len: usize,
    pub atim: u64,
    pub mtim: u64,
    pub ctim: u64,
}

impl Node {
    pub(crate) fn filetype(&self) -> Filetype {
        match self.kind {
            NodeKind::File(_) => FILETYPE_REGULAR_FILE,
            NodeKind::Dir(_) => FILETYPE_DIRECTORY,
            NodeKind::Symlink(_) => FILETYPE_SYMBOLIC_LINK,
        }
    }

    pub(crate) fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Dir(_))
    }

    /// Bytes of contents (a file's, a symlink's target).
    fn bytes(&self) -> u64 {
        match &self.kind {
            NodeKind::File(data) => data.len() as u64,
            NodeKind::Symlink(target) => target.len() as u64,
            NodeKind::Dir(_) => 0,
        }
    }

    /// How many times its bytes count against `max_fs_bytes`: once per name (the export
    /// copies the contents under each name), and once while unlinked but open.
    fn weight(&self) -> u64 {
        self.nlink.max(1)
    }

    /// Bytes this inode counts against `max_fs_bytes`.
    fn charged(&self) -> u64 {
        self.bytes().saturating_mul(self.weight())
    }
}

/// The result of resolving a path.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The path names an existing inode. `entry` is the directory entry that named it, or
    /// `None` when the path ended at `.`/`..` (or at the start directory itself).
    Found {
        node: NodeId,
        entry: Option<(NodeId, String)>,
    },
    /// Everything but the last component exists; the last one, `name`, is not in `parent`.
    /// `trailing_slash`: the path ended with `/`, so only a directory may be created there.
    Missing {
        parent: NodeId,
        name: String,
        trailing_slash: bool,
    },
}

/// The metadata `fd_filestat_get` / `path_filestat_get` report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub filetype: Filetype,
    pub nlink: u64,
    pub size: u64,
    pub atim: u64,
    pub mtim: u64,
    pub ctim: u64,
}

struct Root {
    node: NodeId,
    read_only: bool,
}

/// One entry of a preopen's initial tree (see [`Fs::populate`]); a path ending in `/` with
/// empty contents is a directory.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Initial<'a> {
    /// A file with these contents (or a directory, for a path ending in `/`).
    File(&'a [u8]),
    /// A symbolic link to this relative target (resolution never leaves the preopen).
    Symlink(&'a str),
}

/// All preopened trees, their quotas and their usage.
pub(crate) struct Fs {
    nodes: Vec<Option<Node>>,
    free: Vec<NodeId>,
    roots: Vec<Root>,
    bytes_used: u64,
    files_used: u64,
    max_bytes: u64,
    max_files: u64,
    /// Entries visited by the last tree walk (a directory moved by `rename`), for fuel.
    walked: u64,
}

impl Fs {
    pub(crate) fn new(max_bytes: u64, max_files: u64) -> Self {
        Self {
            nodes: Vec::new(),
            free: Vec::new(),
            roots: Vec::new(),
            bytes_used: 0,
            files_used: 0,
            max_bytes,
            max_files,
            walked: 0,
        }
    }

    /// Adds an empty writable tree and returns its root directory. Roots are not counted
    /// against `max_files` and can never be removed.
    pub(crate) fn add_root(&mut self, now: u64) -> NodeId {
        let root = self.roots.len();
        let id = self.alloc(Node {
            kind: NodeKind::Dir(BTreeMap::new()),
            nlink: 1,
            open: 0,
            parent: 0,
            root,
            depth: 0,
            path_len: 0,
            atim: now,
            mtim: now,
            ctim: now,
        });
        if let Some(Some(node)) = self.nodes.get_mut(id) {
            node.parent = id;
        }
        self.roots.push(Root {
            node: id,
            read_only: false,
        });
        id
    }

    /// Fills `root` from the caller's `path -> bytes` map (a key ending in `/` is a
    /// directory), then makes it read-only if asked. Quotas apply.
    ///
    /// # Errors
    ///
    /// A message naming the bad path: not relative, `.`/`..`/empty components, a file where
    /// a directory is needed, or over a quota.
    pub(crate) fn populate<'a>(
        &mut self,
        root: NodeId,
        entries: impl IntoIterator<Item = (&'a str, Initial<'a>)>,
        read_only: bool,
        now: u64,
    ) -> Result<(), String> {
        for (path, initial) in entries {
            let (bytes, symlink): (&[u8], Option<&str>) = match initial {
                Initial::File(bytes) => (bytes, None),
                Initial::Symlink(target) => (&[], Some(target)),
            };
            if let Some(target) = symlink {
                if target.is_empty() || target.starts_with('/') || target.contains('\0') {
                    return Err(format!(
                        "preopen symlink {path:?} -> {target:?}: the target must be a non-empty relative path"
                    ));
                }
                if path.ends_with('/') {
                    return Err(format!("preopen symlink {path:?} must not end with /"));
                }
            }
            let is_dir = path.ends_with('/');
            let trimmed = path.strip_suffix('/').unwrap_or(path);
            let components: Vec<&str> = trimmed.split('/').collect();
            let bad = trimmed.is_empty()
                || path.starts_with('/')
                || path.contains('\0')
                || components
                    .iter()
                    .any(|c| c.is_empty() || *c == "." || *c == ".." || c.len() > NAME_MAX);
            if bad {
                return Err(format!(
                    "preopen file path {path:?} must be relative, with non-empty components other than . and .. (a trailing / marks a directory)"
                ));
            }
            if is_dir && !bytes.is_empty() {
                return Err(format!(
                    "preopen path {path:?} ends with / (a directory) but has contents"
                ));
            }
            let conflict = |e: Errno| {
                format!(
                    "preopen path {path:?} cannot be created: {}",
                    if e == ERRNO_EXIST || e == ERRNO_NOTDIR {
                        "a file and a directory share a name"
                    } else {
                        e.message()
                    }
                )
            };
            let mut dir = root;
            let (last, parents) = match components.split_last() {
                Some((last, parents)) => (*last, parents),
                None => continue,
            };
            for name in parents {
                dir = match self.child(dir, name).map_err(conflict)? {
                    Some(existing) if self.node(existing).is_some_and(Node::is_dir) => existing,
                    Some(_) => return Err(conflict(ERRNO_NOTDIR)),
                    None => self
                        .create(dir, name, NodeKind::Dir(BTreeMap::new()), now)
                        .map_err(conflict)?,
                };
            }
            match self.child(dir, last).map_err(conflict)? {
                Some(existing) if is_dir && self.node(existing).is_some_and(Node::is_dir) => {}
                Some(_) => return Err(conflict(ERRNO_EXIST)),
                None if is_dir => {
                    self.create(dir, last, NodeKind::Dir(BTreeMap::new()), now)
                        .map_err(conflict)?;
                }
                None => {
                    let kind = match symlink {
                        Some(target) => NodeKind::Symlink(target.to_owned()),
                        None => NodeKind::File(bytes.to_vec()),
                    };
                    self.create(dir, last, kind, now).map_err(conflict)?;
                }
            }
        }
        if let Some(r) = self.roots.iter_mut().find(|r| r.node == root) {
            r.read_only = read_only;
        }
        Ok(())
    }

    pub(crate) fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id).and_then(Option::as_ref)
    }

    pub(crate) fn node_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(id).and_then(Option::as_mut)
    }

    /// The node, or `ENOENT` if it was freed (cannot happen for a node an fd holds).
    pub(crate) fn get(&self, id: NodeId) -> Result<&Node, Errno> {
        self.node(id).ok_or(ERRNO_NOENT)
    }

    fn get_mut(&mut self, id: NodeId) -> Result<&mut Node, Errno> {
        self.node_mut(id).ok_or(ERRNO_NOENT)
    }

    /// The entries of a directory (`ENOTDIR` for anything else).
    pub(crate) fn entries(&self, id: NodeId) -> Result<&BTreeMap<String, NodeId>, Errno> {
        match &self.get(id)?.kind {
            NodeKind::Dir(entries) => Ok(entries),
            _ => Err(ERRNO_NOTDIR),
        }
    }

    fn child(&self, dir: NodeId, name: &str) -> Result<Option<NodeId>, Errno> {
        Ok(self.entries(dir)?.get(name).copied())
    }

    /// Whether `id` lives in a read-only preopen.
    pub(crate) fn is_read_only(&self, id: NodeId) -> bool {
        self.node(id)
            .and_then(|n| self.roots.get(n.root))
            .is_none_or(|r| r.read_only)
    }

    /// `EROFS` if `id` lives in a read-only preopen.
    pub(crate) fn check_writable(&self, id: NodeId) -> Result<(), Errno> {
        if self.is_read_only(id) {
            Err(ERRNO_ROFS)
        } else {
            Ok(())
        }
    }

    pub(crate) fn stat(&self, id: NodeId) -> Result<Stat, Errno> {
        let node = self.get(id)?;
        Ok(Stat {
            dev: node.root as u64 + 1,
            ino: id as u64 + 1,
            filetype: node.filetype(),
            nlink: node.nlink,
            size: node.bytes(),
            atim: node.atim,
            mtim: node.mtim,
            ctim: node.ctim,
        })
    }

    /// Resolves `path` relative to the directory `start`, following a final symlink only if
    /// `follow` (or if the path ends with `/`). Never leaves `start` (see the module docs).
    /// Adds the components it walked (symlink targets included) to `steps`, for fuel.
    pub(crate) fn resolve(
        &self,
        start: NodeId,
        path: &str,
        follow: bool,
        steps: &mut u64,
    ) -> Result<Lookup, Errno> {
        if path.is_empty() {
            return Err(ERRNO_NOENT);
        }
        if path.len() > PATH_MAX as usize {
            return Err(ERRNO_NAMETOOLONG);
        }
        if path.starts_with('/') {
            return Err(ERRNO_NOTCAPABLE);
        }
        let trailing_slash = path.ends_with('/');
        // Components still to walk, last first; symlink targets are pushed on top.
        let mut pending: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(str::to_owned)
            .collect();
        let mut cur = start;
        let mut entry: Option<(NodeId, String)> = None;
        let mut links = 0u32;
        while let Some(component) = pending.pop() {
            *steps += 1;
            let is_last = pending.is_empty();
            let entries = self.entries(cur)?;
            match component.as_str() {
                "." => entry = None,
                ".." => {
                    if cur == start {
                        return Err(ERRNO_NOTCAPABLE);
                    }
                    cur = self.get(cur)?.parent;
                    entry = None;
                }
                name => {
                    if name.len() > NAME_MAX {
                        return Err(ERRNO_NAMETOOLONG);
                    }
                    let Some(&child) = entries.get(name) else {
                        if is_last {
                            return Ok(Lookup::Missing {
                                parent: cur,
                                name: name.to_owned(),
                                trailing_slash,
                            });
                        }
                        return Err(ERRNO_NOENT);
                    };
                    if let NodeKind::Symlink(target) = &self.get(child)?.kind {
                        if !is_last || follow || trailing_slash {
                            links += 1;
                            if links > MAX_SYMLINKS {
                                return Err(ERRNO_LOOP);
                            }
                            if target.starts_with('/') {
                                return Err(ERRNO_NOTCAPABLE);
                            }
                            if target.is_empty() {
                                return Err(ERRNO_NOENT);
                            }
                            // The target is walked from the link's own directory (`cur`).
                            pending.extend(
                                target
                                    .split('/')
                                    .filter(|c| !c.is_empty())
                                    .rev()
                                    .map(str::to_owned),
                            );
                            if pending.is_empty() {
                                // A target of only slashes cannot happen (absolute), but a
                                // target like "." leaves nothing: it names `cur` itself.
                                entry = None;
                            }
                            continue;
                        }
                    }
                    entry = Some((cur, name.to_owned()));
                    cur = child;
                }
            }
        }
        if trailing_slash && !self.get(cur)?.is_dir() {
            return Err(ERRNO_NOTDIR);
        }
        Ok(Lookup::Found { node: cur, entry })
    }

    /// The depth and path length of an entry `name` in directory `parent` whose own subtree
    /// reaches `below` = (levels, bytes) further down; `ENAMETOOLONG` past [`MAX_DEPTH`] or
    /// past [`PATH_MAX`] bytes for any exported path.
    fn place(
        &self,
        parent: NodeId,
        name: &str,
        below: (u32, usize),
    ) -> Result<(u32, usize), Errno> {
        let p = self.get(parent)?;
        let depth = p.depth.saturating_add(1);
        let path_len = if p.depth == 0 {
            name.len()
        } else {
            p.path_len.saturating_add(1).saturating_add(name.len())
        };
        if depth.saturating_add(below.0) > MAX_DEPTH
            || path_len.saturating_add(below.1) > PATH_MAX as usize
        {
            return Err(ERRNO_NAMETOOLONG);
        }
        Ok((depth, path_len))
    }

    /// How far the tree under directory `dir` reaches below it: (levels, bytes of the
    /// longest path relative to `dir`, with the `/` before it).
    fn extent(&mut self, dir: NodeId) -> (u32, usize) {
        let mut max = (0u32, 0usize);
        let mut walked = 0u64;
        let mut stack = vec![(dir, 0u32, 0usize)];
        while let Some((d, depth, len)) = stack.pop() {
            let Ok(entries) = self.entries(d) else {
                continue;
            };
            walked += entries.len() as u64;
            for (name, &id) in entries {
                let (depth, len) = (depth + 1, len + 1 + name.len());
                max = (max.0.max(depth), max.1.max(len));
                if self.node(id).is_some_and(Node::is_dir) {
                    stack.push((id, depth, len));
                }
            }
        }
        self.walked = self.walked.saturating_add(walked);
        max
    }

    /// Sets the depth and path length of directory `dir` (now at `at`) and of every
    /// directory under it.
    fn relocate(&mut self, dir: NodeId, at: (u32, usize)) {
        let mut stack = vec![(dir, at)];
        let mut walked = 0u64;
        while let Some((d, (depth, len))) = stack.pop() {
            if let Some(node) = self.node_mut(d) {
                node.depth = depth;
                node.path_len = len;
            }
            if let Ok(entries) = self.entries(d) {
                walked += entries.len() as u64;
                for (name, &id) in entries {
                    if self.node(id).is_some_and(Node::is_dir) {
                        stack.push((id, (depth + 1, len + 1 + name.len())));
                    }
                }
            }
        }
        self.walked = self.walked.saturating_add(walked);
    }

    fn alloc(&mut self, node: Node) -> NodeId {
        if let Some(id) = self.free.pop() {
            if let Some(slot) = self.nodes.get_mut(id) {
                *slot = Some(node);
                return id;
            }
        }
        self.nodes.push(Some(node));
        self.nodes.len() - 1
    }

    /// Creates `name` in directory `parent` (which must still be linked).
    ///
    /// `EEXIST`, `ENOENT` (parent removed), `ENOTDIR`, `EROFS`, `EDQUOT` (inode quota),
    /// `ENOSPC` (byte quota), `ENAMETOOLONG`.
    pub(crate) fn create(
        &mut self,
        parent: NodeId,
        name: &str,
        kind: NodeKind,
        now: u64,
    ) -> Result<NodeId, Errno> {
        if name.len() > NAME_MAX {
            return Err(ERRNO_NAMETOOLONG);
        }
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(ERRNO_INVAL);
        }
        let parent_node = self.get(parent)?;
        let root = parent_node.root;
        if parent_node.nlink == 0 {
            return Err(ERRNO_NOENT);
        }
        if self.entries(parent)?.contains_key(name) {
            return Err(ERRNO_EXIST);
        }
        self.check_writable(parent)?;
        let (depth, path_len) = self.place(parent, name, (0, 0))?;
        if self.files_used >= self.max_files {
            return Err(wasip1::ERRNO_DQUOT);
        }
        let is_dir = matches!(kind, NodeKind::Dir(_));
        let node = Node {
            kind,
            nlink: 1,
            open: 0,
            parent,
            root,
            depth,
            path_len,
            atim: now,
            mtim: now,
            ctim: now,
        };
        let bytes = node.bytes();
        if self.bytes_used.saturating_add(bytes) > self.max_bytes {
            return Err(ERRNO_NOSPC);
        }
        let id = self.alloc(node);
        self.files_used += 1;
        self.bytes_used += bytes;
        if !is_dir {
            if let Some(n) = self.node_mut(id) {
                n.parent = id;
            }
        }
        let parent_node = self.get_mut(parent)?;
        if let NodeKind::Dir(entries) = &mut parent_node.kind {
            entries.insert(name.to_owned(), id);
        }
        parent_node.mtim = now;
        parent_node.ctim = now;
        Ok(id)
    }

    /// Removes the entry `name` from `parent` and drops one link of its inode.
    fn remove_entry(&mut self, parent: NodeId, name: &str, now: u64) -> Result<NodeId, Errno> {
        let parent_node = self.get_mut(parent)?;
        let NodeKind::Dir(entries) = &mut parent_node.kind else {
            return Err(ERRNO_NOTDIR);
        };
        let id = entries.remove(name).ok_or(ERRNO_NOENT)?;
        parent_node.mtim = now;
        parent_node.ctim = now;
        let node = self.get_mut(id)?;
        let extra_name = !node.is_dir() && node.nlink > 1;
        node.nlink = if node.is_dir() {
            0
        } else {
            node.nlink.saturating_sub(1)
        };
        node.ctim = now;
        if extra_name {
            // One name of several went: its place and its share of the bytes come back.
            let bytes = node.bytes();
            self.files_used = self.files_used.saturating_sub(1);
            self.bytes_used = self.bytes_used.saturating_sub(bytes);
        }
        self.maybe_free(id);
        Ok(id)
    }

    fn maybe_free(&mut self, id: NodeId) {
        let is_root = self.roots.iter().any(|r| r.node == id);
        let Some(node) = self.node(id) else { return };
        if is_root || node.nlink > 0 || node.open > 0 {
            return;
        }
        let bytes = node.charged();
        self.bytes_used = self.bytes_used.saturating_sub(bytes);
        self.files_used = self.files_used.saturating_sub(1);
        if let Some(slot) = self.nodes.get_mut(id) {
            *slot = None;
        }
        self.free.push(id);
    }

    /// An fd now refers to `id`.
    pub(crate) fn open(&mut self, id: NodeId) {
        if let Some(node) = self.node_mut(id) {
            node.open = node.open.saturating_add(1);
        }
    }

    /// An fd on `id` was closed; an unlinked inode is freed at its last close.
    pub(crate) fn close(&mut self, id: NodeId) {
        if let Some(node) = self.node_mut(id) {
            node.open = node.open.saturating_sub(1);
        }
        self.maybe_free(id);
    }

    /// `path_unlink_file`: removes a non-directory entry.
    pub(crate) fn unlink(&mut self, parent: NodeId, name: &str, now: u64) -> Result<(), Errno> {
        let id = self.child(parent, name)?.ok_or(ERRNO_NOENT)?;
        if self.get(id)?.is_dir() {
            return Err(ERRNO_ISDIR);
        }
        self.check_writable(parent)?;
        self.remove_entry(parent, name, now).map(|_| ())
    }

    /// `path_remove_directory`: removes an empty directory entry.
    pub(crate) fn rmdir(&mut self, parent: NodeId, name: &str, now: u64) -> Result<(), Errno> {
        let id = self.child(parent, name)?.ok_or(ERRNO_NOENT)?;
        if !self.entries(id)?.is_empty() {
            return Err(ERRNO_NOTEMPTY);
        }
        self.check_writable(parent)?;
        self.remove_entry(parent, name, now).map(|_| ())
    }

    /// Whether `ancestor` is `id` or one of its parents.
    fn is_ancestor(&self, ancestor: NodeId, mut id: NodeId) -> bool {
        loop {
            if id == ancestor {
                return true;
            }
            match self.node(id) {
                Some(node) if node.parent != id => id = node.parent,
                _ => return false,
            }
        }
    }

    /// `path_rename`, POSIX semantics: replaces a file by a file, or a directory by an empty
    /// directory; never moves a directory into itself; never crosses preopens (`EXDEV`).
    pub(crate) fn rename(
        &mut self,
        old_parent: NodeId,
        old_name: &str,
        new_parent: NodeId,
        new_name: &str,
        now: u64,
    ) -> Result<(), Errno> {
        let src = self.child(old_parent, old_name)?.ok_or(ERRNO_NOENT)?;
        let new_parent_node = self.get(new_parent)?;
        if new_parent_node.nlink == 0 {
            return Err(ERRNO_NOENT);
        }
        if !new_parent_node.is_dir() {
            return Err(ERRNO_NOTDIR);
        }
        if new_parent_node.root != self.get(old_parent)?.root {
            return Err(ERRNO_XDEV);
        }
        if new_name.len() > NAME_MAX {
            return Err(ERRNO_NAMETOOLONG);
        }
        let src_is_dir = self.get(src)?.is_dir();
        let dst = self.child(new_parent, new_name)?;
        if let Some(dst) = dst {
            if dst == src {
                return Ok(());
            }
            let dst_is_dir = self.get(dst)?.is_dir();
            match (src_is_dir, dst_is_dir) {
                (true, false) => return Err(ERRNO_NOTDIR),
                (false, true) => return Err(ERRNO_ISDIR),
                (true, true) if !self.entries(dst)?.is_empty() => return Err(ERRNO_NOTEMPTY),
                _ => {}
            }
        }
        if src_is_dir && self.is_ancestor(src, new_parent) {
            return Err(ERRNO_INVAL);
        }
        self.check_writable(old_parent)?;
        let below = if src_is_dir { self.extent(src) } else { (0, 0) };
        let at = self.place(new_parent, new_name, below)?;
        if dst.is_some() {
            self.remove_entry(new_parent, new_name, now)?;
        }
        let parent_node = self.get_mut(old_parent)?;
        if let NodeKind::Dir(entries) = &mut parent_node.kind {
            entries.remove(old_name);
        }
        parent_node.mtim = now;
        parent_node.ctim = now;
        let parent_node = self.get_mut(new_parent)?;
        if let NodeKind::Dir(entries) = &mut parent_node.kind {
            entries.insert(new_name.to_owned(), src);
        }
        parent_node.mtim = now;
        parent_node.ctim = now;
        let node = self.get_mut(src)?;
        if src_is_dir {
            node.parent = new_parent;
        }
        node.ctim = now;
        if src_is_dir {
            self.relocate(src, at);
        }
        Ok(())
    }

    /// Entries visited by tree walks since the last call (each costs a step of fuel).
    pub(crate) fn take_walked(&mut self) -> u64 {
        core::mem::take(&mut self.walked)
    }

    /// `path_link`: a second name for a non-directory (`EPERM` for directories, as Linux).
    pub(crate) fn link(
        &mut self,
        src: NodeId,
        new_parent: NodeId,
        new_name: &str,
        now: u64,
    ) -> Result<(), Errno> {
        let src_node = self.get(src)?;
        if src_node.is_dir() {
            return Err(ERRNO_PERM);
        }
        let new_parent_node = self.get(new_parent)?;
        if new_parent_node.root != src_node.root {
            return Err(ERRNO_XDEV);
        }
        if new_parent_node.nlink == 0 {
            return Err(ERRNO_NOENT);
        }
        if new_name.len() > NAME_MAX {
            return Err(ERRNO_NAMETOOLONG);
        }
        if self.entries(new_parent)?.contains_key(new_name) {
            return Err(ERRNO_EXIST);
        }
        self.check_writable(new_parent)?;
        self.place(new_parent, new_name, (0, 0))?;
        // A new name is a new entry of the export, with its own copy of the contents.
        if self.files_used >= self.max_files {
            return Err(wasip1::ERRNO_DQUOT);
        }
        let bytes = self.get(src)?.bytes();
        if self.bytes_used.saturating_add(bytes) > self.max_bytes {
            return Err(ERRNO_NOSPC);
        }
        self.files_used += 1;
        self.bytes_used += bytes;
        let parent_node = self.get_mut(new_parent)?;
        if let NodeKind::Dir(entries) = &mut parent_node.kind {
            entries.insert(new_name.to_owned(), src);
        }
        parent_node.mtim = now;
        parent_node.ctim = now;
        let node = self.get_mut(src)?;
        node.nlink += 1;
        node.ctim = now;
        Ok(())
    }

    /// The file's bytes (`EISDIR` for a directory, `EINVAL` otherwise).
    pub(crate) fn data(&self, id: NodeId) -> Result<&[u8], Errno> {
        match &self.get(id)?.kind {
            NodeKind::File(data) => Ok(data),
            NodeKind::Dir(_) => Err(ERRNO_ISDIR),
            NodeKind::Symlink(_) => Err(ERRNO_INVAL),
        }
    }

    /// Marks a read (access time).
    pub(crate) fn touch_read(&mut self, id: NodeId, now: u64) {
        if let Some(node) = self.node_mut(id) {
            node.atim = now;
        }
    }

    /// Where a write of `len` bytes (`len > 0`) at `offset` of file `id` ends under the byte
    /// quota: `offset + len`, or less for a short write. `ENOSPC` if not one byte fits.
    pub(crate) fn write_end(&self, id: NodeId, offset: u64, len: u64) -> Result<u64, Errno> {
        // Each byte the file grows by counts once per name.
        let available = self.max_bytes.saturating_sub(self.bytes_used) / self.get(id)?.weight();
        let old_len = self.data(id)?.len() as u64;
        let end = offset.checked_add(len).ok_or(ERRNO_FBIG)?;
        let allowed_end = end.min(old_len.saturating_add(available));
        if allowed_end <= offset {
            // Not one byte fits under the quota.
            return Err(ERRNO_NOSPC);
        }
        Ok(allowed_end)
    }

    /// Makes room for file `id` to grow to `len` bytes in one allocation (before a write
    /// made of many pieces). `ENOSPC` if the host cannot allocate it.
    pub(crate) fn reserve_len(&mut self, id: NodeId, len: u64) -> Result<(), Errno> {
        let len = usize::try_from(len).map_err(|_| ERRNO_FBIG)?;
        if let NodeKind::File(data) = &mut self.get_mut(id)?.kind {
            if len > data.len() {
                data.try_reserve_exact(len - data.len())
                    .map_err(|_| ERRNO_NOSPC)?;
            }
        }
        Ok(())
    }

    /// Writes `bytes` at `offset`, zero-filling any gap. Writes as much as the byte quota
    /// allows (a short write); `ENOSPC` if not even one byte fits.
    pub(crate) fn write_at(
        &mut self,
        id: NodeId,
        offset: u64,
        bytes: &[u8],
        now: u64,
    ) -> Result<usize, Errno> {
        if bytes.is_empty() {
            return Ok(0);
        }
        let allowed_end = self.write_end(id, offset, bytes.len() as u64)?;
        let node = self.get_mut(id)?;
        let NodeKind::File(data) = &mut node.kind else {
            return Err(if node.is_dir() {
                ERRNO_ISDIR
            } else {
                ERRNO_INVAL
            });
        };
        let old_len = data.len() as u64;
        let start = usize::try_from(offset).map_err(|_| ERRNO_FBIG)?;
        let stop = usize::try_from(allowed_end).map_err(|_| ERRNO_FBIG)?;
        if stop > data.len() {
            data.try_reserve(stop - data.len())
                .map_err(|_| ERRNO_NOSPC)?;
            data.resize(stop, 0);
        }
        let n = stop - start;
        let target = data.get_mut(start..stop).ok_or(ERRNO_FBIG)?;
        target.copy_from_slice(bytes.get(..n).ok_or(ERRNO_FBIG)?);
        let new_len = data.len() as u64;
        node.mtim = now;
        node.ctim = now;
        let weight = node.weight();
        self.bytes_used = self
            .bytes_used
            .saturating_add(new_len.saturating_sub(old_len).saturating_mul(weight));
        Ok(n)
    }

    /// Truncates or zero-extends a file (`ENOSPC` over the byte quota).
    pub(crate) fn set_size(&mut self, id: NodeId, size: u64, now: u64) -> Result<(), Errno> {
        let available = self.max_bytes.saturating_sub(self.bytes_used);
        let node = self.get_mut(id)?;
        let weight = node.weight();
        let NodeKind::File(data) = &mut node.kind else {
            return Err(if node.is_dir() {
                ERRNO_ISDIR
            } else {
                ERRNO_INVAL
            });
        };
        let old_len = data.len() as u64;
        if size > old_len && (size - old_len).saturating_mul(weight) > available {
            return Err(ERRNO_NOSPC);
        }
        let new_len = usize::try_from(size).map_err(|_| ERRNO_FBIG)?;
        if new_len > data.len() {
            data.try_reserve(new_len - data.len())
                .map_err(|_| ERRNO_NOSPC)?;
        }
        data.resize(new_len, 0);
        // Give memory back after a big truncation (not after every small one: each shrink
        // copies the file).
        if new_len < data.capacity() / 2 {
            data.shrink_to_fit();
        }
        node.mtim = now;
        node.ctim = now;
        self.bytes_used = self
            .bytes_used
            .saturating_sub(old_len.saturating_mul(weight))
            .saturating_add(size.saturating_mul(weight));
        Ok(())
    }

    /// Sets access and/or modification times (`None` leaves one as it is).
    pub(crate) fn set_times(
        &mut self,
        id: NodeId,
        atim: Option<u64>,
        mtim: Option<u64>,
        now: u64,
    ) -> Result<(), Errno> {
        let node = self.get_mut(id)?;
        if let Some(atim) = atim {
            node.atim = atim;
        }
        if let Some(mtim) = mtim {
            node.mtim = mtim;
        }
        node.ctim = now;
        Ok(())
    }

    /// The tree under `root` as `relative path -> entry`, every directory listed.
    pub(crate) fn export(&self, root: NodeId) -> BTreeMap<String, FsEntry> {
        let mut out = BTreeMap::new();
        let mut stack = vec![(root, String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let Ok(entries) = self.entries(dir) else {
                continue;
            };
            for (name, &id) in entries {
                let path = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}/{name}")
                };
                let Some(node) = self.node(id) else { continue };
                match &node.kind {
                    NodeKind::File(data) => {
                        out.insert(path, FsEntry::File(data.clone()));
                    }
                    NodeKind::Symlink(target) => {
                        out.insert(path, FsEntry::Symlink(target.clone()));
                    }
                    NodeKind::Dir(_) => {
                        out.insert(path.clone(), FsEntry::Dir);
                        stack.push((id, path));
                    }
                }
            }
        }
        out
    }

    /// Bytes counted against the byte quota.
    #[cfg(test)]
    pub(crate) fn bytes_used(&self) -> u64 {
        self.bytes_used
    }

    /// Inodes counted against the file-count quota.
    #[cfg(test)]
    pub(crate) fn files_used(&self) -> u64 {
        self.files_used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn initial(map: &BTreeMap<String, Vec<u8>>) -> impl Iterator<Item = (&str, Initial<'_>)> {
        map.iter().map(|(p, b)| (p.as_str(), Initial::File(b)))
    }

    fn tree(files: &[(&str, &str)], read_only: bool) -> (Fs, NodeId) {
        let mut fs = Fs::new(1 << 20, 100);
        let root = fs.add_root(0);
        let map: BTreeMap<String, Vec<u8>> = files
            .iter()
            .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
            .collect();
        fs.populate(root, initial(&map), read_only, 0)
            .expect("populates");
        (fs, root)
    }

    fn found(fs: &Fs, start: NodeId, path: &str, follow: bool) -> NodeId {
        match fs.resolve(start, path, follow, &mut 0) {
            Ok(Lookup::Found { node, .. }) => node,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn resolves_within_the_start_directory_only() {
        let (mut fs, root) = tree(&[("a/b.txt", "hi"), ("a/c/", "")], false);
        let a = found(&fs, root, "a", false);
        let b = found(&fs, root, "a/./c/../b.txt", false);
        assert_eq!(fs.data(b), Ok(&b"hi"[..]));
        assert_eq!(found(&fs, root, "a/c/../..", false), root);
        assert_eq!(fs.resolve(root, "..", false, &mut 0), Err(ERRNO_NOTCAPABLE));
        assert_eq!(
            fs.resolve(root, "a/../..", false, &mut 0),
            Err(ERRNO_NOTCAPABLE)
        );
        assert_eq!(fs.resolve(a, "..", false, &mut 0), Err(ERRNO_NOTCAPABLE));
        assert_eq!(fs.resolve(root, "/a", false, &mut 0), Err(ERRNO_NOTCAPABLE));
        assert_eq!(
            fs.resolve(root, "a/b.txt/x", false, &mut 0),
            Err(ERRNO_NOTDIR)
        );
        assert_eq!(
            fs.resolve(root, "a/b.txt/", false, &mut 0),
            Err(ERRNO_NOTDIR)
        );
        assert_eq!(fs.resolve(root, "x/y", false, &mut 0), Err(ERRNO_NOENT));
        assert!(matches!(
            fs.resolve(root, "a/new", false, &mut 0),
            Ok(Lookup::Missing { ref name, .. }) if name == "new"
        ));
        // Symlinks: relative targets resolve from the link's directory; escapes fail.
        fs.create(a, "up", NodeKind::Symlink("../a/b.txt".into()), 0)
            .expect("link");
        fs.create(a, "out", NodeKind::Symlink("../../etc".into()), 0)
            .expect("link");
        fs.create(a, "abs", NodeKind::Symlink("/etc/passwd".into()), 0)
            .expect("link");
        fs.create(a, "loop", NodeKind::Symlink("loop".into()), 0)
            .expect("link");
        assert_eq!(found(&fs, root, "a/up", true), b);
        assert_ne!(found(&fs, root, "a/up", false), b);
        assert_eq!(
            fs.resolve(root, "a/out", true, &mut 0),
            Err(ERRNO_NOTCAPABLE)
        );
        assert_eq!(
            fs.resolve(root, "a/abs", true, &mut 0),
            Err(ERRNO_NOTCAPABLE)
        );
        assert_eq!(fs.resolve(root, "a/loop", true, &mut 0), Err(ERRNO_LOOP));
        // From the subdirectory `a` itself, even `../a/b.txt` leaves the start directory.
        assert_eq!(fs.resolve(a, "up", true, &mut 0), Err(ERRNO_NOTCAPABLE));
    }

    #[test]
    fn quotas_and_unlink_while_open() {
        let mut fs = Fs::new(10, 3);
        let root = fs.add_root(0);
        let f = fs
            .create(root, "f", NodeKind::File(Vec::new()), 0)
            .expect("create");
        assert_eq!(fs.write_at(f, 0, b"0123456789abc", 0), Ok(10));
        assert_eq!(fs.write_at(f, 10, b"x", 0), Err(ERRNO_NOSPC));
        assert_eq!(fs.set_size(f, 11, 0), Err(ERRNO_NOSPC));
        fs.create(root, "d", NodeKind::Dir(BTreeMap::new()), 0)
            .expect("dir");
        fs.create(root, "e", NodeKind::Dir(BTreeMap::new()), 0)
            .expect("dir");
        assert_eq!(
            fs.create(root, "g", NodeKind::File(Vec::new()), 0),
            Err(wasip1::ERRNO_DQUOT)
        );
        fs.open(f);
        fs.unlink(root, "f", 0).expect("unlink");
        assert_eq!(fs.data(f), Ok(&b"0123456789"[..]), "still open");
        assert_eq!(fs.bytes_used(), 10);
        fs.close(f);
        assert_eq!(fs.bytes_used(), 0);
        assert_eq!(fs.files_used(), 2);
    }

    #[test]
    fn rename_rules() {
        let (mut fs, root) = tree(
            &[("d/x", "1"), ("e/", ""), ("full/y", "2"), ("f", "3")],
            false,
        );
        let d = found(&fs, root, "d", false);
        assert_eq!(fs.rename(root, "d", d, "inside", 0), Err(ERRNO_INVAL));
        assert_eq!(fs.rename(root, "d", root, "full", 0), Err(ERRNO_NOTEMPTY));
        assert_eq!(fs.rename(root, "d", root, "f", 0), Err(ERRNO_NOTDIR));
        assert_eq!(fs.rename(root, "f", root, "e", 0), Err(ERRNO_ISDIR));
        fs.rename(root, "d", root, "e", 0)
            .expect("dir over empty dir");
        assert_eq!(found(&fs, root, "e/x", false), found(&fs, d, "x", false));
        fs.rename(root, "f", d, "moved", 0).expect("file into dir");
        assert_eq!(fs.data(found(&fs, root, "e/moved", false)), Ok(&b"3"[..]));
    }

    #[test]
    fn read_only_trees_refuse_changes() {
        let (mut fs, root) = tree(&[("a", "1")], true);
        assert_eq!(
            fs.create(root, "b", NodeKind::File(Vec::new()), 0),
            Err(ERRNO_ROFS)
        );
        assert_eq!(fs.unlink(root, "a", 0), Err(ERRNO_ROFS));
    }

    #[test]
    fn bad_preopen_paths_are_refused() {
        for bad in ["/abs", "a/../b", "", "a//b", "./a"] {
            let mut fs = Fs::new(100, 100);
            let root = fs.add_root(0);
            let map = BTreeMap::from([(bad.to_string(), Vec::new())]);
            assert!(
                fs.populate(root, initial(&map), false, 0).is_err(),
                "{bad:?}"
            );
        }
        let mut fs = Fs::new(100, 100);
        let root = fs.add_root(0);
        let map = BTreeMap::from([("a".to_string(), vec![1]), ("a/b".to_string(), vec![2])]);
        assert!(fs.populate(root, initial(&map), false, 0).is_err());
    }
}
