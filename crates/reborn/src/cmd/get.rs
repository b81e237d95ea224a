//! `reborn get nodes|goldimages|budgets|taintpolicies|taints [NAME]`.

use operator::api::wire::{ResourceList, ResourceView, TaintList};

use super::client::{Client, ClientError, segment};
use super::{output, print};
use crate::cli::GetArgs;
use crate::exit_code::ExitStatus;

/// The URL kind and the store kind for what the user typed (plural, singular, any case).
pub(super) fn resolve_kind(text: &str) -> Option<(&'static str, &'static str)> {
    const KINDS: [(&str, &str, &[&str]); 4] = [
        ("nodes", "Node", &["node", "nodes", "no"]),
        (
            "goldimages",
            "GoldImage",
            &["goldimage", "goldimages", "gi"],
        ),
        (
            "budgets",
            "DisruptionBudget",
            &[
                "budget",
                "budgets",
                "disruptionbudget",
                "disruptionbudgets",
                "pdb",
            ],
        ),
        (
            "taintpolicies",
            "TaintPolicy",
            &["taintpolicy", "taintpolicies", "tp"],
        ),
    ];
    let lower = text.to_ascii_lowercase();
    KINDS
        .iter()
        .find(|(_, _, names)| names.contains(&lower.as_str()))
        .map(|(url, kind, _)| (*url, *kind))
}

/// Lists (or gets one of) a kind.
pub async fn run(client: Client, args: &GetArgs) -> Result<ExitStatus, ClientError> {
    let format = args.client.output;
    if matches!(args.kind.to_ascii_lowercase().as_str(), "taint" | "taints") {
        let list: TaintList = client
            .get_query("/v1/taints", &[("all", args.all.to_string())])
            .await?;
        let text = output::machine(format, &list)
            .unwrap_or_else(|| output::taint_table(&list.items, chrono::Utc::now()));
        print(&text);
        return Ok(ExitStatus::Success);
    }
    let Some((url, kind)) = resolve_kind(&args.kind) else {
        eprintln!(
            "error: unknown kind {:?}; expected nodes, goldimages, budgets, taintpolicies or taints",
            args.kind
        );
        return Ok(ExitStatus::InvalidInput);
    };
    let list = match &args.name {
        Some(name) => {
            let one: ResourceView = client.get(&format!("/v1/{url}/{}", segment(name))).await?;
            if let Some(text) = output::machine(format, &one) {
                print(&text);
                return Ok(ExitStatus::Success);
            }
            ResourceList {
                revision: one.resource_version,
                items: vec![one],
            }
        }
        None => client.get(&format!("/v1/{url}")).await?,
    };
    let text =
        output::machine(format, &list).unwrap_or_else(|| output::resource_table(kind, &list));
    print(&text);
    Ok(ExitStatus::Success)
}
