// The "real work" benchmark guest (Go, standard library only): writes a few MiB of
// deterministic text files into a directory, reads them back, hashes each with SHA-256
// (crypto/sha256) and CRC-32 (hash/crc32), gzips it (compress/gzip, default level), writes the
// .gz, reads it back, gunzips it and checks the round trip. Prints one line per file and a
// total.
//
//	work DIR [MIB] [FILES]      default: 4 MiB in 4 files, under DIR/input and DIR/output
//
// The input files, their SHA-256 and CRC-32 are byte-for-byte those of the Rust program
// (../rust/src/main.rs); the gzip sizes differ (that one has its own compressor).
package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: work DIR [MIB] [FILES]")
		os.Exit(2)
	}
	mib, files := 4, 4
	var err1, err2 error
	if len(os.Args) > 2 {
		mib, err1 = strconv.Atoi(os.Args[2])
	}
	if len(os.Args) > 3 {
		files, err2 = strconv.Atoi(os.Args[3])
	}
	if err1 != nil || err2 != nil || mib <= 0 || files <= 0 {
		fmt.Fprintln(os.Stderr, "work: MIB and FILES must be positive integers")
		os.Exit(2)
	}
	if err := run(os.Args[1], mib, files); err != nil {
		fmt.Fprintf(os.Stderr, "work: %v\n", err)
		os.Exit(1)
	}
}

func run(dir string, mib, files int) error {
	input, output := dir+"/input", dir+"/output"
	for _, d := range []string{input, output} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	size := mib * 1024 * 1024 / files

	// 1. Generate, written in 64 KiB chunks.
	for i := 0; i < files; i++ {
		path := fmt.Sprintf("%s/file-%d.txt", input, i)
		data := generate(uint64(i), size)
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		for off := 0; off < len(data); off += 64 * 1024 {
			if _, err := f.Write(data[off:min(off+64*1024, len(data))]); err != nil {
				f.Close()
				return err
			}
		}
		if err := f.Close(); err != nil {
			return err
		}
	}

	// 2. Read back, hash, compress, write, read the .gz back, gunzip, compare.
	totalIn, totalGz := 0, 0
	all := sha256.New()
	for i := 0; i < files; i++ {
		path := fmt.Sprintf("%s/file-%d.txt", input, i)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		digest := sha256.Sum256(data)
		all.Write(digest[:])
		crc := crc32.ChecksumIEEE(data)
		var gz bytes.Buffer
		w, err := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		gzPath := fmt.Sprintf("%s/file-%d.txt.gz", output, i)
		if err := os.WriteFile(gzPath, gz.Bytes(), 0o644); err != nil {
			return err
		}
		back, err := os.ReadFile(gzPath)
		if err != nil {
			return err
		}
		r, err := gzip.NewReader(bytes.NewReader(back))
		if err != nil {
			return fmt.Errorf("%s: %w", gzPath, err)
		}
		round, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("%s: %w", gzPath, err)
		}
		if !bytes.Equal(round, data) {
			return fmt.Errorf("%s: the round trip differs", gzPath)
		}
		fmt.Printf("file-%d.txt %d bytes sha256 %s crc32 %08x gzip %d bytes roundtrip ok\n",
			i, len(data), hex.EncodeToString(digest[:]), crc, gz.Len())
		totalIn += len(data)
		totalGz += gz.Len()
	}
	names, err := os.ReadDir(output)
	if err != nil {
		return err
	}
	fmt.Printf("total %d files %d bytes gzip %d bytes (%d.%d%%) in %d .gz files sha256-of-digests %s\n",
		files, totalIn, totalGz, totalGz*100/totalIn, totalGz*1000/totalIn%10, len(names),
		hex.EncodeToString(all.Sum(nil)))
	return nil
}

// ---- deterministic input (the same in ../rust/src/main.rs) ----

var words = [64]string{
	"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
	"kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
	"uniform", "victor", "whiskey", "xray", "yankee", "zulu", "sandbox", "wasm", "interpreter",
	"fuel", "slice", "memory", "table", "import", "export", "module", "digest", "sha256",
	"capability", "grant", "revoke", "worker", "browser", "native", "limit", "trap", "stack",
	"frame", "linear", "page", "stdin", "stdout", "stderr", "preopen", "directory", "file",
	"symlink", "rename", "unlink", "seek", "clock", "random", "poll", "exit",
}

// rng is xorshift64*: the same sequence in both languages.
type rng uint64

func newRng(file uint64) rng { return rng(0x9E3779B97F4A7C15 ^ (file+1)*0x00000100000001B3) }

func (r *rng) next() uint64 {
	x := uint64(*r)
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	*r = rng(x)
	return x * 0x2545F4914F6CDD1D
}

// generate makes lines of 6 to 15 words and a number, cut at exactly size bytes.
func generate(file uint64, size int) []byte {
	r := newRng(file)
	out := make([]byte, 0, size+256)
	for len(out) < size {
		v := r.next()
		for k := uint64(0); k < 6+v%10; k++ {
			out = append(out, words[r.next()%64]...)
			out = append(out, ' ')
		}
		out = strconv.AppendUint(out, v>>40, 10)
		out = append(out, '\n')
	}
	return out[:size]
}
