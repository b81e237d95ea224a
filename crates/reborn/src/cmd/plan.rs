//! `reborn plan`.

use operator::PlanReport;

use super::client::{Client, ClientError};
use super::{output, print};
use crate::cli::PlanArgs;
use crate::exit_code::ExitStatus;

/// Shows what the next reconcile pass would do and why.
pub async fn run(client: Client, args: &PlanArgs) -> Result<ExitStatus, ClientError> {
    let report: PlanReport = client.get("/v1/plan").await?;
    let text = match output::machine(args.client.output, &report) {
        Some(t) => t,
        None if report.text.ends_with('\n') => report.text.clone(),
        None => format!("{}\n", report.text),
    };
    print(&text);
    Ok(ExitStatus::Success)
}
