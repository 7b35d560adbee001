//! `random_get`: 32 bytes, not all zero, a second draw differs from the first, and the first
//! draw in hex (compare two runs: equal under a seeded generator, different otherwise).
use wasi_guests::{errno_name, hex, raw};

fn draw() -> [u8; 32] {
    let mut buf = [0u8; 32];
    // SAFETY: `buf` is 32 writable bytes.
    let errno = unsafe { raw::random_get(buf.as_mut_ptr(), buf.len()) };
    if errno != 0 {
        println!("random_get: {}", errno_name(errno as i32));
        std::process::exit(1);
    }
    buf
}

fn main() {
    let first = draw();
    let second = draw();
    println!("not all zero: {}", first.iter().any(|&b| b != 0));
    println!("second draw differs: {}", first != second);
    println!("bytes: {}", hex(&first));
}
