//! `reborn taint NODE --reason TEXT [--severity] [--ttl] [--key]`.

use operator::api::wire::TaintRequest;
use store::{Severity, Taint};

use super::client::{Client, ClientError, segment};
use super::{output, print};
use crate::cli::TaintArgs;
use crate::exit_code::ExitStatus;

/// Taints a node; the controller replaces its instance.
pub async fn run(client: Client, args: &TaintArgs) -> Result<ExitStatus, ClientError> {
    let severity: Severity = match args.severity.parse() {
        Ok(s) => s,
        Err(_) => {
            eprintln!(
                "error: unknown severity {:?}; expected info, warning or critical",
                args.severity
            );
            return Ok(ExitStatus::InvalidInput);
        }
    };
    let req = TaintRequest {
        reason: args.reason.clone(),
        severity: Some(severity),
        ttl: args.ttl.map(|d| d.to_string()),
        key: Some(args.key.clone()),
    };
    let taint: Taint = client
        .post_json(&format!("/v1/nodes/{}/taint", segment(&args.node)), &req)
        .await?;
    let text = output::machine(args.client.output, &taint).unwrap_or_else(|| {
        format!(
            "node/{} tainted: taint {} ({}, {})\n",
            taint.node, taint.id, taint.key, taint.severity
        )
    });
    print(&text);
    Ok(ExitStatus::Success)
}
