//! `reborn taint NODE --reason TEXT [--severity] [--ttl] [--key] [--quarantine RETENTION]`.

use operator::api::wire::TaintRequest;
use store::{Severity, Taint};

use super::client::{Client, ClientError, segment};
use super::{output, print};
use crate::cli::TaintArgs;
use crate::exit_code::ExitStatus;

/// Taints a node; the controller replaces its instance.
pub async fn run(client: Client, args: &TaintArgs) -> Result<ExitStatus, ClientError> {
    let severity: Option<Severity> = match args.severity.as_deref().map(str::parse) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(_)) => {
            eprintln!(
                "error: unknown severity {:?}; expected info, warning or critical",
                args.severity.as_deref().unwrap_or_default()
            );
            return Ok(ExitStatus::InvalidInput);
        }
    };
    let req = TaintRequest {
        reason: args.reason.clone(),
        severity,
        ttl: args.ttl.map(|d| d.to_string()),
        key: Some(args.key.clone()),
        quarantine: args.quarantine.map(|d| d.to_string()),
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
