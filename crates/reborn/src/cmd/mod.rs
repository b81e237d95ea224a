//! One module per subcommand; `run` dispatches.

#[path = "../client/mod.rs"]
pub mod client;
#[path = "../output.rs"]
pub mod output;

mod apply;
mod breaker;
mod delete;
mod demo;
mod describe;
mod events;
mod get;
pub mod gold;
mod plan;
mod run;
mod schema;
mod sim;
mod taint;
mod untaint;
mod validate;

use std::future::Future;

use self::client::{Client, ClientError};
use crate::cli::{ClientArgs, Command};
use crate::exit_code::ExitStatus;

/// Runs one subcommand to completion.
pub fn run(command: Command) -> anyhow::Result<ExitStatus> {
    match command {
        Command::Validate(args) => validate::run(&args),
        Command::Schema => schema::run(),
        Command::Sim(args) => runtime()?.block_on(sim::run(args)),
        Command::Run(args) => runtime()?.block_on(run::run(args)),
        Command::Demo(args) => runtime()?.block_on(demo::run(args)),
        Command::Apply(args) => {
            // Local validation first: exit 2 with diagnostics before any network call.
            match apply::prepare(&args) {
                Ok(body) => client_command(&args.client, |c| apply::run(c, &args, body)),
                Err(status) => Ok(status),
            }
        }
        Command::Get(args) => client_command(&args.client, |c| get::run(c, &args)),
        Command::Describe(args) => client_command(&args.client, |c| describe::run(c, &args)),
        Command::Delete(args) => client_command(&args.client, |c| delete::run(c, &args)),
        Command::Taint(args) => client_command(&args.client, |c| taint::run(c, &args)),
        Command::Untaint(args) => client_command(&args.client, |c| untaint::run(c, &args)),
        Command::Plan(args) => client_command(&args.client, |c| plan::run(c, &args)),
        Command::Events(args) => client_command(&args.client, |c| events::run(c, &args)),
        Command::Breaker(args) => client_command(&args.client, |c| breaker::run(c, &args)),
        Command::Gold(args) => gold::run(args),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs a client command: builds the API client, runs `f` on a small runtime, and turns a
/// [`ClientError`] into its message on stderr and its documented exit code.
fn client_command<F, Fut>(args: &ClientArgs, f: F) -> anyhow::Result<ExitStatus>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = Result<ExitStatus, ClientError>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = Client::new(&args.server, args.token.clone()).map(f);
    let outcome = match result {
        Ok(fut) => rt.block_on(fut),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(status) => Ok(status),
        Err(e) => {
            if let Some(details) = e.details() {
                eprintln!("{}", details.trim_end());
            } else {
                eprintln!("error: {e}");
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    eprintln!("  caused by: {cause}");
                    source = cause.source();
                }
            }
            Ok(e.exit_status())
        }
    }
}

/// Prints text to stdout without a trailing newline of its own.
fn print(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    // A closed pipe (`reborn get nodes | head`) is not an error worth reporting.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
