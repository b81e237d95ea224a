//! `reborn describe node NAME`.

use operator::api::wire::NodeDescription;

use super::client::{Client, ClientError, segment};
use super::{output, print};
use crate::cli::DescribeArgs;
use crate::exit_code::ExitStatus;

/// Shows everything about one node.
pub async fn run(client: Client, args: &DescribeArgs) -> Result<ExitStatus, ClientError> {
    if !matches!(
        args.kind.to_ascii_lowercase().as_str(),
        "node" | "nodes" | "no"
    ) {
        eprintln!("error: only nodes can be described (reborn describe node NAME)");
        return Ok(ExitStatus::InvalidInput);
    }
    let d: NodeDescription = client
        .get(&format!("/v1/nodes/{}/describe", segment(&args.name)))
        .await?;
    let text = output::machine(args.client.output, &d)
        .unwrap_or_else(|| output::describe_node(&d, chrono::Utc::now()));
    print(&text);
    Ok(ExitStatus::Success)
}
