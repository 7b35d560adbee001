// Command files walks a file's life cycle in the writable preopen /sandbox: create, write,
// read back, append, stat sizes, truncate and extend, O_TRUNC, O_EXCL on an existing file, a
// missing file, a large write read back, remove.
package main

import (
	"bytes"
	"fmt"
	"os"

	"nestbox.test/wasiguests/internal/guest"
)

func size(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return guest.ErrName(err)
	}
	return fmt.Sprint(st.Size())
}

func read(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return guest.ErrName(err)
	}
	return string(b)
}

func openOutcome(path string, flag int) string {
	f, err := os.OpenFile(path, flag, 0o644)
	if err == nil {
		f.Close()
	}
	return guest.Outcome(err)
}

func main() {
	a := "/sandbox/a.txt"
	fmt.Printf("write a.txt \"hello\": %s\n", guest.Outcome(os.WriteFile(a, []byte("hello"), 0o644)))
	fmt.Printf("read: %s\n", read(a))
	f, err := os.OpenFile(a, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		_, err = f.Write([]byte(" world"))
		f.Close()
	}
	fmt.Printf("append \" world\": %s\n", guest.Outcome(err))
	fmt.Printf("size: %s\n", size(a))
	fmt.Printf("read: %s\n", read(a))

	if f, err := os.OpenFile(a, os.O_WRONLY, 0); err == nil {
		fmt.Printf("truncate to 5: %s\n", guest.Outcome(f.Truncate(5)))
		fmt.Printf("size: %s\n", size(a))
		fmt.Printf("extend to 8: %s\n", guest.Outcome(f.Truncate(8)))
		f.Close()
	} else {
		fmt.Printf("open for writing: %s\n", guest.ErrName(err))
	}
	fmt.Printf("size: %s\n", size(a))
	b, _ := os.ReadFile(a)
	fmt.Printf("read hex: %x\n", b)

	fmt.Printf("open with O_TRUNC: %s\n", openOutcome(a, os.O_WRONLY|os.O_TRUNC))
	fmt.Printf("size: %s\n", size(a))
	fmt.Printf("create_new on existing: %s\n", openOutcome(a, os.O_WRONLY|os.O_CREATE|os.O_EXCL))
	fmt.Printf("open missing: %s\n", openOutcome("/sandbox/missing.txt", os.O_RDONLY))

	big := make([]byte, 100000)
	for i := range big {
		big[i] = byte(i % 251)
	}
	fmt.Printf("write 100000 bytes: %s\n", guest.Outcome(os.WriteFile("/sandbox/big.bin", big, 0o644)))
	fmt.Printf("size: %s\n", size("/sandbox/big.bin"))
	back, err := os.ReadFile("/sandbox/big.bin")
	if err != nil {
		fmt.Printf("read back %s bytes, equal: false\n", guest.ErrName(err))
	} else {
		fmt.Printf("read back %d bytes, equal: %t\n", len(back), bytes.Equal(back, big))
	}

	fmt.Printf("remove a.txt: %s\n", guest.Outcome(os.Remove(a)))
	fmt.Printf("open removed: %s\n", openOutcome(a, os.O_RDONLY))
	fmt.Printf("write into a directory: %s\n", openOutcome("/sandbox", os.O_WRONLY))
}
