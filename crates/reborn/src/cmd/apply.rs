//! `reborn apply -f PATH... [--wait] [--dry-run]`: validate locally, send, optionally wait.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use operator::api::wire::{ApplyResponse, ResourceView};

use super::client::{Client, ClientError, segment};
use super::{output, print};
use crate::cli::ApplyArgs;
use crate::exit_code::ExitStatus;

/// How often `--wait` polls the nodes.
const POLL: Duration = Duration::from_millis(500);

/// Diagnostics the server settles with what it already stores: a Node referring to a GoldImage
/// applied earlier, a budget selecting nodes applied earlier. Everything else fails locally.
fn needs_server_context(d: &model::Diagnostic) -> bool {
    d.message.contains("which is not declared") || d.message.contains("selects no Node")
}

/// Validates the manifests locally and returns the request body (the files' text, in path
/// order). On invalid manifests prints every diagnostic and returns exit 2.
pub fn prepare(args: &ApplyArgs) -> Result<String, ExitStatus> {
    if let Err(diagnostics) = model::load_paths(&args.paths)
        && !diagnostics.iter().all(needs_server_context)
    {
        eprintln!("{diagnostics}");
        return Err(ExitStatus::InvalidInput);
    }
    let mut files = Vec::new();
    for p in &args.paths {
        if let Err(e) = collect(p, &mut files) {
            eprintln!("error: cannot read {}: {e}", p.display());
            return Err(ExitStatus::InvalidInput);
        }
    }
    files.sort();
    files.dedup();
    let mut texts = Vec::new();
    for f in &files {
        match std::fs::read_to_string(f) {
            Ok(t) => texts.push(t),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", f.display());
                return Err(ExitStatus::InvalidInput);
            }
        }
    }
    Ok(texts.join("\n---\n"))
}

/// The files `load_paths` reads: named files as they are; a directory's own `*.yaml` /
/// `*.yml` files, not its subdirectories' (like `kubectl apply -f DIR` without `-R`).
fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if !path.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        if p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
    Ok(())
}

/// Sends the manifests; with `--wait`, waits until every applied node is Ready.
pub async fn run(
    client: Client,
    args: &ApplyArgs,
    body: String,
) -> Result<ExitStatus, ClientError> {
    let path = if args.dry_run {
        "/v1/apply?dryRun=true"
    } else {
        "/v1/apply"
    };
    let resp: ApplyResponse = client.post_yaml(path, body).await?;
    let text = output::machine(args.client.output, &resp)
        .unwrap_or_else(|| output::apply_lines(&resp, args.dry_run));
    print(&text);
    if !args.wait || args.dry_run {
        return Ok(ExitStatus::Success);
    }
    let nodes: Vec<(String, u64)> = resp
        .items
        .iter()
        .filter(|i| i.kind == "Node")
        .map(|i| (i.name.clone(), i.generation))
        .collect();
    wait_ready(&client, &nodes, args.timeout.to_std()).await
}

/// Whether the node is Ready for (at least) `generation`.
fn is_ready(view: &ResourceView, generation: u64) -> bool {
    view.conditions().iter().any(|c| {
        c.type_ == "Ready"
            && c.is_true() == Some(true)
            && c.observed_generation.is_none_or(|g| g >= generation)
    })
}

async fn wait_ready(
    client: &Client,
    nodes: &[(String, u64)],
    timeout: Duration,
) -> Result<ExitStatus, ClientError> {
    if nodes.is_empty() {
        return Ok(ExitStatus::Success);
    }
    let bar = ProgressBar::new(nodes.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {pos}/{len} nodes Ready {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let started = Instant::now();
    loop {
        let mut waiting = Vec::new();
        for (name, generation) in nodes {
            let view: ResourceView = client.get(&format!("/v1/nodes/{}", segment(name))).await?;
            if !is_ready(&view, *generation) {
                waiting.push(name.as_str());
            }
        }
        bar.set_position((nodes.len() - waiting.len()) as u64);
        if waiting.is_empty() {
            bar.finish_and_clear();
            eprintln!(
                "all {} node(s) Ready after {}s",
                nodes.len(),
                started.elapsed().as_secs()
            );
            return Ok(ExitStatus::Success);
        }
        bar.set_message(format!("(waiting for {})", waiting.join(", ")));
        if started.elapsed() >= timeout {
            bar.abandon();
            eprintln!(
                "error: timed out after {}s waiting for {} to become Ready",
                timeout.as_secs(),
                waiting.join(", ")
            );
            return Ok(ExitStatus::TimedOut);
        }
        tokio::time::sleep(POLL).await;
    }
}
