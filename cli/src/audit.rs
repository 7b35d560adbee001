//! `nestbox audit verify FILE [--head HASH]`: the same verifier the library uses.

use std::process::ExitCode;

use nestbox::Error;
use nestbox::audit::{parse_jsonl, verify_segments};

use crate::args::Args;

pub const USAGE: &str = "  audit verify FILE.jsonl [--head HASH]  check an exported audit log's hash chain (and its head)";

pub fn run(mut args: Args) -> Result<ExitCode, Error> {
    match args.positional("audit subcommand")?.as_str() {
        "verify" => {}
        other => {
            return Err(Error::invalid_argument(format!(
                "unknown audit subcommand {other:?}"
            )));
        }
    }
    let head = args.optional("--head")?;
    let file = args.positional("FILE.jsonl")?;
    args.finish()?;
    let entries = parse_jsonl(&crate::args::read_text(&file)?)?;
    match verify_segments(&entries, head.as_deref()) {
        Ok(()) => {
            let last = entries
                .last()
                .map_or(nestbox::audit::GENESIS, |e| e.hash.as_str());
            println!("ok: {} entries, head {last}", entries.len());
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            println!(
                "TAMPERED: entry {} (line {}): {}",
                failure.index,
                failure.index + 1,
                failure.reason
            );
            Ok(ExitCode::from(1))
        }
    }
}
