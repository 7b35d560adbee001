//! Helpers for the WASI behaviour files: `wasi_syscalls.wat` re-exports every preview1
//! function, so a test makes syscalls one by one with chosen arguments and reads the results
//! out of guest memory.

use nestbox::{
    Digest, Error, Instance, Limits, Sandbox, Step, Value, ValueType, WasiConfig, WasiOutcome,
    run_wasi,
};
use wasip1::{OFLAGS_CREAT, RIGHTS_FD_ALLOCATE, RIGHTS_FD_FILESTAT_SET_SIZE, RIGHTS_FD_WRITE};

use crate::common::{fixture, load, sandbox};

/// Scratch areas in the syscall guest's memory (4 pages).
pub const IOV: u32 = 0;
pub const OUT: u32 = 512;
pub const PATH: u32 = 1024;
pub const PATH2: u32 = 2048;
pub const BUF: u32 = 4096;

/// The first preopen's fd.
pub const PREOPEN: u64 = 3;

/// Rights to ask `path_open` for (they are enforced, and the fd gets what the directory can
/// pass on of them), as wasi-libc's `open` asks: for reading everything but the rights that
/// change a file (wasi-libc also leaves out `FD_DATASYNC`)...
pub const READ: u64 = !(RIGHTS_FD_WRITE | RIGHTS_FD_ALLOCATE | RIGHTS_FD_FILESTAT_SET_SIZE);
/// ...and for `O_RDWR` everything.
pub const READ_WRITE: u64 = u64::MAX;
pub const CREAT: u64 = OFLAGS_CREAT as u64;

/// `errno.raw()` as the guest sees it.
pub fn e(errno: wasip1::Errno) -> u16 {
    errno.raw()
}

/// A guest that makes syscalls on request.
pub struct Sys {
    pub instance: Instance,
}

impl Sys {
    pub fn new(config: WasiConfig) -> Self {
        Self::with_limits(Limits::default(), config)
    }

    pub fn with_limits(limits: Limits, config: WasiConfig) -> Self {
        let sb = sandbox(limits);
        let module = load(&sb, &fixture("wasi_syscalls"));
        let instance = sb
            .instantiate_wasi(&module, &config)
            .expect("instantiates with wasi");
        Self { instance }
    }

    fn values(&self, name: &str, args: &[u64]) -> Vec<Value> {
        let export = self
            .instance
            .module()
            .exports()
            .iter()
            .find(|x| x.name == name)
            .unwrap_or_else(|| panic!("no export {name}"));
        let params = &export.signature.as_ref().expect("numeric").params;
        assert_eq!(
            params.len(),
            args.len(),
            "{name} takes {} args",
            params.len()
        );
        params
            .iter()
            .zip(args)
            .map(|(t, a)| match t {
                ValueType::I32 => Value::I32(*a as u32 as i32),
                ValueType::I64 => Value::I64(*a as i64),
                other => panic!("unexpected {other}"),
            })
            .collect()
    }

    /// Starts the syscall `name` (step-level).
    pub fn start(&mut self, name: &str, args: &[u64]) -> Result<Step, Error> {
        let values = self.values(name, args);
        self.instance.start(name, &values)
    }

    /// Makes the syscall `name` to completion and returns its errno.
    pub fn call(&mut self, name: &str, args: &[u64]) -> u16 {
        match self.try_call(name, args) {
            Ok(results) => match results[..] {
                [Value::I32(errno)] => errno as u16,
                ref other => panic!("{name} returned {other:?}"),
            },
            Err(error) => panic!("{name} failed: {error}"),
        }
    }

    pub fn try_call(&mut self, name: &str, args: &[u64]) -> Result<Vec<Value>, Error> {
        let values = self.values(name, args);
        self.instance
            .call(name, &values, |call, _| {
                panic!("unexpected host call {}", call.import)
            })
            .map(|o| o.results)
    }

    pub fn put(&mut self, ptr: u32, bytes: &[u8]) {
        self.instance
            .memory()
            .expect("memory")
            .write(ptr, bytes)
            .expect("in bounds");
    }

    pub fn get(&mut self, ptr: u32, len: u32) -> Vec<u8> {
        self.instance
            .memory()
            .expect("memory")
            .read(ptr, len)
            .expect("in bounds")
            .to_vec()
    }

    pub fn u32_at(&mut self, ptr: u32) -> u32 {
        u32::from_le_bytes(self.get(ptr, 4).try_into().expect("4 bytes"))
    }

    pub fn u64_at(&mut self, ptr: u32) -> u64 {
        u64::from_le_bytes(self.get(ptr, 8).try_into().expect("8 bytes"))
    }

    /// Writes `s` at `ptr` and returns `(ptr, len)` as syscall arguments.
    pub fn text(&mut self, ptr: u32, s: &str) -> (u64, u64) {
        self.put(ptr, s.as_bytes());
        (u64::from(ptr), s.len() as u64)
    }

    /// `path_open` relative to `dirfd`, following symlinks.
    pub fn open(
        &mut self,
        dirfd: u64,
        path: &str,
        oflags: u64,
        rights: u64,
        fdflags: u64,
    ) -> Result<u64, u16> {
        let (p, l) = self.text(PATH, path);
        let errno = self.call(
            "path_open",
            &[
                dirfd,
                1,
                p,
                l,
                oflags,
                rights,
                rights,
                fdflags,
                u64::from(OUT),
            ],
        );
        if errno == 0 {
            Ok(u64::from(self.u32_at(OUT)))
        } else {
            Err(errno)
        }
    }

    /// `fd_write` of `bytes` in one iovec; the count written.
    pub fn write(&mut self, fd: u64, bytes: &[u8]) -> Result<u32, u16> {
        self.put(BUF, bytes);
        self.iovec(IOV, BUF, bytes.len() as u32);
        match self.call("fd_write", &[fd, u64::from(IOV), 1, u64::from(OUT)]) {
            0 => Ok(self.u32_at(OUT)),
            errno => Err(errno),
        }
    }

    /// `fd_read` of up to `len` bytes in one iovec.
    pub fn read(&mut self, fd: u64, len: u32) -> Result<Vec<u8>, u16> {
        self.iovec(IOV, BUF, len);
        match self.call("fd_read", &[fd, u64::from(IOV), 1, u64::from(OUT)]) {
            0 => {
                let n = self.u32_at(OUT);
                Ok(self.get(BUF, n))
            }
            errno => Err(errno),
        }
    }

    /// Writes one iovec `(buf, len)` at `at`.
    pub fn iovec(&mut self, at: u32, buf: u32, len: u32) {
        let mut bytes = buf.to_le_bytes().to_vec();
        bytes.extend_from_slice(&len.to_le_bytes());
        self.put(at, &bytes);
    }

    /// A path syscall taking `(fd, path_ptr, path_len)`.
    pub fn path_call(&mut self, name: &str, fd: u64, path: &str) -> u16 {
        let (p, l) = self.text(PATH, path);
        self.call(name, &[fd, p, l])
    }
}

/// Loads a fixture and runs it as a WASI command.
pub fn run_fixture(name: &str, config: WasiConfig) -> Result<WasiOutcome, Error> {
    run_with(&sandbox(Limits::default()), &fixture(name), config)
}

pub fn run_with(sb: &Sandbox, bytes: &[u8], config: WasiConfig) -> Result<WasiOutcome, Error> {
    let module = sb.load(bytes, &Digest::of(bytes)).expect("loads");
    run_wasi(sb, &module, config)
}
