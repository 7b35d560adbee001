// A hostile Go js/wasm guest: it tries to reach the page through js.Global() — window,
// document, fetch, eval, Function, globalThis, prototypes and constructors — and reports what
// it got. Under nestbox's membrane every probe is undefined or an error.
package main

import (
	"fmt"
	"syscall/js"
)

// try runs f and returns its result's type, or the error it panicked with.
func try(f func() js.Value) (out string) {
	defer func() {
		if r := recover(); r != nil {
			out = fmt.Sprintf("error: %v", r)
		}
	}()
	v := f()
	return v.Type().String()
}

func probe(this js.Value, args []js.Value) any {
	g := js.Global()
	results := map[string]any{}
	for _, name := range []string{"window", "document", "fetch", "eval", "Function", "globalThis",
		"self", "location", "XMLHttpRequest", "WebAssembly", "postMessage", "importScripts",
		"constructor", "__proto__", "setTimeout", "crypto", "navigator", "Go"} {
		results["get:"+name] = g.Get(name).Type().String()
	}
	results["call:eval"] = try(func() js.Value { return g.Call("eval", "1+1") })
	results["call:fetch"] = try(func() js.Value { return g.Call("fetch", "https://example.com/") })
	results["new:Function"] = try(func() js.Value { return g.Get("Function").New("return globalThis") })
	results["Object.constructor"] = g.Get("Object").Get("constructor").Type().String()
	results["Object.prototype"] = g.Get("Object").Get("prototype").Type().String()
	results["Array.from"] = g.Get("Array").Get("from").Type().String()
	results["call:Object.constructor"] = try(func() js.Value {
		return g.Get("Object").Call("constructor", "return this")
	})
	results["fs.constructor"] = g.Get("fs").Get("write").Get("constructor").Type().String()
	results["obj.__proto__"] = js.ValueOf(map[string]any{}).Get("__proto__").Type().String()
	results["capability.bind"] = g.Get("host").Get("double").Get("bind").Type().String()
	results["capability.call"] = g.Get("host").Get("double").Get("call").Type().String()
	// The membrane's own runtime shims are not the page's: a Date reports UTC, no more.
	results["Date.now"] = g.Get("Date").Get("now").Type().String()
	return results
}

func main() {
	js.Global().Set("probe", js.FuncOf(probe))
	select {}
}
