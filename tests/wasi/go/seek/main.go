// Command seek checks offsets: fd_seek (set/cur/end, negative, past the end), fd_tell,
// fd_pread and fd_pwrite (which must not move the offset), O_APPEND writes landing at the end
// whatever the offset, and seeking stdout (a stream: ESPIPE).
package main

import (
	"fmt"
	"io"
	"os"

	"nestbox.test/wasiguests/internal/guest"
)

func show(label string, off int64, err error) {
	if err != nil {
		fmt.Printf("%s: %s\n", label, guest.ErrName(err))
	} else {
		fmt.Printf("%s: %d\n", label, off)
	}
}

func main() {
	path := "/sandbox/s.bin"
	if err := os.WriteFile(path, []byte("0123456789"), 0o644); err != nil {
		fmt.Printf("setup: %s\n", guest.ErrName(err))
		os.Exit(1)
	}
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	off, err := f.Seek(3, io.SeekStart)
	show("seek set 3", off, err)
	two := make([]byte, 2)
	io.ReadFull(f, two)
	fmt.Printf("read 2: %s\n", two)
	off, err = f.Seek(0, io.SeekCurrent)
	show("tell", off, err)
	off, err = f.Seek(-2, io.SeekEnd)
	show("seek end -2", off, err)
	rest, _ := io.ReadAll(f)
	fmt.Printf("read to end: %s\n", rest)
	off, err = f.Seek(-5, io.SeekCurrent)
	show("seek cur -5", off, err)
	off, err = f.Seek(-100, io.SeekCurrent)
	show("seek cur -100", off, err)
	off, err = f.Seek(0, io.SeekCurrent)
	show("tell", off, err)
	off, err = f.Seek(20, io.SeekStart)
	show("seek set 20", off, err)
	_, err = f.Write([]byte("X"))
	fmt.Printf("write X at 20: %s\n", guest.Outcome(err))
	st, _ := f.Stat()
	fmt.Printf("size: %d\n", st.Size())
	all, _ := os.ReadFile(path)
	zeros := len(all) >= 21
	for i := 10; zeros && i < 20; i++ {
		zeros = all[i] == 0
	}
	fmt.Printf("gap is zeros: %t\n", zeros)

	before, _ := f.Seek(0, io.SeekCurrent)
	buf := make([]byte, 3)
	n, err := f.ReadAt(buf, 1)
	name := "ESUCCESS"
	if err != nil {
		name = guest.ErrName(err)
	}
	fmt.Printf("pread 3 at 1: %s %s\n", name, buf[:n])
	now, _ := f.Seek(0, io.SeekCurrent)
	fmt.Printf("offset unchanged after pread: %t\n", now == before)
	n, err = f.WriteAt([]byte("ab"), 0)
	name = "ESUCCESS"
	if err != nil {
		name = guest.ErrName(err)
	}
	fmt.Printf("pwrite ab at 0: %s %d\n", name, n)
	now, _ = f.Seek(0, io.SeekCurrent)
	fmt.Printf("offset unchanged after pwrite: %t\n", now == before)
	all, _ = os.ReadFile(path)
	fmt.Printf("content: %x\n", all)
	f.Close()

	app, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	app.Seek(0, io.SeekStart)
	_, err = app.Write([]byte("Z"))
	fmt.Printf("append-mode write: %s\n", guest.Outcome(err))
	app.Close()
	all, _ = os.ReadFile(path)
	fmt.Printf("size: %d, last byte: %c\n", len(all), all[len(all)-1])

	fmt.Printf("seek stdout: %s\n", guest.SeekCur(1))
}
