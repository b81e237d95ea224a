//! `reborn untaint NODE`.

use operator::api::wire::UntaintResponse;

use super::client::{Client, ClientError, segment};
use super::{output, print};
use crate::cli::UntaintArgs;
use crate::exit_code::ExitStatus;

/// Clears every active taint of a node.
pub async fn run(client: Client, args: &UntaintArgs) -> Result<ExitStatus, ClientError> {
    let resp: UntaintResponse = client
        .post_json(
            &format!("/v1/nodes/{}/untaint", segment(&args.node)),
            &serde_json::json!({}),
        )
        .await?;
    let text =
        output::machine(args.client.output, &resp).unwrap_or_else(|| match resp.cleared.len() {
            0 => format!("node/{} has no active taint\n", args.node),
            n => format!("node/{} untainted: {n} taint(s) cleared\n", args.node),
        });
    print(&text);
    Ok(ExitStatus::Success)
}
