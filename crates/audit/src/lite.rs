//! The ingest fast path: decodes an audit line borrowing from it and keeping only what the join and the evaluator read.
//!
//! [`decode_lite`] accepts and rejects exactly the lines [`decode_line`] does (every field is
//! still type-checked, via [`crate::shape`]), but the parts no taint reads (`attr`, `auxData`,
//! `auditTrail`, `policySource`, plans, ...) are only checked, never built. `metadata` is
//! checked too and decoded again from the line only when an attribution needs it.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::decode::{
    AccessEntry, DecisionEntry, DecodeError, Effect, RequestMetadata, lenient_time,
};
use crate::few::Few;
use crate::shape::{AnyShape, MapShape, SeqShape, Str, StrShape};

/// One line decoded by [`decode_lite`].
// Built and matched once per line, never stored in bulk: boxing the decision would add an
// allocation per line on the hot path.
#[allow(clippy::large_enum_variant)]
pub(crate) enum LiteEntry<'a> {
    /// An `access` entry.
    Access(AccessLite<'a>),
    /// A `decision` entry.
    Decision(DecisionLite<'a>),
    /// Valid JSON that is not an audit entry, or a blank line.
    Other,
}

/// What the join keeps of an access entry.
pub(crate) struct AccessLite<'a> {
    pub(crate) call_id: Str<'a>,
    pub(crate) timestamp: Option<DateTime<Utc>>,
    pub(crate) method: Str<'a>,
    pub(crate) status_code: u32,
}

impl<'a> AccessLite<'a> {
    /// A view of a fully decoded access entry.
    pub(crate) fn of(e: &'a AccessEntry) -> Self {
        AccessLite {
            call_id: Str::from(e.call_id.as_str()),
            timestamp: e.timestamp,
            method: Str::from(e.method.as_str()),
            status_code: e.status_code,
        }
    }
}

/// Where a decision's request metadata can be read from.
pub(crate) enum MetadataSource<'a> {
    /// Decode it from the (valid) line on demand.
    Line(&'a str),
    /// Already decoded.
    Decoded(&'a RequestMetadata),
}

impl MetadataSource<'_> {
    /// The decoded metadata.
    pub(crate) fn get(&self) -> Cow<'_, RequestMetadata> {
        match self {
            MetadataSource::Decoded(m) => Cow::Borrowed(*m),
            MetadataSource::Line(line) => {
                #[derive(Deserialize)]
                struct OnlyMetadata {
                    #[serde(default)]
                    metadata: RequestMetadata,
                }
                // The line passed `decode_lite`, so this cannot fail; an empty map if it did.
                Cow::Owned(
                    serde_json::from_str::<OnlyMetadata>(line)
                        .map(|m| m.metadata)
                        .unwrap_or_default(),
                )
            }
        }
    }
}

/// What the join and the evaluator read of a decision entry.
pub(crate) struct DecisionLite<'a> {
    pub(crate) call_id: Str<'a>,
    pub(crate) timestamp: Option<DateTime<Utc>>,
    pub(crate) peer_address: Str<'a>,
    pub(crate) metadata: MetadataSource<'a>,
    pub(crate) check_resources: Option<CheckLite<'a>>,
}

impl<'a> DecisionLite<'a> {
    /// A view of a fully decoded decision entry.
    pub(crate) fn of(e: &'a DecisionEntry) -> Self {
        DecisionLite {
            call_id: Str::from(e.call_id.as_str()),
            timestamp: e.timestamp,
            peer_address: Str::from(e.peer.address.as_str()),
            metadata: MetadataSource::Decoded(&e.metadata),
            check_resources: e.check_resources.as_ref().map(|c| {
                CheckLite::new(
                    c.inputs
                        .iter()
                        .map(|i| {
                            InputLite::new(
                                PrincipalLite::new(
                                    Str::from(i.principal.id.as_str()),
                                    i.principal
                                        .roles
                                        .iter()
                                        .map(|r| Str::from(r.as_str()))
                                        .collect(),
                                ),
                                ResourceLite::new(
                                    Str::from(i.resource.kind.as_str()),
                                    Str::from(i.resource.id.as_str()),
                                ),
                            )
                        })
                        .collect(),
                    c.outputs
                        .iter()
                        .map(|o| {
                            OutputLite::new(
                                ActionsLite(
                                    o.actions
                                        .iter()
                                        .map(|(name, a)| {
                                            (
                                                Str::from(name.as_str()),
                                                ActionLite::new(
                                                    a.effect,
                                                    Str::from(a.policy.as_str()),
                                                ),
                                            )
                                        })
                                        .collect(),
                                ),
                                o.outputs
                                    .iter()
                                    .map(|r| {
                                        RuleOutputLite::new(
                                            Str::from(r.src.as_str()),
                                            Str::from(r.action.as_str()),
                                            RuleValue::Borrowed(&r.val),
                                        )
                                    })
                                    .collect(),
                            )
                        })
                        .collect(),
                )
            }),
        }
    }
}

/// Decodes one line (valid UTF-8, without its newline) like [`decode_line`], borrowing.
///
/// [`decode_line`]: crate::decode::decode_line
pub(crate) fn decode_lite(line: &str) -> Result<LiteEntry<'_>, DecodeError> {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return Ok(LiteEntry::Other);
    }
    if let Some(entry) = crate::scan::scan(trimmed) {
        return Ok(entry);
    }
    decode_serde(trimmed)
}

/// [`decode_lite`] by serde alone, for a trimmed, non-empty line.
fn decode_serde(trimmed: &str) -> Result<LiteEntry<'_>, DecodeError> {
    let raw: RawLite<'_> =
        serde_json::from_str(trimmed).map_err(|source| DecodeError::Json { source })?;
    if raw
        .logger
        .as_ref()
        .is_some_and(|l| l.as_str() != "cerbos.audit")
    {
        return Ok(LiteEntry::Other);
    }
    let kind = match raw.kind.as_ref().map(Str::as_str) {
        Some("access") => "access",
        Some("decision") => "decision",
        _ => return Ok(LiteEntry::Other),
    };
    if raw.call_id.as_str().is_empty() {
        return Err(DecodeError::MissingCallId { kind });
    }
    Ok(if kind == "access" {
        LiteEntry::Access(AccessLite {
            call_id: raw.call_id,
            timestamp: raw.timestamp,
            method: raw.method,
            status_code: raw.status_code,
        })
    } else {
        LiteEntry::Decision(DecisionLite {
            call_id: raw.call_id,
            timestamp: raw.timestamp,
            peer_address: raw.peer.address,
            metadata: MetadataSource::Line(trimmed),
            check_resources: raw.check_resources,
        })
    })
}

// The mirror of `decode::Raw` and the types under it: the same field names, order, types
// (borrowed, or a shape in place of what is not kept) and serde attributes.

#[derive(Deserialize, Default)]
#[allow(dead_code, reason = "fields only checked, never read")]
#[serde(rename_all = "camelCase", default)]
struct RawLite<'a> {
    #[serde(rename = "log.logger", borrow)]
    logger: Option<Str<'a>>,
    #[serde(rename = "log.kind", borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    call_id: Str<'a>,
    #[serde(deserialize_with = "lenient_time")]
    timestamp: Option<DateTime<Utc>>,
    #[serde(borrow)]
    peer: PeerLite<'a>,
    metadata: MapShape<StrShape, MetadataValuesShape>,
    #[serde(borrow)]
    method: Str<'a>,
    status_code: u32,
    policy_source: Option<AnyShape>,
    request_context: Option<RequestContextShape>,
    oversized: bool,
    #[serde(borrow)]
    check_resources: Option<CheckLite<'a>>,
    plan_resources: Option<PlanResourcesShape>,
    audit_trail: Option<AuditTrailShape>,
}

#[derive(Deserialize, Default)]
#[allow(dead_code, reason = "fields only checked, never read")]
#[serde(rename_all = "camelCase", default)]
struct PeerLite<'a> {
    #[serde(borrow)]
    address: Str<'a>,
    user_agent: StrShape,
    forwarded_for: StrShape,
    auth_info: Option<AnyShape>,
}

#[derive(Deserialize, Default)]
#[allow(dead_code, reason = "fields only checked, never read")]
#[serde(default)]
struct MetadataValuesShape {
    values: SeqShape<StrShape>,
}

#[derive(Deserialize, Default)]
#[allow(dead_code, reason = "fields only checked, never read")]
#[serde(default)]
struct RequestContextShape {
    annotations: MapShape,
}

/// The CheckResources part of a decision entry.
#[derive(Deserialize, Default)]
#[allow(dead_code, reason = "fields only checked, never read")]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct CheckLite<'a> {
    #[serde(borrow)]
    pub(crate) inputs: Few<InputLite<'a>>,
    #[serde(borrow)]
    pub(crate) outputs: Few<OutputLite<'a>>,
    error: StrShape,
}

/// One resource of a CheckResources request.
#[derive(Deserialize, Default)]
#[allow(dead_code, reason = "fields only checked, never read")]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct InputLite<'a> {
    request_id: StrShape,
    #[serde(borrow)]
    pub(crate) principal: PrincipalLite<'a>,
    #[serde(borrow)]
    pub(crate) resource: ResourceLite<'a>,
    actions: SeqShape<StrShape>,
    aux_data: Option<AnyShape>,
}

/// The principal.
#[derive(Deserialize, Default)]
#[allow(dead_code, reason = "fields only checked, never read")]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct PrincipalLite<'a> {
    #[serde(borrow)]
    pub(crate) id: Str<'a>,
    #[serde(borrow)]
    pub(crate) roles: Few<Str<'a>>,
    attr: MapShape,
    policy_version: StrShape,
    scope: StrShape,
}

/// The resource.
#[derive(Deserialize, Default)]
#[allow(dead_code, reason = "fields only checked, never read")]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ResourceLite<'a> {
    #[serde(borrow)]
    pub(crate) kind: Str<'a>,
    #[serde(borrow)]
    pub(crate) id: Str<'a>,
    attr: MapShape,
    policy_version: StrShape,
    scope: StrShape,
}

/// The result for one input.
#[derive(Deserialize, Default)]
#[allow(dead_code, reason = "fields only checked, never read")]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct OutputLite<'a> {
    request_id: StrShape,
    resource_id: StrShape,
    #[serde(borrow)]
    pub(crate) actions: ActionsLite<'a>,
    effective_derived_roles: SeqShape<StrShape>,
    #[serde(borrow)]
    pub(crate) outputs: Few<RuleOutputLite<'a>>,
    evaluation_errors: SeqShape,
    validation_errors: SeqShape,
}

impl<'a> CheckLite<'a> {
    /// The parts evaluation reads.
    pub(crate) fn new(inputs: Few<InputLite<'a>>, outputs: Few<OutputLite<'a>>) -> Self {
        CheckLite {
            inputs,
            outputs,
            ..Default::default()
        }
    }
}

impl<'a> InputLite<'a> {
    /// The parts evaluation reads.
    pub(crate) fn new(principal: PrincipalLite<'a>, resource: ResourceLite<'a>) -> Self {
        InputLite {
            principal,
            resource,
            ..Default::default()
        }
    }
}

impl<'a> PrincipalLite<'a> {
    /// The parts evaluation reads.
    pub(crate) fn new(id: Str<'a>, roles: Few<Str<'a>>) -> Self {
        PrincipalLite {
            id,
            roles,
            ..Default::default()
        }
    }
}

impl<'a> ResourceLite<'a> {
    /// The parts evaluation reads.
    pub(crate) fn new(kind: Str<'a>, id: Str<'a>) -> Self {
        ResourceLite {
            kind,
            id,
            ..Default::default()
        }
    }
}

impl<'a> OutputLite<'a> {
    /// The parts evaluation reads.
    pub(crate) fn new(actions: ActionsLite<'a>, outputs: Few<RuleOutputLite<'a>>) -> Self {
        OutputLite {
            actions,
            outputs,
            ..Default::default()
        }
    }
}

impl<'a> ActionLite<'a> {
    /// The parts evaluation reads.
    pub(crate) fn new(effect: Effect, policy: Str<'a>) -> Self {
        ActionLite {
            effect,
            policy,
            ..Default::default()
        }
    }
}

impl<'a> RuleOutputLite<'a> {
    /// The parts evaluation reads.
    pub(crate) fn new(src: Str<'a>, action: Str<'a>, val: RuleValue<'a>) -> Self {
        RuleOutputLite {
            src,
            action,
            val,
            ..Default::default()
        }
    }
}

/// `actions`: action → effect, in the order of a `BTreeMap` (sorted by action; a repeated
/// key keeps its last value).
#[derive(Default)]
pub(crate) struct ActionsLite<'a>(pub(crate) Few<(Str<'a>, ActionLite<'a>)>);

impl<'a> ActionsLite<'a> {
    /// The map of these entries in JSON order.
    pub(crate) fn from_entries(mut v: Few<(Str<'a>, ActionLite<'a>)>) -> Self {
        if let Few::Many(v) = &mut v
            && !v.is_sorted_by(|a, b| a.0.as_str() < b.0.as_str())
        {
            // Later duplicates first, so that dedup (which keeps the first) keeps them.
            v.reverse();
            v.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
            v.dedup_by(|a, b| a.0 == b.0);
        }
        ActionsLite(v)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ActionsLite<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = ActionsLite<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut v: Few<(Str<'a>, ActionLite<'a>)> = Few::Zero;
                while let Some(k) = map.next_key::<Str<'a>>()? {
                    let a = map.next_value::<ActionLite<'a>>()?;
                    v.push((k, a));
                }
                Ok(ActionsLite::from_entries(v))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The decision for one action.
#[derive(Deserialize, Default)]
#[allow(dead_code, reason = "fields only checked, never read")]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ActionLite<'a> {
    pub(crate) effect: Effect,
    #[serde(borrow)]
    pub(crate) policy: Str<'a>,
    scope: StrShape,
}

/// A rule output.
#[derive(Deserialize, Default)]
#[allow(dead_code, reason = "fields only checked, never read")]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct RuleOutputLite<'a> {
    #[serde(borrow)]
    pub(crate) src: Str<'a>,
    #[serde(borrow)]
    pub(crate) action: Str<'a>,
    pub(crate) val: RuleValue<'a>,
    error: StrShape,
}

/// A rule output's `val`: decoded once and shared (by reference count) with every counted
/// call that keeps it as evidence, borrowed from an owned entry, or (from [`crate::scan`])
/// its JSON text, already checked, decoded only when needed.
#[derive(Debug, Clone)]
pub(crate) enum RuleValue<'a> {
    /// From an owned [`DecisionEntry`].
    Borrowed(&'a Value),
    /// Decoded from the line.
    Shared(Arc<Value>),
    /// The value's JSON text in the line.
    Text(&'a str),
}

/// The `val` of a rule output that has none.
static NULL: Value = Value::Null;

impl Default for RuleValue<'_> {
    fn default() -> Self {
        RuleValue::Borrowed(&NULL)
    }
}

impl RuleValue<'_> {
    /// Calls `f` with the value (decoding it if it is text).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Value) -> R) -> R {
        match self {
            RuleValue::Borrowed(v) => f(v),
            RuleValue::Shared(v) => f(v),
            RuleValue::Text(t) => f(&parse_checked(t)),
        }
    }
}

/// Decodes JSON text that has already been checked (`Null` if it somehow does not parse).
pub(crate) fn parse_checked(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

impl<'de> Deserialize<'de> for RuleValue<'_> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(|v| RuleValue::Shared(Arc::new(v)))
    }
}

#[derive(Deserialize, Default)]
#[allow(dead_code, reason = "fields only checked, never read")]
#[serde(rename_all = "camelCase", default)]
struct PlanResourcesShape {
    input: PlanInputShape,
    output: PlanOutputShape,
    error: StrShape,
}

#[derive(Deserialize, Default)]
#[allow(dead_code, reason = "fields only checked, never read")]
#[serde(rename_all = "camelCase", default)]
struct PlanInputShape {
    request_id: StrShape,
    actions: SeqShape<StrShape>,
    action: StrShape,
    principal: PrincipalShape,
    resource: PlanResourceShape,
}

#[derive(Deserialize, Default)]
#[allow(dead_code, reason = "fields only checked, never read")]
#[serde(rename_all = "camelCase", default)]
struct PrincipalShape {
    id: StrShape,
    roles: SeqShape<StrShape>,
    attr: MapShape,
    policy_version: StrShape,
    scope: StrShape,
}

#[derive(Deserialize, Default)]
#[allow(dead_code, reason = "fields only checked, never read")]
#[serde(rename_all = "camelCase", default)]
struct PlanResourceShape {
    kind: StrShape,
    policy_version: StrShape,
    scope: StrShape,
    attr: MapShape,
}

#[derive(Deserialize, Default)]
#[allow(dead_code, reason = "fields only checked, never read")]
#[serde(rename_all = "camelCase", default)]
struct PlanOutputShape {
    request_id: StrShape,
    kind: StrShape,
    actions: SeqShape<StrShape>,
    action: StrShape,
    filter: AnyShape,
    filter_debug: StrShape,
    matched_scopes: MapShape<StrShape, StrShape>,
    validation_errors: SeqShape,
    evaluation_errors: SeqShape,
}

#[derive(Deserialize, Default)]
#[allow(dead_code, reason = "fields only checked, never read")]
#[serde(rename_all = "camelCase", default)]
struct AuditTrailShape {
    effective_policies: MapShape<StrShape, AnyShape>,
}

#[cfg(test)]
mod tests {
    use super::decode_serde;
    use crate::scan::tests::{edited_lines, reference, summary};

    #[test]
    fn borrowed_decoding_accepts_and_decodes_exactly_what_the_owned_decoder_does() {
        let mut decoded = 0;
        edited_lines(|line| {
            let trimmed = line.trim_ascii();
            if trimmed.is_empty() {
                return;
            }
            let lite = decode_serde(trimmed).map(|e| summary(&e));
            match (&lite, reference(line)) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, &b, "line: {line}");
                    decoded += 1;
                }
                (Err(_), Err(_)) => {}
                (a, b) => panic!("borrowed {a:?} but owned {b:?} for line: {line}"),
            }
        });
        assert!(decoded > 1000, "only {decoded} edited lines decoded");
    }
}
