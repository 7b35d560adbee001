//! `nestbox`: the native command-line runner, built from the same core as the browser build.
//!
//! ```text
//! nestbox demo      run the demo guest and print its results, metrics and a limit being hit
//! ```

use std::process::ExitCode;

mod demo;

const USAGE: &str = "usage: nestbox <command>

commands:
  demo    run the demo guest natively and print its result and metrics";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => demo::run(),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("nestbox: unknown command {other:?}\n{USAGE}");
            ExitCode::from(2)
        }
        None => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
