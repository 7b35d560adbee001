//! The read-only preopen /data: reading works; writing, creating, mkdir, unlink, rename and
//! truncation must all fail, and the files must be unchanged afterwards.
use std::fs::{self, OpenOptions};
use wasi_guests::outcome;

fn read(path: &str) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|e| wasi_guests::err_name(&e))
}

fn main() {
    println!("read alpha.txt: {}", read("/data/alpha.txt"));
    println!(
        "open alpha.txt for writing: {}",
        outcome(&OpenOptions::new().write(true).open("/data/alpha.txt"))
    );
    println!(
        "open alpha.txt with O_TRUNC: {}",
        outcome(
            &OpenOptions::new()
                .write(true)
                .truncate(true)
                .open("/data/alpha.txt")
        )
    );
    println!(
        "create new.txt: {}",
        outcome(&fs::write("/data/new.txt", "x"))
    );
    println!("mkdir newdir: {}", outcome(&fs::create_dir("/data/newdir")));
    println!(
        "unlink alpha.txt: {}",
        outcome(&fs::remove_file("/data/alpha.txt"))
    );
    println!(
        "rmdir nested/deep: {}",
        outcome(&fs::remove_dir("/data/nested/deep"))
    );
    println!(
        "rename alpha.txt -> moved.txt: {}",
        outcome(&fs::rename("/data/alpha.txt", "/data/moved.txt"))
    );
    println!("read alpha.txt again: {}", read("/data/alpha.txt"));
    println!("new.txt exists: {}", fs::metadata("/data/new.txt").is_ok());
}
