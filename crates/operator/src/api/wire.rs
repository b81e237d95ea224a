//! The API's request and response bodies, shared with the `reborn` CLI (one definition).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{Event, InstanceRecord, Severity, Taint};

/// Every error response: `{"error": "...", "code": "..."}`, plus diagnostics for an invalid
/// manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// A stable machine-readable code: `unauthenticated`, `forbidden`, `invalid_manifest`,
    /// `bad_request`, `not_found`, `conflict`, `payload_too_large`, `unavailable`, `internal`.
    pub code: String,
    /// For `invalid_manifest`: each problem with its location.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<WireDiagnostic>,
    /// For `invalid_manifest`: the diagnostics rendered as the CLI prints them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendered: Option<String>,
}

/// One manifest problem (the model's `Diagnostic` on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireDiagnostic {
    /// The file name (`request.yaml` for an API body).
    pub file: String,
    /// 1-based line (0 when there is none).
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl From<&model::Diagnostic> for WireDiagnostic {
    fn from(d: &model::Diagnostic) -> Self {
        Self {
            file: d.file.clone(),
            line: d.line,
            col: d.col,
            message: d.message.clone(),
            help: d.help.clone(),
        }
    }
}

/// What `apply` did to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyAction {
    /// It did not exist.
    Created,
    /// Its spec or labels changed.
    Configured,
    /// It was identical.
    Unchanged,
}

impl std::fmt::Display for ApplyAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ApplyAction::Created => "created",
            ApplyAction::Configured => "configured",
            ApplyAction::Unchanged => "unchanged",
        })
    }
}

/// One resource in an apply response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyItem {
    /// The manifest kind, e.g. `Node`.
    pub kind: String,
    /// The name.
    pub name: String,
    /// What happened.
    pub action: ApplyAction,
    /// The generation after the apply (bumped on spec changes).
    pub generation: u64,
    /// The resourceVersion after the apply.
    pub resource_version: u64,
}

/// `POST /v1/apply` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResponse {
    /// The store revision after the transaction.
    pub revision: u64,
    /// One entry per applied resource, in manifest order.
    pub items: Vec<ApplyItem>,
}

/// One resource as `get` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceView {
    /// The manifest kind.
    pub kind: String,
    /// The name.
    pub name: String,
    /// `metadata.labels`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The declared spec.
    pub spec: Value,
    /// What the operator observed (`null` until the controller writes it).
    #[serde(default)]
    pub status: Value,
    /// Bumped on every spec change.
    pub generation: u64,
    /// The revision of the last change (use it for conflict-checked deletes).
    pub resource_version: u64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// For nodes: the VM instance currently backing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceRecord>,
    /// For nodes: how many taints are active on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_taints: Option<usize>,
}

impl ResourceView {
    /// The view of a stored resource (no node extras).
    pub fn from_resource(r: store::Resource) -> Self {
        Self {
            kind: r.key.kind,
            name: r.key.name,
            labels: r.labels,
            spec: r.spec,
            status: r.status,
            generation: r.generation,
            resource_version: r.resource_version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            instance: None,
            active_taints: None,
        }
    }

    /// The conditions in `status.conditions`, if the controller wrote any.
    pub fn conditions(&self) -> Vec<Condition> {
        self.status
            .get("conditions")
            .and_then(|c| serde_json::from_value::<Vec<Condition>>(c.clone()).ok())
            .unwrap_or_default()
    }

    /// The status of the `Ready` condition: `Some(true)` / `Some(false)`, `None` if unknown.
    pub fn ready(&self) -> Option<bool> {
        self.conditions()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .and_then(|c| c.is_true())
    }
}

/// A status condition, read leniently from what the controller writes: `type`, `status`
/// (`"True"`/`"False"`/`"Unknown"` or a boolean), and optional reason, message, times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Tainted`, `Drifted`, `Replacing`, `Held`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `"True"`, `"False"`, `"Unknown"` (or a boolean).
    pub status: Value,
    /// A CamelCase reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<u64>,
}

impl Condition {
    /// The status as a boolean, if it is one.
    pub fn is_true(&self) -> Option<bool> {
        match &self.status {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }

    /// The status as text (`True`, `False`, `Unknown`).
    pub fn status_text(&self) -> String {
        match self.is_true() {
            Some(true) => "True".to_owned(),
            Some(false) => "False".to_owned(),
            None => match &self.status {
                Value::String(s) => s.clone(),
                _ => "Unknown".to_owned(),
            },
        }
    }
}

/// `GET /v1/{kind}` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceList {
    /// The store revision of the read.
    pub revision: u64,
    /// The resources, ordered by name.
    pub items: Vec<ResourceView>,
}

/// `POST /v1/nodes/{name}/taint` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaintRequest {
    /// Why, for a person (required, not empty).
    pub reason: String,
    /// Default `warning` (replace within budgets); `critical` also isolates at once.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// How long the taint lives, e.g. `24h`; default until cleared.
    #[serde(default)]
    pub ttl: Option<String>,
    /// The taint key; default `manual`.
    #[serde(default)]
    pub key: Option<String>,
    /// Quarantine instead of replace, e.g. `24h`: the instance is isolated at once and
    /// replaced, and the old one is kept stopped and isolated this long (from now) before it
    /// is destroyed. Default severity then `critical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<String>,
}

/// `POST /v1/nodes/{name}/untaint` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UntaintResponse {
    /// The taints that were cleared (they stay in history).
    pub cleared: Vec<Taint>,
}

/// `GET /v1/taints` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaintList {
    /// Taints, ordered by id: active ones, or every one with `?all=1`.
    pub items: Vec<Taint>,
}

/// `GET /v1/nodes/{name}/describe` response: everything about one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeDescription {
    /// The node resource (spec, status, generation, resourceVersion).
    pub node: ResourceView,
    /// The current VM instance, if any.
    pub instance: Option<InstanceRecord>,
    /// Status conditions.
    pub conditions: Vec<Condition>,
    /// Every taint on the node (active first by id, then the rest of the history), with evidence.
    pub taints: Vec<Taint>,
    /// The node's most recent events, oldest first.
    pub events: Vec<Event>,
}

/// `GET /v1/events` response (without `follow`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventList {
    /// Events, oldest first.
    pub items: Vec<Event>,
}

/// `GET /healthz` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok` when the API answers.
    pub status: String,
}

/// `DELETE /v1/{kind}/{name}` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deleted {
    /// The resource as it was.
    pub deleted: ResourceView,
}
