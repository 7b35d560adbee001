// Command output_cap writes argv[1] MiB to stdout as 64-byte lines (line i: i zero-padded to
// 63 digits, then "\n"), in 64 KiB writes, then "wrote N bytes" on stderr. A runner's output
// cap cuts it.
package main

import (
	"fmt"
	"os"
	"strconv"

	"nestbox.test/wasiguests/internal/guest"
)

func main() {
	mib := 1
	if len(os.Args) > 1 {
		if n, err := strconv.Atoi(os.Args[1]); err == nil {
			mib = n
		}
	}
	lines := mib * 1024 * 1024 / 64
	chunk := make([]byte, 0, 64*1024)
	written := 0
	for i := 0; i < lines; i++ {
		chunk = fmt.Appendf(chunk, "%063d\n", i)
		if len(chunk) == cap(chunk) || i+1 == lines {
			n, err := os.Stdout.Write(chunk)
			if err != nil {
				fmt.Fprintf(os.Stderr, "write failed after %d bytes: %s\n", written+n, guest.ErrName(err))
				os.Exit(1)
			}
			written += n
			chunk = chunk[:0]
		}
	}
	fmt.Fprintf(os.Stderr, "wrote %d bytes\n", written)
}
