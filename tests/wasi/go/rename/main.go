// Command rename exercises path_rename in /sandbox: a file, a file over an existing file
// (replaces it), a directory with contents, a directory over an empty directory (replaces it),
// and the cases that must fail: over a non-empty directory, a file over a directory, a
// directory over a file, a directory into itself, a missing source, a missing target parent.
// It calls syscall.Rename: os.Rename refuses any existing directory target itself (EEXIST)
// before asking the runtime.
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"

	"nestbox.test/wasiguests/internal/guest"
)

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func read(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return guest.ErrName(err)
	}
	return string(b)
}

func rename(from, to string) string {
	return guest.Outcome(syscall.Rename("/sandbox/"+from, "/sandbox/"+to))
}

func must(err error) {
	if err != nil {
		fmt.Printf("setup: %s\n", guest.ErrName(err))
		os.Exit(1)
	}
}

func main() {
	must(os.WriteFile("/sandbox/a.txt", []byte("A"), 0o644))
	must(os.WriteFile("/sandbox/b.txt", []byte("B"), 0o644))
	fmt.Printf("rename a.txt -> c.txt: %s\n", rename("a.txt", "c.txt"))
	fmt.Printf("a.txt exists: %t, c.txt: %s\n", exists("/sandbox/a.txt"), read("/sandbox/c.txt"))
	fmt.Printf("rename c.txt -> b.txt (over a file): %s\n", rename("c.txt", "b.txt"))
	fmt.Printf("c.txt exists: %t, b.txt: %s\n", exists("/sandbox/c.txt"), read("/sandbox/b.txt"))

	must(os.Mkdir("/sandbox/d1", 0o755))
	must(os.WriteFile("/sandbox/d1/inner.txt", []byte("inner"), 0o644))
	fmt.Printf("rename d1 -> d2 (a dir): %s\n", rename("d1", "d2"))
	fmt.Printf("d1 exists: %t, d2/inner.txt: %s\n", exists("/sandbox/d1"), read("/sandbox/d2/inner.txt"))
	must(os.Mkdir("/sandbox/e", 0o755))
	fmt.Printf("rename d2 -> e (over an empty dir): %s\n", rename("d2", "e"))
	fmt.Printf("d2 exists: %t, e/inner.txt: %s\n", exists("/sandbox/d2"), read("/sandbox/e/inner.txt"))

	must(os.Mkdir("/sandbox/f", 0o755))
	must(os.WriteFile("/sandbox/f/x.txt", []byte("x"), 0o644))
	fmt.Printf("rename e -> f (over a non-empty dir): %s\n", rename("e", "f"))
	fmt.Printf("rename b.txt -> f (a file over a dir): %s\n", rename("b.txt", "f"))
	fmt.Printf("rename f -> b.txt (a dir over a file): %s\n", rename("f", "b.txt"))
	fmt.Printf("rename f -> f/sub (into itself): %s\n", rename("f", "f/sub"))
	fmt.Printf("rename missing -> g: %s\n", rename("missing", "g"))
	fmt.Printf("rename b.txt -> nodir/b.txt: %s\n", rename("b.txt", "nodir/b.txt"))

	var names []string
	for _, top := range []string{"", "/e", "/f"} {
		entries, err := os.ReadDir("/sandbox" + top)
		if err != nil {
			continue
		}
		for _, e := range entries {
			names = append(names, top+"/"+e.Name())
		}
	}
	sort.Strings(names)
	fmt.Printf("tree: %s\n", strings.Join(names, " "))
}
