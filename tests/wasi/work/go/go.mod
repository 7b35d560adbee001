// The Go half of the "real work" benchmark (../README.md): GOOS=wasip1, standard library only,
// so building it never downloads a module.
module nestbox.test/work

go 1.24
