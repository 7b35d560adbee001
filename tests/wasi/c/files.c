// File life cycle in the writable preopen /sandbox: create, write, read back, append, stat
// sizes, truncate and extend, O_TRUNC, O_EXCL on an existing file, a missing file, a large
// write read back, remove.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static void print_size(const char *path) {
  struct stat st;
  if (stat(path, &st) == 0) printf("size: %lld\n", (long long)st.st_size);
  else printf("size: %s\n", errno_name(errno));
}

// Reads the whole file into buf (NUL-terminated); returns the length or -1.
static long slurp(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  size_t len = 0;
  ssize_t n;
  while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0) len += (size_t)n;
  close(fd);
  buf[len] = '\0';
  return (long)len;
}

static void print_read(const char *path) {
  char buf[64];
  if (slurp(path, buf, sizeof buf) < 0) printf("read: %s\n", errno_name(errno));
  else printf("read: %s\n", buf);
}

static long write_file(const char *path, const void *data, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return -1;
  long rc = write(fd, data, len) == (ssize_t)len ? 0 : -1;
  close(fd);
  return rc;
}

int main(void) {
  const char *a = "/sandbox/a.txt";
  printf("write a.txt \"hello\": %s\n", outcome(write_file(a, "hello", 5)));
  print_read(a);
  int fd = open(a, O_WRONLY | O_APPEND);
  long rc = fd < 0 ? -1 : write(fd, " world", 6) == 6 ? 0 : -1;
  if (fd >= 0) close(fd);
  printf("append \" world\": %s\n", outcome(rc));
  print_size(a);
  print_read(a);

  fd = open(a, O_WRONLY);
  if (fd >= 0) {
    printf("truncate to 5: %s\n", outcome(ftruncate(fd, 5)));
    print_size(a);
    printf("extend to 8: %s\n", outcome(ftruncate(fd, 8)));
    close(fd);
  } else {
    printf("open for writing: %s\n", errno_name(errno));
  }
  print_size(a);
  char buf[64], hexbuf[130];
  long n = slurp(a, buf, sizeof buf);
  hex((unsigned char *)buf, n < 0 ? 0 : (size_t)n, hexbuf);
  printf("read hex: %s\n", hexbuf);

  fd = open(a, O_WRONLY | O_TRUNC);
  printf("open with O_TRUNC: %s\n", outcome(fd));
  if (fd >= 0) close(fd);
  print_size(a);

  fd = open(a, O_WRONLY | O_CREAT | O_EXCL, 0644);
  printf("create_new on existing: %s\n", outcome(fd));
  fd = open("/sandbox/missing.txt", O_RDONLY);
  printf("open missing: %s\n", outcome(fd));

  unsigned char *big = malloc(100000), *back = malloc(100001);
  for (unsigned i = 0; i < 100000; i++) big[i] = (unsigned char)(i % 251);
  printf("write 100000 bytes: %s\n", outcome(write_file("/sandbox/big.bin", big, 100000)));
  print_size("/sandbox/big.bin");
  n = slurp("/sandbox/big.bin", (char *)back, 100001);
  if (n < 0) printf("read back %s bytes, equal: false\n", errno_name(errno));
  else printf("read back %ld bytes, equal: %s\n", n, n == 100000 && memcmp(big, back, 100000) == 0 ? "true" : "false");

  printf("remove a.txt: %s\n", outcome(unlink(a)));
  fd = open(a, O_RDONLY);
  printf("open removed: %s\n", outcome(fd));
  fd = open("/sandbox", O_WRONLY);
  printf("write into a directory: %s\n", outcome(fd));
  return 0;
}
