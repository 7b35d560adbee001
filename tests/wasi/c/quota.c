// Filesystem quotas set by the runner. `quota bytes`: writes 64 KiB chunks to
// /sandbox/fill.bin until a write fails (or 4 MiB, the program's own bound); `quota files`:
// creates 1-byte files until a create fails (or 1000). Prints how far it got and the error,
// then checks the filesystem is still usable after freeing space.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static long put(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return -1;
  long rc = write(fd, text, strlen(text)) == (ssize_t)strlen(text) ? 0 : -1;
  int saved = errno;
  close(fd);
  errno = saved;
  return rc;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "bytes") == 0) {
    int fd = open("/sandbox/fill.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    static unsigned char chunk[64 * 1024];
    memset(chunk, 0x5a, sizeof chunk);
    size_t written = 0;
    const char *error = "no error";
    while (written < 4 * 1024 * 1024) {
      ssize_t n = write(fd, chunk, sizeof chunk);
      if (n < 0) {
        error = errno_name(errno);
        break;
      }
      if (n == 0) break;
      written += (size_t)n;
    }
    close(fd);
    printf("wrote %zu bytes, then %s\n", written, error);
    struct stat st;
    printf("size on disk: %lld\n", stat("/sandbox/fill.bin", &st) == 0 ? (long long)st.st_size : 0LL);
    printf("remove fill.bin: %s\n", outcome(unlink("/sandbox/fill.bin")));
    printf("write after freeing: %s\n", outcome(put("/sandbox/after.txt", "ok")));
  } else if (argc > 1 && strcmp(argv[1], "files") == 0) {
    int created = 0;
    const char *error = "no error";
    while (created < 1000) {
      char path[64];
      snprintf(path, sizeof path, "/sandbox/f%04d", created);
      if (put(path, "x") != 0) {
        error = errno_name(errno);
        break;
      }
      created++;
    }
    printf("created %d files, then %s\n", created, error);
    printf("remove f0000: %s\n", outcome(unlink("/sandbox/f0000")));
    printf("create after freeing: %s\n", outcome(put("/sandbox/after.txt", "ok")));
  } else {
    fprintf(stderr, "usage: quota bytes|files\n");
    return 2;
  }
  return 0;
}
