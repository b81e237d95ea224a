//! Labels and `LabelSelector` (`matchLabels`, optional `matchExpressions`), as in Kubernetes.

use crate::decode::{DResult, Decode, Decoder, Reported};
use crate::yaml::{Value, Yaml};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Labels of a resource: key → value. Keys are `[prefix/]name`, names and values at most 63
/// characters of letters, digits, `-`, `_`, `.`, starting and ending alphanumeric (values may be empty).
pub type Labels = BTreeMap<String, String>;

fn label_name_ok(s: &str) -> bool {
    s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Checks a label key; the error says why it is invalid.
pub(crate) fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err(format!("label key prefix `{p}` must be a DNS subdomain"));
        }
    }
    if label_name_ok(name) {
        Ok(())
    } else {
        Err(format!(
            "label key `{key}` is invalid: at most 63 letters, digits, `-`, `_`, `.`, starting and ending alphanumeric"
        ))
    }
}

/// Checks a label value; the error says why it is invalid.
pub(crate) fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || label_name_ok(value) {
        Ok(())
    } else {
        Err(format!(
            "label value `{value}` is invalid: at most 63 letters, digits, `-`, `_`, `.`, starting and ending alphanumeric"
        ))
    }
}

/// Decodes a labels mapping and checks every key and value.
pub(crate) fn decode_labels(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Labels> {
    let labels = BTreeMap::<String, String>::decode(y, d)?;
    let mut failed = false;
    if let Value::Map(entries) = &y.value {
        for (k, v) in entries {
            let (Value::Scalar { text: key, .. }, Value::Scalar { text: value, .. }) =
                (&k.value, &v.value)
            else {
                continue;
            };
            if let Err(msg) = check_label_key(key) {
                d.error(
                    k.span,
                    msg,
                    Some("e.g. `role: worker` or `app.kubernetes.io/name: x`".to_string()),
                );
                failed = true;
            }
            if let Err(msg) = check_label_value(value) {
                d.error(v.span, msg, Some("quote values that look like numbers or booleans; use letters, digits, `-`, `_`, `.`".to_string()));
                failed = true;
            }
        }
    }
    if failed { Err(Reported) } else { Ok(labels) }
}

/// How a [`LabelRequirement`] compares a label with its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SelectorOperator {
    /// The label is present and its value is one of `values`.
    In,
    /// The label is absent, or its value is none of `values`.
    NotIn,
    /// The label is present (any value); `values` must be empty.
    Exists,
    /// The label is absent; `values` must be empty.
    DoesNotExist,
}

/// One `matchExpressions` entry: `{key: role, operator: In, values: [ingress]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelRequirement {
    /// The label key.
    pub key: String,
    /// How to compare.
    pub operator: SelectorOperator,
    /// Values for `In`/`NotIn` (non-empty); empty for `Exists`/`DoesNotExist`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl LabelRequirement {
    /// Whether the labels satisfy this requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.contains(v)),
            SelectorOperator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}

/// Selects resources by their labels: all `matchLabels` must be equal and all
/// `matchExpressions` must hold. An empty selector selects every resource (as in Kubernetes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels that must be present with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: Labels,
    /// Further requirements, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelRequirement>,
}

impl LabelSelector {
    /// Whether the labels are selected.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector has no conditions (and so selects everything).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

impl std::fmt::Display for LabelSelector {
    /// Kubernetes' textual form: `role=ingress,tier in (a,b),!legacy`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for r in &self.match_expressions {
            parts.push(match r.operator {
                SelectorOperator::In => format!("{} in ({})", r.key, r.values.join(",")),
                SelectorOperator::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
                SelectorOperator::Exists => r.key.clone(),
                SelectorOperator::DoesNotExist => format!("!{}", r.key),
            });
        }
        f.write_str(&parts.join(","))
    }
}

impl Decode for SelectorOperator {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        d.choice(
            y,
            &[
                ("In", SelectorOperator::In),
                ("NotIn", SelectorOperator::NotIn),
                ("Exists", SelectorOperator::Exists),
                ("DoesNotExist", SelectorOperator::DoesNotExist),
            ],
        )
    }
}

impl Decode for LabelRequirement {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(y, &["key", "operator", "values"])?;
        let key: DResult<String> = d.required(&m, "key");
        let operator: DResult<SelectorOperator> = d.required(&m, "operator");
        let values: DResult<Vec<String>> = d.or_default(&m, "values");
        let (key, operator, values) = (key?, operator?, values?);
        if let Err(msg) = check_label_key(&key) {
            return Err(d.error(
                y.span,
                msg,
                Some("use a label key such as `role` or `app.kubernetes.io/name`".to_string()),
            ));
        }
        let needs_values = matches!(operator, SelectorOperator::In | SelectorOperator::NotIn);
        if needs_values && values.is_empty() {
            let message = format!(
                "`{}`: operator {operator:?} needs at least one value",
                d.path()
            );
            return Err(d.error(y.span, message, Some("add `values: [...]`".to_string())));
        }
        if !needs_values && !values.is_empty() {
            let message = format!("`{}`: operator {operator:?} takes no values", d.path());
            return Err(d.error(y.span, message, Some("remove `values`".to_string())));
        }
        Ok(LabelRequirement {
            key,
            operator,
            values,
        })
    }
}

impl Decode for LabelSelector {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(y, &["matchLabels", "matchExpressions"])?;
        let match_labels = match m.has("matchLabels") {
            true => d.required::<LabelsField>(&m, "matchLabels").map(|l| l.0),
            false => Ok(Labels::new()),
        };
        let match_expressions: DResult<Vec<LabelRequirement>> =
            d.or_default(&m, "matchExpressions");
        Ok(LabelSelector {
            match_labels: match_labels?,
            match_expressions: match_expressions?,
        })
    }
}

/// Decoding wrapper for a labels mapping (checks keys and values).
pub(crate) struct LabelsField(pub Labels);

impl Decode for LabelsField {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        decode_labels(y, d).map(LabelsField)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn match_labels_requires_every_pair() {
        let sel = LabelSelector {
            match_labels: labels(&[("app", "jsonrag"), ("role", "ingress")]),
            match_expressions: vec![],
        };
        assert!(sel.matches(&labels(&[
            ("app", "jsonrag"),
            ("role", "ingress"),
            ("x", "y")
        ])));
        assert!(!sel.matches(&labels(&[("app", "jsonrag"), ("role", "worker")])));
    }

    #[test]
    fn expressions_follow_kubernetes_semantics() {
        let req = |operator, values: &[&str]| LabelRequirement {
            key: "role".to_string(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        let worker = labels(&[("role", "worker")]);
        let none = labels(&[]);
        assert!(req(SelectorOperator::In, &["worker", "ingress"]).matches(&worker));
        assert!(!req(SelectorOperator::NotIn, &["worker"]).matches(&worker));
        assert!(req(SelectorOperator::NotIn, &["worker"]).matches(&none));
        assert!(req(SelectorOperator::Exists, &[]).matches(&worker));
        assert!(req(SelectorOperator::DoesNotExist, &[]).matches(&none));
    }

    #[test]
    fn empty_selector_selects_everything() {
        assert!(LabelSelector::default().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn label_keys_and_values_are_checked() {
        assert!(check_label_key("app.kubernetes.io/name").is_ok());
        assert!(check_label_key("role").is_ok());
        assert!(check_label_key("-role").is_err());
        assert!(check_label_key("Bad_Prefix/x").is_err());
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("has space").is_err());
    }
}
