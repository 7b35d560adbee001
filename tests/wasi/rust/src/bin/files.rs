//! File life cycle in the writable preopen /sandbox: create, write, read back, append, stat
//! sizes, truncate and extend, O_TRUNC, O_EXCL on an existing file, a missing file, a large
//! write read back, remove.
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use wasi_guests::{hex, outcome, step};

fn size(path: &str) -> String {
    match fs::metadata(path) {
        Ok(meta) => meta.len().to_string(),
        Err(err) => wasi_guests::err_name(&err),
    }
}

fn read(path: &str) -> String {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(err) => wasi_guests::err_name(&err),
    }
}

fn main() {
    let a = "/sandbox/a.txt";
    let _ = step("write a.txt \"hello\"", fs::write(a, "hello"));
    println!("read: {}", read(a));
    let appended = OpenOptions::new()
        .append(true)
        .open(a)
        .and_then(|mut f| f.write_all(b" world"));
    let _ = step("append \" world\"", appended);
    println!("size: {}", size(a));
    println!("read: {}", read(a));

    match OpenOptions::new().write(true).open(a) {
        Ok(file) => {
            println!("truncate to 5: {}", outcome(&file.set_len(5)));
            println!("size: {}", size(a));
            println!("extend to 8: {}", outcome(&file.set_len(8)));
        }
        Err(err) => println!("open for writing: {}", wasi_guests::err_name(&err)),
    }
    println!("size: {}", size(a));
    println!(
        "read hex: {}",
        fs::read(a)
            .map(|b| hex(&b))
            .unwrap_or_else(|e| wasi_guests::err_name(&e))
    );

    let _ = step(
        "open with O_TRUNC",
        OpenOptions::new().write(true).truncate(true).open(a),
    );
    println!("size: {}", size(a));

    println!(
        "create_new on existing: {}",
        outcome(&OpenOptions::new().write(true).create_new(true).open(a))
    );
    println!(
        "open missing: {}",
        outcome(&fs::File::open("/sandbox/missing.txt"))
    );

    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let _ = step("write 100000 bytes", fs::write("/sandbox/big.bin", &big));
    println!("size: {}", size("/sandbox/big.bin"));
    let mut back = Vec::new();
    let read_back =
        match fs::File::open("/sandbox/big.bin").and_then(|mut f| f.read_to_end(&mut back)) {
            Ok(n) => n.to_string(),
            Err(err) => wasi_guests::err_name(&err),
        };
    println!("read back {read_back} bytes, equal: {}", back == big);

    let _ = step("remove a.txt", fs::remove_file(a));
    println!("open removed: {}", outcome(&fs::File::open(a)));
    println!(
        "write into a directory: {}",
        outcome(&OpenOptions::new().write(true).open("/sandbox"))
    );
}
