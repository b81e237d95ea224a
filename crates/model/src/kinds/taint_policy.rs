//! `TaintPolicy`: which Cerbos decisions mean "this node is compromised", and what to do then.

use super::{ApiVersion, Metadata};
use crate::decode::{DResult, Decode, Decoder, Reported};
use crate::values::{Duration, Name};
use crate::yaml::Yaml;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Rules that turn Cerbos CheckResources decision-log entries into taints: what to match, how
/// many within which window, how a decision is attributed to a node, severity, action, taint TTL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaintPolicy {
    /// Always `reborn.dev/v1alpha1`.
    pub api_version: ApiVersion,
    /// Name and labels.
    pub metadata: Metadata,
    /// The rule.
    pub spec: TaintPolicySpec,
}

impl TaintPolicy {
    /// The policy's name.
    pub fn name(&self) -> &Name {
        &self.metadata.name
    }
}

/// What to match, how often, how to attribute, and the consequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaintPolicySpec {
    /// Which decisions count (YAML key `match`).
    #[serde(rename = "match")]
    pub matching: DecisionMatch,
    /// How many matching decisions within which window make a taint.
    pub threshold: Threshold,
    /// How a decision is attributed to a node.
    #[serde(default)]
    pub attribution: Attribution,
    /// Severity recorded on the taint.
    pub severity: Severity,
    /// What happens to the tainted node.
    pub action: TaintAction,
    /// With `action: Quarantine` (and only then, where it is required): how long the replaced
    /// instance is kept stopped and isolated, counted from when the taint is raised, before it
    /// is destroyed, e.g. `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_retention: Option<Duration>,
    /// How long the taint lives; omitted = until the instance is replaced or untainted. With
    /// `Quarantine` it must be at least `quarantineRetention` (an expired taint ends the
    /// quarantine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taint_ttl: Option<Duration>,
}

/// Conditions on one action result of a Cerbos CheckResources decision. Every non-empty list must
/// contain the decision's value (lists are "any of"); an empty list matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionMatch {
    /// `principal.id` values, e.g. the worker's service identity `svc-worker`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principal_ids: Vec<String>,
    /// Principal roles: matches when the principal has any of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principal_roles: Vec<String>,
    /// `resource.kind` values, e.g. `tenant_document`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_kinds: Vec<String>,
    /// Actions, e.g. `read`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// The action's effect (default `Deny`; Cerbos writes `EFFECT_DENY`).
    #[serde(default)]
    pub effect: Effect,
    /// Policies that decided, as Cerbos names them, e.g. `resource.tenant_document.vdefault`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// Rules that produced an output, as `<policy>#<rule>` (the output's `src`), e.g.
    /// `resource.tenant_document.vdefault#deny-cross-tenant`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
}

/// A Cerbos effect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Effect {
    /// `EFFECT_DENY`.
    #[default]
    Deny,
    /// `EFFECT_ALLOW`.
    Allow,
}

/// `count` matching decisions within a sliding `window` make one taint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Threshold {
    /// How many matches (at least 1).
    #[schemars(range(min = 1))]
    pub count: u32,
    /// Within how long, e.g. `5m`.
    pub window: Duration,
}

/// How a decision is attributed to a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attribution {
    /// `PeerAddress` (default) or `MetadataKey`.
    #[serde(default)]
    pub by: AttributionSource,
    /// The request metadata key naming the node (e.g. `x-node-id`); required with `MetadataKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_key: Option<String>,
}

/// Where the node identity of a decision comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AttributionSource {
    /// The caller's network address (`peer.address`) mapped to node addresses. A compromised VM
    /// cannot forge it (default).
    #[default]
    PeerAddress,
    /// A request metadata key (an HTTP header the caller sets). SPOOFABLE: a compromised VM can
    /// name another node and get it replaced; use only behind a proxy that sets the header.
    MetadataKey,
}

/// How serious a taint is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum Severity {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// What to do with a tainted node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TaintAction {
    /// Isolate at once, then replace.
    Replace,
    /// Isolate (network link down) and keep for forensics; no replacement.
    Isolate,
    /// Record the taint only.
    Report,
    /// Isolate at once, replace, and keep the replaced instance stopped and isolated for
    /// `quarantineRetention` (so a person can inspect it), then destroy it.
    Quarantine,
}

impl Decode for TaintPolicySpec {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(
            y,
            &[
                "match",
                "threshold",
                "attribution",
                "severity",
                "action",
                "quarantineRetention",
                "taintTtl",
            ],
        )?;
        let matching = d.required(&m, "match");
        let threshold = d.required(&m, "threshold");
        let attribution = d.or_default(&m, "attribution");
        let severity = d.required(&m, "severity");
        let action = d.required(&m, "action");
        let quarantine_retention = d.optional(&m, "quarantineRetention");
        let taint_ttl = d.optional(&m, "taintTtl");
        let (action, quarantine_retention, taint_ttl) =
            check_quarantine(d, y, action?, quarantine_retention?, taint_ttl?)?;
        let spec = TaintPolicySpec {
            matching: matching?,
            threshold: threshold?,
            attribution: attribution?,
            severity: severity?,
            action,
            quarantine_retention,
            taint_ttl,
        };
        Ok(spec)
    }
}

/// `quarantineRetention` is required with `action: Quarantine` and refused with any other
/// action; a `taintTtl` shorter than the retention would end the quarantine early.
fn check_quarantine(
    d: &mut Decoder<'_>,
    y: &Yaml,
    action: TaintAction,
    retention: Option<Duration>,
    ttl: Option<Duration>,
) -> DResult<(TaintAction, Option<Duration>, Option<Duration>)> {
    match (action, retention, ttl) {
        (TaintAction::Quarantine, None, _) => {
            let span = d.span_of("action").unwrap_or(y.span);
            let message = format!(
                "`{}.action: Quarantine` needs `quarantineRetention`",
                d.path()
            );
            Err(d.error(
                span,
                message,
                Some("add `quarantineRetention: 24h`: how long the replaced instance is kept stopped and isolated before it is destroyed".to_string()),
            ))
        }
        (TaintAction::Quarantine, Some(r), Some(t)) if t < r => {
            let span = d.span_of("taintTtl").unwrap_or(y.span);
            let message = format!(
                "`{}.taintTtl` ({t}) is shorter than `quarantineRetention` ({r})",
                d.path()
            );
            Err(d.error(
                span,
                message,
                Some(format!("an expired taint ends the quarantine early: remove `taintTtl`, or make it at least `{r}`")),
            ))
        }
        (TaintAction::Replace | TaintAction::Isolate | TaintAction::Report, Some(_), _) => {
            let span = d.span_of("quarantineRetention").unwrap_or(y.span);
            let message = format!(
                "`{}.quarantineRetention` is only used with `action: Quarantine`",
                d.path()
            );
            Err(d.error(
                span,
                message,
                Some("remove `quarantineRetention`, or set `action: Quarantine`".to_string()),
            ))
        }
        _ => Ok((action, retention, ttl)),
    }
}

impl Decode for DecisionMatch {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(
            y,
            &[
                "principalIds",
                "principalRoles",
                "resourceKinds",
                "actions",
                "effect",
                "policies",
                "rules",
            ],
        )?;
        let principal_ids = d.or_default(&m, "principalIds");
        let principal_roles = d.or_default(&m, "principalRoles");
        let resource_kinds = d.or_default(&m, "resourceKinds");
        let actions = d.or_default(&m, "actions");
        let effect = d.or_default(&m, "effect");
        let policies = d.or_default(&m, "policies");
        let rules: DResult<Vec<String>> = d.or_default(&m, "rules");
        if let Ok(rules) = &rules
            && let Some((i, rule)) = rules.iter().enumerate().find(|(_, r)| !r.contains('#'))
        {
            let span = d.span_of(&format!("rules[{i}]")).unwrap_or(y.span);
            let message = format!(
                "`{}.rules[{i}]`: `{rule}` is not `<policy>#<rule>`",
                d.path()
            );
            d.error(span, message, Some("write the rule as Cerbos names an output's source, e.g. `resource.tenant_document.vdefault#deny-cross-tenant`".to_string()));
            return Err(Reported);
        }
        Ok(DecisionMatch {
            principal_ids: principal_ids?,
            principal_roles: principal_roles?,
            resource_kinds: resource_kinds?,
            actions: actions?,
            effect: effect?,
            policies: policies?,
            rules: rules?,
        })
    }
}

impl Decode for Effect {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        d.choice(y, &[("Deny", Effect::Deny), ("Allow", Effect::Allow)])
    }
}

impl Decode for Threshold {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(y, &["count", "window"])?;
        let count = d.required_with(&m, "count", |d, v| {
            d.integer(v, 1, u64::from(u32::MAX))
                .and_then(|n| u32::try_from(n).map_err(|_| Reported))
        });
        let window = d.required(&m, "window");
        Ok(Threshold {
            count: count?,
            window: window?,
        })
    }
}

impl Decode for Attribution {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(y, &["by", "metadataKey"])?;
        let by: DResult<AttributionSource> = d.or_default(&m, "by");
        let metadata_key: DResult<Option<String>> = d.optional(&m, "metadataKey");
        let (by, metadata_key) = (by?, metadata_key?);
        match (by, &metadata_key) {
            (AttributionSource::MetadataKey, None) => {
                let message = format!("`{}`: `by: MetadataKey` needs `metadataKey`", d.path());
                Err(d.error(y.span, message, Some("add `metadataKey: x-node-id` (the header is spoofable; prefer `by: PeerAddress`)".to_string())))
            }
            (AttributionSource::PeerAddress, Some(_)) => {
                let span = d.span_of("metadataKey").unwrap_or(y.span);
                let message = format!(
                    "`{}.metadataKey` is only used with `by: MetadataKey`",
                    d.path()
                );
                Err(d.error(
                    span,
                    message,
                    Some("remove `metadataKey`, or set `by: MetadataKey`".to_string()),
                ))
            }
            _ => Ok(Attribution { by, metadata_key }),
        }
    }
}

impl Decode for AttributionSource {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        d.choice(
            y,
            &[
                ("PeerAddress", AttributionSource::PeerAddress),
                ("MetadataKey", AttributionSource::MetadataKey),
            ],
        )
    }
}

impl Decode for Severity {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        d.choice(
            y,
            &[
                ("Low", Severity::Low),
                ("Medium", Severity::Medium),
                ("High", Severity::High),
                ("Critical", Severity::Critical),
            ],
        )
    }
}

impl Decode for TaintAction {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        d.choice(
            y,
            &[
                ("Replace", TaintAction::Replace),
                ("Isolate", TaintAction::Isolate),
                ("Report", TaintAction::Report),
                ("Quarantine", TaintAction::Quarantine),
            ],
        )
    }
}
