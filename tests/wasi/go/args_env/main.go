// Command args_env prints argc, every argv[i] and every environment variable, in the order the
// runtime gave them (args_get, environ_get). Values are wrapped in <> so empty ones show.
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	fmt.Printf("argc=%d\n", len(os.Args))
	for i, arg := range os.Args {
		fmt.Printf("argv[%d]=<%s>\n", i, arg)
	}
	env := os.Environ()
	fmt.Printf("envc=%d\n", len(env))
	for i, kv := range env {
		key, value, _ := strings.Cut(kv, "=")
		fmt.Printf("env[%d]=<%s>=<%s>\n", i, key, value)
	}
}
