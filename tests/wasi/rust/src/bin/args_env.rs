//! Prints argc, every argv[i] and every environment variable, in the order the runtime gave
//! them (`args_get`, `environ_get`). Values are wrapped in <> so empty ones show.
use std::os::wasi::ffi::OsStrExt;

fn main() {
    let args: Vec<_> = std::env::args_os().collect();
    println!("argc={}", args.len());
    for (i, arg) in args.iter().enumerate() {
        println!("argv[{i}]=<{}>", String::from_utf8_lossy(arg.as_bytes()));
    }
    let vars: Vec<_> = std::env::vars_os().collect();
    println!("envc={}", vars.len());
    for (i, (key, value)) in vars.iter().enumerate() {
        println!(
            "env[{i}]=<{}>=<{}>",
            String::from_utf8_lossy(key.as_bytes()),
            String::from_utf8_lossy(value.as_bytes())
        );
    }
}
