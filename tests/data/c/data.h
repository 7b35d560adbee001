/* The data ABI (docs/data-abi.md) for C guests: Extism's extism:host/env imports, declared
 * by hand. Handles are 64-bit addresses in the host's own block space, never pointers into
 * linear memory; 0 means none. */
#ifndef NESTBOX_DATA_H
#define NESTBOX_DATA_H

#include <stdint.h>

#define DATA_IMPORT(name) __attribute__((import_module("extism:host/env"), import_name(name)))

DATA_IMPORT("input_length") uint64_t data_input_length(void);
DATA_IMPORT("input_load_u8") uint8_t data_input_load_u8(uint64_t offset);
DATA_IMPORT("input_load_u64") uint64_t data_input_load_u64(uint64_t offset);
DATA_IMPORT("alloc") uint64_t data_alloc(uint64_t length);
DATA_IMPORT("free") void data_free(uint64_t handle);
DATA_IMPORT("length") uint64_t data_length(uint64_t handle);
DATA_IMPORT("store_u8") void data_store_u8(uint64_t addr, uint8_t byte);
DATA_IMPORT("store_u64") void data_store_u64(uint64_t addr, uint64_t word);
DATA_IMPORT("load_u8") uint8_t data_load_u8(uint64_t addr);
DATA_IMPORT("output_set") void data_output_set(uint64_t handle, uint64_t length);
DATA_IMPORT("error_set") void data_error_set(uint64_t handle);

#define DATA_EXPORT(name) __attribute__((export_name(name)))

/* Copies the input into buf (at most cap bytes); returns its length. */
static inline uint64_t data_read_input(uint8_t *buf, uint64_t cap) {
  uint64_t n = data_input_length(), i = 0;
  if (n > cap) n = cap;
  for (; i + 8 <= n; i += 8) {
    uint64_t w = data_input_load_u64(i);
    __builtin_memcpy(buf + i, &w, 8);
  }
  for (; i < n; i++) buf[i] = data_input_load_u8(i);
  return n;
}

/* A new block holding bytes (0 when len is 0 or nothing fits). */
static inline uint64_t data_new_block(const uint8_t *bytes, uint64_t len) {
  uint64_t h = data_alloc(len), i = 0;
  if (h == 0) return 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    __builtin_memcpy(&w, bytes + i, 8);
    data_store_u64(h + i, w);
  }
  for (; i < len; i++) data_store_u8(h + i, bytes[i]);
  return h;
}

static inline void data_set_output(const uint8_t *bytes, uint64_t len) {
  data_output_set(data_new_block(bytes, len), len);
}

#endif
