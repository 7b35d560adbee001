// Command exit_code exits with the code given in argv[1] (os.Exit: proc_exit), after a line
// on stdout that must not be lost.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: exit_code CODE")
		os.Exit(2)
	}
	code, err := strconv.Atoi(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "usage: exit_code CODE")
		os.Exit(2)
	}
	fmt.Printf("exiting with %d\n", code)
	os.Exit(code)
}
