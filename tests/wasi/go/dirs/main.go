// Command dirs exercises directories in /sandbox: mkdir, mkdir on an existing name, nested
// create, a missing parent, rmdir of a non-empty dir (fails), of an empty dir (works) and of a
// file (fails), unlink of a dir (fails), a path through a file (fails), then everything
// removed. rmdir and unlink are the syscall package's: os.Remove tries both.
package main

import (
	"fmt"
	"os"
	"syscall"

	"nestbox.test/wasiguests/internal/guest"
)

func kind(path string) string {
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return guest.ErrName(err)
	case st.IsDir():
		return "dir"
	case st.Mode().IsRegular():
		return fmt.Sprintf("file %d", st.Size())
	default:
		return "other"
	}
}

func main() {
	fmt.Printf("mkdir d: %s\n", guest.Outcome(os.Mkdir("/sandbox/d", 0o755)))
	fmt.Printf("mkdir d again: %s\n", guest.Outcome(os.Mkdir("/sandbox/d", 0o755)))
	fmt.Printf("mkdir -p d/e/f: %s\n", guest.Outcome(os.MkdirAll("/sandbox/d/e/f", 0o755)))
	fmt.Printf("create d/e/file.txt: %s\n", guest.Outcome(os.WriteFile("/sandbox/d/e/file.txt", []byte("12345"), 0o644)))
	fmt.Printf("mkdir missing/child: %s\n", guest.Outcome(os.Mkdir("/sandbox/missing/child", 0o755)))
	fmt.Printf("stat d: %s\n", kind("/sandbox/d"))
	fmt.Printf("stat d/e/f: %s\n", kind("/sandbox/d/e/f"))
	fmt.Printf("stat d/e/file.txt: %s\n", kind("/sandbox/d/e/file.txt"))
	fmt.Printf("rmdir d (not empty): %s\n", guest.Outcome(syscall.Rmdir("/sandbox/d")))
	fmt.Printf("rmdir d/e/f (empty): %s\n", guest.Outcome(syscall.Rmdir("/sandbox/d/e/f")))
	fmt.Printf("stat d/e/f: %s\n", kind("/sandbox/d/e/f"))
	fmt.Printf("rmdir d/e/file.txt (a file): %s\n", guest.Outcome(syscall.Rmdir("/sandbox/d/e/file.txt")))
	fmt.Printf("unlink d/e (a dir): %s\n", guest.Outcome(syscall.Unlink("/sandbox/d/e")))
	fmt.Printf("mkdir d/e/file.txt/x (through a file): %s\n", guest.Outcome(os.Mkdir("/sandbox/d/e/file.txt/x", 0o755)))
	fmt.Printf("unlink d/e/file.txt: %s\n", guest.Outcome(syscall.Unlink("/sandbox/d/e/file.txt")))
	fmt.Printf("rmdir d/e: %s\n", guest.Outcome(syscall.Rmdir("/sandbox/d/e")))
	fmt.Printf("rmdir d: %s\n", guest.Outcome(syscall.Rmdir("/sandbox/d")))
	fmt.Printf("stat d: %s\n", kind("/sandbox/d"))
	entries, err := os.ReadDir("/sandbox")
	if err != nil {
		fmt.Printf("entries left in /sandbox: %s\n", guest.ErrName(err))
	} else {
		fmt.Printf("entries left in /sandbox: %d\n", len(entries))
	}
}
