// Package guest is shared by the Go guest programs: errno names (so every language prints
// the same words) and the preview1 calls the os package does not expose (path_open relative
// to a chosen directory fd, random_get, clock_res_get, fd_prestat_*), imported directly with
// go:wasmimport (Go >= 1.24 allows it outside the standard library).
package guest

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"
)

// errnoNames are WASI preview1's errno names, indexed by value (syscall.Errno on wasip1 holds
// the same values).
var errnoNames = [...]string{
	"ESUCCESS", "E2BIG", "EACCES", "EADDRINUSE", "EADDRNOTAVAIL", "EAFNOSUPPORT", "EAGAIN",
	"EALREADY", "EBADF", "EBADMSG", "EBUSY", "ECANCELED", "ECHILD", "ECONNABORTED",
	"ECONNREFUSED", "ECONNRESET", "EDEADLK", "EDESTADDRREQ", "EDOM", "EDQUOT", "EEXIST", "EFAULT",
	"EFBIG", "EHOSTUNREACH", "EIDRM", "EILSEQ", "EINPROGRESS", "EINTR", "EINVAL", "EIO",
	"EISCONN", "EISDIR", "ELOOP", "EMFILE", "EMLINK", "EMSGSIZE", "EMULTIHOP", "ENAMETOOLONG",
	"ENETDOWN", "ENETRESET", "ENETUNREACH", "ENFILE", "ENOBUFS", "ENODEV", "ENOENT", "ENOEXEC",
	"ENOLCK", "ENOLINK", "ENOMEM", "ENOMSG", "ENOPROTOOPT", "ENOSPC", "ENOSYS", "ENOTCONN",
	"ENOTDIR", "ENOTEMPTY", "ENOTRECOVERABLE", "ENOTSOCK", "ENOTSUP", "ENOTTY", "ENXIO",
	"EOVERFLOW", "EOWNERDEAD", "EPERM", "EPIPE", "EPROTO", "EPROTONOSUPPORT", "EPROTOTYPE",
	"ERANGE", "EROFS", "ESPIPE", "ESRCH", "ESTALE", "ETIMEDOUT", "ETXTBSY", "EXDEV",
	"ENOTCAPABLE",
}

// ErrnoName is the errno's name, or errno(N) for a value outside the spec.
func ErrnoName(errno uint32) string {
	if int(errno) < len(errnoNames) {
		return errnoNames[errno]
	}
	return fmt.Sprintf("errno(%d)", errno)
}

// ErrName is the name of the errno behind err; an error that carries none prints as go:<text>.
func ErrName(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return ErrnoName(uint32(errno))
	}
	return "go:" + err.Error()
}

// Outcome is "ok" for a nil error, else the errno name.
func Outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return ErrName(err)
}

//go:wasmimport wasi_snapshot_preview1 path_open
func pathOpen(fd int32, dirflags uint32, path unsafe.Pointer, pathLen uint32, oflags uint32,
	rightsBase uint64, rightsInheriting uint64, fdflags uint32, opened unsafe.Pointer) uint32

//go:wasmimport wasi_snapshot_preview1 path_symlink
func pathSymlink(oldPath unsafe.Pointer, oldPathLen uint32, fd int32, newPath unsafe.Pointer, newPathLen uint32) uint32

//go:wasmimport wasi_snapshot_preview1 fd_close
func fdClose(fd int32) uint32

//go:wasmimport wasi_snapshot_preview1 fd_prestat_get
func fdPrestatGet(fd int32, prestat unsafe.Pointer) uint32

//go:wasmimport wasi_snapshot_preview1 fd_prestat_dir_name
func fdPrestatDirName(fd int32, path unsafe.Pointer, pathLen uint32) uint32

//go:wasmimport wasi_snapshot_preview1 fd_seek
func fdSeek(fd int32, offset int64, whence uint32, newOffset unsafe.Pointer) uint32

//go:wasmimport wasi_snapshot_preview1 random_get
func randomGet(buf unsafe.Pointer, bufLen uint32) uint32

//go:wasmimport wasi_snapshot_preview1 clock_res_get
func clockResGet(id uint32, resolution unsafe.Pointer) uint32

const (
	lookupSymlinkFollow = 1
	rightsFdRead        = 1 << 1 // asking for more than a directory grants fails whatever the path
	ClockRealtime       = 0
	ClockMonotonic      = 1
	WhenceCur           = 1
)

func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// PreopenFD finds the fd of the preopened directory named name, as libc does: fd_prestat_get
// from fd 3 until EBADF.
func PreopenFD(name string) (int32, bool) {
	for fd := int32(3); fd < 64; fd++ {
		var prestat [2]uint32 // tag (0 = dir), pr_name_len
		if fdPrestatGet(fd, unsafe.Pointer(&prestat)) != 0 {
			return 0, false
		}
		buf := make([]byte, prestat[1])
		if fdPrestatDirName(fd, bytesPtr(buf), uint32(len(buf))) != 0 {
			continue
		}
		if len(buf) > 0 && buf[len(buf)-1] == 0 {
			buf = buf[:len(buf)-1]
		}
		if string(buf) == name {
			return fd, true
		}
	}
	return 0, false
}

// RawOpen is path_open(dirfd, path) straight to the runtime, following symlinks and asking
// only to read: the opened fd and 0, or the errno.
func RawOpen(dirfd int32, path string) (int32, uint32) {
	p := []byte(path)
	var opened int32
	errno := pathOpen(dirfd, lookupSymlinkFollow, bytesPtr(p), uint32(len(p)), 0, rightsFdRead, 0, 0, unsafe.Pointer(&opened))
	return opened, errno
}

// RawSymlink is path_symlink(target, dirfd, link): "ok" or the errno name.
func RawSymlink(target string, dirfd int32, link string) string {
	t, l := []byte(target), []byte(link)
	if errno := pathSymlink(bytesPtr(t), uint32(len(t)), dirfd, bytesPtr(l), uint32(len(l))); errno != 0 {
		return ErrnoName(errno)
	}
	return "ok"
}

// Close closes an fd RawOpen returned.
func Close(fd int32) { fdClose(fd) }

// SeekCur is fd_seek(fd, 0, SEEK_CUR): "ok" or the errno name.
func SeekCur(fd int32) string {
	var off uint64
	if errno := fdSeek(fd, 0, WhenceCur, unsafe.Pointer(&off)); errno != 0 {
		return ErrnoName(errno)
	}
	return "ok"
}

// Random fills buf with random_get: 0 or the errno.
func Random(buf []byte) uint32 { return randomGet(bytesPtr(buf), uint32(len(buf))) }

// ClockRes is clock_res_get(id) in nanoseconds and 0, or the errno.
func ClockRes(id uint32) (uint64, uint32) {
	var res uint64
	errno := clockResGet(id, unsafe.Pointer(&res))
	return res, errno
}
