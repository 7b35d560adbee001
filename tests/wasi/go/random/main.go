// Command random draws 32 bytes with random_get: not all zero, a second draw differs from the
// first, and the first draw in hex (compare two runs: equal under a seeded generator,
// different otherwise).
package main

import (
	"bytes"
	"fmt"
	"os"

	"nestbox.test/wasiguests/internal/guest"
)

func draw() []byte {
	buf := make([]byte, 32)
	if errno := guest.Random(buf); errno != 0 {
		fmt.Printf("random_get: %s\n", guest.ErrnoName(errno))
		os.Exit(1)
	}
	return buf
}

func main() {
	first, second := draw(), draw()
	fmt.Printf("not all zero: %t\n", !bytes.Equal(first, make([]byte, 32)))
	fmt.Printf("second draw differs: %t\n", !bytes.Equal(first, second))
	fmt.Printf("bytes: %x\n", first)
}
