//! Exits with the code given in argv[1] (`proc_exit`), after a line on stdout that must not be
//! lost.
fn main() {
    let Some(code) = std::env::args().nth(1).and_then(|a| a.parse::<i32>().ok()) else {
        eprintln!("usage: exit_code CODE");
        std::process::exit(2);
    };
    println!("exiting with {code}");
    std::process::exit(code);
}
