/* A C guest of the data ABI (docs/data-abi.md), built by tests/data/build.sh with clang for
 * wasm32 without libc. Exports take no parameters and return 0 for success. */
#include "data.h"

static uint8_t buf[1 << 16];

/* The input, upper-cased (ASCII). */
DATA_EXPORT("upper") int32_t upper(void) {
  uint64_t n = data_read_input(buf, sizeof buf);
  for (uint64_t i = 0; i < n; i++)
    if (buf[i] >= 'a' && buf[i] <= 'z') buf[i] -= 32;
  data_set_output(buf, n);
  return 0;
}

/* The input, unchanged, up to 64 KiB. */
DATA_EXPORT("echo") int32_t echo(void) {
  data_set_output(buf, data_read_input(buf, sizeof buf));
  return 0;
}

/* An error message and status 1. */
DATA_EXPORT("fail") int32_t fail(void) {
  static const uint8_t msg[] = "c guest failed on purpose";
  data_error_set(data_new_block(msg, sizeof msg - 1));
  return 1;
}

/* Lies: an output length past the end of its block. */
DATA_EXPORT("lie_length") int32_t lie_length(void) {
  uint64_t h = data_alloc(4);
  data_output_set(h, 4096);
  return 0;
}

/* Lies: reads from an address that is no block. */
DATA_EXPORT("lie_pointer") int32_t lie_pointer(void) {
  return data_load_u8(12345);
}

/* A numeric export on the same guest (the benchmark's baseline). */
DATA_EXPORT("add") int32_t add(int32_t a, int32_t b) { return a + b; }
