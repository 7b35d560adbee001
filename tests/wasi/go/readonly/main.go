// Command readonly checks the read-only preopen /data: reading works; writing, creating,
// mkdir, unlink, rename and truncation must all fail, and the files must be unchanged
// afterwards.
package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"

	"nestbox.test/wasiguests/internal/guest"
)

func read(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return guest.ErrName(err)
	}
	return strings.TrimRight(string(b), "\n")
}

func openOutcome(path string, flag int) string {
	f, err := os.OpenFile(path, flag, 0o644)
	if err == nil {
		f.Close()
	}
	return guest.Outcome(err)
}

func main() {
	fmt.Printf("read alpha.txt: %s\n", read("/data/alpha.txt"))
	fmt.Printf("open alpha.txt for writing: %s\n", openOutcome("/data/alpha.txt", os.O_WRONLY))
	fmt.Printf("open alpha.txt with O_TRUNC: %s\n", openOutcome("/data/alpha.txt", os.O_WRONLY|os.O_TRUNC))
	fmt.Printf("create new.txt: %s\n", openOutcome("/data/new.txt", os.O_WRONLY|os.O_CREATE|os.O_TRUNC))
	fmt.Printf("mkdir newdir: %s\n", guest.Outcome(os.Mkdir("/data/newdir", 0o755)))
	fmt.Printf("unlink alpha.txt: %s\n", guest.Outcome(syscall.Unlink("/data/alpha.txt")))
	fmt.Printf("rmdir nested/deep: %s\n", guest.Outcome(syscall.Rmdir("/data/nested/deep")))
	fmt.Printf("rename alpha.txt -> moved.txt: %s\n", guest.Outcome(syscall.Rename("/data/alpha.txt", "/data/moved.txt")))
	fmt.Printf("read alpha.txt again: %s\n", read("/data/alpha.txt"))
	_, err := os.Stat("/data/new.txt")
	fmt.Printf("new.txt exists: %t\n", err == nil)
}
