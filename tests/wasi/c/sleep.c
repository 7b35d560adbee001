// Sleeps argv[1] milliseconds (default 20) with nanosleep (poll_oneoff on a clock) and checks
// that the monotonic clock advanced at least that much.
#include <stdlib.h>
#include <time.h>

#include "common.h"

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
  long ms = argc > 1 ? atol(argv[1]) : 20;
  long long start = now_ns();
  struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&d, &d) != 0 && errno == EINTR) {
  }
  long long elapsed = now_ns() - start;
  printf("slept %ld ms\n", ms);
  printf("monotonic advanced >= %ld ms: %s\n", ms, elapsed >= ms * 1000000LL ? "true" : "false");
  start = now_ns();
  struct timespec zero = {0, 0};
  nanosleep(&zero, NULL);
  printf("sleep 0 returns: %s\n", now_ns() - start < 1000000000LL ? "true" : "false");
  return 0;
}
