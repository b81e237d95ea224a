//! `model`: reborn's manifest kinds (`Node`, `GoldImage`, `DisruptionBudget`, `TaintPolicy`),
//! the typed ids and values they are made of (`NodeName`, `VmId`, `MemorySize`, ...), manifest
//! loading with file:line:col diagnostics, and the JSON Schema generated from these types.
//!
//! Start with [`load_paths`] / [`load_str`], which return a validated [`ManifestSet`] or every
//! problem at once as [`Diagnostics`]; [`json_schema`] gives the schema editors use.
//! [`attestation`] signs and verifies gold image statements and holds the checks the operator
//! makes on a template before every clone.
//!
//! Must not depend on: any I/O beyond reading manifest files it is handed, tokio, the store,
//! or the PVE crates. Everything here is plain data and pure validation.
//!
//! YAML is read with `saphyr-parser` into a located tree and decoded by hand (see
//! `docs/decisions/0003-manifest-fields.md`), so that unknown fields, wrong types and
//! cross-file mistakes are all reported in one run. The types also implement serde
//! `Serialize`/`Deserialize` (for the store's JSON and for writing YAML back) and `JsonSchema`.

pub mod attestation;
mod checks;
mod decode;
mod diagnostics;
mod kinds;
mod load;
mod schema;
mod suggest;
mod values;
mod yaml;

pub use attestation::{SignedStatement, Statement, TemplateRejection, VerifiedStatement};
pub use diagnostics::{Diagnostic, Diagnostics};
pub use kinds::{
    API_VERSION, ApiVersion, Attribution, AttributionSource, CloneMode, CloneSpec, CloudInit,
    DecisionMatch, DisruptionBudget, DisruptionBudgetSpec, DriftPolicy, Effect, GoldImage,
    GoldImageSpec, HttpProbe, Kind, Manifest, Metadata, NetworkInterface, Node, NodeSpec,
    Placement, Readiness, Replacement, ReplacementStrategy, Resources, Severity, TaintAction,
    TaintPolicy, TaintPolicySpec, TemplateRef, Threshold,
};
pub use load::{ManifestSet, load_paths, load_str};
pub use schema::{SCHEMA_PATH, json_schema, json_schema_pretty};
pub use values::{
    BridgeName, Cidr, Duration, Ed25519PublicKey, LabelRequirement, LabelSelector, Labels,
    MemorySize, Name, NodeName, PveNodeName, PveTag, SelectorOperator, Sha256Digest, StorageId,
    ValueError, VmId, VmIdRange,
};
