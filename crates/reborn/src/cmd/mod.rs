//! One module per subcommand; `run` dispatches.

mod demo;
mod schema;
mod sim;
mod validate;

use crate::cli::Command;
use crate::exit_code::ExitStatus;

/// Runs one subcommand to completion.
pub fn run(command: Command) -> anyhow::Result<ExitStatus> {
    match command {
        Command::Validate(args) => validate::run(&args),
        Command::Schema => schema::run(),
        Command::Sim(args) => runtime()?.block_on(sim::run(args)),
        Command::Demo(args) => runtime()?.block_on(demo::run(args)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
