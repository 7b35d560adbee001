//! `nestbox call MODULE EXPORT [INPUT]`: one data call (the data ABI, `docs/data-abi.md`:
//! Extism's `extism:host/env`) of an export, natively, with the core's `Sandbox` and
//! `drive_data`. The output's bytes go to stdout as they are; the guest's log messages to
//! stderr (`nestbox: log info: …`).
//!
//! With `--wasi` the module is instantiated with WASI preview1 (no preopens, empty stdin, its
//! stdout and stderr streamed to ours): a reactor's `_initialize` runs once first, and
//! `--repeat N` calls the export N times on the same instance (files, variables and the
//! guest's own state persist between the calls; each output is printed).
//!
//! Exit status: 0; [`EXIT_REFUSED`] when nestbox refuses (usage, unreadable file, integrity,
//! invalid module or imports, `INPUT_LIMIT`); [`EXIT_GUEST_FAILED`] when the guest fails
//! (`GUEST_ERROR`, a trap, a limit). Both end stderr with `nestbox: CODE: message`.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::process::ExitCode;

use nestbox::{
    CallOptions, DataConfig, Digest, Error, ErrorCode, GuestMemory, Hooks, HostCall, Instance,
    Limits, Sandbox, Value, WasiConfig, drive, drive_data,
};

use crate::args::{Args, read_bytes};
use crate::run::{
    EXIT_GUEST_FAILED, EXIT_REFUSED, bytes_with_suffix, error_line, number, status_of,
};

pub fn usage() -> String {
    let l = Limits::default();
    format!(
        "  call [OPTIONS] MODULE.wasm EXPORT [INPUT]
                                        one data call (docs/data-abi.md, Extism's ABI) of
                                        EXPORT with INPUT (a string; default empty); the
                                        output's bytes go to stdout
    --input-file FILE|-                 the input is FILE's bytes (- for our stdin)
    --config KEY=VALUE                  what the guest reads with config_get (repeatable)
    --max-var-bytes BYTES               its variables' cap (default 1M; 0 disables them)
    --max-input-bytes BYTES             input cap (default {input}); INPUT_LIMIT
    --max-output-bytes BYTES            output cap (default {output}); OUTPUT_LIMIT
    --fuel N, --timeout-ms MS, --max-memory-bytes BYTES, --integrity SRI   as for run
    --wasi                              with WASI preview1 (stdio streamed); a reactor's
                                        _initialize runs once first
    --preopen GUEST                     with --wasi: an empty writable in-memory directory at
                                        GUEST (repeatable; files persist across --repeat)
    --repeat N                          call N times on the same instance (default 1)
    --trace FILE|-                      write each call's trace (OTLP JSON, one line per call;
                                        also for a call that failed)
    --trace-spans N                     the most spans a trace keeps (default {spans})
    exit status: 0; {refused} when nestbox refuses; {failed} when the guest fails (GUEST_ERROR,
    a trap, a limit)",
        input = l.max_input_bytes,
        output = l.max_output_bytes,
        refused = EXIT_REFUSED,
        failed = EXIT_GUEST_FAILED,
        spans = crate::run::CLI_TRACE_SPANS,
    )
}

struct Options {
    module: String,
    export: String,
    input: Vec<u8>,
    limits: Limits,
    data: DataConfig,
    integrity: Option<String>,
    wasi: bool,
    preopens: Vec<String>,
    repeat: u64,
    trace: Option<String>,
    trace_spans: u32,
}

fn parse(items: Vec<String>) -> Result<Option<Options>, Error> {
    if items.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(None);
    }
    let mut args = Args::new(items);
    let mut limits = Limits::default();
    if let Some(fuel) = number(&mut args, "--fuel")? {
        limits.fuel = fuel;
    }
    if let Some(ms) = number(&mut args, "--timeout-ms")? {
        limits.timeout_ms = ms;
    }
    for (flag, slot) in [
        ("--max-memory-bytes", &mut limits.max_memory_bytes),
        ("--max-input-bytes", &mut limits.max_input_bytes),
        ("--max-output-bytes", &mut limits.max_output_bytes),
    ] {
        if let Some(text) = args.optional(flag)? {
            *slot = bytes_with_suffix(flag, &text)?;
        }
    }
    let mut data = DataConfig::default();
    if let Some(text) = args.optional("--max-var-bytes")? {
        data.max_var_bytes = bytes_with_suffix("--max-var-bytes", &text)?;
    }
    let mut config = BTreeMap::new();
    for spec in args.all("--config")? {
        let (key, value) = spec.split_once('=').ok_or_else(|| {
            Error::invalid_argument(format!("--config takes KEY=VALUE, got {spec:?}"))
        })?;
        config.insert(key.to_owned(), value.to_owned());
    }
    data.config = config;
    let integrity = args.optional("--integrity")?;
    let input_file = args.optional("--input-file")?;
    let wasi = args.flag("--wasi");
    let preopens = args.all("--preopen")?;
    if !wasi && !preopens.is_empty() {
        return Err(Error::invalid_argument("--preopen needs --wasi"));
    }
    let repeat = number(&mut args, "--repeat")?.unwrap_or(1);
    if repeat == 0 {
        return Err(Error::invalid_argument("--repeat must be > 0"));
    }
    let trace = args.optional("--trace")?;
    let trace_spans = crate::run::trace_spans(args.optional("--trace-spans")?, trace.is_some())?;
    let module = args.positional("MODULE")?;
    let export = args.positional("EXPORT")?;
    let inline = args.positional("INPUT").ok();
    args.finish()?;
    let input = match (inline, input_file) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid_argument(
                "give the input inline or with --input-file, not both",
            ));
        }
        (Some(text), None) => text.into_bytes(),
        (None, Some(path)) if path == "-" => {
            let mut bytes = Vec::new();
            // At most one byte over the cap is read: enough to refuse it with INPUT_LIMIT.
            std::io::stdin()
                .take(limits.max_input_bytes.saturating_add(1))
                .read_to_end(&mut bytes)
                .map_err(|e| Error::invalid_argument(format!("cannot read stdin: {e}")))?;
            bytes
        }
        (None, Some(path)) => read_bytes(&path)?,
        (None, None) => Vec::new(),
    };
    Ok(Some(Options {
        module,
        export,
        input,
        limits,
        data,
        integrity,
        wasi,
        preopens,
        repeat,
        trace,
        trace_spans,
    }))
}

pub fn main(items: Vec<String>) -> ExitCode {
    let options = match parse(items) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("usage: nestbox\n{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", error_line(&e));
            return ExitCode::from(EXIT_REFUSED);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("{}", error_line(&e));
            let status = if e.code() == ErrorCode::InputLimit {
                EXIT_REFUSED
            } else {
                status_of(e.code())
            };
            ExitCode::from(status)
        }
    }
}

fn run(options: &Options) -> Result<(), Error> {
    let bytes = read_bytes(&options.module)?;
    let expected = match &options.integrity {
        Some(sri) => Digest::parse(sri)?,
        None => Digest::of(&bytes),
    };
    let sandbox = Sandbox::new(options.limits.clone())?;
    let module = sandbox.load(&bytes, &expected)?;
    let mut hooks = CallHooks;
    let mut instance = if options.wasi {
        let config = WasiConfig {
            args: vec![options.module.clone()],
            preopens: options.preopens.iter().map(nestbox::Preopen::new).collect(),
            data: options.data.clone(),
            ..WasiConfig::default()
        };
        let mut instance = sandbox.instantiate_wasi(&module, &config)?;
        instance.set_retain_output(false);
        if module.exports().iter().any(|e| e.name == "_initialize") {
            drive(
                &mut instance,
                "_initialize",
                &[],
                &CallOptions::default(),
                &mut hooks,
            )?;
        }
        instance
    } else {
        sandbox.instantiate_with_data(&module, &nestbox::Grants::new(), &options.data)?
    };
    let call_options = CallOptions {
        trace: options.trace.as_ref().map(|_| options.trace_spans),
        ..CallOptions::default()
    };
    let mut traces = String::new();
    for _ in 0..options.repeat {
        let outcome = drive_data(
            &mut instance,
            &options.export,
            &options.input,
            &call_options,
            &mut hooks,
        );
        print_logs(&mut instance);
        if let (Some(target), Some(trace)) = (&options.trace, instance.take_trace()) {
            traces.push_str(&trace.to_otlp_json().to_string());
            traces.push('\n');
            write_traces(target, &traces)?;
        }
        let outcome = outcome?;
        let mut stdout = std::io::stdout().lock();
        let written = stdout
            .write_all(outcome.output.as_deref().unwrap_or_default())
            .and_then(|()| stdout.flush());
        if let Err(e) = written {
            return Err(Error::invalid_argument(format!("cannot write stdout: {e}")));
        }
    }
    Ok(())
}

/// Writes the traces so far (JSON Lines) to `target` (`-`: stderr, the newest only).
fn write_traces(target: &str, traces: &str) -> Result<(), Error> {
    if target == "-" {
        let last = traces.lines().last().unwrap_or_default();
        eprintln!("{last}");
        return Ok(());
    }
    std::fs::write(target, traces)
        .map_err(|e| Error::invalid_argument(format!("cannot write {target}: {e}")))
}

fn print_logs(instance: &mut Instance) {
    for line in instance.take_logs() {
        let message: String = line
            .message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        eprintln!("nestbox: log {}: {message}", line.level);
    }
}

/// No capabilities; WASI output streamed to ours.
struct CallHooks;

impl Hooks for CallHooks {
    fn host_call(&mut self, call: &HostCall, _: &mut GuestMemory<'_>) -> Result<Vec<Value>, Error> {
        Err(Error::host_failed(format!(
            "nestbox call grants no capabilities, yet {} was called",
            call.import
        )))
    }

    fn streams_output(&self) -> bool {
        true
    }

    fn output(&mut self, out: &[u8], err: &[u8]) {
        let _ = std::io::stdout().write_all(out);
        let _ = std::io::stderr().write_all(err);
    }
}
