// The Go js/wasm guests of nestbox's gojs membrane (GOOS=js GOARCH=wasm): one main package
// per program, standard library only, so building them never downloads a module.
module nestbox.test/gojsguests

go 1.24
