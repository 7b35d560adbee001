//! rename (`path_rename`) in /sandbox: a file, a file over an existing file (replaces it), a
//! directory with contents, a directory over an empty directory (replaces it), and the cases
//! that must fail: over a non-empty directory, a file over a directory, a directory over a file,
//! a directory into itself, a missing source, a missing target parent.
use std::fs;
use wasi_guests::outcome;

fn exists(path: &str) -> bool {
    fs::symlink_metadata(path).is_ok()
}

fn read(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| wasi_guests::err_name(&e))
}

fn main() {
    fs::write("/sandbox/a.txt", "A").unwrap();
    fs::write("/sandbox/b.txt", "B").unwrap();
    println!(
        "rename a.txt -> c.txt: {}",
        outcome(&fs::rename("/sandbox/a.txt", "/sandbox/c.txt"))
    );
    println!(
        "a.txt exists: {}, c.txt: {}",
        exists("/sandbox/a.txt"),
        read("/sandbox/c.txt")
    );
    println!(
        "rename c.txt -> b.txt (over a file): {}",
        outcome(&fs::rename("/sandbox/c.txt", "/sandbox/b.txt"))
    );
    println!(
        "c.txt exists: {}, b.txt: {}",
        exists("/sandbox/c.txt"),
        read("/sandbox/b.txt")
    );

    fs::create_dir("/sandbox/d1").unwrap();
    fs::write("/sandbox/d1/inner.txt", "inner").unwrap();
    println!(
        "rename d1 -> d2 (a dir): {}",
        outcome(&fs::rename("/sandbox/d1", "/sandbox/d2"))
    );
    println!(
        "d1 exists: {}, d2/inner.txt: {}",
        exists("/sandbox/d1"),
        read("/sandbox/d2/inner.txt")
    );
    fs::create_dir("/sandbox/e").unwrap();
    println!(
        "rename d2 -> e (over an empty dir): {}",
        outcome(&fs::rename("/sandbox/d2", "/sandbox/e"))
    );
    println!(
        "d2 exists: {}, e/inner.txt: {}",
        exists("/sandbox/d2"),
        read("/sandbox/e/inner.txt")
    );

    fs::create_dir("/sandbox/f").unwrap();
    fs::write("/sandbox/f/x.txt", "x").unwrap();
    println!(
        "rename e -> f (over a non-empty dir): {}",
        outcome(&fs::rename("/sandbox/e", "/sandbox/f"))
    );
    println!(
        "rename b.txt -> f (a file over a dir): {}",
        outcome(&fs::rename("/sandbox/b.txt", "/sandbox/f"))
    );
    println!(
        "rename f -> b.txt (a dir over a file): {}",
        outcome(&fs::rename("/sandbox/f", "/sandbox/b.txt"))
    );
    println!(
        "rename f -> f/sub (into itself): {}",
        outcome(&fs::rename("/sandbox/f", "/sandbox/f/sub"))
    );
    println!(
        "rename missing -> g: {}",
        outcome(&fs::rename("/sandbox/missing", "/sandbox/g"))
    );
    println!(
        "rename b.txt -> nodir/b.txt: {}",
        outcome(&fs::rename("/sandbox/b.txt", "/sandbox/nodir/b.txt"))
    );

    let mut names = Vec::new();
    for top in ["", "/e", "/f"] {
        if let Ok(entries) = fs::read_dir(format!("/sandbox{top}")) {
            for entry in entries.flatten() {
                names.push(format!("{top}/{}", entry.file_name().to_string_lossy()));
            }
        }
    }
    names.sort();
    println!("tree: {}", names.join(" "));
}
