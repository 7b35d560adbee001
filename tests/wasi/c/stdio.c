// Reads all of stdin, writes it back upper-cased (ASCII letters only, every other byte as is)
// followed by a byte and line count, and a summary line on stderr.
// With --summary stdout gets only the counts and an FNV-1a hash (for large inputs).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

int main(int argc, char **argv) {
  int summary = argc > 1 && strcmp(argv[1], "--summary") == 0;
  size_t cap = 4096, len = 0;
  unsigned char *input = malloc(cap);
  for (;;) {
    if (cap - len < 4096) input = realloc(input, cap *= 2);
    ssize_t n = read(0, input + len, 4096);
    if (n == 0) break;
    if (n < 0) {
      fprintf(stderr, "stdio: read failed: %s\n", errno_name(errno));
      return 1;
    }
    len += (size_t)n;
  }
  size_t lines = 0;
  uint32_t fnv = 0x811c9dc5u;
  for (size_t i = 0; i < len; i++) {
    lines += input[i] == '\n';
    fnv = (fnv ^ input[i]) * 0x01000193u;
    if (input[i] >= 'a' && input[i] <= 'z') input[i] -= 'a' - 'A';
  }
  if (summary) {
    printf("%zu bytes, %zu lines, fnv1a32=%08x\n", len, lines, fnv);
  } else {
    fwrite(input, 1, len, stdout);
    printf("--- %zu bytes, %zu lines\n", len, lines);
  }
  fflush(stdout);
  fprintf(stderr, "stdio: read %zu bytes\n", len);
  return 0;
}
