// The read-only preopen /data: reading works; writing, creating, mkdir, unlink, rename and
// truncation must all fail, and the files must be unchanged afterwards.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static const char *get(const char *path) {
  static char buf[64];
  int fd = open(path, O_RDONLY);
  if (fd < 0) return errno_name(errno);
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  buf[n < 0 ? 0 : n] = '\0';
  buf[strcspn(buf, "\n")] = '\0';
  return buf;
}

static const char *open_outcome(const char *path, int flags) {
  int fd = open(path, flags, 0644);
  if (fd >= 0) close(fd);
  return outcome(fd);
}

int main(void) {
  printf("read alpha.txt: %s\n", get("/data/alpha.txt"));
  printf("open alpha.txt for writing: %s\n", open_outcome("/data/alpha.txt", O_WRONLY));
  printf("open alpha.txt with O_TRUNC: %s\n", open_outcome("/data/alpha.txt", O_WRONLY | O_TRUNC));
  printf("create new.txt: %s\n", open_outcome("/data/new.txt", O_WRONLY | O_CREAT | O_TRUNC));
  printf("mkdir newdir: %s\n", outcome(mkdir("/data/newdir", 0755)));
  printf("unlink alpha.txt: %s\n", outcome(unlink("/data/alpha.txt")));
  printf("rmdir nested/deep: %s\n", outcome(rmdir("/data/nested/deep")));
  printf("rename alpha.txt -> moved.txt: %s\n", outcome(rename("/data/alpha.txt", "/data/moved.txt")));
  printf("read alpha.txt again: %s\n", get("/data/alpha.txt"));
  struct stat st;
  printf("new.txt exists: %s\n", stat("/data/new.txt", &st) == 0 ? "true" : "false");
  return 0;
}
