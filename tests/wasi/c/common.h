// Shared by the C guest programs (wasi-libc): errno names, so every language prints the same
// words, and raw preview1 calls with no libc path resolution in between.
#ifndef NESTBOX_GUEST_COMMON_H
#define NESTBOX_GUEST_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <wasi/api.h>

// WASI preview1 errno names, indexed by value: wasi-libc's E* constants are the spec's values.
static const char *const ERRNO_NAMES[77] = {
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
};

static inline const char *errno_name(int e) {
  static char other[24];
  if (e >= 0 && e < 77) return ERRNO_NAMES[e];
  snprintf(other, sizeof other, "errno(%d)", e);
  return other;
}

// "ok" when a libc call returned `rc` >= 0, else the name of errno.
static inline const char *outcome(long rc) { return rc >= 0 ? "ok" : errno_name(errno); }

static inline void hex(const unsigned char *bytes, size_t len, char *out) {
  for (size_t i = 0; i < len; i++) sprintf(out + 2 * i, "%02x", bytes[i]);
  out[2 * len] = '\0';
}

// The fd of the preopened directory named `name`, found as libc does: fd_prestat_get from 3.
static inline int preopen_fd(const char *name) {
  for (__wasi_fd_t fd = 3; fd < 64; fd++) {
    __wasi_prestat_t prestat;
    if (__wasi_fd_prestat_get(fd, &prestat) != 0) return -1;
    char buf[256];
    size_t len = prestat.u.dir.pr_name_len;
    if (len >= sizeof buf) continue;
    if (__wasi_fd_prestat_dir_name(fd, (uint8_t *)buf, len) != 0) continue;
    buf[len] = '\0';
    if (len > 0 && buf[len - 1] == '\0') len--;
    if (strcmp(buf, name) == 0) return (int)fd;
  }
  return -1;
}

// path_open(dirfd, path) straight to the runtime, following symlinks and asking only for
// fd_read (rights the directory cannot grant would fail with ENOTCAPABLE whatever the path):
// 0 and the fd in *opened, or the errno.
static inline int raw_open(int dirfd, const char *path, __wasi_fd_t *opened) {
  return __wasi_path_open((__wasi_fd_t)dirfd, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, path, 0,
                          __WASI_RIGHTS_FD_READ, 0, 0, opened);
}

#endif
