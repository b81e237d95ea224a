//! `POST /v1/apply`: validate manifests against what is already stored, then write them all
//! in one transaction.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Query, State};
use model::{Diagnostic, Diagnostics, Manifest, ManifestSet};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::{Expect, NewEvent, Op, OpResult, ResourceKey, ResourceWrite, Store, Txn};

use super::ApiState;
use super::auth::Caller;
use super::error::ApiError;
use super::resources::KINDS;
use super::wire::{ApplyAction, ApplyItem, ApplyResponse};

/// The file name diagnostics use for the request body.
pub(crate) const REQUEST_FILE: &str = "request.yaml";

/// Query of `POST /v1/apply`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApplyQuery {
    /// Only with exactly one manifest in the body: write only if the stored resourceVersion
    /// is this (0: only if it does not exist yet). Else 409 and nothing changes.
    #[serde(default)]
    resource_version: Option<u64>,
    /// Validate and report what would happen, without writing.
    #[serde(default)]
    dry_run: Option<bool>,
}

/// `POST /v1/apply` with a YAML body (one or more documents).
pub(crate) async fn apply(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ApplyQuery>,
    body: Body,
) -> Result<Json<ApplyResponse>, ApiError> {
    let text = super::body::text(body, state.max_body()).await?;
    let now = state.now();
    let dry_run = q.dry_run.unwrap_or(false);
    let response = state
        .blocking(move |store| {
            let manifests = validate(store, &text)?;
            if manifests.is_empty() {
                return Err(ApiError::BadRequest(
                    "the request holds no manifest".to_owned(),
                ));
            }
            let expect = match q.resource_version {
                None => Expect::Any,
                Some(_) if manifests.len() != 1 => {
                    return Err(ApiError::BadRequest(
                        "resourceVersion needs exactly one manifest in the body".to_owned(),
                    ));
                }
                Some(0) => Expect::Absent,
                Some(v) => Expect::Version(v),
            };
            write(store, manifests, expect, dry_run, &caller, now)
        })
        .await?;
    if !dry_run
        && response
            .items
            .iter()
            .any(|i| i.action != ApplyAction::Unchanged)
    {
        state.controller().wake();
    }
    Ok(Json(response))
}

/// Validates `text` together with the stored resources it does not redeclare, so a Node may
/// refer to a GoldImage applied earlier, and VMID ranges and addresses are checked against the
/// whole fleet. Returns the manifests of `text`, in order.
pub(crate) fn validate(store: &dyn Store, text: &str) -> Result<Vec<Manifest>, ApiError> {
    let Some(declared) = declared_names(text) else {
        // Not even YAML: the model reports the syntax errors.
        return match model::load_str(REQUEST_FILE, text) {
            Ok(set) => Ok(set.manifests()),
            Err(diagnostics) => Err(ApiError::InvalidManifest { diagnostics }),
        };
    };
    let mut combined = text.to_owned();
    if !combined.ends_with('\n') {
        combined.push('\n');
    }
    let body_lines = combined.lines().count();
    let mut context: Vec<(usize, usize, ResourceKey)> = Vec::new();
    for (_, kind) in KINDS {
        for r in store.list(kind.as_str())?.items {
            if declared.contains(&(kind.as_str().to_owned(), r.key.name.clone())) {
                continue;
            }
            let doc = stored_document(kind, &r)?;
            let start = combined.lines().count() + 2;
            combined.push_str("---\n");
            combined.push_str(&doc);
            let end = combined.lines().count();
            context.push((start, end, r.key.clone()));
        }
    }
    match model::load_str(REQUEST_FILE, &combined) {
        Ok(set) => Ok(only_declared(set, &declared)),
        Err(diagnostics) => Err(ApiError::InvalidManifest {
            diagnostics: relocate(diagnostics, body_lines, &context),
        }),
    }
}

/// `(kind, name)` of every document, read loosely; `None` if the text is not YAML.
fn declared_names(text: &str) -> Option<BTreeSet<(String, String)>> {
    use serde::Deserialize as _;
    let mut out = BTreeSet::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = serde_yaml::Value::deserialize(doc).ok()?;
        let kind = value.get("kind").and_then(|k| k.as_str());
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str());
        if let (Some(kind), Some(name)) = (kind, name) {
            out.insert((kind.to_owned(), name.to_owned()));
        }
    }
    Some(out)
}

/// A stored resource as a manifest document.
fn stored_document(kind: model::Kind, r: &store::Resource) -> Result<String, ApiError> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Doc<'a> {
        api_version: &'static str,
        kind: &'static str,
        metadata: Value,
        spec: &'a Value,
    }
    let mut metadata = json!({"name": r.key.name});
    if !r.labels.is_empty() {
        metadata["labels"] = json!(r.labels);
    }
    let doc = Doc {
        api_version: model::API_VERSION,
        kind: kind.as_str(),
        metadata,
        spec: &r.spec,
    };
    serde_yaml::to_string(&doc)
        .map_err(|e| ApiError::Internal(format!("cannot render stored {}: {e}", r.key)))
}

fn only_declared(set: ManifestSet, declared: &BTreeSet<(String, String)>) -> Vec<Manifest> {
    set.manifests()
        .into_iter()
        .filter(|m| {
            declared.contains(&(
                m.kind().as_str().to_owned(),
                m.metadata().name.as_str().to_owned(),
            ))
        })
        .collect()
}

/// Diagnostics pointing into the appended stored documents are renamed to the stored resource
/// (`stored Node/worker-1`) with a line relative to its document.
fn relocate(
    diagnostics: Diagnostics,
    body_lines: usize,
    context: &[(usize, usize, ResourceKey)],
) -> Diagnostics {
    let items: Vec<Diagnostic> = diagnostics
        .into_iter()
        .map(|mut d| {
            if d.line > body_lines
                && let Some((start, _, key)) =
                    context.iter().find(|(s, e, _)| (*s..=*e).contains(&d.line))
            {
                d.file = format!("stored {key}");
                d.line = d.line + 1 - start;
            }
            d
        })
        .collect();
    Diagnostics::new(items)
}

fn spec_and_labels(m: &Manifest) -> Result<(Value, BTreeMap<String, String>), ApiError> {
    let spec = match m {
        Manifest::Node(r) => serde_json::to_value(&r.spec),
        Manifest::GoldImage(r) => serde_json::to_value(&r.spec),
        Manifest::DisruptionBudget(r) => serde_json::to_value(&r.spec),
        Manifest::TaintPolicy(r) => serde_json::to_value(&r.spec),
    }
    .map_err(|e| ApiError::Internal(format!("cannot encode spec: {e}")))?;
    Ok((spec, m.metadata().labels.clone()))
}

fn write(
    store: &dyn Store,
    manifests: Vec<Manifest>,
    expect: Expect,
    dry_run: bool,
    caller: &Caller,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<ApplyResponse, ApiError> {
    let mut writes = Vec::new();
    let mut existed = Vec::new();
    for m in &manifests {
        let key = ResourceKey::new(m.kind().as_str(), m.metadata().name.as_str());
        let (spec, labels) = spec_and_labels(m)?;
        let before = store.get(&key)?;
        existed.push(before.clone());
        writes.push((
            ResourceWrite::new(key, spec)
                .with_labels(labels)
                .expecting(expect),
            before,
        ));
    }
    if dry_run {
        let items = writes
            .into_iter()
            .map(|(w, before)| dry_item(&w, before.as_ref()))
            .collect();
        return Ok(ApplyResponse {
            revision: store.revision()?,
            items,
        });
    }
    let txn: Txn = writes
        .into_iter()
        .map(|(w, _)| Op::PutResource(w))
        .collect();
    let outcome = store.commit(txn)?;
    let mut items = Vec::new();
    let mut events = Txn::new();
    for (result, before) in outcome.results.into_iter().zip(existed) {
        let OpResult::Resource { resource, changed } = result else {
            return Err(ApiError::Internal("apply returned no resource".to_owned()));
        };
        let action = match (changed, before) {
            (false, _) => ApplyAction::Unchanged,
            (true, Some(b)) if b.uid == resource.uid => ApplyAction::Configured,
            (true, _) => ApplyAction::Created,
        };
        if action != ApplyAction::Unchanged {
            events.push(Op::AppendEvent(NewEvent {
                at: now,
                node: (resource.key.kind == model::Kind::Node.as_str())
                    .then(|| resource.key.name.clone()),
                kind: "ResourceApplied".to_owned(),
                message: format!(
                    "{} {action} by {} (generation {})",
                    resource.key, caller.name, resource.generation
                ),
                data: json!({
                    "kind": resource.key.kind,
                    "name": resource.key.name,
                    "action": action,
                    "generation": resource.generation,
                    "by": caller.name,
                }),
            }));
        }
        items.push(ApplyItem {
            kind: resource.key.kind,
            name: resource.key.name,
            action,
            generation: resource.generation,
            resource_version: resource.resource_version,
        });
    }
    if !events.is_empty()
        && let Err(e) = store.commit(events)
    {
        // The resources are stored; losing the audit event is worth a log line, not a failure.
        tracing::warn!(error = %e, "could not record apply events");
    }
    Ok(ApplyResponse {
        revision: outcome.revision,
        items,
    })
}

fn dry_item(w: &ResourceWrite, before: Option<&store::Resource>) -> ApplyItem {
    let (action, generation, rv) = match before {
        None => (ApplyAction::Created, 1, 0),
        Some(b) if b.spec == w.spec && b.labels == w.labels => {
            (ApplyAction::Unchanged, b.generation, b.resource_version)
        }
        Some(b) => {
            let generation = if b.spec == w.spec {
                b.generation
            } else {
                b.generation + 1
            };
            (ApplyAction::Configured, generation, b.resource_version)
        }
    };
    ApplyItem {
        kind: w.key.kind.clone(),
        name: w.key.name.clone(),
        action,
        generation,
        resource_version: rv,
    }
}
