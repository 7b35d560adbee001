// Offsets: fd_seek (set/cur/end, negative, past the end), fd_tell, fd_pread and fd_pwrite
// (which must not move the offset), O_APPEND writes landing at the end whatever the offset,
// and seeking stdout (a stream: ESPIPE).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static void show(const char *label, off_t rc) {
  if (rc < 0) printf("%s: %s\n", label, errno_name(errno));
  else printf("%s: %lld\n", label, (long long)rc);
}

int main(void) {
  const char *path = "/sandbox/s.bin";
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, "0123456789", 10) != 10) return 1;
  char buf[64];
  show("seek set 3", lseek(fd, 3, SEEK_SET));
  ssize_t n = read(fd, buf, 2);
  printf("read 2: %.*s\n", (int)(n < 0 ? 0 : n), buf);
  show("tell", lseek(fd, 0, SEEK_CUR));
  show("seek end -2", lseek(fd, -2, SEEK_END));
  n = read(fd, buf, sizeof buf);
  printf("read to end: %.*s\n", (int)(n < 0 ? 0 : n), buf);
  show("seek cur -5", lseek(fd, -5, SEEK_CUR));
  show("seek cur -100", lseek(fd, -100, SEEK_CUR));
  show("tell", lseek(fd, 0, SEEK_CUR));
  show("seek set 20", lseek(fd, 20, SEEK_SET));
  printf("write X at 20: %s\n", outcome(write(fd, "X", 1) == 1 ? 0 : -1));
  struct stat st;
  fstat(fd, &st);
  printf("size: %lld\n", (long long)st.st_size);
  unsigned char all[64];
  n = pread(fd, all, sizeof all, 0);
  int zeros = n >= 21;
  for (int i = 10; zeros && i < 20; i++) zeros = all[i] == 0;
  printf("gap is zeros: %s\n", zeros ? "true" : "false");

  // pread above must not have moved the offset either; check explicitly with fresh calls.
  off_t before = lseek(fd, 0, SEEK_CUR);
  n = pread(fd, buf, 3, 1);
  printf("pread 3 at 1: %s %.*s\n", n < 0 ? errno_name(errno) : "ESUCCESS", (int)(n < 0 ? 0 : n), buf);
  printf("offset unchanged after pread: %s\n", lseek(fd, 0, SEEK_CUR) == before ? "true" : "false");
  n = pwrite(fd, "ab", 2, 0);
  printf("pwrite ab at 0: %s %zd\n", n < 0 ? errno_name(errno) : "ESUCCESS", n < 0 ? 0 : n);
  printf("offset unchanged after pwrite: %s\n", lseek(fd, 0, SEEK_CUR) == before ? "true" : "false");
  n = pread(fd, all, sizeof all, 0);
  char hexbuf[130];
  hex(all, n < 0 ? 0 : (size_t)n, hexbuf);
  printf("content: %s\n", hexbuf);
  close(fd);

  fd = open(path, O_WRONLY | O_APPEND);
  lseek(fd, 0, SEEK_SET);
  printf("append-mode write: %s\n", outcome(write(fd, "Z", 1) == 1 ? 0 : -1));
  close(fd);
  fd = open(path, O_RDONLY);
  n = read(fd, all, sizeof all);
  close(fd);
  printf("size: %zd, last byte: %c\n", n, n > 0 ? all[n - 1] : '?');

  __wasi_filesize_t off;
  __wasi_errno_t e = __wasi_fd_seek(1, 0, __WASI_WHENCE_CUR, &off);
  printf("seek stdout: %s\n", e == 0 ? "ok" : errno_name(e));
  return 0;
}
