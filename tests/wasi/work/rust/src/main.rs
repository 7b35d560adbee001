//! The "real work" benchmark guest (Rust, std only): writes a few MiB of deterministic text
//! files into a directory, reads them back, hashes each with SHA-256 and CRC-32, gzips it
//! (LZ77 with hash chains + fixed-Huffman DEFLATE, a valid RFC 1952 stream), writes the .gz,
//! reads it back, inflates it and checks the round trip. Prints one line per file and a total.
//!
//!   work DIR [MIB] [FILES]      default: 4 MiB in 4 files, under DIR/input and DIR/output
//!
//! The input files, their SHA-256 and CRC-32 are byte-for-byte those of the Go program
//! (../go/main.go); the gzip sizes differ (Go's compress/gzip is another compressor).
//! Every algorithm is written here, so the guest does its own byte work.

use std::fs;
use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1) else {
        eprintln!("usage: work DIR [MIB] [FILES]");
        return ExitCode::from(2);
    };
    let mib: usize = args.get(2).map_or(Some(4), |a| a.parse().ok()).unwrap_or(0);
    let files: usize = args.get(3).map_or(Some(4), |a| a.parse().ok()).unwrap_or(0);
    if mib == 0 || files == 0 {
        eprintln!("work: MIB and FILES must be positive integers");
        return ExitCode::from(2);
    }
    match run(dir, mib, files) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("work: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(dir: &str, mib: usize, files: usize) -> Result<(), String> {
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    let input = format!("{dir}/input");
    let output = format!("{dir}/output");
    fs::create_dir_all(&input).map_err(|e| io(&input, e))?;
    fs::create_dir_all(&output).map_err(|e| io(&output, e))?;
    let size = mib * 1024 * 1024 / files;

    // 1. Generate, written in 64 KiB chunks.
    for i in 0..files {
        let path = format!("{input}/file-{i}.txt");
        let data = generate(i as u64, size);
        let mut f = fs::File::create(&path).map_err(|e| io(&path, e))?;
        for chunk in data.chunks(64 * 1024) {
            f.write_all(chunk).map_err(|e| io(&path, e))?;
        }
    }

    // 2. Read back, hash, compress, write, read the .gz back, inflate, compare.
    let (mut total_in, mut total_gz) = (0usize, 0usize);
    let mut all = Sha256::new();
    for i in 0..files {
        let path = format!("{input}/file-{i}.txt");
        let mut data = Vec::new();
        fs::File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(|e| io(&path, e))?;
        let digest = Sha256::digest(&data);
        all.update(&digest);
        let crc = crc32(&data);
        let gz = gzip(&data);
        let gz_path = format!("{output}/file-{i}.txt.gz");
        fs::write(&gz_path, &gz).map_err(|e| io(&gz_path, e))?;
        let back = fs::read(&gz_path).map_err(|e| io(&gz_path, e))?;
        let round = gunzip(&back).map_err(|e| format!("{gz_path}: {e}"))?;
        if round != data {
            return Err(format!("{gz_path}: the round trip differs"));
        }
        println!(
            "file-{i}.txt {} bytes sha256 {} crc32 {crc:08x} gzip {} bytes roundtrip ok",
            data.len(),
            hex(&digest),
            gz.len()
        );
        total_in += data.len();
        total_gz += gz.len();
    }
    let names = fs::read_dir(&output).map_err(|e| io(&output, e))?.count();
    println!(
        "total {files} files {total_in} bytes gzip {total_gz} bytes ({}.{}%) in {names} .gz files sha256-of-digests {}",
        total_gz * 100 / total_in,
        total_gz * 1000 / total_in % 10,
        hex(&all.finish())
    );
    Ok(())
}

// ---- deterministic input (the same in ../go/main.go) ----

/// 64 words, space-separated (in this order in ../go/main.go too).
const WORDS: &str = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november \
     oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu sandbox \
     wasm interpreter fuel slice memory table import export module digest sha256 capability \
     grant revoke worker browser native limit trap stack frame linear page stdin stdout \
     stderr preopen directory file symlink rename unlink seek clock random poll exit";

/// xorshift64*: the same sequence in both languages.
struct Rng(u64);

impl Rng {
    fn new(file: u64) -> Self {
        Self(0x9E37_79B9_7F4A_7C15 ^ (file + 1).wrapping_mul(0x0000_0100_0000_01B3))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Lines of 6 to 15 words and a number, cut at exactly `size` bytes.
fn generate(file: u64, size: usize) -> Vec<u8> {
    let words: Vec<&str> = WORDS.split_ascii_whitespace().collect();
    assert_eq!(words.len(), 64);
    let mut rng = Rng::new(file);
    let mut out = Vec::with_capacity(size + 256);
    while out.len() < size {
        let r = rng.next();
        for _ in 0..6 + r % 10 {
            out.extend_from_slice(words[(rng.next() % 64) as usize].as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice((r >> 40).to_string().as_bytes());
        out.push(b'\n');
    }
    out.truncate(size);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- SHA-256 (FIPS 180-4) ----

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

struct Sha256 {
    state: [u32; 8],
    block: [u8; 64],
    filled: usize,
    length: u64,
}

impl Sha256 {
    fn new() -> Self {
        Self {
            state: [
                0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
                0x5be0cd19,
            ],
            block: [0; 64],
            filled: 0,
            length: 0,
        }
    }

    fn digest(data: &[u8]) -> [u8; 32] {
        let mut h = Self::new();
        h.update(data);
        h.finish()
    }

    fn update(&mut self, mut data: &[u8]) {
        self.length += data.len() as u64;
        while !data.is_empty() {
            let n = (64 - self.filled).min(data.len());
            self.block[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == 64 {
                let block = self.block;
                self.compress(&block);
                self.filled = 0;
            }
        }
    }

    fn finish(mut self) -> [u8; 32] {
        let bits = self.length * 8;
        self.update(&[0x80]);
        while self.filled != 56 {
            self.update(&[0]);
        }
        self.update(&bits.to_be_bytes());
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(self.state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    fn compress(&mut self, block: &[u8; 64]) {
        let mut w = [0u32; 64];
        for (i, chunk) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = self.state;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (s, v) in self.state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *s = s.wrapping_add(v);
        }
    }
}

// ---- CRC-32 (IEEE, as gzip) ----

fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (n, slot) in table.iter_mut().enumerate() {
        let mut c = n as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *slot = c;
    }
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

// ---- DEFLATE (RFC 1951): LZ77 with hash chains, one fixed-Huffman block ----

const WINDOW: usize = 32 * 1024;
const MIN_MATCH: usize = 3;
const MAX_MATCH: usize = 258;
const MAX_CHAIN: usize = 16;
const HASH_BITS: u32 = 15;

const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// Writes bits least-significant first, as DEFLATE packs them.
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    fn bits(&mut self, value: u32, count: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += count;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code, sent most-significant bit first.
    fn code(&mut self, code: u32, len: u32) {
        self.bits(code.reverse_bits() >> (32 - len), len);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// The fixed literal/length code of `symbol` (RFC 1951, 3.2.6).
fn fixed_code(symbol: u32) -> (u32, u32) {
    match symbol {
        0..=143 => (0x30 + symbol, 8),
        144..=255 => (0x190 + symbol - 144, 9),
        256..=279 => (symbol - 256, 7),
        _ => (0xC0 + symbol - 280, 8),
    }
}

fn table_index(base: &[u16], value: usize) -> usize {
    base.iter()
        .rposition(|&b| usize::from(b) <= value)
        .unwrap_or(0)
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut w = BitWriter {
        out: Vec::with_capacity(data.len() / 2),
        acc: 0,
        n: 0,
    };
    w.bits(1, 1); // BFINAL
    w.bits(1, 2); // BTYPE = 01, fixed Huffman
    let hash = |i: usize| {
        let v = u32::from(data[i]) << 16 | u32::from(data[i + 1]) << 8 | u32::from(data[i + 2]);
        (v.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
    };
    let mut head = vec![u32::MAX; 1 << HASH_BITS];
    let mut prev = vec![u32::MAX; WINDOW];
    let insert = |head: &mut Vec<u32>, prev: &mut Vec<u32>, i: usize| {
        if i + MIN_MATCH <= data.len() {
            let h = hash(i);
            prev[i % WINDOW] = head[h];
            head[h] = i as u32;
        }
    };
    let mut i = 0;
    while i < data.len() {
        let (mut best_len, mut best_dist) = (0, 0);
        if i + MIN_MATCH <= data.len() {
            let max = MAX_MATCH.min(data.len() - i);
            let mut candidate = head[hash(i)];
            let mut chain = 0;
            while candidate != u32::MAX && chain < MAX_CHAIN {
                let c = candidate as usize;
                if i - c > WINDOW - 1 {
                    break;
                }
                if data[c + best_len.min(max - 1)] == data[i + best_len.min(max - 1)] {
                    let len = data[c..c + max]
                        .iter()
                        .zip(&data[i..i + max])
                        .take_while(|(a, b)| a == b)
                        .count();
                    if len > best_len {
                        (best_len, best_dist) = (len, i - c);
                        if len == max {
                            break;
                        }
                    }
                }
                let next = prev[c % WINDOW];
                if next == u32::MAX || next as usize >= c {
                    break;
                }
                candidate = next;
                chain += 1;
            }
        }
        if best_len >= MIN_MATCH {
            let li = table_index(&LENGTH_BASE, best_len);
            let (code, len) = fixed_code(257 + li as u32);
            w.code(code, len);
            w.bits(
                (best_len - usize::from(LENGTH_BASE[li])) as u32,
                u32::from(LENGTH_EXTRA[li]),
            );
            let di = table_index(&DIST_BASE, best_dist);
            w.code(di as u32, 5);
            w.bits(
                (best_dist - usize::from(DIST_BASE[di])) as u32,
                u32::from(DIST_EXTRA[di]),
            );
            for k in i..i + best_len {
                insert(&mut head, &mut prev, k);
            }
            i += best_len;
        } else {
            let (code, len) = fixed_code(u32::from(data[i]));
            w.code(code, len);
            insert(&mut head, &mut prev, i);
            i += 1;
        }
    }
    let (code, len) = fixed_code(256);
    w.code(code, len);
    w.finish()
}

/// Reads bits least-significant first.
struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    bit: u32,
}

impl BitReader<'_> {
    fn bit(&mut self) -> Result<u32, String> {
        let byte = *self.data.get(self.pos).ok_or("deflate stream ends early")?;
        let b = u32::from(byte >> self.bit) & 1;
        self.bit += 1;
        if self.bit == 8 {
            self.bit = 0;
            self.pos += 1;
        }
        Ok(b)
    }

    fn bits(&mut self, count: u32) -> Result<u32, String> {
        let mut v = 0;
        for i in 0..count {
            v |= self.bit()? << i;
        }
        Ok(v)
    }

    /// `count` more bits of a Huffman code (most-significant first) appended to `code`.
    fn code(&mut self, mut code: u32, count: u32) -> Result<u32, String> {
        for _ in 0..count {
            code = code << 1 | self.bit()?;
        }
        Ok(code)
    }
}

/// Inflates the fixed-Huffman blocks this file writes (and refuses anything else).
fn inflate(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut r = BitReader {
        data,
        pos: 0,
        bit: 0,
    };
    let mut out = Vec::new();
    loop {
        let last = r.bits(1)?;
        if r.bits(2)? != 1 {
            return Err("only fixed-Huffman blocks are expected".into());
        }
        loop {
            let mut code = r.code(0, 7)?;
            let symbol = if code <= 0x17 {
                256 + code
            } else {
                code = r.code(code, 1)?;
                match code {
                    0x30..=0xBF => code - 0x30,
                    0xC0..=0xC7 => 280 + code - 0xC0,
                    _ => 144 + r.code(code, 1)? - 0x190,
                }
            };
            match symbol {
                0..=255 => out.push(symbol as u8),
                256 => break,
                _ => {
                    let li = (symbol - 257) as usize;
                    let len = *LENGTH_BASE.get(li).ok_or("bad length symbol")? as usize
                        + r.bits(u32::from(LENGTH_EXTRA[li]))? as usize;
                    let di = r.code(0, 5)? as usize;
                    let dist = *DIST_BASE.get(di).ok_or("bad distance symbol")? as usize
                        + r.bits(u32::from(DIST_EXTRA[di]))? as usize;
                    if dist > out.len() {
                        return Err("distance before the start".into());
                    }
                    let start = out.len() - dist;
                    for k in 0..len {
                        out.push(out[start + k]);
                    }
                }
            }
        }
        if last == 1 {
            return Ok(out);
        }
    }
}

// ---- gzip (RFC 1952) ----

fn gzip(data: &[u8]) -> Vec<u8> {
    // magic, CM = deflate, no flags, MTIME 0, XFL 0, OS 255 (unknown)
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    out.extend_from_slice(&deflate(data));
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn gunzip(gz: &[u8]) -> Result<Vec<u8>, String> {
    if gz.len() < 18 || gz[..4] != [0x1f, 0x8b, 8, 0] {
        return Err("not a gzip stream this program wrote".into());
    }
    let body = &gz[10..gz.len() - 8];
    let out = inflate(body)?;
    let trailer = &gz[gz.len() - 8..];
    let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    if crc != crc32(&out) || size != out.len() as u32 {
        return Err("gzip trailer does not match".into());
    }
    Ok(out)
}
