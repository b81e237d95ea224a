//! `DisruptionBudget`: at most `maxUnavailable` of the selected nodes may be down at once.

use super::{ApiVersion, Metadata};
use crate::decode::{DResult, Decode, Decoder};
use crate::values::{LabelSelector, Name};
use crate::yaml::Yaml;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A label selector over nodes and how many of them may be unavailable at once (like a
/// Kubernetes PodDisruptionBudget). It must select at least one declared node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisruptionBudget {
    /// Always `reborn.dev/v1alpha1`.
    pub api_version: ApiVersion,
    /// Name and labels.
    pub metadata: Metadata,
    /// Selector and limit.
    pub spec: DisruptionBudgetSpec,
}

impl DisruptionBudget {
    /// The budget's name.
    pub fn name(&self) -> &Name {
        &self.metadata.name
    }
}

/// Which nodes, and how many may be down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisruptionBudgetSpec {
    /// Nodes covered by this budget (an empty selector covers every node).
    pub selector: LabelSelector,
    /// How many covered nodes may be unavailable at the same time (0 blocks every voluntary
    /// replacement; compromised nodes are still isolated).
    pub max_unavailable: u32,
}

impl Decode for DisruptionBudgetSpec {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(y, &["selector", "maxUnavailable"])?;
        let selector = d.required(&m, "selector");
        let max_unavailable = d.required(&m, "maxUnavailable");
        let spec = DisruptionBudgetSpec {
            selector: selector?,
            max_unavailable: max_unavailable?,
        };
        Ok(spec)
    }
}
