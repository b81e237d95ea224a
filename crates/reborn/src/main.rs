//! `reborn`: the command-line binary. CLI, `sim` (the PVE simulator), `demo`, and the offline
//! manifest commands `validate` and `schema`. Composition only: behaviour lives in the library
//! crates; this crate parses flags, wires crates together and maps errors to exit codes.

mod cli;
mod cmd;
mod exit_code;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.log.as_deref());
    match cmd::run(cli.command) {
        Ok(code) => code.into(),
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            exit_code::ExitStatus::Unexpected.into()
        }
    }
}

/// Logs go to stderr; `--log` or `RUST_LOG` set the filter (default `info` for reborn's crates).
fn init_tracing(filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = filter
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("warn,reborn=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
