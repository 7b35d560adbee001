// Command readdir lists directories (fd_readdir): the read-only fixture tree at /data,
// recursively, with the type each entry's dirent reports and the size stat reports, sorted by
// name (bytes); then 150 long-named files in /sandbox/many, enough to need several fd_readdir
// calls (cookies), and an empty directory.
package main

import (
	"fmt"
	"io/fs"
	"os"
	"sort"

	"nestbox.test/wasiguests/internal/guest"
)

func list(dir, prefix string) {
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		fmt.Printf("%s: %s\n", prefix, guest.ErrName(err))
		return
	}
	for _, e := range entries {
		path, rel := dir+"/"+e.Name(), prefix+e.Name()
		switch t := e.Type(); {
		case t.IsDir():
			fmt.Printf("dir  %s\n", rel)
			list(path, rel+"/")
		case t.IsRegular():
			st, err := os.Stat(path)
			if err != nil {
				fmt.Printf("file %s %s\n", rel, guest.ErrName(err))
			} else {
				fmt.Printf("file %s %d\n", rel, st.Size())
			}
		case t&fs.ModeSymlink != 0:
			fmt.Printf("link %s\n", rel)
		default:
			fmt.Printf("othr %s\n", rel)
		}
	}
}

func main() {
	list("/data", "")

	if err := os.Mkdir("/sandbox/many", 0o755); err != nil {
		fmt.Printf("mkdir many: %s\n", guest.ErrName(err))
		os.Exit(1)
	}
	var want []string
	for i := 0; i < 150; i++ {
		name := fmt.Sprintf("a-rather-long-file-name-to-fill-the-readdir-buffer-%03d.txt", i)
		want = append(want, name)
		if err := os.WriteFile("/sandbox/many/"+name, nil, 0o644); err != nil {
			fmt.Printf("create %s: %s\n", name, guest.ErrName(err))
			os.Exit(1)
		}
	}
	f, _ := os.Open("/sandbox/many")
	names, _ := f.Readdirnames(-1) // unsorted, straight from fd_readdir
	f.Close()
	sort.Strings(names)
	match := len(names) == len(want)
	for i := 0; match && i < len(want); i++ {
		match = names[i] == want[i]
	}
	fmt.Printf("many: %d entries, names match: %t\n", len(names), match)

	os.Mkdir("/sandbox/empty", 0o755)
	empty, _ := os.ReadDir("/sandbox/empty")
	fmt.Printf("empty: %d entries\n", len(empty))
}
