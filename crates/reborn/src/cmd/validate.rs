//! `reborn validate -f PATH...`: offline manifest check.

use crate::cli::ValidateArgs;
use crate::exit_code::ExitStatus;

/// Prints a one-line summary (exit 0) or every diagnostic (exit 2).
pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitStatus> {
    match model::load_paths(&args.paths) {
        Ok(set) => {
            println!("{}", set.summary());
            Ok(ExitStatus::Success)
        }
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            Ok(ExitStatus::InvalidInput)
        }
    }
}
