// rename (path_rename) in /sandbox: a file, a file over an existing file (replaces it), a
// directory with contents, a directory over an empty directory (replaces it), and the cases
// that must fail: over a non-empty directory, a file over a directory, a directory over a file,
// a directory into itself, a missing source, a missing target parent.
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static void put(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
    printf("setup %s: %s\n", path, errno_name(errno));
    exit(1);
  }
  close(fd);
}

static const char *exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0 ? "true" : "false";
}

static const char *get(const char *path) {
  static char bufs[2][64];
  static int which;
  char *buf = bufs[which ^= 1];
  int fd = open(path, O_RDONLY);
  if (fd < 0) return errno_name(errno);
  ssize_t n = read(fd, buf, sizeof bufs[0] - 1);
  close(fd);
  buf[n < 0 ? 0 : n] = '\0';
  return buf;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void) {
  put("/sandbox/a.txt", "A");
  put("/sandbox/b.txt", "B");
  printf("rename a.txt -> c.txt: %s\n", outcome(rename("/sandbox/a.txt", "/sandbox/c.txt")));
  printf("a.txt exists: %s, c.txt: %s\n", exists("/sandbox/a.txt"), get("/sandbox/c.txt"));
  printf("rename c.txt -> b.txt (over a file): %s\n", outcome(rename("/sandbox/c.txt", "/sandbox/b.txt")));
  printf("c.txt exists: %s, b.txt: %s\n", exists("/sandbox/c.txt"), get("/sandbox/b.txt"));

  mkdir("/sandbox/d1", 0755);
  put("/sandbox/d1/inner.txt", "inner");
  printf("rename d1 -> d2 (a dir): %s\n", outcome(rename("/sandbox/d1", "/sandbox/d2")));
  printf("d1 exists: %s, d2/inner.txt: %s\n", exists("/sandbox/d1"), get("/sandbox/d2/inner.txt"));
  mkdir("/sandbox/e", 0755);
  printf("rename d2 -> e (over an empty dir): %s\n", outcome(rename("/sandbox/d2", "/sandbox/e")));
  printf("d2 exists: %s, e/inner.txt: %s\n", exists("/sandbox/d2"), get("/sandbox/e/inner.txt"));

  mkdir("/sandbox/f", 0755);
  put("/sandbox/f/x.txt", "x");
  printf("rename e -> f (over a non-empty dir): %s\n", outcome(rename("/sandbox/e", "/sandbox/f")));
  printf("rename b.txt -> f (a file over a dir): %s\n", outcome(rename("/sandbox/b.txt", "/sandbox/f")));
  printf("rename f -> b.txt (a dir over a file): %s\n", outcome(rename("/sandbox/f", "/sandbox/b.txt")));
  printf("rename f -> f/sub (into itself): %s\n", outcome(rename("/sandbox/f", "/sandbox/f/sub")));
  printf("rename missing -> g: %s\n", outcome(rename("/sandbox/missing", "/sandbox/g")));
  printf("rename b.txt -> nodir/b.txt: %s\n", outcome(rename("/sandbox/b.txt", "/sandbox/nodir/b.txt")));

  char *names[64];
  int count = 0;
  const char *tops[] = {"", "/e", "/f"};
  for (int t = 0; t < 3; t++) {
    char dirpath[64];
    snprintf(dirpath, sizeof dirpath, "/sandbox%s", tops[t]);
    DIR *dir = opendir(dirpath);
    if (!dir) continue;
    struct dirent *e;
    while ((e = readdir(dir)) && count < 64) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      char *name = malloc(strlen(tops[t]) + strlen(e->d_name) + 2);
      sprintf(name, "%s/%s", tops[t], e->d_name);
      names[count++] = name;
    }
    closedir(dir);
  }
  qsort(names, (size_t)count, sizeof names[0], cmp);
  printf("tree:");
  for (int i = 0; i < count; i++) printf(" %s", names[i]);
  printf("\n");
  return 0;
}
