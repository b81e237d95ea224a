//! Serde types for Cerbos 0.55 file-backend audit lines (`access` and `decision`), tolerant of unknown fields.
//!
//! Cerbos writes only populated fields (zero values are omitted), so every field here has a
//! default. Unknown fields are ignored. Field names are the protobuf JSON names.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::shape::AnyVisitor;

/// One decoded audit line.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// An `access` entry: one per API call.
    Access(Box<AccessEntry>),
    /// A `decision` entry: one per CheckResources or PlanResources call.
    Decision(Box<DecisionEntry>),
    /// A valid JSON object of another logger or kind (e.g. an operational log line when the
    /// audit log goes to stdout). Not an error; counted and skipped.
    Other,
}

/// Why a line could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not valid JSON, truncated, or not an object.
    #[error("audit line is not a JSON object: {source}")]
    Json {
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// An audit entry without a `callId`.
    #[error("audit {kind} entry has no callId")]
    MissingCallId {
        /// `access` or `decision`.
        kind: &'static str,
    },
}

/// Every field of both kinds, so that a line is parsed once whatever its kind.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Raw {
    #[serde(rename = "log.logger")]
    logger: Option<String>,
    #[serde(rename = "log.kind")]
    kind: Option<String>,
    call_id: String,
    #[serde(deserialize_with = "lenient_time")]
    timestamp: Option<DateTime<Utc>>,
    peer: Peer,
    metadata: RequestMetadata,
    method: String,
    status_code: u32,
    policy_source: Option<Value>,
    request_context: Option<RequestContext>,
    oversized: bool,
    check_resources: Option<CheckResources>,
    plan_resources: Option<PlanResources>,
    audit_trail: Option<AuditTrail>,
}

/// Decodes one line (without its newline). Blank lines are `Other`.
pub fn decode_line(line: &[u8]) -> Result<Entry, DecodeError> {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return Ok(Entry::Other);
    }
    let raw: Raw =
        serde_json::from_slice(trimmed).map_err(|source| DecodeError::Json { source })?;
    if raw.logger.as_deref().is_some_and(|l| l != "cerbos.audit") {
        return Ok(Entry::Other);
    }
    let kind = match raw.kind.as_deref() {
        Some("access") => "access",
        Some("decision") => "decision",
        _ => return Ok(Entry::Other),
    };
    if raw.call_id.is_empty() {
        return Err(DecodeError::MissingCallId { kind });
    }
    Ok(if kind == "access" {
        Entry::Access(Box::new(AccessEntry {
            call_id: raw.call_id,
            timestamp: raw.timestamp,
            peer: raw.peer,
            metadata: raw.metadata,
            method: raw.method,
            status_code: raw.status_code,
            policy_source: raw.policy_source,
            request_context: raw.request_context,
            oversized: raw.oversized,
        }))
    } else {
        Entry::Decision(Box::new(DecisionEntry {
            call_id: raw.call_id,
            timestamp: raw.timestamp,
            peer: raw.peer,
            metadata: raw.metadata,
            check_resources: raw.check_resources,
            plan_resources: raw.plan_resources,
            audit_trail: raw.audit_trail,
            policy_source: raw.policy_source,
            request_context: raw.request_context,
            oversized: raw.oversized,
        }))
    })
}

/// The caller as Cerbos saw it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Peer {
    /// `ip:port` of the TCP (or, via the HTTP gateway, the HTTP) client. Not forgeable by the
    /// client.
    pub address: String,
    /// The client's user agent.
    pub user_agent: String,
    /// `X-Forwarded-For` as sent by the client, plus the remote IP (client-controlled prefix).
    pub forwarded_for: String,
    /// The authentication info (e.g. TLS), when present.
    pub auth_info: Option<Value>,
}

/// The values of one metadata key (`{"values": [...]}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct MetadataValues {
    /// Every value in order (repeated headers keep all).
    pub values: Vec<String>,
}

/// Request metadata copied by `includeMetadataKeys` (lower-case keys). Client-controlled.
pub type RequestMetadata = BTreeMap<String, MetadataValues>;

/// `requestContext` as sent in the request body (client-controlled).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RequestContext {
    /// Free-form annotations.
    pub annotations: Map<String, Value>,
}

/// An `access` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AccessEntry {
    /// The call id (ULID), shared with the decision entry.
    pub call_id: String,
    /// Taken before the handler ran.
    #[serde(deserialize_with = "lenient_time")]
    pub timestamp: Option<DateTime<Utc>>,
    /// The caller.
    pub peer: Peer,
    /// Request metadata (headers).
    pub metadata: RequestMetadata,
    /// The full gRPC method, e.g. `/cerbos.svc.v1.CerbosService/CheckResources`.
    pub method: String,
    /// gRPC status code; absent (0) on success.
    pub status_code: u32,
    /// Where the policies came from (`disk`, `git`, ...), as written.
    pub policy_source: Option<Value>,
    /// Request context, when the client sent one.
    pub request_context: Option<RequestContext>,
    /// Hub backend only.
    pub oversized: bool,
}

/// A `decision` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DecisionEntry {
    /// The call id (ULID), shared with the access entry.
    pub call_id: String,
    /// Taken after evaluation.
    #[serde(deserialize_with = "lenient_time")]
    pub timestamp: Option<DateTime<Utc>>,
    /// The caller.
    pub peer: Peer,
    /// Request metadata (headers).
    pub metadata: RequestMetadata,
    /// Present for CheckResources calls.
    pub check_resources: Option<CheckResources>,
    /// Present for PlanResources calls (never used for taints: Cerbos 0.55 plans ignore
    /// principal-policy denies).
    pub plan_resources: Option<PlanResources>,
    /// Which policy files decided.
    pub audit_trail: Option<AuditTrail>,
    /// Where the policies came from.
    pub policy_source: Option<Value>,
    /// Request context, when the client sent one.
    pub request_context: Option<RequestContext>,
    /// Hub backend only.
    pub oversized: bool,
}

/// The CheckResources part of a decision entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CheckResources {
    /// One per resource of the request; `outputs[i]` belongs to `inputs[i]`.
    pub inputs: Vec<CheckInput>,
    /// One per input, same order.
    pub outputs: Vec<CheckOutput>,
    /// An evaluation error, if any.
    pub error: String,
}

/// One resource of a CheckResources request, with the principal repeated.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CheckInput {
    /// Client-chosen request id (not unique).
    pub request_id: String,
    /// Who asked.
    pub principal: Principal,
    /// On what.
    pub resource: Resource,
    /// The actions asked for.
    pub actions: Vec<String>,
    /// Auxiliary data, when sent.
    pub aux_data: Option<Value>,
}

/// The principal as the client sent it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Principal {
    /// Principal id, e.g. `svc-worker` or `alice`.
    pub id: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Attributes.
    pub attr: Map<String, Value>,
    /// Policy version, if sent.
    pub policy_version: String,
    /// Scope, if sent.
    pub scope: String,
}

/// The resource as the client sent it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Resource {
    /// Resource kind, e.g. `tenant_document`.
    pub kind: String,
    /// Resource id.
    pub id: String,
    /// Attributes.
    pub attr: Map<String, Value>,
    /// Policy version, if sent.
    pub policy_version: String,
    /// Scope, if sent.
    pub scope: String,
}

/// The result for one input.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CheckOutput {
    /// Copied from the request.
    pub request_id: String,
    /// The resource id (the kind is only in the input).
    pub resource_id: String,
    /// The effect for each action.
    pub actions: BTreeMap<String, ActionEffect>,
    /// Derived roles that activated (a set; order varies).
    pub effective_derived_roles: Vec<String>,
    /// Rule outputs: the only way to tell an explicit DENY rule from no match.
    pub outputs: Vec<RuleOutput>,
    /// CEL errors (rule skipped).
    pub evaluation_errors: Vec<Value>,
    /// Schema validation errors.
    pub validation_errors: Vec<Value>,
}

/// The decision for one action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ActionEffect {
    /// The effect.
    pub effect: Effect,
    /// The deciding policy FQN (e.g. `resource.tenant_document.vdefault`) or `NO_MATCH`.
    pub policy: String,
    /// The scope, for scoped policies.
    pub scope: String,
}

/// A Cerbos effect as written in the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Effect {
    /// `EFFECT_ALLOW`.
    Allow,
    /// `EFFECT_DENY`.
    Deny,
    /// `EFFECT_NO_MATCH`.
    NoMatch,
    /// `EFFECT_UNSPECIFIED`, absent, or anything else.
    #[default]
    Unspecified,
}

impl Effect {
    /// The effect of a protobuf enum number.
    fn of_number(n: i64) -> Self {
        match n {
            1 => Effect::Allow,
            2 => Effect::Deny,
            3 => Effect::NoMatch,
            _ => Effect::Unspecified,
        }
    }

    /// The name Cerbos writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "EFFECT_ALLOW",
            Effect::Deny => "EFFECT_DENY",
            Effect::NoMatch => "EFFECT_NO_MATCH",
            Effect::Unspecified => "EFFECT_UNSPECIFIED",
        }
    }
}

impl<'de> Deserialize<'de> for Effect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Enum names normally; protojson may write the number inside repeated fields. Any
        // other valid JSON is `Unspecified`.
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Effect;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an effect name or number")
            }
            fn visit_str<E>(self, v: &str) -> Result<Effect, E> {
                Ok(match v {
                    "EFFECT_ALLOW" => Effect::Allow,
                    "EFFECT_DENY" => Effect::Deny,
                    "EFFECT_NO_MATCH" => Effect::NoMatch,
                    _ => Effect::Unspecified,
                })
            }
            fn visit_i64<E>(self, v: i64) -> Result<Effect, E> {
                Ok(Effect::of_number(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Effect, E> {
                Ok(i64::try_from(v).map_or(Effect::Unspecified, Effect::of_number))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Effect, E> {
                Ok(Effect::Unspecified)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Effect, E> {
                Ok(Effect::Unspecified)
            }
            fn visit_unit<E>(self) -> Result<Effect, E> {
                Ok(Effect::Unspecified)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Effect, A::Error> {
                AnyVisitor.visit_seq(seq).map(|_| Effect::Unspecified)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Effect, A::Error> {
                AnyVisitor.visit_map(map).map(|_| Effect::Unspecified)
            }
        }
        d.deserialize_any(V)
    }
}

/// The result of a rule's `output` expression.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RuleOutput {
    /// `<policy FQN>#<rule name>`.
    pub src: String,
    /// The action it was produced for.
    pub action: String,
    /// The output value.
    pub val: Value,
    /// An error evaluating the output expression, if any.
    pub error: String,
}

/// The PlanResources part of a decision entry (decoded for completeness; never feeds taints).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PlanResources {
    /// The request.
    pub input: PlanInput,
    /// The plan.
    pub output: PlanOutput,
    /// An evaluation error, if any.
    pub error: String,
}

/// A PlanResources request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PlanInput {
    /// Client-chosen request id.
    pub request_id: String,
    /// The actions.
    pub actions: Vec<String>,
    /// Deprecated single action (mirrored when sent).
    pub action: String,
    /// Who asked.
    pub principal: Principal,
    /// The resource kind (and version/scope) asked about.
    pub resource: PlanResource,
}

/// The resource of a plan request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PlanResource {
    /// Resource kind.
    pub kind: String,
    /// Policy version, if sent.
    pub policy_version: String,
    /// Scope, if sent.
    pub scope: String,
    /// Attributes, if sent.
    pub attr: Map<String, Value>,
}

/// A query plan.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PlanOutput {
    /// Copied from the request.
    pub request_id: String,
    /// The resource kind.
    pub kind: String,
    /// The actions.
    pub actions: Vec<String>,
    /// Deprecated single action.
    pub action: String,
    /// `{kind: KIND_ALWAYS_ALLOWED|KIND_ALWAYS_DENIED|KIND_CONDITIONAL, condition?}`.
    pub filter: Value,
    /// Human-readable filter.
    pub filter_debug: String,
    /// Scope per action.
    pub matched_scopes: BTreeMap<String, String>,
    /// Schema validation errors.
    pub validation_errors: Vec<Value>,
    /// CEL errors.
    pub evaluation_errors: Vec<Value>,
}

/// `auditTrail`: which policies decided.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuditTrail {
    /// Policy FQN → `{attributes: {driver, source}}`.
    pub effective_policies: BTreeMap<String, Value>,
}

/// Timestamps that do not parse become `None` rather than failing the whole line (any valid
/// JSON is accepted).
pub(crate) fn lenient_time<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<DateTime<Utc>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an RFC 3339 timestamp")
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(DateTime::parse_from_rfc3339(v)
                .ok()
                .map(|t| t.with_timezone(&Utc)))
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            AnyVisitor.visit_seq(seq).map(|_| None)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            AnyVisitor.visit_map(map).map(|_| None)
        }
    }
    d.deserialize_any(V)
}
