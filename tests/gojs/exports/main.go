// A Go js/wasm guest that registers a map of exported functions on js.Global() and blocks in
// select {}, as browser Go programs do. nestbox's tests call each one from the page, natively
// and through the CLI.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall/js"
	"time"
	"unicode/utf8"
)

var ticks = 0
var background = "not yet"

func bytesOf(v js.Value) []byte {
	b := make([]byte, v.Length())
	js.CopyBytesToGo(b, v)
	return b
}

var exports = map[string]func(this js.Value, args []js.Value) any{
	// The number of runes of a string.
	"strlen": func(this js.Value, args []js.Value) any {
		return utf8.RuneCountInString(args[0].String())
	},
	// JSON text in, parsed by encoding/json, an object out (and its re-encoding).
	"jsonRoundTrip": func(this js.Value, args []js.Value) any {
		var v map[string]any
		if err := json.Unmarshal([]byte(args[0].String()), &v); err != nil {
			return map[string]any{"error": err.Error()}
		}
		v["seenByGo"] = true
		out, _ := json.Marshal(v)
		return map[string]any{"value": v, "json": string(out)}
	},
	// A Uint8Array in, reversed and with its sum, as a new Uint8Array.
	"reverseBytes": func(this js.Value, args []js.Value) any {
		in := bytesOf(args[0])
		out := make([]byte, len(in))
		sum := 0
		for i, b := range in {
			out[len(in)-1-i] = b
			sum += int(b)
		}
		dst := js.Global().Get("Uint8Array").New(len(out))
		js.CopyBytesToJS(dst, out)
		return map[string]any{"bytes": dst, "sum": sum}
	},
	// Calls the granted capability host.double, then host.greet.
	"useCapability": func(this js.Value, args []js.Value) any {
		host := js.Global().Get("host")
		doubled := host.Call("double", args[0].Int())
		greeting := host.Call("greet", map[string]any{"name": "gopher", "n": doubled})
		return map[string]any{"doubled": doubled.Int(), "greeting": greeting.String()}
	},
	// Reads the plain data the page granted.
	"readConfig": func(this js.Value, args []js.Value) any {
		cfg := js.Global().Get("config")
		return fmt.Sprintf("%s:%d:%v", cfg.Get("name").String(), cfg.Get("size").Int(), cfg.Get("tags").Index(1).String())
	},
	// Prints (os.Stdout goes through fs.write and its callback) and returns.
	"hello": func(this js.Value, args []js.Value) any {
		fmt.Println("hello from Go,", args[0].String())
		fmt.Fprintln(os.Stderr, "to stderr")
		return strings.ToUpper(args[0].String())
	},
	// Panics with a message.
	"panics": func(this js.Value, args []js.Value) any {
		panic("gopher says no: " + args[0].String())
	},
	// Never returns.
	"spin": func(this js.Value, args []js.Value) any {
		n := 0
		for {
			n++
		}
	},
	// What the goroutine and the ticker did so far.
	"state": func(this js.Value, args []js.Value) any {
		return map[string]any{"ticks": ticks, "background": background}
	},
	// Starts a goroutine that calls the granted capability host.tick(i) for i = 1..n, one
	// every 5 ms, and returns at once: the calls happen while the program is idle between
	// calls (the embedder runs Go's timers when they are due).
	"watch": func(this js.Value, args []js.Value) any {
		n := args[0].Int()
		host := js.Global().Get("host")
		go func() {
			for i := 1; i <= n; i++ {
				time.Sleep(5 * time.Millisecond)
				host.Call("tick", i)
			}
		}()
		return nil
	},
	// Starts a goroutine that panics after 5 ms, while the program is idle.
	"panicLater": func(this js.Value, args []js.Value) any {
		go func() {
			time.Sleep(5 * time.Millisecond)
			panic("a goroutine gave up")
		}()
		return nil
	},
	// Exits the program with a status.
	"exit": func(this js.Value, args []js.Value) any {
		os.Exit(args[0].Int())
		return nil
	},
}

func main() {
	// A goroutine and a timer that run in Go's scheduler between calls.
	done := make(chan string)
	go func() {
		time.Sleep(5 * time.Millisecond)
		done <- "goroutine finished after a sleep"
	}()
	background = <-done
	go func() {
		for range time.Tick(10 * time.Millisecond) {
			ticks++
		}
	}()
	for name, f := range exports {
		js.Global().Set(name, js.FuncOf(f))
	}
	fmt.Println("exports registered:", len(exports))
	select {}
}
