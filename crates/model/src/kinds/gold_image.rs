//! `GoldImage`: a PVE template nodes are cloned from, and the attestation that proves it.

use super::{ApiVersion, Metadata};
use crate::decode::{DResult, Decode, Decoder, Reported};
use crate::values::{Ed25519PublicKey, Name, PveNodeName, Sha256Digest, VmId};
use crate::yaml::Yaml;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A PVE template VM plus the attestation that proves it is the image that was built and signed.
/// Nodes are never cloned from an unverified or changed template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GoldImage {
    /// Always `reborn.dev/v1alpha1`.
    pub api_version: ApiVersion,
    /// Name (referenced by `Node.spec.goldImage`) and labels.
    pub metadata: Metadata,
    /// The template and its attestation.
    pub spec: GoldImageSpec,
}

impl GoldImage {
    /// The gold image's name.
    pub fn name(&self) -> &Name {
        &self.metadata.name
    }
}

/// The template and what it must be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GoldImageSpec {
    /// Which PVE template VM this is.
    pub template: TemplateRef,
    /// Expected SHA-256 digest of the image (as recorded in its signed attestation).
    pub digest: Sha256Digest,
    /// ed25519 public keys whose signature over the digest is accepted (at least one).
    pub trusted_keys: Vec<Ed25519PublicKey>,
}

/// A PVE template: its PVE node and either its vmid or its name (exactly one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateRef {
    /// The PVE node holding the template.
    pub pve_node: PveNodeName,
    /// The template's vmid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<VmId>,
    /// The template's VM name (looked up on `pveNode`; must be unique there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Name>,
}

impl Decode for GoldImageSpec {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(y, &["template", "digest", "trustedKeys"])?;
        let template = d.required(&m, "template");
        let digest = d.required(&m, "digest");
        let trusted_keys: DResult<Vec<Ed25519PublicKey>> = d.required(&m, "trustedKeys");
        if let Ok(keys) = &trusted_keys
            && keys.is_empty()
        {
            let span = d.span_of("trustedKeys").unwrap_or(y.span);
            let message = format!("`{}.trustedKeys` is empty", d.path());
            d.error(span, message, Some("list at least one `ed25519:<hex>` key: an image nobody may sign can never be verified".to_string()));
            return Err(Reported);
        }
        let spec = GoldImageSpec {
            template: template?,
            digest: digest?,
            trusted_keys: trusted_keys?,
        };
        Ok(spec)
    }
}

impl Decode for TemplateRef {
    fn decode(y: &Yaml, d: &mut Decoder<'_>) -> DResult<Self> {
        let m = d.mapping(y, &["pveNode", "vmid", "name"])?;
        let pve_node = d.required(&m, "pveNode");
        let vmid: DResult<Option<VmId>> = d.optional(&m, "vmid");
        let name: DResult<Option<Name>> = d.optional(&m, "name");
        let (pve_node, vmid, name) = (pve_node?, vmid?, name?);
        if vmid.is_some() == name.is_some() {
            let message = format!("`{}` needs exactly one of `vmid` and `name`", d.path());
            let help = if vmid.is_some() {
                "remove one of them: `vmid` is the more precise".to_string()
            } else {
                "add `vmid: <template vmid>` (or `name:`)".to_string()
            };
            return Err(d.error(y.span, message, Some(help)));
        }
        Ok(TemplateRef {
            pve_node,
            vmid,
            name,
        })
    }
}
