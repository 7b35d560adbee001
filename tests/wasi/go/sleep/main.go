// Command sleep sleeps argv[1] milliseconds (default 20) with time.Sleep (poll_oneoff on a
// clock) and checks that the monotonic clock advanced at least that much.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	ms := 20
	if len(os.Args) > 1 {
		if n, err := strconv.Atoi(os.Args[1]); err == nil {
			ms = n
		}
	}
	start := time.Now()
	time.Sleep(time.Duration(ms) * time.Millisecond)
	elapsed := time.Since(start)
	fmt.Printf("slept %d ms\n", ms)
	fmt.Printf("monotonic advanced >= %d ms: %t\n", ms, elapsed >= time.Duration(ms)*time.Millisecond)
	start = time.Now()
	time.Sleep(0)
	fmt.Printf("sleep 0 returns: %t\n", time.Since(start) < time.Second)
}
