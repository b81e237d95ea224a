//! The manifest kinds (`Node`, `GoldImage`, `DisruptionBudget`, `TaintPolicy`) and what they share.

mod budget;
mod gold_image;
mod node;
mod taint_policy;

pub use budget::{DisruptionBudget, DisruptionBudgetSpec};
pub use gold_image::{GoldImage, GoldImageSpec, TemplateRef};
pub use node::{
    CloneMode, CloneSpec, CloudInit, DriftPolicy, HttpProbe, NetworkInterface, Node, NodeSpec,
    Placement, Readiness, Replacement, ReplacementStrategy, Resources,
};
pub use taint_policy::{
    Attribution, AttributionSource, DecisionMatch, Effect, Severity, TaintAction, TaintPolicy,
    TaintPolicySpec, Threshold,
};

use crate::decode::{DResult, Decode, Decoder, Reported};
use crate::values::{Labels, Name};
use crate::yaml::Yaml;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The only API version: `reborn.dev/v1alpha1`.
pub const API_VERSION: &str = "reborn.dev/v1alpha1";

/// The `apiVersion` of every manifest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    /// `reborn.dev/v1alpha1`.
    #[default]
    #[serde(rename = "reborn.dev/v1alpha1")]
    V1alpha1,
}

/// `metadata` of every manifest: the name (unique per kind) and labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// The resource's name, unique among resources of its kind.
    pub name: Name,
    /// Labels, selected by DisruptionBudgets (and used for spreading nodes that share a `role`).
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

impl Metadata {
    /// Metadata with a name and no labels.
    pub fn named(name: Name) -> Self {
        Metadata {
            name,
            labels: Labels::new(),
        }
    }
}

/// The kind of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// [`Node`].
    Node,
    /// [`GoldImage`].
    GoldImage,
    /// [`DisruptionBudget`].
    DisruptionBudget,
    /// [`TaintPolicy`].
    TaintPolicy,
}

impl Kind {
    /// All kinds.
    pub const ALL: [Kind; 4] = [
        Kind::Node,
        Kind::GoldImage,
        Kind::DisruptionBudget,
        Kind::TaintPolicy,
    ];

    /// The `kind:` text.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Node => "Node",
            Kind::GoldImage => "GoldImage",
            Kind::DisruptionBudget => "DisruptionBudget",
            Kind::TaintPolicy => "TaintPolicy",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One manifest document of any kind. Serialises with `kind` as the tag:
/// `{kind: Node, apiVersion: reborn.dev/v1alpha1, metadata: ..., spec: ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind")]
pub enum Manifest {
    /// A declared VM.
    Node(Node),
    /// A verified template that nodes are cloned from.
    GoldImage(GoldImage),
    /// A limit on how many selected nodes may be unavailable at once.
    DisruptionBudget(DisruptionBudget),
    /// Rules turning Cerbos decisions into taints.
    TaintPolicy(TaintPolicy),
}

impl Manifest {
    /// The manifest's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Manifest::Node(_) => Kind::Node,
            Manifest::GoldImage(_) => Kind::GoldImage,
            Manifest::DisruptionBudget(_) => Kind::DisruptionBudget,
            Manifest::TaintPolicy(_) => Kind::TaintPolicy,
        }
    }

    /// The manifest's metadata.
    pub fn metadata(&self) -> &Metadata {
        match self {
            Manifest::Node(r) => &r.metadata,
            Manifest::GoldImage(r) => &r.metadata,
            Manifest::DisruptionBudget(r) => &r.metadata,
            Manifest::TaintPolicy(r) => &r.metadata,
        }
    }
}

impl Decode for ApiVersion {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let text = d.string(y)?;
        if text == API_VERSION {
            return Ok(ApiVersion::V1alpha1);
        }
        let message = format!("unknown apiVersion `{}`", crate::yaml::shorten(text));
        Err(d.error(
            y.span,
            message,
            Some(format!("use `apiVersion: {API_VERSION}`")),
        ))
    }
}

impl Decode for Kind {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let text = d.string(y)?;
        if let Some(kind) = Kind::ALL.into_iter().find(|k| k.as_str() == text) {
            return Ok(kind);
        }
        let names = Kind::ALL.map(Kind::as_str);
        let message = format!("unknown kind `{}`", crate::yaml::shorten(text));
        let help = crate::suggest::help_for(text, &names, "kinds");
        Err(d.error(y.span, message, Some(help)))
    }
}

impl Decode for Metadata {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(y, &["name", "labels"])?;
        let name: DResult<Name> = d.required(&m, "name");
        let labels = match m.has("labels") {
            true => d
                .required::<crate::values::LabelsField>(&m, "labels")
                .map(|l| l.0),
            false => Ok(Labels::new()),
        };
        let meta = Metadata {
            name: name?,
            labels: labels?,
        };
        Ok(meta)
    }
}

/// What could be learnt from one document, even when it is invalid: used to avoid follow-on
/// errors (a GoldImage with a broken spec is still "declared").
pub(crate) struct DocOutcome {
    pub kind: Option<Kind>,
    pub name: Option<Name>,
    pub labels: Option<Labels>,
    pub manifest: Option<Manifest>,
}

/// Decodes one YAML document into a manifest, reporting every problem found.
pub(crate) fn decode_document(y: &Yaml, d: &mut Decoder<'_>) -> DocOutcome {
    let mut out = DocOutcome {
        kind: None,
        name: None,
        labels: None,
        manifest: None,
    };
    let Ok(m) = d.mapping(y, &["apiVersion", "kind", "metadata", "spec"]) else {
        return out;
    };
    let api: DResult<ApiVersion> = d.required(&m, "apiVersion");
    let kind: DResult<Kind> = d.required(&m, "kind");
    let metadata: DResult<Metadata> = d.required(&m, "metadata");
    out.kind = kind.ok();
    out.name = metadata.as_ref().ok().map(|m| m.name.clone());
    out.labels = metadata.as_ref().ok().map(|m| m.labels.clone());
    let spec = match (&api, kind) {
        // Fields depend on the version: without a known one, the spec is not checked.
        (Err(Reported), _) | (_, Err(Reported)) => Err(Reported),
        (Ok(_), Ok(Kind::Node)) => d.required(&m, "spec").map(AnySpec::Node),
        (Ok(_), Ok(Kind::GoldImage)) => d.required(&m, "spec").map(AnySpec::GoldImage),
        (Ok(_), Ok(Kind::DisruptionBudget)) => {
            d.required(&m, "spec").map(AnySpec::DisruptionBudget)
        }
        (Ok(_), Ok(Kind::TaintPolicy)) => d.required(&m, "spec").map(AnySpec::TaintPolicy),
    };
    let (Ok(api_version), Ok(metadata), Ok(spec)) = (api, metadata, spec) else {
        return out;
    };
    out.manifest = Some(match spec {
        AnySpec::Node(spec) => Manifest::Node(Node {
            api_version,
            metadata,
            spec,
        }),
        AnySpec::GoldImage(spec) => Manifest::GoldImage(GoldImage {
            api_version,
            metadata,
            spec,
        }),
        AnySpec::DisruptionBudget(spec) => Manifest::DisruptionBudget(DisruptionBudget {
            api_version,
            metadata,
            spec,
        }),
        AnySpec::TaintPolicy(spec) => Manifest::TaintPolicy(TaintPolicy {
            api_version,
            metadata,
            spec,
        }),
    });
    out
}

enum AnySpec {
    Node(NodeSpec),
    GoldImage(GoldImageSpec),
    DisruptionBudget(DisruptionBudgetSpec),
    TaintPolicy(TaintPolicySpec),
}
