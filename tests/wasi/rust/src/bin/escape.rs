//! Path escapes from the writable preopen /sandbox must all fail. The host side of a runner
//! puts a file named `outside` next to the preopened directory, so an escape would find
//! something. First through std (libc resolves the path against the preopens, as every
//! program does), then raw `path_open` relative to the preopen's fd (the runtime alone must
//! refuse), then through symlinks the guest creates itself.
use std::fs;
use std::io::Read;
use wasi_guests::{outcome, preopen_fd, raw, raw_open, raw_symlink};

fn open(label: &str, path: &str) {
    let result = match fs::File::open(path) {
        Ok(mut f) => {
            let mut s = String::new();
            let _ = f.read_to_string(&mut s);
            format!("OPENED (escape!) {:?}", s.lines().next().unwrap_or(""))
        }
        Err(err) => format!("denied {}", wasi_guests::err_name(&err)),
    };
    println!("{label}: {result}");
}

fn raw(label: &str, dirfd: u32, path: &str) {
    match raw_open(dirfd, path, 0) {
        Ok(fd) => {
            // SAFETY: closing an fd this program just opened.
            unsafe { raw::fd_close(fd) };
            println!("raw {label}: OPENED (escape!)");
        }
        Err(errno) => println!("raw {label}: denied {errno}"),
    }
}

fn main() {
    fs::create_dir("/sandbox/sub").unwrap();
    fs::write("/sandbox/inside.txt", "inside").unwrap();

    open("open /sandbox/../outside", "/sandbox/../outside");
    open(
        "open /sandbox/sub/../../outside",
        "/sandbox/sub/../../outside",
    );
    open("open /etc/passwd", "/etc/passwd");
    open("open ../outside", "../outside");
    println!(
        "create /sandbox/../created: {}",
        outcome(&fs::write("/sandbox/../created", "x"))
    );
    println!(
        "mkdir /sandbox/../newdir: {}",
        outcome(&fs::create_dir("/sandbox/../newdir"))
    );

    let Some(dirfd) = preopen_fd("/sandbox") else {
        println!("no preopen named /sandbox");
        std::process::exit(1);
    };
    raw("../outside", dirfd, "../outside");
    raw("sub/../../outside", dirfd, "sub/../../outside");
    raw("/etc/passwd", dirfd, "/etc/passwd");
    raw("..", dirfd, "..");
    match raw_open(dirfd, "sub/../inside.txt", 0) {
        Ok(fd) => {
            // SAFETY: closing an fd this program just opened.
            unsafe { raw::fd_close(fd) };
            println!("raw sub/../inside.txt (stays inside): ok");
        }
        Err(errno) => println!("raw sub/../inside.txt (stays inside): {errno}"),
    }

    for (link, target) in [("link_out", "../outside"), ("link_abs", "/etc/passwd")] {
        println!(
            "symlink {link} -> {target}: {}",
            raw_symlink(target, dirfd, link)
        );
        open(
            &format!("open /sandbox/{link}"),
            &format!("/sandbox/{link}"),
        );
        raw(link, dirfd, link);
    }
}
