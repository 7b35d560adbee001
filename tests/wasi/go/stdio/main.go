// Command stdio reads all of stdin, writes it back upper-cased (ASCII letters only, every other
// byte as is) followed by a byte and line count, and a summary line on stderr.
// With --summary stdout gets only the counts and an FNV-1a hash (for large inputs).
package main

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"io"
	"os"

	"nestbox.test/wasiguests/internal/guest"
)

func main() {
	summary := len(os.Args) > 1 && os.Args[1] == "--summary"
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stdio: read failed: %s\n", guest.ErrName(err))
		os.Exit(1)
	}
	lines := bytes.Count(input, []byte("\n"))
	if summary {
		h := fnv.New32a()
		h.Write(input)
		fmt.Printf("%d bytes, %d lines, fnv1a32=%08x\n", len(input), lines, h.Sum32())
	} else {
		out := make([]byte, len(input))
		for i, b := range input {
			if b >= 'a' && b <= 'z' {
				b -= 'a' - 'A'
			}
			out[i] = b
		}
		os.Stdout.Write(out)
		fmt.Printf("--- %d bytes, %d lines\n", len(input), lines)
	}
	fmt.Fprintf(os.Stderr, "stdio: read %d bytes\n", len(input))
}
