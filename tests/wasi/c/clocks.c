// Clocks, as booleans only (values differ on every run): realtime is after 2020-01-01,
// monotonic never goes backwards over 1000 reads, both report a resolution above zero.
#include <time.h>

#include "common.h"

int main(void) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  printf("realtime after 2020: %s\n", now.tv_sec > 1577836800 ? "true" : "false");
  struct timespec last, t;
  clock_gettime(CLOCK_MONOTONIC, &last);
  int monotonic = 1;
  for (int i = 0; i < 1000; i++) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (t.tv_sec < last.tv_sec || (t.tv_sec == last.tv_sec && t.tv_nsec < last.tv_nsec)) monotonic = 0;
    last = t;
  }
  printf("monotonic non-decreasing over 1000 reads: %s\n", monotonic ? "true" : "false");
  struct timespec res;
  int ok = clock_getres(CLOCK_REALTIME, &res) == 0 && (res.tv_sec > 0 || res.tv_nsec > 0);
  printf("realtime resolution > 0: %s\n", ok ? "true" : "false");
  ok = clock_getres(CLOCK_MONOTONIC, &res) == 0 && (res.tv_sec > 0 || res.tv_nsec > 0);
  printf("monotonic resolution > 0: %s\n", ok ? "true" : "false");
  return 0;
}
