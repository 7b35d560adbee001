//! `nestbox-fuzz [--native] [--cases N] [--seconds S] [--seed FIRST]` runs cases FIRST, FIRST+1,
//! … until N cases or S seconds (the environment's `FUZZ_CASES`/`FUZZ_SECONDS` when not given;
//! 1000 cases when neither is), prints the outcomes, writes every failing case to
//! `regressions/` (`regressions/native/` with `--native`) and exits with 1 if there was one.
//! `--native` runs the native tier's instrumentation differentially instead
//! ([`nestbox_fuzz::run_native_case`]). `nestbox-fuzz [--native] --replay FILE` runs one case's
//! bytes.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use nestbox_fuzz::{Labels, Tally, case_bytes, run_case, run_native_case, save_regression};

fn number(args: &[String], flag: &str, env: &str) -> Result<Option<u64>, String> {
    let text = match args.iter().position(|a| a == flag) {
        Some(i) => args
            .get(i + 1)
            .cloned()
            .ok_or(format!("{flag} needs a value"))?,
        None => match std::env::var(env) {
            Ok(v) if !v.is_empty() => v,
            _ => return Ok(None),
        },
    };
    text.parse()
        .map(Some)
        .map_err(|_| format!("{flag} takes a non-negative integer, got {text:?}"))
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let native = args.first().is_some_and(|a| a == "--native");
    if native {
        args.remove(0);
    }
    let run: fn(&[u8]) -> Result<Labels, String> = if native { run_native_case } else { run_case };
    if let [flag, file] = args.as_slice() {
        if flag == "--replay" {
            return replay(file, run);
        }
    }
    let parsed = (|| {
        for a in args.iter().step_by(2) {
            if !matches!(a.as_str(), "--cases" | "--seconds" | "--seed") {
                return Err(format!("unexpected argument {a:?}"));
            }
        }
        Ok((
            number(&args, "--cases", "FUZZ_CASES")?,
            number(&args, "--seconds", "FUZZ_SECONDS")?,
            number(&args, "--seed", "FUZZ_SEED")?.unwrap_or(0),
        ))
    })();
    let (cases, seconds, first) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "nestbox-fuzz: {e}\nusage: nestbox-fuzz [--native] [--cases N] [--seconds S] [--seed FIRST]"
            );
            return ExitCode::from(2);
        }
    };
    let cases = match (cases, seconds) {
        (None, None) => Some(1000),
        (c, _) => c,
    };
    // A case that kills the process (a stack overflow aborts, it cannot be caught) is found
    // in this file the next time, and kept.
    let current = nestbox_fuzz::regressions_dir().join("current.in-progress");
    if let Ok(bytes) = std::fs::read(&current) {
        let name = format!("crash-{}", nestbox_fuzz::short_digest(&bytes));
        match save_regression(&name, &bytes) {
            Ok(path) => eprintln!(
                "nestbox-fuzz: the previous run died in a case; kept as {}",
                path.display()
            ),
            Err(e) => eprintln!("nestbox-fuzz: cannot keep the case the previous run died in: {e}"),
        }
        let _ = std::fs::remove_file(&current);
    }
    // One line per panic (a caught one is a case's outcome, not the run's end).
    std::panic::set_hook(Box::new(|info| eprintln!("nestbox-fuzz: {info}")));
    if cfg!(panic = "abort") {
        eprintln!(
            "nestbox-fuzz: this build aborts on a panic, so a panic inside wasmi ends the run \
             (the case is kept as regressions/crash-….bin next time); build with \
             `--profile fuzz` to catch it and go on"
        );
    }
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut seed = first;
    loop {
        if cases.is_some_and(|n| tally.cases >= n) || deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
        let bytes = case_bytes(seed);
        if std::fs::create_dir_all(nestbox_fuzz::regressions_dir())
            .and_then(|()| std::fs::write(&current, &bytes))
            .is_err()
        {
            eprintln!("nestbox-fuzz: cannot write {}", current.display());
            return ExitCode::from(2);
        }
        let result = run(&bytes);
        if let Err(bug) = &result {
            let name = if native {
                format!("native/seed-{seed}")
            } else {
                format!("seed-{seed}")
            };
            match save_regression(&name, &bytes) {
                Ok(path) => eprintln!("BUG in case {seed}: {bug}\n  saved to {}", path.display()),
                Err(e) => eprintln!("BUG in case {seed}: {bug}\n  (could not save it: {e})"),
            }
        }
        tally.add(&result);
        seed = seed.wrapping_add(1);
    }
    let _ = std::fs::remove_file(&current);
    let secs = started.elapsed().as_secs_f64();
    print!("{}", tally.report());
    println!(
        "seeds {first}..{seed} in {secs:.1} s ({:.0} cases/s)",
        tally.cases as f64 / secs.max(1e-9)
    );
    if tally.bugs > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `--replay FILE`: runs one case's bytes and prints what it came to.
fn replay(file: &str, run: fn(&[u8]) -> Result<Labels, String>) -> ExitCode {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("nestbox-fuzz: cannot read {file}: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&bytes) {
        Ok(labels) => {
            println!("ok: {}", labels.join(" "));
            ExitCode::SUCCESS
        }
        Err(bug) => {
            println!("BUG: {bug}");
            ExitCode::from(1)
        }
    }
}
