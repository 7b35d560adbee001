//! Writes a line to stdout, then panics: the panic message goes to stderr and the program
//! aborts (`panic = "abort"`: a wasm `unreachable` trap). A runner must keep both outputs.
fn main() {
    println!("working on it");
    let given = std::env::args().nth(1);
    panic!("no number given (got {given:?})");
}
