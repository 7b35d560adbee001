//! `poll_oneoff` and `sched_yield`: waiting without blocking the worker.
//!
//! `poll_oneoff` returns at once with every subscription that is ready: a clock whose
//! deadline passed, stdout/stderr (always writable), a file (always readable and writable),
//! stdin with data or at end of file, or an fd that is not open (an event carrying `EBADF`).
//! When nothing is ready it waits for the earliest clock deadline:
//!
//! - with a deterministic clock, virtual time jumps to the deadline and the call returns;
//! - otherwise the guest is suspended with [`WasiWait::Sleep`](crate::WasiWait::Sleep); when the
//!   caller resumes it, every clock due by then fires (the earliest at least, since the
//!   caller says the time is up), and stdin is looked at again.
//!
//! With no clock to wait for, only an empty async stdin can be pending: the guest is
//! suspended with [`WasiWait::ReadStdin`](crate::WasiWait::ReadStdin) (asking for
//! [`STDIN_POLL_BYTES`]); the caller's bytes (or end of file) make it ready.

use wasip1::{
    ERRNO_BADF, ERRNO_FAULT, ERRNO_INVAL, EVENTRWFLAGS_FD_READWRITE_HANGUP, EVENTTYPE_CLOCK,
    EVENTTYPE_FD_READ, EVENTTYPE_FD_WRITE, Errno, SUBCLOCKFLAGS_SUBSCRIPTION_CLOCK_ABSTIME,
};

use super::clock::Timeline;
use super::fd::Handle;
use super::{Cx, Fail, Suspended, SysResult, WasiSuspend};

/// Bytes a poll on empty async stdin asks the caller for.
pub(crate) const STDIN_POLL_BYTES: u32 = 64 << 10;

/// Most subscriptions one `poll_oneoff` may pass (`EINVAL` beyond, as Linux's `poll` for
/// more fds than `RLIMIT_NOFILE`): every fd nestbox can open, a read and a write for each,
/// and clocks. Bounds the host-side list.
pub(crate) const MAX_SUBSCRIPTIONS: u32 = 4096;

const SUBSCRIPTION_BYTES: u32 = 48;
const EVENT_BYTES: u32 = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Fires when the monotonic clock reaches `deadline_ns`.
    Clock {
        deadline_ns: u64,
    },
    /// A clock subscription with an unknown clock id: fires at once with this errno.
    BadClock(Errno),
    FdRead(u32),
    FdWrite(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Subscription {
    userdata: u64,
    kind: Kind,
}

/// A `poll_oneoff` waiting for the caller.
pub(crate) struct PendingPoll {
    subscriptions: Vec<Subscription>,
    out_ptr: u32,
    nevents_ptr: u32,
}

struct Event {
    userdata: u64,
    error: u16,
    type_: u8,
    nbytes: u64,
    flags: u16,
}

fn u64_at(raw: &[u8], at: usize) -> u64 {
    raw.get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn u32_at(raw: &[u8], at: usize) -> u32 {
    raw.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn u16_at(raw: &[u8], at: usize) -> u16 {
    raw.get(at..at + 2)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}

/// Decodes one 48-byte subscription (`EINVAL` for an unknown tag or clock flag).
fn parse(cx: &Cx<'_>, raw: &[u8], now_ns: u64) -> Result<Subscription, Errno> {
    let userdata = u64_at(raw, 0);
    let tag = raw.get(8).copied().unwrap_or(u8::MAX);
    let kind = match tag {
        t if t == EVENTTYPE_CLOCK.raw() => {
            let id = u32_at(raw, 16);
            let timeout = u64_at(raw, 24);
            let flags = u16_at(raw, 40);
            if flags & !SUBCLOCKFLAGS_SUBSCRIPTION_CLOCK_ABSTIME != 0 {
                return Err(ERRNO_INVAL);
            }
            let absolute = flags & SUBCLOCKFLAGS_SUBSCRIPTION_CLOCK_ABSTIME != 0;
            match Timeline::of(id) {
                Err(errno) => Kind::BadClock(errno),
                Ok(_) if !absolute => Kind::Clock {
                    deadline_ns: now_ns.saturating_add(timeout),
                },
                Ok(Timeline::Monotonic) => Kind::Clock {
                    deadline_ns: timeout,
                },
                Ok(Timeline::Realtime) => {
                    let wait = timeout.saturating_sub(cx.wasi.clock.realtime_ns());
                    Kind::Clock {
                        deadline_ns: now_ns.saturating_add(wait),
                    }
                }
            }
        }
        t if t == EVENTTYPE_FD_READ.raw() => Kind::FdRead(u32_at(raw, 16)),
        t if t == EVENTTYPE_FD_WRITE.raw() => Kind::FdWrite(u32_at(raw, 16)),
        _ => return Err(ERRNO_INVAL),
    };
    Ok(Subscription { userdata, kind })
}

/// The events of every subscription ready at monotonic time `now_ns`.
fn ready(cx: &Cx<'_>, subscriptions: &[Subscription], now_ns: u64) -> Vec<Event> {
    let wasi = &*cx.wasi;
    let event = |s: &Subscription, type_: u8, error: Errno, nbytes: u64, flags: u16| Event {
        userdata: s.userdata,
        error: error.raw(),
        type_,
        nbytes,
        flags,
    };
    let ok = wasip1::ERRNO_SUCCESS;
    let mut events = Vec::new();
    for s in subscriptions {
        let e = match s.kind {
            Kind::Clock { deadline_ns } if deadline_ns <= now_ns => {
                Some(event(s, EVENTTYPE_CLOCK.raw(), ok, 0, 0))
            }
            Kind::Clock { .. } => None,
            Kind::BadClock(errno) => Some(event(s, EVENTTYPE_CLOCK.raw(), errno, 0, 0)),
            Kind::FdRead(fd) => {
                let t = EVENTTYPE_FD_READ.raw();
                match wasi.fds.get(fd).map(|e| &e.handle) {
                    Ok(Handle::Stdin) if !wasi.stdin.data.is_empty() => {
                        Some(event(s, t, ok, wasi.stdin.data.len() as u64, 0))
                    }
                    Ok(Handle::Stdin) if wasi.stdin.closed => {
                        Some(event(s, t, ok, 0, EVENTRWFLAGS_FD_READWRITE_HANGUP))
                    }
                    Ok(Handle::Stdin) => None,
                    Ok(Handle::File { node, pos, .. }) => {
                        let size = wasi.fs.data(*node).map_or(0, |d| d.len() as u64);
                        Some(event(s, t, ok, size.saturating_sub(*pos), 0))
                    }
                    _ => Some(event(s, t, ERRNO_BADF, 0, 0)),
                }
            }
            Kind::FdWrite(fd) => {
                let t = EVENTTYPE_FD_WRITE.raw();
                match wasi.fds.get(fd).map(|e| &e.handle) {
                    Ok(Handle::Stdout) => Some(event(s, t, ok, wasi.stdout.room(), 0)),
                    Ok(Handle::Stderr) => Some(event(s, t, ok, wasi.stderr.room(), 0)),
                    Ok(Handle::File { .. }) => Some(event(s, t, ok, 0, 0)),
                    _ => Some(event(s, t, ERRNO_BADF, 0, 0)),
                }
            }
        };
        events.extend(e);
    }
    events
}

fn write_events(
    cx: &mut Cx<'_>,
    out_ptr: u32,
    nevents_ptr: u32,
    events: &[Event],
) -> Result<(), Errno> {
    let mut out = Vec::with_capacity(events.len() * EVENT_BYTES as usize);
    for e in events {
        let mut buf = [0u8; EVENT_BYTES as usize];
        buf[0..8].copy_from_slice(&e.userdata.to_le_bytes());
        buf[8..10].copy_from_slice(&e.error.to_le_bytes());
        buf[10] = e.type_;
        buf[16..24].copy_from_slice(&e.nbytes.to_le_bytes());
        buf[24..26].copy_from_slice(&e.flags.to_le_bytes());
        out.extend_from_slice(&buf);
    }
    cx.mem.write(out_ptr, &out)?;
    cx.mem.write_u32(nevents_ptr, events.len() as u32)?;
    cx.moved += out.len() as u64;
    Ok(())
}

fn earliest_clock(subscriptions: &[Subscription]) -> Option<u64> {
    subscriptions
        .iter()
        .filter_map(|s| match s.kind {
            Kind::Clock { deadline_ns } => Some(deadline_ns),
            _ => None,
        })
        .min()
}

/// `poll_oneoff(in, out, nsubscriptions) -> nevents`. `EINVAL` for no subscriptions, more than
/// [`MAX_SUBSCRIPTIONS`] (once they are known to be in memory) or an unknown subscription tag.
pub(crate) fn poll_oneoff(
    cx: &mut Cx<'_>,
    in_ptr: u32,
    out_ptr: u32,
    nsubscriptions: u32,
    nevents_ptr: u32,
) -> SysResult {
    if nsubscriptions == 0 {
        return Err(ERRNO_INVAL.into());
    }
    let in_len = nsubscriptions
        .checked_mul(SUBSCRIPTION_BYTES)
        .ok_or(ERRNO_FAULT)?;
    let out_len = nsubscriptions.checked_mul(EVENT_BYTES).ok_or(ERRNO_FAULT)?;
    cx.mem.check(out_ptr, out_len)?;
    cx.mem.check(nevents_ptr, 4)?;
    cx.mem.check(in_ptr, in_len)?;
    if nsubscriptions > MAX_SUBSCRIPTIONS {
        return Err(ERRNO_INVAL.into());
    }
    // The subscriptions read and the events written, paid before either.
    cx.reserve(u64::from(in_len) + u64::from(out_len))?;
    let now_ns = cx.wasi.clock.monotonic_ns();
    let raw = cx.mem.read(in_ptr, in_len)?;
    let subscriptions = raw
        .chunks_exact(SUBSCRIPTION_BYTES as usize)
        .map(|chunk| parse(cx, chunk, now_ns))
        .collect::<Result<Vec<_>, _>>()?;
    cx.moved += u64::from(in_len);
    let events = ready(cx, &subscriptions, now_ns);
    if !events.is_empty() {
        write_events(cx, out_ptr, nevents_ptr, &events)?;
        return Ok(());
    }
    let suspend = match earliest_clock(&subscriptions) {
        Some(deadline_ns) => {
            let duration_ns = deadline_ns.saturating_sub(now_ns);
            if cx.wasi.clock.is_virtual() {
                cx.wasi.clock.advance(duration_ns);
                let events = ready(cx, &subscriptions, deadline_ns);
                write_events(cx, out_ptr, nevents_ptr, &events)?;
                return Ok(());
            }
            WasiSuspend::Sleep { duration_ns }
        }
        None => WasiSuspend::ReadStdin {
            max_bytes: STDIN_POLL_BYTES,
        },
    };
    cx.wasi.suspended = Some(Suspended::Poll(PendingPoll {
        subscriptions,
        out_ptr,
        nevents_ptr,
    }));
    Err(Fail::suspend(suspend))
}

/// Completes a suspended `poll_oneoff` when the caller resumes it.
pub(crate) fn complete_poll(cx: &mut Cx<'_>, pending: &PendingPoll) -> Result<(), Errno> {
    let now_ns = cx.wasi.clock.monotonic_ns();
    let mut events = ready(cx, &pending.subscriptions, now_ns);
    if events.is_empty() {
        // The caller says the wait is over (a browser timer may fire a little early): the
        // earliest clock fires.
        if let Some(deadline_ns) = earliest_clock(&pending.subscriptions) {
            events = ready(cx, &pending.subscriptions, deadline_ns.max(now_ns));
        }
    }
    write_events(cx, pending.out_ptr, pending.nevents_ptr, &events)
}

/// `sched_yield()`: a single-threaded guest has nobody to yield to; fuel slicing already
/// lets the caller's event loop run.
pub(crate) fn sched_yield(_cx: &mut Cx<'_>) -> SysResult {
    Ok(())
}
