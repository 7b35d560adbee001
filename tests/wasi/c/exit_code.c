// Exits with the code given in argv[1], after a line on stdout that must not be lost. It
// returns from main, so the exit goes through wasi-libc's _start: proc_exit(code) when the
// code is not 0, and no proc_exit call at all for 0 (the runtime must report 0 then).
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: exit_code CODE\n");
    return 2;
  }
  int code = atoi(argv[1]);
  printf("exiting with %d\n", code);
  return code;
}
