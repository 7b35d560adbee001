//! random_get: real randomness by default, or a ChaCha20 stream from a seed.

use nestbox::{Deterministic, WasiConfig};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use crate::wasi_util::*;

fn random(sys: &mut Sys, len: u32) -> Vec<u8> {
    assert_eq!(sys.call("random_get", &[u64::from(BUF), u64::from(len)]), 0);
    sys.get(BUF, len)
}

fn seeded(seed: u64) -> Sys {
    Sys::new(WasiConfig {
        deterministic: Some(Deterministic {
            seed,
            start_time_ns: 0,
        }),
        ..WasiConfig::default()
    })
}

#[test]
fn a_seed_gives_the_chacha20_stream() {
    let mut expected = vec![0u8; 48];
    ChaCha20Rng::seed_from_u64(7).fill_bytes(&mut expected);
    let mut sys = seeded(7);
    let mut got = random(&mut sys, 16);
    got.extend(random(&mut sys, 32));
    assert_eq!(got, expected, "one stream across calls");
    assert_eq!(
        random(&mut seeded(7), 48),
        expected,
        "same seed, same bytes"
    );
    assert_ne!(random(&mut seeded(8), 48), expected);
    assert_eq!(random(&mut seeded(7), 0), Vec::<u8>::new());
}

#[test]
fn real_randomness_differs_between_calls() {
    let mut sys = Sys::new(WasiConfig::default());
    let a = random(&mut sys, 32);
    let b = random(&mut sys, 32);
    assert_ne!(a, b);
    assert_ne!(a, vec![0; 32]);
}
