//! Offsets: fd_seek (set/cur/end, negative, past the end), fd_tell, fd_pread and fd_pwrite
//! (which must not move the offset), O_APPEND writes landing at the end whatever the offset,
//! and seeking stdout (a stream: ESPIPE).
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use wasi_guests::{errno_name, hex, outcome, raw};

fn show(result: std::io::Result<u64>) -> String {
    match result {
        Ok(n) => n.to_string(),
        Err(err) => wasi_guests::err_name(&err),
    }
}

fn main() {
    let path = "/sandbox/s.bin";
    fs::write(path, "0123456789").unwrap();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut two = [0u8; 2];
    println!("seek set 3: {}", show(f.seek(SeekFrom::Start(3))));
    f.read_exact(&mut two).unwrap();
    println!("read 2: {}", String::from_utf8_lossy(&two));
    println!("tell: {}", show(f.stream_position()));
    println!("seek end -2: {}", show(f.seek(SeekFrom::End(-2))));
    let mut rest = String::new();
    f.read_to_string(&mut rest).unwrap();
    println!("read to end: {rest}");
    println!("seek cur -5: {}", show(f.seek(SeekFrom::Current(-5))));
    println!("seek cur -100: {}", show(f.seek(SeekFrom::Current(-100))));
    println!("tell: {}", show(f.stream_position()));
    println!("seek set 20: {}", show(f.seek(SeekFrom::Start(20))));
    println!("write X at 20: {}", outcome(&f.write_all(b"X")));
    println!("size: {}", f.metadata().unwrap().len());
    let all = fs::read(path).unwrap();
    println!("gap is zeros: {}", all[10..20].iter().all(|&b| b == 0));

    let fd = f.as_raw_fd() as u32;
    let before = f.stream_position().unwrap();
    let mut buf = [0u8; 3];
    let iov = raw::Iovec {
        buf: buf.as_mut_ptr(),
        buf_len: buf.len(),
    };
    let mut n = 0usize;
    // SAFETY: one iovec over `buf`, which outlives the call; `n` is writable.
    let errno = unsafe { raw::fd_pread(fd, &iov, 1, 1, &mut n) };
    println!(
        "pread 3 at 1: {} {}",
        errno_name(errno as i32),
        String::from_utf8_lossy(&buf[..n])
    );
    println!(
        "offset unchanged after pread: {}",
        f.stream_position().unwrap() == before
    );
    let data = *b"ab";
    let iov = raw::Iovec {
        buf: data.as_ptr(),
        buf_len: data.len(),
    };
    // SAFETY: as above.
    let errno = unsafe { raw::fd_pwrite(fd, &iov, 1, 0, &mut n) };
    println!("pwrite ab at 0: {} {n}", errno_name(errno as i32));
    println!(
        "offset unchanged after pwrite: {}",
        f.stream_position().unwrap() == before
    );
    println!("content: {}", hex(&fs::read(path).unwrap()));
    drop(f);

    let mut app = OpenOptions::new().append(true).open(path).unwrap();
    let _ = app.seek(SeekFrom::Start(0));
    println!("append-mode write: {}", outcome(&app.write_all(b"Z")));
    let all = fs::read(path).unwrap();
    println!(
        "size: {}, last byte: {}",
        all.len(),
        all[all.len() - 1] as char
    );

    let mut off = 0u64;
    // SAFETY: `off` is a writable u64.
    let errno = unsafe { raw::fd_seek(1, 0, raw::WHENCE_CUR, &mut off) };
    println!(
        "seek stdout: {}",
        if errno == 0 {
            "ok".to_string()
        } else {
            errno_name(errno as i32)
        }
    );
}
