// Writes argv[1] MiB to stdout as 64-byte lines (line i: i zero-padded to 63 digits, then
// "\n"), in 64 KiB writes, then "wrote N bytes" on stderr. A runner's output cap cuts it.
#include <stdlib.h>
#include <unistd.h>

#include "common.h"

int main(int argc, char **argv) {
  long mib = argc > 1 ? atol(argv[1]) : 1;
  long lines = mib * 1024 * 1024 / 64;
  static char chunk[64 * 1024];
  size_t len = 0, written = 0;
  for (long i = 0; i < lines; i++) {
    snprintf(chunk + len, 65, "%063ld\n", i);
    len += 64;
    if (len == sizeof chunk || i + 1 == lines) {
      for (size_t off = 0; off < len;) {
        ssize_t n = write(1, chunk + off, len - off);
        if (n <= 0) {
          fprintf(stderr, "write failed after %zu bytes: %s\n", written + off, n < 0 ? errno_name(errno) : "EOF");
          return 1;
        }
        off += (size_t)n;
      }
      written += len;
      len = 0;
    }
  }
  fprintf(stderr, "wrote %zu bytes\n", written);
  return 0;
}
