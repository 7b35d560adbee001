// Prints argc, every argv[i] and every environment variable, in the order the runtime gave
// them (args_get, environ_get). Values are wrapped in <> so empty ones show.
#include <stdio.h>
#include <string.h>

extern char **environ;

int main(int argc, char **argv) {
  printf("argc=%d\n", argc);
  for (int i = 0; i < argc; i++) printf("argv[%d]=<%s>\n", i, argv[i]);
  int envc = 0;
  while (environ && environ[envc]) envc++;
  printf("envc=%d\n", envc);
  for (int i = 0; i < envc; i++) {
    const char *eq = strchr(environ[i], '=');
    int keylen = eq ? (int)(eq - environ[i]) : (int)strlen(environ[i]);
    printf("env[%d]=<%.*s>=<%s>\n", i, keylen, environ[i], eq ? eq + 1 : "");
  }
  return 0;
}
