// Directory listing (fd_readdir): the read-only fixture tree at /data, recursively, with the
// type each entry's dirent reports and the size stat reports, sorted by name (bytes); then 150
// long-named files in /sandbox/many, enough to need several fd_readdir calls (cookies), and an
// empty directory. Unlike Rust's and Go's std, wasi-libc's readdir passes on "." and ".." when
// the runtime reports them, so this program prints them too (and does not descend into them).
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

struct entry {
  char name[256];
  unsigned char type; // the dirent's d_type: what the runtime reported
};

static int cmp_entry(const void *a, const void *b) {
  return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

static void list(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  if (!d) {
    printf("%s: %s\n", prefix, errno_name(errno));
    return;
  }
  struct entry entries[64];
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < 64) {
    snprintf(entries[n].name, sizeof entries[n].name, "%s", e->d_name);
    entries[n++].type = e->d_type;
  }
  closedir(d);
  qsort(entries, (size_t)n, sizeof entries[0], cmp_entry);
  for (int i = 0; i < n; i++) {
    const char *name = entries[i].name;
    char path[512], rel[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(rel, sizeof rel, "%s%s", prefix, name);
    int dot = strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
    if (entries[i].type == DT_DIR) {
      printf("dir  %s\n", rel);
      if (!dot) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s/", rel);
        list(path, sub);
      }
    } else if (entries[i].type == DT_REG) {
      struct stat st;
      if (stat(path, &st) == 0) printf("file %s %lld\n", rel, (long long)st.st_size);
      else printf("file %s %s\n", rel, errno_name(errno));
    } else if (entries[i].type == DT_LNK) {
      printf("link %s\n", rel);
    } else {
      printf("othr %s\n", rel);
    }
  }
}

int main(void) {
  list("/data", "");

  mkdir("/sandbox/many", 0755);
  for (int i = 0; i < 150; i++) {
    char path[128];
    snprintf(path, sizeof path, "/sandbox/many/a-rather-long-file-name-to-fill-the-readdir-buffer-%03d.txt", i);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
      printf("create %s: %s\n", path, errno_name(errno));
      return 1;
    }
    close(fd);
  }
  DIR *dir = opendir("/sandbox/many");
  char *names[200];
  int n = 0;
  struct dirent *e;
  while ((e = readdir(dir)) && n < 200) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    names[n++] = strdup(e->d_name);
  }
  closedir(dir);
  qsort(names, (size_t)n, sizeof names[0], cmp);
  int match = n == 150;
  for (int i = 0; match && i < 150; i++) {
    char want[128];
    snprintf(want, sizeof want, "a-rather-long-file-name-to-fill-the-readdir-buffer-%03d.txt", i);
    match = strcmp(names[i], want) == 0;
  }
  printf("many: %d entries, names match: %s\n", n, match ? "true" : "false");

  mkdir("/sandbox/empty", 0755);
  dir = opendir("/sandbox/empty");
  n = 0;
  while ((e = readdir(dir)))
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
  closedir(dir);
  printf("empty: %d entries\n", n);
  return 0;
}
