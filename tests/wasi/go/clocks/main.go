// Command clocks prints booleans only (values differ on every run): realtime is after
// 2020-01-01, monotonic never goes backwards over 1000 reads, both clocks report a resolution
// above zero.
package main

import (
	"fmt"
	"time"

	"nestbox.test/wasiguests/internal/guest"
)

func main() {
	fmt.Printf("realtime after 2020: %t\n", time.Now().Unix() > 1577836800)
	last := time.Now()
	monotonic := true
	for i := 0; i < 1000; i++ {
		t := time.Now()
		monotonic = monotonic && t.Sub(last) >= 0 // Sub uses the monotonic readings
		last = t
	}
	fmt.Printf("monotonic non-decreasing over 1000 reads: %t\n", monotonic)
	for _, c := range []struct {
		name string
		id   uint32
	}{{"realtime", guest.ClockRealtime}, {"monotonic", guest.ClockMonotonic}} {
		res, errno := guest.ClockRes(c.id)
		fmt.Printf("%s resolution > 0: %t\n", c.name, errno == 0 && res > 0)
	}
}
