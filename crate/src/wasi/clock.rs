//! `clock_res_get`, `clock_time_get` and the clock behind them (and behind file times and
//! `poll_oneoff`).
//!
//! - Real: realtime from `SystemTime` and monotonic from `Instant` (both from `web_time`,
//!   i.e. `Date.now()` / `performance.now()` in a browser).
//! - Deterministic: realtime starts at the configured `start_time_ns`, and both clocks advance
//!   only when the guest sleeps, by exactly the time it slept.
//!
//! The monotonic clock reads [`MONOTONIC_START_NS`] (1 s) plus the time since the instance
//! was created, so it is never 0: Go's runtime aborts on a zero `nanotime` ("nanotime
//! returning zero"), and a browser's coarsened `performance.now()` could otherwise read 0 at
//! first. The CPU-time clocks (`PROCESS_CPUTIME_ID`, `THREAD_CPUTIME_ID`) read as the
//! monotonic clock: a single-threaded guest's CPU time is at most its elapsed time, and
//! wasi-libc's `clock()` fails outright on `ENOTSUP`. Resolution is 1 µs for every clock
//! (browsers coarsen `performance.now()` to 5–100 µs; 1 µs is what the API can promise
//! natively).

use wasip1::{
    CLOCKID_MONOTONIC, CLOCKID_PROCESS_CPUTIME_ID, CLOCKID_REALTIME, CLOCKID_THREAD_CPUTIME_ID,
    ERRNO_INVAL, Errno,
};
use web_time::{Instant, SystemTime, UNIX_EPOCH};

use super::{Cx, Deterministic, SysResult};

/// Reported resolution of every clock, in nanoseconds.
const RESOLUTION_NS: u64 = 1_000;

/// What the monotonic clock reads when the instance is created (never 0: see the module docs).
pub(crate) const MONOTONIC_START_NS: u64 = 1_000_000_000;

/// The instance's clock.
pub(crate) enum Clock {
    Real {
        start: Instant,
    },
    Virtual {
        start_realtime_ns: u64,
        elapsed_ns: u64,
    },
}

/// Which timeline a clock id reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timeline {
    Realtime,
    Monotonic,
}

impl Timeline {
    /// The timeline of a preview1 clock id (`EINVAL` for an unknown one).
    pub(crate) fn of(id: u32) -> Result<Self, Errno> {
        match id {
            id if id == CLOCKID_REALTIME.raw() => Ok(Self::Realtime),
            id if id == CLOCKID_MONOTONIC.raw()
                || id == CLOCKID_PROCESS_CPUTIME_ID.raw()
                || id == CLOCKID_THREAD_CPUTIME_ID.raw() =>
            {
                Ok(Self::Monotonic)
            }
            _ => Err(ERRNO_INVAL),
        }
    }
}

impl Clock {
    pub(crate) fn new(deterministic: Option<Deterministic>) -> Self {
        match deterministic {
            Some(d) => Self::Virtual {
                start_realtime_ns: d.start_time_ns,
                elapsed_ns: 0,
            },
            None => Self::Real {
                start: Instant::now(),
            },
        }
    }

    /// Whether time moves only when the guest sleeps.
    pub(crate) fn is_virtual(&self) -> bool {
        matches!(self, Self::Virtual { .. })
    }

    /// Nanoseconds since the Unix epoch.
    pub(crate) fn realtime_ns(&self) -> u64 {
        match self {
            Self::Real { .. } => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            Self::Virtual {
                start_realtime_ns,
                elapsed_ns,
            } => start_realtime_ns.saturating_add(*elapsed_ns),
        }
    }

    /// [`MONOTONIC_START_NS`] plus the nanoseconds since the instance was created (real or
    /// virtual).
    pub(crate) fn monotonic_ns(&self) -> u64 {
        let elapsed = match self {
            Self::Real { start } => u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Self::Virtual { elapsed_ns, .. } => *elapsed_ns,
        };
        MONOTONIC_START_NS.saturating_add(elapsed)
    }

    /// The time on `timeline`.
    pub(crate) fn read(&self, timeline: Timeline) -> u64 {
        match timeline {
            Timeline::Realtime => self.realtime_ns(),
            Timeline::Monotonic => self.monotonic_ns(),
        }
    }

    /// Moves a virtual clock forward (a real clock moves by itself).
    pub(crate) fn advance(&mut self, ns: u64) {
        if let Self::Virtual { elapsed_ns, .. } = self {
            *elapsed_ns = elapsed_ns.saturating_add(ns);
        }
    }
}

/// `clock_res_get(id) -> resolution`.
pub(crate) fn clock_res_get(cx: &mut Cx<'_>, id: u32, resolution_ptr: u32) -> SysResult {
    Timeline::of(id)?;
    cx.mem.write_u64(resolution_ptr, RESOLUTION_NS)?;
    Ok(())
}

/// `clock_time_get(id, precision) -> time`. The precision hint is ignored.
pub(crate) fn clock_time_get(
    cx: &mut Cx<'_>,
    id: u32,
    _precision: u64,
    time_ptr: u32,
) -> SysResult {
    let timeline = Timeline::of(id)?;
    let now = cx.wasi.clock.read(timeline);
    cx.mem.write_u64(time_ptr, now)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_time_moves_only_when_advanced() {
        let mut clock = Clock::new(Some(Deterministic {
            seed: 0,
            start_time_ns: 1_000,
        }));
        assert_eq!(
            (clock.realtime_ns(), clock.monotonic_ns()),
            (1_000, MONOTONIC_START_NS)
        );
        clock.advance(500);
        assert_eq!(clock.read(Timeline::Realtime), 1_500);
        assert_eq!(clock.read(Timeline::Monotonic), MONOTONIC_START_NS + 500);
        assert!(clock.is_virtual());
    }

    #[test]
    fn clock_ids() {
        assert_eq!(Timeline::of(0), Ok(Timeline::Realtime));
        assert_eq!(Timeline::of(2), Ok(Timeline::Monotonic));
        assert_eq!(Timeline::of(4), Err(ERRNO_INVAL));
    }
}
