//! Writes argv[1] MiB to stdout as 64-byte lines (line i: i zero-padded to 63 digits, then
//! "\n"), in 64 KiB writes, then "wrote N bytes" on stderr. A runner's output cap cuts it.
use std::io::Write;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let lines = mib * 1024 * 1024 / 64;
    let mut out = std::io::stdout().lock();
    let mut chunk = Vec::with_capacity(64 * 1024);
    let mut written = 0usize;
    for i in 0..lines {
        chunk.extend_from_slice(format!("{i:063}\n").as_bytes());
        if chunk.len() == 64 * 1024 || i + 1 == lines {
            if let Err(err) = out.write_all(&chunk).and_then(|()| out.flush()) {
                eprintln!(
                    "write failed after {written} bytes: {}",
                    wasi_guests::err_name(&err)
                );
                std::process::exit(1);
            }
            written += chunk.len();
            chunk.clear();
        }
    }
    eprintln!("wrote {written} bytes");
}
