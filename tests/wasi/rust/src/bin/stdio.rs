//! Reads all of stdin, writes it back upper-cased (ASCII letters only, every other byte as is)
//! followed by a byte and line count, and a summary line on stderr.
//! With `--summary` stdout gets only the counts and an FNV-1a hash (for large inputs).
use std::io::{Read, Write};

fn main() {
    let summary = std::env::args().nth(1).as_deref() == Some("--summary");
    let mut input = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match std::io::stdin().read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => input.extend_from_slice(&chunk[..n]),
            Err(err) => {
                eprintln!("stdio: read failed: {}", wasi_guests::err_name(&err));
                std::process::exit(1);
            }
        }
    }
    let lines = input.iter().filter(|&&b| b == b'\n').count();
    let mut out = std::io::stdout().lock();
    if summary {
        let fnv = input.iter().fold(0x811c9dc5u32, |h, &b| {
            (h ^ u32::from(b)).wrapping_mul(0x01000193)
        });
        writeln!(
            out,
            "{} bytes, {} lines, fnv1a32={fnv:08x}",
            input.len(),
            lines
        )
        .unwrap();
    } else {
        out.write_all(&input.to_ascii_uppercase()).unwrap();
        writeln!(out, "--- {} bytes, {} lines", input.len(), lines).unwrap();
    }
    out.flush().unwrap();
    eprintln!("stdio: read {} bytes", input.len());
}
