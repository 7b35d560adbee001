// The Go guest programs of tests/wasi/ (GOOS=wasip1 GOARCH=wasm): one main package per
// behaviour, standard library only, so building them never downloads a module.
module nestbox.test/wasiguests

go 1.24
