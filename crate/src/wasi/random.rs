//! `random_get`: cryptographic randomness from the platform (`getrandom`: the OS natively,
//! `crypto.getRandomValues` in a browser or worker), or a ChaCha20 stream seeded from the
//! caller's `u64` when the run is deterministic.

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use wasip1::{ERRNO_FAULT, ERRNO_IO, Errno};

use super::{Cx, Deterministic, SysResult};

/// Where `random_get` takes its bytes.
pub(crate) enum Rng {
    Platform,
    Seeded(Box<ChaCha20Rng>),
}

impl Rng {
    pub(crate) fn new(deterministic: Option<Deterministic>) -> Self {
        match deterministic {
            Some(d) => Self::Seeded(Box::new(ChaCha20Rng::seed_from_u64(d.seed))),
            None => Self::Platform,
        }
    }

    /// Fills `buf` (`EIO` if the platform source fails).
    pub(crate) fn fill(&mut self, buf: &mut [u8]) -> Result<(), Errno> {
        match self {
            Self::Platform => getrandom::getrandom(buf).map_err(|_| ERRNO_IO),
            Self::Seeded(rng) => {
                rng.fill_bytes(buf);
                Ok(())
            }
        }
    }
}

/// Bytes generated at a time: `random_get` fills guest memory chunk by chunk, never
/// holding the whole request on the host. A multiple of 4, so the seeded stream is the same
/// as one generated in one piece.
const CHUNK: usize = 4096;

/// `random_get(buf, buf_len)`: paid before anything is generated.
pub(crate) fn random_get(cx: &mut Cx<'_>, buf_ptr: u32, buf_len: u32) -> SysResult {
    cx.mem.check(buf_ptr, buf_len)?;
    cx.reserve(u64::from(buf_len))?;
    let mut chunk = [0u8; CHUNK];
    let mut done = 0u32;
    while done < buf_len {
        let n = (buf_len - done).min(CHUNK as u32);
        let part = chunk.get_mut(..n as usize).unwrap_or_default();
        cx.wasi.rng.fill(part)?;
        cx.mem
            .write(buf_ptr.checked_add(done).ok_or(ERRNO_FAULT)?, part)?;
        done += n;
        cx.moved += u64::from(n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_streams_repeat_and_differ_by_seed() {
        let det = |seed| {
            Some(Deterministic {
                seed,
                start_time_ns: 0,
            })
        };
        let (mut a, mut b, mut c) = (Rng::new(det(7)), Rng::new(det(7)), Rng::new(det(8)));
        let (mut x, mut y, mut z) = ([0u8; 32], [0u8; 32], [0u8; 32]);
        a.fill(&mut x).expect("fill");
        b.fill(&mut y).expect("fill");
        c.fill(&mut z).expect("fill");
        assert_eq!(x, y);
        assert_ne!(x, z);
    }

    #[test]
    fn platform_randomness_works() {
        let mut buf = [0u8; 64];
        Rng::new(None).fill(&mut buf).expect("fill");
        assert_ne!(buf, [0u8; 64]);
    }
}
