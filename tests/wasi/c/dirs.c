// Directories in /sandbox: mkdir, mkdir on an existing name, nested create, a missing parent,
// rmdir of a non-empty dir (fails), of an empty dir (works) and of a file (fails), unlink of a
// dir (fails), a path through a file (fails), then everything removed.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static void kind(const char *label, const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) printf("%s: %s\n", label, errno_name(errno));
  else if (S_ISDIR(st.st_mode)) printf("%s: dir\n", label);
  else if (S_ISREG(st.st_mode)) printf("%s: file %lld\n", label, (long long)st.st_size);
  else printf("%s: other\n", label);
}

// mkdir -p
static long mkdirs(const char *path) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

int main(void) {
  printf("mkdir d: %s\n", outcome(mkdir("/sandbox/d", 0755)));
  printf("mkdir d again: %s\n", outcome(mkdir("/sandbox/d", 0755)));
  printf("mkdir -p d/e/f: %s\n", outcome(mkdirs("/sandbox/d/e/f")));
  int fd = open("/sandbox/d/e/file.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  long rc = fd < 0 ? -1 : write(fd, "12345", 5) == 5 ? 0 : -1;
  if (fd >= 0) close(fd);
  printf("create d/e/file.txt: %s\n", outcome(rc));
  printf("mkdir missing/child: %s\n", outcome(mkdir("/sandbox/missing/child", 0755)));
  kind("stat d", "/sandbox/d");
  kind("stat d/e/f", "/sandbox/d/e/f");
  kind("stat d/e/file.txt", "/sandbox/d/e/file.txt");
  printf("rmdir d (not empty): %s\n", outcome(rmdir("/sandbox/d")));
  printf("rmdir d/e/f (empty): %s\n", outcome(rmdir("/sandbox/d/e/f")));
  kind("stat d/e/f", "/sandbox/d/e/f");
  printf("rmdir d/e/file.txt (a file): %s\n", outcome(rmdir("/sandbox/d/e/file.txt")));
  printf("unlink d/e (a dir): %s\n", outcome(unlink("/sandbox/d/e")));
  printf("mkdir d/e/file.txt/x (through a file): %s\n", outcome(mkdir("/sandbox/d/e/file.txt/x", 0755)));
  printf("unlink d/e/file.txt: %s\n", outcome(unlink("/sandbox/d/e/file.txt")));
  printf("rmdir d/e: %s\n", outcome(rmdir("/sandbox/d/e")));
  printf("rmdir d: %s\n", outcome(rmdir("/sandbox/d")));
  kind("stat d", "/sandbox/d");
  DIR *dir = opendir("/sandbox");
  if (!dir) {
    printf("entries left in /sandbox: %s\n", errno_name(errno));
    return 0;
  }
  int left = 0;
  struct dirent *e;
  while ((e = readdir(dir)))
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) left++;
  closedir(dir);
  printf("entries left in /sandbox: %d\n", left);
  return 0;
}
