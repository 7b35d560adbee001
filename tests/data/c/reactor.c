/* A WASI reactor (wasi-libc, -mexec-model=reactor) that is also a data guest: _initialize runs
 * its constructor once, then every call of `append` adds its input to /data/log.txt (files
 * persist between calls), prints a line to stdout (which streams per call), and returns the
 * whole file. `inits` and `calls` are numeric exports. */
#include <stdio.h>

#include "data.h"

static int inits, calls;
static uint8_t buf[1 << 16];

__attribute__((constructor)) static void init(void) {
  inits++;
  printf("initialized\n");
  fflush(stdout);
}

DATA_EXPORT("inits") int32_t get_inits(void) { return inits; }
DATA_EXPORT("calls") int32_t get_calls(void) { return calls; }

DATA_EXPORT("append") int32_t append(void) {
  uint64_t n = data_read_input(buf, sizeof buf);
  FILE *f = fopen("/data/log.txt", "a");
  if (f == NULL) return 2;
  fwrite(buf, 1, n, f);
  fclose(f);
  f = fopen("/data/log.txt", "r");
  if (f == NULL) return 3;
  size_t len = fread(buf, 1, sizeof buf, f);
  fclose(f);
  printf("call %d: %llu bytes in, %zu in the file\n", ++calls, (unsigned long long)n, len);
  fflush(stdout);
  data_set_output(buf, len);
  return 0;
}
