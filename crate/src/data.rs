//! Calls with data: the host side of Extism's plugin ABI (`extism:host/env`), which is
//! nestbox's data ABI (`docs/data-abi.md` is the guest's side).
//!
//! A data call ([`Instance::start_data`](crate::Instance::start_data)) hands the guest an
//! input of bytes and gets back an output of bytes. Neither lives in the guest's linear
//! memory: as in Extism's "kernel", they live in *blocks* that the host keeps for the
//! instance, named by handles (64-bit addresses in a space of their own, never 0). The guest
//! reads its input with `input_length`/`input_load_u8`/`input_load_u64`, allocates blocks
//! with `alloc`, fills and reads them with `store_*`/`load_*` (any address inside a block),
//! and names its output with `output_set(handle, length)` and an error with `error_set`.
//! An export called this way takes no parameters and returns nothing or an `i32` status: 0 is
//! success, anything else (or an error set) is `GUEST_ERROR` with the guest's message.
//!
//! **Bounds.** Every handle and length is checked against the block it names: an address
//! outside every block, a read or write past a block's end, an output that is not inside one
//! block, is `TRAP` (`memory_out_of_bounds`) with a message naming the function — never a
//! host panic, never a clamp. Blocks together hold at most `Limits::max_memory_bytes` bytes
//! and at most [`MAX_BLOCKS`] blocks (past either, `alloc` returns 0, Extism's "out of
//! memory"). The input is at most `Limits::max_input_bytes` (`INPUT_LIMIT`, refused before the
//! call), the output at most `Limits::max_output_bytes` (`OUTPUT_LIMIT` at `output_set`).
//! Variables hold at most [`DataConfig::max_var_bytes`] (Extism's accounting, 1 MiB by
//! default; 0 disables them), log messages at most `max_output_bytes` per call.
//!
//! **Fuel.** `load_*`, `store_*` and `input_load_*` cost [`ACCESS_FUEL`] each (the PDKs call
//! them once per 8 bytes); every other function costs `Limits::host_call_fuel` plus 1 per 64
//! bytes it copies or zero-fills, paid before the work is done.
//!
//! **Ownership** follows Extism's runtime: `config_get`, `var_get`, `var_set`, the `log_*`
//! functions and `http_request` free the handles they are given.

use std::collections::BTreeMap;

use wasmi::{Caller, Linker};

use crate::capability::{CapabilityId, HttpRequest, HttpResponse};
use crate::error::{Error, ErrorCode, TrapCode};
use crate::fuel::FuelLedger;
use crate::value::{Signature, ValueType};

/// The import namespace of the data ABI (Extism's).
pub const DATA_MODULE: &str = "extism:host/env";

/// Fuel for one `load_*`, `store_*` or `input_load_*`.
pub const ACCESS_FUEL: u64 = 8;

/// At most this many live blocks per instance.
pub const MAX_BLOCKS: usize = 1 << 16;

/// The longest error message kept from `error_set` (longer ones are cut).
pub const MAX_ERROR_BYTES: usize = 64 << 10;

/// The first handle; handles are multiples of 8 from here.
const BASE: u64 = 0x1_0000;

/// What a data guest gets from its embedder besides input: Extism's manifest `config` and
/// `memory.max_var_bytes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataConfig {
    /// Read by the guest with `config_get`.
    pub config: BTreeMap<String, String>,
    /// Bytes the guest's variables may hold, counted as Extism counts them. Default 1 MiB;
    /// 0 disables `var_set`.
    pub max_var_bytes: u64,
    /// HTTP from the guest (`http_request`): `None` (the default) refuses every request.
    pub http: Option<HttpGrant>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            config: BTreeMap::new(),
            max_var_bytes: 1 << 20,
            http: None,
        }
    }
}

/// The capability behind a data guest's `http_request` (Extism's manifest `allowed_hosts`
/// and `memory.max_http_response_bytes`). A request to a host no pattern matches is refused
/// (`HOST_ERROR`) without reaching the embedder; an allowed one suspends the guest with a
/// [`HostCall`](crate::HostCall) of `capability` whose `http` is the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpGrant {
    /// Who answers (the embedder's own id).
    pub capability: CapabilityId,
    /// Host names the guest may reach: exact (`api.example.com`, case-insensitive) or with
    /// `*` for any run of characters (`*.example.com`, `*`). Ports are ignored, as in Extism.
    pub allowed_hosts: Vec<String>,
    /// The largest response body (`HOST_ERROR` beyond). Extism's default: 50 MiB.
    pub max_response_bytes: u64,
}

impl HttpGrant {
    /// A grant for `capability` to `allowed_hosts`, with Extism's default response cap.
    pub fn new(capability: CapabilityId, allowed_hosts: Vec<String>) -> Self {
        Self {
            capability,
            allowed_hosts,
            max_response_bytes: 50 << 20,
        }
    }

    /// Whether `host` matches one of the patterns.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.allowed_hosts
            .iter()
            .any(|p| glob(p.to_ascii_lowercase().as_bytes(), host.as_bytes()))
    }
}

/// `*` matches any run of bytes; everything else itself.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|b| *b == b'*')
}

/// The host of an `http:`/`https:` URL, or why it has none nestbox accepts.
pub(crate) fn url_host(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} is not an http: or https: URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!("{url:?} has credentials in its authority"));
    }
    // URL parsers (the WHATWG one that `fetch` uses among them) read `\` as `/`, drop tabs
    // and newlines and decode `%`: an authority with any of them may name another host than
    // the one checked here, so it is refused.
    if authority
        .bytes()
        .any(|b| b == b'\\' || b == b'%' || b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(format!(
            "{url:?} has a character in its authority that URL parsers read differently"
        ));
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok(host.to_owned())
}

/// The guest's `http_request` waits for the embedder's answer.
#[derive(Debug)]
pub(crate) struct HttpPending;

impl core::fmt::Display for HttpPending {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("http request pending")
    }
}

impl wasmi::errors::HostError for HttpPending {}

/// A log message of a data guest (`log_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: &'static str,
    /// The message (invalid UTF-8 replaced).
    pub message: String,
}

/// The host side of one instance's data ABI: blocks, input, output, error, variables.
#[derive(Debug)]
pub(crate) struct DataCtx {
    blocks: BTreeMap<u64, Vec<u8>>,
    next: u64,
    live_bytes: u64,
    max_bytes: u64,
    max_output_bytes: u64,
    input: u64,
    input_len: u64,
    output: Vec<u8>,
    error: Option<String>,
    vars: BTreeMap<String, Vec<u8>>,
    config: DataConfig,
    logs: Vec<LogLine>,
    log_bytes: u64,
    /// The request `http_request` suspended the guest with.
    pending_http: Option<HttpRequest>,
    http_status: u16,
    http_headers: Option<BTreeMap<String, String>>,
}

impl DataCtx {
    pub(crate) fn new(config: DataConfig, max_bytes: u64, max_output_bytes: u64) -> Self {
        Self {
            blocks: BTreeMap::new(),
            next: BASE,
            live_bytes: 0,
            max_bytes,
            max_output_bytes,
            input: 0,
            input_len: 0,
            output: Vec::new(),
            error: None,
            vars: BTreeMap::new(),
            config,
            logs: Vec::new(),
            log_bytes: 0,
            pending_http: None,
            http_status: 0,
            http_headers: None,
        }
    }

    /// The HTTP capability, if one was granted.
    pub(crate) fn http_grant(&self) -> Option<&HttpGrant> {
        self.config.http.as_ref()
    }

    /// The request the guest waits on (taken).
    pub(crate) fn take_pending_http(&mut self) -> Option<HttpRequest> {
        self.pending_http.take()
    }

    /// Puts `response` where the guest reads it: the body in a new block (its handle is
    /// `http_request`'s result, 0 for an empty body), the status and headers for
    /// `http_status_code` and `http_headers`.
    pub(crate) fn answer_http(&mut self, response: HttpResponse) -> Result<u64, Error> {
        let cap = self.http_grant().map_or(0, |g| g.max_response_bytes);
        let len = response.body.len() as u64;
        if len > cap {
            return Err(Error::host_failed(format!(
                "extism:host/env http_request: the response of {len} bytes is over max_response_bytes of {cap}"
            )));
        }
        let handle = self.new_block(&response.body);
        if handle == 0 && len > 0 {
            return Err(Error::host_failed(format!(
                "extism:host/env http_request: the response of {len} bytes does not fit the data memory"
            )));
        }
        self.http_status = response.status;
        self.http_headers = Some(response.headers);
        Ok(handle)
    }

    /// Starts a call: every block is released and `input` becomes the input block. The
    /// caller checked its size against `max_input_bytes`.
    pub(crate) fn reset(&mut self, input: &[u8]) -> Result<(), Error> {
        self.blocks.clear();
        self.next = BASE;
        self.live_bytes = 0;
        self.output.clear();
        self.error = None;
        self.logs.clear();
        self.log_bytes = 0;
        self.input = 0;
        self.input_len = 0;
        if input.is_empty() {
            return Ok(());
        }
        let len = input.len() as u64;
        let handle = self.alloc(len).ok_or_else(|| {
            Error::new(
                ErrorCode::InputLimit,
                format!(
                    "input of {len} bytes does not fit the instance's {} bytes of data memory",
                    self.max_bytes
                ),
            )
            .with(|d| d.limit = Some(self.max_bytes))
        })?;
        if let Some(block) = self.blocks.get_mut(&handle) {
            block.copy_from_slice(input);
        }
        self.input = handle;
        self.input_len = len;
        Ok(())
    }

    /// The output the guest set and the error it set (taken).
    pub(crate) fn take(&mut self) -> (Vec<u8>, Option<String>) {
        (core::mem::take(&mut self.output), self.error.take())
    }

    /// The log lines of the latest call (taken).
    pub(crate) fn take_logs(&mut self) -> Vec<LogLine> {
        self.log_bytes = 0;
        core::mem::take(&mut self.logs)
    }

    /// Frees every block (after a call: the host holds no guest data between calls).
    pub(crate) fn release(&mut self) {
        self.blocks.clear();
        self.live_bytes = 0;
        self.input = 0;
        self.input_len = 0;
    }

    /// Whether a block of `len` bytes can be allocated now.
    fn fits(&self, len: u64) -> bool {
        len != 0
            && self.blocks.len() < MAX_BLOCKS
            && self
                .live_bytes
                .checked_add(len)
                .is_some_and(|total| total <= self.max_bytes)
    }

    fn alloc(&mut self, len: u64) -> Option<u64> {
        if !self.fits(len) {
            return None;
        }
        let size = usize::try_from(len).ok()?;
        let handle = self.next;
        // Blocks are 8-aligned with an unused gap of at least 8 bytes after each, so no
        // address is in two blocks and one past a block's end is in none.
        self.next = handle.checked_add(len)?.checked_add(15)? & !7;
        self.blocks.insert(handle, vec![0; size]);
        self.live_bytes += len;
        Some(handle)
    }

    fn free(&mut self, handle: u64) {
        if let Some(block) = self.blocks.remove(&handle) {
            self.live_bytes -= block.len() as u64;
            if handle == self.input {
                self.input = 0;
                self.input_len = 0;
            }
        }
    }

    /// The block starting at `handle` (a handle, not any address).
    fn block(&self, handle: u64) -> Option<&[u8]> {
        self.blocks.get(&handle).map(Vec::as_slice)
    }

    /// The block containing `addr` and the offset of `addr` in it.
    fn find(&self, addr: u64) -> Option<(u64, usize)> {
        let (start, block) = self.blocks.range(..=addr).next_back()?;
        let offset = usize::try_from(addr - start).ok()?;
        (offset < block.len()).then_some((*start, offset))
    }

    /// `len` bytes at `addr`, all inside one block.
    fn range(&self, func: &str, addr: u64, len: u64) -> Result<(u64, usize, usize), Error> {
        let bad = || {
            Error::trap(
                TrapCode::MemoryOutOfBounds,
                format!(
                    "{DATA_MODULE} {func}: {len} bytes at {addr:#x} are not inside one allocated block"
                ),
            )
        };
        let (start, offset) = self.find(addr).ok_or_else(bad)?;
        let size = self.blocks.get(&start).map_or(0, Vec::len);
        let len = usize::try_from(len).map_err(|_| bad())?;
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok((start, offset, end)),
            _ => Err(bad()),
        }
    }

    /// Exactly `len` bytes at `addr`, all inside one block.
    fn load(&self, func: &str, addr: u64, len: u64) -> Result<&[u8], Error> {
        let (start, from, to) = self.range(func, addr, len)?;
        self.blocks
            .get(&start)
            .and_then(|b| b.get(from..to))
            .ok_or_else(|| Error::invalid_argument(format!("internal: block {start:#x} vanished")))
    }

    fn store(&mut self, func: &str, addr: u64, bytes: &[u8]) -> Result<(), Error> {
        let (start, from, to) = self.range(func, addr, bytes.len() as u64)?;
        if let Some(block) = self.blocks.get_mut(&start) {
            block[from..to].copy_from_slice(bytes);
        }
        Ok(())
    }

    fn input_bytes(&self, func: &str, offset: u64, len: u64) -> Result<&[u8], Error> {
        match offset.checked_add(len) {
            Some(end) if end <= self.input_len && self.input != 0 => {
                self.load(func, self.input + offset, len)
            }
            _ => Err(Error::trap(
                TrapCode::MemoryOutOfBounds,
                format!(
                    "{DATA_MODULE} {func}: {len} bytes at input offset {offset} are past the input's {} bytes",
                    self.input_len
                ),
            )),
        }
    }

    /// The whole block at `handle` (a handle the guest gives to a host function).
    fn handle_bytes(&self, func: &str, handle: u64) -> Result<Vec<u8>, Error> {
        self.block(handle).map(<[u8]>::to_vec).ok_or_else(|| {
            Error::trap(
                TrapCode::MemoryOutOfBounds,
                format!(
                    "{DATA_MODULE} {func}: {handle:#x} is not the handle of an allocated block"
                ),
            )
        })
    }

    /// A new block holding `bytes` (0 when empty or when no block fits).
    fn new_block(&mut self, bytes: &[u8]) -> u64 {
        let Some(handle) = self.alloc(bytes.len() as u64) else {
            return 0;
        };
        if let Some(block) = self.blocks.get_mut(&handle) {
            block.copy_from_slice(bytes);
        }
        handle
    }

    fn var_bytes_with(&self, key: &str, value_len: usize) -> u64 {
        // Extism's accounting (runtime/src/pdk.rs var_set), new entry included.
        let entry = (core::mem::size_of::<String>() + core::mem::size_of::<Vec<u8>>()) as u64;
        let others: u64 = self
            .vars
            .iter()
            .filter(|(k, _)| k.as_str() != key)
            .map(|(k, v)| entry + k.len() as u64 + v.len() as u64)
            .sum();
        others + entry + key.len() as u64 + value_len as u64
    }
}

/// What the data functions need from the embedder's store data: the data context and the
/// call's fuel ledger (as [`WasiView`](crate::wasi) for WASI).
pub(crate) trait DataView: 'static {
    fn data_view(&mut self) -> (&mut DataCtx, &mut FuelLedger);
}

/// A data function ended the call with a nestbox error.
#[derive(Debug, Clone)]
pub(crate) struct DataStop(pub(crate) Error);

impl core::fmt::Display for DataStop {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl wasmi::errors::HostError for DataStop {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cost {
    /// `ACCESS_FUEL`.
    Access,
    /// `host_call_fuel`.
    Call,
}

type Impl = fn(&mut DataCtx, &[wasmi::Val], &mut [wasmi::Val]) -> Result<u64, Error>;

/// One function of `extism:host/env`.
pub(crate) struct DataFunc {
    pub name: &'static str,
    params: &'static [ValueType],
    results: &'static [ValueType],
    cost: Cost,
    /// Runs it; returns the bytes it copied (1 fuel per 64, charged after).
    call: Impl,
}

impl DataFunc {
    /// The type a guest must import it with.
    pub(crate) fn signature(&self) -> Signature {
        Signature::new(self.params.iter().copied(), self.results.iter().copied())
    }
}

use ValueType::{I32, I64};

fn arg(params: &[wasmi::Val], i: usize) -> u64 {
    match params.get(i) {
        Some(wasmi::Val::I64(v)) => *v as u64,
        Some(wasmi::Val::I32(v)) => u64::from(*v as u32),
        _ => 0,
    }
}

fn set(results: &mut [wasmi::Val], v: wasmi::Val) {
    if let Some(slot) = results.first_mut() {
        *slot = v;
    }
}

fn set_u64(results: &mut [wasmi::Val], v: u64) {
    set(results, wasmi::Val::I64(v as i64));
}

/// The little-endian u64 of 8 bytes (the callers load exactly 8).
fn u64_of(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    for (slot, byte) in b.iter_mut().zip(bytes) {
        *slot = *byte;
    }
    u64::from_le_bytes(b)
}

/// The first of the bytes (the callers load exactly 1).
fn byte_of(bytes: &[u8]) -> u8 {
    bytes.first().copied().unwrap_or(0)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn log(cx: &mut DataCtx, level: &'static str, handle: u64) -> Result<u64, Error> {
    let bytes = cx.handle_bytes(level, handle)?;
    cx.free(handle);
    let size = bytes.len() as u64;
    cx.log_bytes = cx.log_bytes.saturating_add(size);
    if cx.log_bytes > cx.max_output_bytes {
        let cap = cx.max_output_bytes;
        return Err(Error::new(
            ErrorCode::OutputLimit,
            format!("log messages over their cap of {cap} bytes for one call"),
        )
        .with(|d| d.limit = Some(cap)));
    }
    cx.logs.push(LogLine {
        level,
        message: text(&bytes),
    });
    Ok(size)
}

macro_rules! log_fn {
    ($name:literal, $level:literal) => {
        DataFunc {
            name: $name,
            params: &[I64],
            results: &[],
            cost: Cost::Call,
            call: |cx, p, _| log(cx, $level, arg(p, 0)),
        }
    };
}

/// Every function of `extism:host/env` nestbox provides.
pub(crate) static FUNCTIONS: &[DataFunc] = &[
    DataFunc {
        name: "input_length",
        params: &[],
        results: &[I64],
        cost: Cost::Access,
        call: |cx, _, r| {
            set_u64(r, cx.input_len);
            Ok(0)
        },
    },
    DataFunc {
        name: "input_offset",
        params: &[],
        results: &[I64],
        cost: Cost::Access,
        call: |cx, _, r| {
            set_u64(r, cx.input);
            Ok(0)
        },
    },
    DataFunc {
        name: "input_load_u8",
        params: &[I64],
        results: &[I32],
        cost: Cost::Access,
        call: |cx, p, r| {
            let b = byte_of(cx.input_bytes("input_load_u8", arg(p, 0), 1)?);
            set(r, wasmi::Val::I32(i32::from(b)));
            Ok(0)
        },
    },
    DataFunc {
        name: "input_load_u64",
        params: &[I64],
        results: &[I64],
        cost: Cost::Access,
        call: |cx, p, r| {
            let v = u64_of(cx.input_bytes("input_load_u64", arg(p, 0), 8)?);
            set_u64(r, v);
            Ok(0)
        },
    },
    DataFunc {
        name: "length",
        params: &[I64],
        results: &[I64],
        cost: Cost::Access,
        call: |cx, p, r| {
            set_u64(r, cx.block(arg(p, 0)).map_or(0, |b| b.len() as u64));
            Ok(0)
        },
    },
    DataFunc {
        name: "length_unsafe",
        params: &[I64],
        results: &[I64],
        cost: Cost::Access,
        call: |cx, p, r| {
            set_u64(r, cx.block(arg(p, 0)).map_or(0, |b| b.len() as u64));
            Ok(0)
        },
    },
    DataFunc {
        name: "alloc",
        params: &[I64],
        results: &[I64],
        cost: Cost::Call,
        call: |cx, p, r| {
            // The zero-fill was paid before the call (see `define`).
            let handle = cx.alloc(arg(p, 0)).unwrap_or(0);
            set_u64(r, handle);
            Ok(0)
        },
    },
    DataFunc {
        name: "free",
        params: &[I64],
        results: &[],
        cost: Cost::Call,
        call: |cx, p, _| {
            cx.free(arg(p, 0));
            Ok(0)
        },
    },
    DataFunc {
        name: "output_set",
        params: &[I64, I64],
        results: &[],
        cost: Cost::Call,
        call: |cx, p, _| {
            let (handle, len) = (arg(p, 0), arg(p, 1));
            if len > cx.max_output_bytes {
                let cap = cx.max_output_bytes;
                return Err(Error::new(
                    ErrorCode::OutputLimit,
                    format!("output of {len} bytes is over its cap of {cap} bytes"),
                )
                .with(|d| d.limit = Some(cap)));
            }
            let bytes = if len == 0 {
                Vec::new()
            } else {
                cx.load("output_set", handle, len)?.to_vec()
            };
            cx.output = bytes;
            Ok(len)
        },
    },
    DataFunc {
        name: "output_length",
        params: &[],
        results: &[I64],
        cost: Cost::Access,
        call: |cx, _, r| {
            set_u64(r, cx.output.len() as u64);
            Ok(0)
        },
    },
    DataFunc {
        name: "error_set",
        params: &[I64],
        results: &[],
        cost: Cost::Call,
        call: |cx, p, _| {
            let handle = arg(p, 0);
            if handle == 0 {
                cx.error = None;
                return Ok(0);
            }
            let bytes = cx.handle_bytes("error_set", handle)?;
            let kept = &bytes[..bytes.len().min(MAX_ERROR_BYTES)];
            cx.error = Some(text(kept));
            Ok(kept.len() as u64)
        },
    },
    DataFunc {
        name: "load_u8",
        params: &[I64],
        results: &[I32],
        cost: Cost::Access,
        call: |cx, p, r| {
            let b = byte_of(cx.load("load_u8", arg(p, 0), 1)?);
            set(r, wasmi::Val::I32(i32::from(b)));
            Ok(0)
        },
    },
    DataFunc {
        name: "load_u64",
        params: &[I64],
        results: &[I64],
        cost: Cost::Access,
        call: |cx, p, r| {
            let v = u64_of(cx.load("load_u64", arg(p, 0), 8)?);
            set_u64(r, v);
            Ok(0)
        },
    },
    DataFunc {
        name: "store_u8",
        params: &[I64, I32],
        results: &[],
        cost: Cost::Access,
        call: |cx, p, _| {
            let byte = arg(p, 1) as u8;
            cx.store("store_u8", arg(p, 0), &[byte])?;
            Ok(0)
        },
    },
    DataFunc {
        name: "store_u64",
        params: &[I64, I64],
        results: &[],
        cost: Cost::Access,
        call: |cx, p, _| {
            cx.store("store_u64", arg(p, 0), &arg(p, 1).to_le_bytes())?;
            Ok(0)
        },
    },
    DataFunc {
        name: "config_get",
        params: &[I64],
        results: &[I64],
        cost: Cost::Call,
        call: |cx, p, r| {
            let handle = arg(p, 0);
            let key = cx.handle_bytes("config_get", handle)?;
            cx.free(handle);
            let value = core::str::from_utf8(&key)
                .ok()
                .and_then(|k| cx.config.config.get(k))
                .map(|v| v.as_bytes().to_vec());
            let moved = key.len() + value.as_ref().map_or(0, Vec::len);
            let out = value.map_or(0, |v| cx.new_block(&v));
            set_u64(r, out);
            Ok(moved as u64)
        },
    },
    DataFunc {
        name: "var_get",
        params: &[I64],
        results: &[I64],
        cost: Cost::Call,
        call: |cx, p, r| {
            let handle = arg(p, 0);
            let key = cx.handle_bytes("var_get", handle)?;
            cx.free(handle);
            let value = cx.vars.get(&text(&key)).cloned();
            let moved = key.len() + value.as_ref().map_or(0, Vec::len);
            let out = value.map_or(0, |v| cx.new_block(&v));
            set_u64(r, out);
            Ok(moved as u64)
        },
    },
    DataFunc {
        name: "var_set",
        params: &[I64, I64],
        results: &[],
        cost: Cost::Call,
        call: |cx, p, _| {
            let (key_handle, value_handle) = (arg(p, 0), arg(p, 1));
            if cx.config.max_var_bytes == 0 {
                return Err(Error::host_failed(
                    "extism:host/env var_set: variables are disabled (max_var_bytes is 0)",
                ));
            }
            let key = text(&cx.handle_bytes("var_set", key_handle)?);
            if value_handle == 0 {
                cx.vars.remove(&key);
                cx.free(key_handle);
                return Ok(key.len() as u64);
            }
            let value = cx.handle_bytes("var_set", value_handle)?;
            let needed = cx.var_bytes_with(&key, value.len());
            if needed > cx.config.max_var_bytes {
                let cap = cx.config.max_var_bytes;
                return Err(Error::host_failed(format!(
                    "extism:host/env var_set: variables would hold {needed} bytes, over max_var_bytes of {cap}"
                )));
            }
            cx.free(value_handle);
            cx.free(key_handle);
            let moved = (key.len() + value.len()) as u64;
            cx.vars.insert(key, value);
            Ok(moved)
        },
    },
    DataFunc {
        name: "http_request",
        params: &[I64, I64],
        results: &[I64],
        cost: Cost::Call,
        call: http_request,
    },
    DataFunc {
        name: "http_status_code",
        params: &[],
        results: &[I32],
        cost: Cost::Access,
        call: |cx, _, r| {
            set(r, wasmi::Val::I32(i32::from(cx.http_status)));
            Ok(0)
        },
    },
    DataFunc {
        name: "http_headers",
        params: &[],
        results: &[I64],
        cost: Cost::Call,
        call: |cx, _, r| {
            let json = cx
                .http_headers
                .as_ref()
                .and_then(|h| serde_json::to_vec(h).ok());
            let handle = json.as_ref().map_or(0, |j| cx.new_block(j));
            set_u64(r, handle);
            Ok(json.map_or(0, |j| j.len() as u64))
        },
    },
    log_fn!("log_trace", "trace"),
    log_fn!("log_debug", "debug"),
    log_fn!("log_info", "info"),
    log_fn!("log_warn", "warn"),
    log_fn!("log_error", "error"),
    DataFunc {
        name: "get_log_level",
        params: &[],
        results: &[I32],
        cost: Cost::Access,
        // Every level is delivered (bounded by the log cap).
        call: |_, _, r| {
            set(r, wasmi::Val::I32(0));
            Ok(0)
        },
    },
];

/// `http_request(request, body)`: the request (Extism's `HttpRequest` as JSON) checked against
/// the HTTP capability; an allowed one is left in `pending_http` for the instance to suspend
/// the guest with. Both handles are freed, as Extism's runtime does.
fn http_request(cx: &mut DataCtx, p: &[wasmi::Val], _: &mut [wasmi::Val]) -> Result<u64, Error> {
    let (request_handle, body_handle) = (arg(p, 0), arg(p, 1));
    let request = cx.handle_bytes("http_request", request_handle)?;
    let body = if body_handle == 0 {
        Vec::new()
    } else {
        cx.handle_bytes("http_request", body_handle)?
    };
    cx.free(request_handle);
    cx.free(body_handle);
    cx.http_status = 0;
    cx.http_headers = None;
    let refuse = |why: String| Error::host_failed(format!("extism:host/env http_request: {why}"));
    let json: serde_json::Value = serde_json::from_slice(&request)
        .map_err(|e| refuse(format!("the request is not JSON: {e}")))?;
    let url = json
        .get("url")
        .and_then(|u| u.as_str())
        .ok_or_else(|| refuse("the request has no url".to_owned()))?
        .to_owned();
    let method = match json.get("method") {
        None | Some(serde_json::Value::Null) => "GET".to_owned(),
        Some(serde_json::Value::String(m))
            if !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            m.to_ascii_uppercase()
        }
        Some(other) => return Err(refuse(format!("bad method {other}"))),
    };
    let mut headers = BTreeMap::new();
    if let Some(h) = json.get("headers").filter(|h| !h.is_null()) {
        let map = h
            .as_object()
            .ok_or_else(|| refuse("headers must be an object".to_owned()))?;
        for (k, v) in map {
            let v = v
                .as_str()
                .ok_or_else(|| refuse(format!("header {k:?} is not a string")))?;
            headers.insert(k.clone(), v.to_owned());
        }
    }
    let host = url_host(&url).map_err(refuse)?;
    match cx.http_grant() {
        Some(grant) if grant.allows(&host) => {}
        Some(_) => {
            return Err(refuse(format!(
                "HTTP request to {url:?} is not allowed (host {host:?} is not in allowed_hosts)"
            )));
        }
        None => {
            return Err(refuse(format!(
                "HTTP request to {url:?} is not allowed (no HTTP capability is granted)"
            )));
        }
    }
    let moved = (request.len() + body.len()) as u64;
    cx.pending_http = Some(HttpRequest {
        url,
        method,
        headers,
        body,
    });
    Ok(moved)
}

/// The data function called `name`, if there is one.
pub(crate) fn function(name: &str) -> Option<&'static DataFunc> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// Defines `func` in `linker` for stores of `T`: it charges its fuel to the store's ledger
/// (before any work), runs over the store's data context, and ends the call with the error
/// it fails with.
pub(crate) fn define<T: DataView>(
    linker: &mut Linker<T>,
    func: &'static DataFunc,
    host_call_fuel: u64,
) -> Result<(), Error> {
    linker
        .func_new(
            DATA_MODULE,
            func.name,
            func.signature().to_wasmi(),
            move |mut caller: Caller<'_, T>, params, results| {
                let mut cost = match func.cost {
                    Cost::Access => ACCESS_FUEL,
                    Cost::Call => host_call_fuel,
                };
                if func.name == "alloc" {
                    // The zero-fill, paid before it happens (only when the block fits: an
                    // alloc that returns 0 fills nothing).
                    let len = arg(params, 0);
                    let (cx, _) = caller.data_mut().data_view();
                    if cx.fits(len) {
                        cost = cost.saturating_add(len.div_ceil(64));
                    }
                }
                pay(&mut caller, cost)?;
                let (moved, suspend) = {
                    let (cx, _) = caller.data_mut().data_view();
                    let moved = (func.call)(cx, params, results)
                        .map_err(|e| wasmi::Error::host(DataStop(e)))?;
                    (moved, cx.pending_http.is_some())
                };
                pay(&mut caller, moved.div_ceil(64))?;
                if suspend {
                    // The embedder answers; the instance resumes the guest with the handle.
                    return Err(wasmi::Error::host(HttpPending));
                }
                Ok(())
            },
        )
        .map_err(|e| Error::invalid_argument(format!("cannot link {}: {e}", func.name)))?;
    Ok(())
}

/// Charges `cost` to the call, or ends it with `FUEL_EXHAUSTED` when its budget cannot pay.
fn pay<T: DataView>(caller: &mut Caller<'_, T>, cost: u64) -> Result<(), wasmi::Error> {
    if cost == 0 {
        return Ok(());
    }
    let in_store = caller.get_fuel()?;
    let left = {
        let (_, ledger) = caller.data_mut().data_view();
        if ledger.remaining(in_store) < cost {
            let budget = ledger.budget();
            return Err(wasmi::Error::host(DataStop(
                Error::new(
                    ErrorCode::FuelExhausted,
                    format!("fuel budget of {budget} exhausted (by a data call)"),
                )
                .with(|d| d.limit = Some(budget)),
            )));
        }
        ledger.charge(in_store, cost)
    };
    caller.set_fuel(left)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> DataCtx {
        DataCtx::new(DataConfig::default(), 1 << 20, 1 << 10)
    }

    #[test]
    fn url_hosts_are_read_as_fetch_would_or_refused() {
        assert_eq!(
            url_host("https://API.example.com:8443/x?y#z").as_deref(),
            Ok("API.example.com")
        );
        assert_eq!(url_host("http://[::1]:80/").as_deref(), Ok("::1"));
        for bad in [
            "ftp://example.com/",
            "https://user:pw@example.com/",
            // WHATWG parsers read these as host evil.com (path /.allowed.com), or decode them.
            "https://evil.com\\.allowed.com/",
            "https://evil.com%2f.allowed.com/",
            "https://evil.com\t.allowed.com/",
            "https://evil.com\n.allowed.com/",
            "https:///path",
        ] {
            assert!(url_host(bad).is_err(), "{bad:?} was accepted");
        }
        let grant = HttpGrant::new(CapabilityId(1), vec!["*.allowed.com".into()]);
        assert!(grant.allows("api.ALLOWED.com"));
        assert!(!grant.allows("allowed.com.evil.com"));
    }

    #[test]
    fn blocks_are_disjoint_and_bounds_checked() {
        let mut cx = cx();
        let a = cx.alloc(3).expect("a");
        let b = cx.alloc(5).expect("b");
        assert!(a != 0 && b > a + 3, "a gap after each block");
        assert!(cx.store("t", a, b"abc").is_ok());
        assert!(cx.store("t", a + 1, b"abc").is_err(), "past the end");
        assert!(
            cx.load("t", a + 3, 1).is_err(),
            "one past the end is in no block"
        );
        assert!(cx.load("t", 0, 1).is_err());
        assert!(cx.load("t", u64::MAX, 1).is_err());
        assert!(cx.load("t", a, u64::MAX).is_err());
        assert_eq!(cx.load("t", a + 1, 2).expect("in"), b"bc");
        cx.free(a);
        assert!(cx.load("t", a, 1).is_err(), "freed");
        assert_eq!(cx.live_bytes, 5);
    }

    #[test]
    fn allocation_is_bounded() {
        let mut cx = DataCtx::new(DataConfig::default(), 100, 10);
        assert_eq!(cx.alloc(0), None);
        assert_eq!(cx.alloc(101), None);
        assert!(cx.alloc(100).is_some());
        assert_eq!(cx.alloc(1), None, "full");
        assert_eq!(cx.alloc(u64::MAX), None);
    }

    #[test]
    fn input_reads_stay_inside_the_input() {
        let mut cx = cx();
        cx.reset(b"0123456789").expect("input");
        assert_eq!(cx.input_bytes("t", 2, 8).expect("in"), b"23456789");
        assert!(cx.input_bytes("t", 3, 8).is_err());
        assert!(cx.input_bytes("t", u64::MAX, 8).is_err());
        cx.reset(b"").expect("empty");
        assert!(cx.input_bytes("t", 0, 1).is_err());
    }
}
