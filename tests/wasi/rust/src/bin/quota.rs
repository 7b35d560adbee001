//! Filesystem quotas set by the runner. `quota bytes`: writes 64 KiB chunks to
//! /sandbox/fill.bin until a write fails (or 4 MiB, the program's own bound); `quota files`:
//! creates 1-byte files until a create fails (or 1000). Prints how far it got and the error,
//! then checks the filesystem is still usable after freeing space.
use std::fs;
use std::io::Write;
use wasi_guests::{err_name, outcome};

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("bytes") => {
            let mut file = fs::File::create("/sandbox/fill.bin").unwrap();
            let chunk = vec![0x5au8; 64 * 1024];
            let mut written = 0usize;
            let mut error = None;
            while written < 4 * 1024 * 1024 {
                match file.write(&chunk) {
                    Ok(0) => break,
                    Ok(n) => written += n,
                    Err(err) => {
                        error = Some(err_name(&err));
                        break;
                    }
                }
            }
            drop(file);
            println!(
                "wrote {written} bytes, then {}",
                error.as_deref().unwrap_or("no error")
            );
            println!(
                "size on disk: {}",
                fs::metadata("/sandbox/fill.bin")
                    .map(|m| m.len())
                    .unwrap_or(0)
            );
            println!(
                "remove fill.bin: {}",
                outcome(&fs::remove_file("/sandbox/fill.bin"))
            );
            println!(
                "write after freeing: {}",
                outcome(&fs::write("/sandbox/after.txt", "ok"))
            );
        }
        Some("files") => {
            let mut created = 0usize;
            let mut error = None;
            while created < 1000 {
                match fs::write(format!("/sandbox/f{created:04}"), "x") {
                    Ok(()) => created += 1,
                    Err(err) => {
                        error = Some(err_name(&err));
                        break;
                    }
                }
            }
            println!(
                "created {created} files, then {}",
                error.as_deref().unwrap_or("no error")
            );
            println!(
                "remove f0000: {}",
                outcome(&fs::remove_file("/sandbox/f0000"))
            );
            println!(
                "create after freeing: {}",
                outcome(&fs::write("/sandbox/after.txt", "ok"))
            );
        }
        _ => {
            eprintln!("usage: quota bytes|files");
            std::process::exit(2);
        }
    }
}
