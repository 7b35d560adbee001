// Command escape tries path escapes from the writable preopen /sandbox; all must fail. The
// host side of a runner puts a file named `outside` next to the preopened directory, so an
// escape would find something. First through the os package (Go's syscall package resolves
// the path against the preopens itself, cleaning it first), then raw path_open relative to the
// preopen's fd (the runtime alone must refuse), then through symlinks the guest creates.
package main

import (
	"bufio"
	"fmt"
	"os"

	"nestbox.test/wasiguests/internal/guest"
)

func open(label, path string) {
	f, err := os.Open(path)
	if err != nil {
		fmt.Printf("%s: denied %s\n", label, guest.ErrName(err))
		return
	}
	line, _ := bufio.NewReader(f).ReadString('\n')
	f.Close()
	fmt.Printf("%s: OPENED (escape!) %q\n", label, line)
}

func raw(label string, dirfd int32, path string) {
	fd, errno := guest.RawOpen(dirfd, path)
	if errno == 0 {
		guest.Close(fd)
		fmt.Printf("raw %s: OPENED (escape!)\n", label)
	} else {
		fmt.Printf("raw %s: denied %s\n", label, guest.ErrnoName(errno))
	}
}

func main() {
	os.Mkdir("/sandbox/sub", 0o755)
	os.WriteFile("/sandbox/inside.txt", []byte("inside"), 0o644)

	open("open /sandbox/../outside", "/sandbox/../outside")
	open("open /sandbox/sub/../../outside", "/sandbox/sub/../../outside")
	open("open /etc/passwd", "/etc/passwd")
	open("open ../outside", "../outside")
	fmt.Printf("create /sandbox/../created: %s\n", guest.Outcome(os.WriteFile("/sandbox/../created", []byte("x"), 0o644)))
	fmt.Printf("mkdir /sandbox/../newdir: %s\n", guest.Outcome(os.Mkdir("/sandbox/../newdir", 0o755)))

	dirfd, ok := guest.PreopenFD("/sandbox")
	if !ok {
		fmt.Println("no preopen named /sandbox")
		os.Exit(1)
	}
	raw("../outside", dirfd, "../outside")
	raw("sub/../../outside", dirfd, "sub/../../outside")
	raw("/etc/passwd", dirfd, "/etc/passwd")
	raw("..", dirfd, "..")
	if fd, errno := guest.RawOpen(dirfd, "sub/../inside.txt"); errno == 0 {
		guest.Close(fd)
		fmt.Println("raw sub/../inside.txt (stays inside): ok")
	} else {
		fmt.Printf("raw sub/../inside.txt (stays inside): %s\n", guest.ErrnoName(errno))
	}

	for _, l := range [][2]string{{"link_out", "../outside"}, {"link_abs", "/etc/passwd"}} {
		link, target := l[0], l[1]
		fmt.Printf("symlink %s -> %s: %s\n", link, target, guest.RawSymlink(target, dirfd, link))
		open("open /sandbox/"+link, "/sandbox/"+link)
		raw(link, dirfd, link)
	}
}
