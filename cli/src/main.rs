//! `nestbox`: the native command-line runner, built from the same core as the browser build.
//! Run `nestbox help` for the commands.

use std::process::ExitCode;

mod args;
mod audit;
mod call;
mod demo;
mod go;
mod keys;
mod run;

/// Exit status when nestbox itself refuses: bad usage, unreadable input, a module that fails
/// integrity or policy (as `env` and container runners use 125).
pub const EXIT_USAGE: u8 = 125;

fn usage() -> String {
    format!(
        "usage: nestbox <command> [options]\n\ncommands:\n{}\n{}\n{}\n  demo                                  run the demo guest natively: result, metrics, a limit, a tampered module\n{}\n{}",
        run::usage(),
        call::usage(),
        go::usage(),
        keys::USAGE,
        audit::USAGE
    )
}

fn main() -> ExitCode {
    let mut items: Vec<String> = std::env::args().skip(1).collect();
    if items.is_empty() {
        eprintln!("{}", usage());
        return ExitCode::from(EXIT_USAGE);
    }
    let command = items.remove(0);
    if command == "run" {
        // Its own statuses: the guest's exit code, or 125/126 (run::EXIT_*).
        return run::main(items);
    }
    if command == "call" {
        return call::main(items);
    }
    if command == "go" {
        return go::main(items);
    }
    let args = args::Args::new(items);
    let result = match command.as_str() {
        "demo" => args.finish().map(|()| demo::run()),
        "keygen" => keys::keygen(args),
        "sign" => keys::sign(args),
        "verify" => keys::verify(args),
        "audit" => audit::run(args),
        "-h" | "--help" | "help" => {
            println!("{}", usage());
            Ok(ExitCode::SUCCESS)
        }
        other => Err(nestbox::Error::invalid_argument(format!(
            "unknown command {other:?}"
        ))),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nestbox {command}: {} {}", e.code(), e.message());
            ExitCode::from(EXIT_USAGE)
        }
    }
}
