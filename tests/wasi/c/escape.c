// Path escapes from the writable preopen /sandbox must all fail. The host side of a runner
// puts a file named `outside` next to the preopened directory, so an escape would find
// something. First through libc (wasi-libc resolves the path against the preopens, as every
// program does), then raw path_open relative to the preopen's fd (the runtime alone must
// refuse), then through symlinks the guest creates itself.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

static void try_open(const char *label, const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    printf("%s: denied %s\n", label, errno_name(errno));
    return;
  }
  char buf[80] = {0};
  read(fd, buf, sizeof buf - 1);
  close(fd);
  buf[strcspn(buf, "\n")] = '\0';
  printf("%s: OPENED (escape!) \"%s\"\n", label, buf);
}

static void try_raw(const char *label, int dirfd, const char *path) {
  __wasi_fd_t fd;
  int e = raw_open(dirfd, path, &fd);
  if (e == 0) {
    close((int)fd);
    printf("raw %s: OPENED (escape!)\n", label);
  } else {
    printf("raw %s: denied %s\n", label, errno_name(e));
  }
}

int main(void) {
  mkdir("/sandbox/sub", 0755);
  int fd = open("/sandbox/inside.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  write(fd, "inside", 6);
  close(fd);

  try_open("open /sandbox/../outside", "/sandbox/../outside");
  try_open("open /sandbox/sub/../../outside", "/sandbox/sub/../../outside");
  try_open("open /etc/passwd", "/etc/passwd");
  try_open("open ../outside", "../outside");
  fd = open("/sandbox/../created", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  printf("create /sandbox/../created: %s\n", outcome(fd));
  printf("mkdir /sandbox/../newdir: %s\n", outcome(mkdir("/sandbox/../newdir", 0755)));

  int dirfd = preopen_fd("/sandbox");
  if (dirfd < 0) {
    printf("no preopen named /sandbox\n");
    return 1;
  }
  try_raw("../outside", dirfd, "../outside");
  try_raw("sub/../../outside", dirfd, "sub/../../outside");
  try_raw("/etc/passwd", dirfd, "/etc/passwd");
  try_raw("..", dirfd, "..");
  __wasi_fd_t opened;
  int e = raw_open(dirfd, "sub/../inside.txt", &opened);
  if (e == 0) close((int)opened);
  printf("raw sub/../inside.txt (stays inside): %s\n", e == 0 ? "ok" : errno_name(e));

  const char *links[][2] = {{"link_out", "../outside"}, {"link_abs", "/etc/passwd"}};
  for (int i = 0; i < 2; i++) {
    e = __wasi_path_symlink(links[i][1], (__wasi_fd_t)dirfd, links[i][0]);
    printf("symlink %s -> %s: %s\n", links[i][0], links[i][1], e == 0 ? "ok" : errno_name(e));
    char label[64], path[64];
    snprintf(label, sizeof label, "open /sandbox/%s", links[i][0]);
    snprintf(path, sizeof path, "/sandbox/%s", links[i][0]);
    try_open(label, path);
    try_raw(links[i][0], dirfd, links[i][0]);
  }
  return 0;
}
