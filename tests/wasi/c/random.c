// random_get (through getentropy): 32 bytes, not all zero, a second draw differs from the
// first, and the first draw in hex (compare two runs: equal under a seeded generator,
// different otherwise).
#include <unistd.h>

#include "common.h"

int main(void) {
  unsigned char first[32], second[32];
  if (getentropy(first, sizeof first) != 0 || getentropy(second, sizeof second) != 0) {
    printf("random_get: %s\n", errno_name(errno));
    return 1;
  }
  int nonzero = 0;
  for (int i = 0; i < 32; i++) nonzero |= first[i];
  printf("not all zero: %s\n", nonzero ? "true" : "false");
  printf("second draw differs: %s\n", memcmp(first, second, 32) != 0 ? "true" : "false");
  char hexbuf[65];
  hex(first, 32, hexbuf);
  printf("bytes: %s\n", hexbuf);
  return 0;
}
