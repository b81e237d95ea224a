//! `reborn delete KIND NAME [--resource-version N]`.

use operator::api::wire::Deleted;

use super::client::{Client, ClientError, segment};
use super::get::resolve_kind;
use super::{output, print};
use crate::cli::DeleteArgs;
use crate::exit_code::ExitStatus;

/// Deletes one declared resource.
pub async fn run(client: Client, args: &DeleteArgs) -> Result<ExitStatus, ClientError> {
    let Some((url, kind)) = resolve_kind(&args.kind) else {
        eprintln!(
            "error: unknown kind {:?}; expected node, goldimage, budget or taintpolicy",
            args.kind
        );
        return Ok(ExitStatus::InvalidInput);
    };
    let query: Vec<(&str, String)> = args
        .resource_version
        .map(|v| vec![("resourceVersion", v.to_string())])
        .unwrap_or_default();
    let deleted: Deleted = client
        .delete(&format!("/v1/{url}/{}", segment(&args.name)), &query)
        .await?;
    let text = output::machine(args.client.output, &deleted)
        .unwrap_or_else(|| format!("{kind}/{} deleted\n", deleted.deleted.name));
    print(&text);
    Ok(ExitStatus::Success)
}
