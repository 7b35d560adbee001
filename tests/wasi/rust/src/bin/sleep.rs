//! Sleeps argv[1] milliseconds (default 20) with `poll_oneoff` (std::thread::sleep) and checks
//! that the monotonic clock advanced at least that much.
use std::time::{Duration, Instant};

fn main() {
    let ms: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(ms));
    let elapsed = start.elapsed();
    println!("slept {ms} ms");
    println!(
        "monotonic advanced >= {ms} ms: {}",
        elapsed >= Duration::from_millis(ms)
    );
    let start = Instant::now();
    std::thread::sleep(Duration::ZERO);
    println!(
        "sleep 0 returns: {}",
        start.elapsed() < Duration::from_secs(1)
    );
}
