// Command quota meets the filesystem quotas a runner sets. `quota bytes`: writes 64 KiB chunks
// to /sandbox/fill.bin until a write fails (or 4 MiB, the program's own bound); `quota files`:
// creates 1-byte files until a create fails (or 1000). Prints how far it got and the error,
// then checks the filesystem is still usable after freeing space.
package main

import (
	"bytes"
	"fmt"
	"os"

	"nestbox.test/wasiguests/internal/guest"
)

func main() {
	mode := ""
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "bytes":
		f, err := os.Create("/sandbox/fill.bin")
		if err != nil {
			fmt.Printf("create fill.bin: %s\n", guest.ErrName(err))
			os.Exit(1)
		}
		chunk := bytes.Repeat([]byte{0x5a}, 64*1024)
		written, result := 0, "no error"
		for written < 4*1024*1024 {
			n, err := f.Write(chunk)
			written += n
			if err != nil {
				result = guest.ErrName(err)
				break
			}
		}
		f.Close()
		fmt.Printf("wrote %d bytes, then %s\n", written, result)
		size := int64(0)
		if st, err := os.Stat("/sandbox/fill.bin"); err == nil {
			size = st.Size()
		}
		fmt.Printf("size on disk: %d\n", size)
		fmt.Printf("remove fill.bin: %s\n", guest.Outcome(os.Remove("/sandbox/fill.bin")))
		fmt.Printf("write after freeing: %s\n", guest.Outcome(os.WriteFile("/sandbox/after.txt", []byte("ok"), 0o644)))
	case "files":
		created, result := 0, "no error"
		for created < 1000 {
			if err := os.WriteFile(fmt.Sprintf("/sandbox/f%04d", created), []byte("x"), 0o644); err != nil {
				result = guest.ErrName(err)
				break
			}
			created++
		}
		fmt.Printf("created %d files, then %s\n", created, result)
		fmt.Printf("remove f0000: %s\n", guest.Outcome(os.Remove("/sandbox/f0000")))
		fmt.Printf("create after freeing: %s\n", guest.Outcome(os.WriteFile("/sandbox/after.txt", []byte("ok"), 0o644)))
	default:
		fmt.Fprintln(os.Stderr, "usage: quota bytes|files")
		os.Exit(2)
	}
}
