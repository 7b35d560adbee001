//! Directories in /sandbox: mkdir, mkdir on an existing name, nested create, a missing parent,
//! rmdir of a non-empty dir (fails), of an empty dir (works) and of a file (fails), unlink of a
//! dir (fails), a path through a file (fails), then everything removed.
use std::fs;
use wasi_guests::outcome;

fn kind(path: &str) -> String {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => "dir".to_string(),
        Ok(m) if m.is_file() => format!("file {}", m.len()),
        Ok(_) => "other".to_string(),
        Err(err) => wasi_guests::err_name(&err),
    }
}

fn main() {
    println!("mkdir d: {}", outcome(&fs::create_dir("/sandbox/d")));
    println!("mkdir d again: {}", outcome(&fs::create_dir("/sandbox/d")));
    println!(
        "mkdir -p d/e/f: {}",
        outcome(&fs::create_dir_all("/sandbox/d/e/f"))
    );
    println!(
        "create d/e/file.txt: {}",
        outcome(&fs::write("/sandbox/d/e/file.txt", "12345"))
    );
    println!(
        "mkdir missing/child: {}",
        outcome(&fs::create_dir("/sandbox/missing/child"))
    );
    println!("stat d: {}", kind("/sandbox/d"));
    println!("stat d/e/f: {}", kind("/sandbox/d/e/f"));
    println!("stat d/e/file.txt: {}", kind("/sandbox/d/e/file.txt"));
    println!(
        "rmdir d (not empty): {}",
        outcome(&fs::remove_dir("/sandbox/d"))
    );
    println!(
        "rmdir d/e/f (empty): {}",
        outcome(&fs::remove_dir("/sandbox/d/e/f"))
    );
    println!("stat d/e/f: {}", kind("/sandbox/d/e/f"));
    println!(
        "rmdir d/e/file.txt (a file): {}",
        outcome(&fs::remove_dir("/sandbox/d/e/file.txt"))
    );
    println!(
        "unlink d/e (a dir): {}",
        outcome(&fs::remove_file("/sandbox/d/e"))
    );
    println!(
        "mkdir d/e/file.txt/x (through a file): {}",
        outcome(&fs::create_dir("/sandbox/d/e/file.txt/x"))
    );
    println!(
        "unlink d/e/file.txt: {}",
        outcome(&fs::remove_file("/sandbox/d/e/file.txt"))
    );
    println!("rmdir d/e: {}", outcome(&fs::remove_dir("/sandbox/d/e")));
    println!("rmdir d: {}", outcome(&fs::remove_dir("/sandbox/d")));
    println!("stat d: {}", kind("/sandbox/d"));
    let left = fs::read_dir("/sandbox").map(|it| it.count());
    println!(
        "entries left in /sandbox: {}",
        left.map(|n| n.to_string())
            .unwrap_or_else(|e| wasi_guests::err_name(&e))
    );
}
