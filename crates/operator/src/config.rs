//! The daemon's configuration (`reborn run --config reborn.yaml`), as parsed serde types.
//!
//! The `reborn` binary reads the YAML (serde_yaml) into [`DaemonConfig`]; this module validates
//! it and resolves the secrets it names. Secrets are never written inline by default: they come
//! from an environment variable or a file, and every type holding one redacts it in `Debug`.
//! See `examples/reborn.yaml` for an annotated example.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pve_client::{CertFingerprint, Secret, TlsMode};
use serde::{Deserialize, Serialize};

use crate::api::audit_ingest::AuditIngestAuth;
use crate::api::auth::{ApiToken, Role, TokenSet};
use crate::api::webhook::WebhookAuth;

/// The default API listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7480";

/// The default request body limit of the API: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Everything `reborn run` needs. Unknown keys are rejected, so a typo is an error rather than
/// a silently ignored setting.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonConfig {
    /// The PVE API to manage.
    pub pve: PveConfig,
    /// The desired-state store.
    #[serde(default)]
    pub store: StoreConfig,
    /// The operator HTTP API.
    #[serde(default)]
    pub api: ApiConfig,
    /// Cerbos audit-log sources that feed TaintPolicies.
    #[serde(default)]
    pub audit: AuditConfig,
    /// The taint webhook for monitoring such as Zabbix (`POST /v1/hooks/taint`). Absent: the
    /// webhook refuses every request (401).
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    /// How often the controller runs a pass when nothing wakes it. Default 30 s.
    #[serde(default = "default_resync")]
    pub resync_period: model::Duration,
    /// The controller's own settings (concurrency, VMID range, breaker, ...). A placeholder the
    /// daemon composition (`reborn run`) decodes into the controller's config type; kept as raw
    /// data here so this crate's config does not fix the controller's shape.
    #[serde(default)]
    pub controller: serde_json::Value,
    /// Allow `{inline: ...}` secrets in this file. Off by default: secrets belong in the
    /// environment or in files with tight permissions.
    #[serde(default)]
    pub allow_inline_secrets: bool,
}

fn default_resync() -> model::Duration {
    model::Duration::from_secs(30).expect("30 s is a valid duration")
}

/// Connection to the PVE API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PveConfig {
    /// Base URL, e.g. `https://pve1.example.org:8006`.
    pub endpoint: String,
    /// API token id, `USER@REALM!TOKENID`.
    pub token_id: String,
    /// Where the API token secret comes from.
    pub token_secret: SecretSource,
    /// How the server certificate is checked. Default: the system trust store.
    #[serde(default)]
    pub tls: TlsConfig,
}

/// How the PVE server certificate is verified: at most one of the fields.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConfig {
    /// Trust only the CA certificates in this PEM file (e.g. PVE's `pve-root-ca.pem`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept exactly the certificate with this SHA-256 fingerprint (`AB:CD:...`).
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Accept any certificate. For labs only; logs a warning at start.
    #[serde(default)]
    pub insecure: bool,
}

impl TlsConfig {
    /// The PVE client's TLS mode.
    ///
    /// # Errors
    /// More than one mode set, or a malformed fingerprint.
    pub fn to_tls_mode(&self) -> Result<TlsMode, ConfigError> {
        let set = [
            self.ca_file.is_some(),
            self.fingerprint.is_some(),
            self.insecure,
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if set > 1 {
            return Err(ConfigError::Invalid {
                field: "pve.tls",
                reason: "set only one of caFile, fingerprint and insecure".to_owned(),
            });
        }
        if let Some(path) = &self.ca_file {
            return Ok(TlsMode::CaFile(path.clone()));
        }
        if let Some(fp) = &self.fingerprint {
            let pin: CertFingerprint = fp.parse().map_err(|_| ConfigError::Invalid {
                field: "pve.tls.fingerprint",
                reason: "expected 64 hex digits, optionally ':'-separated".to_owned(),
            })?;
            return Ok(TlsMode::PinSha256(pin));
        }
        if self.insecure {
            tracing::warn!(
                "pve.tls.insecure is set: the PVE certificate will NOT be verified; \
                 use caFile or fingerprint outside of labs"
            );
            return Ok(TlsMode::Insecure);
        }
        Ok(TlsMode::System)
    }
}

/// Where the store lives.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite database file. Default `/var/lib/reborn/reborn.db`.
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// How long events are kept (the daemon prunes at start and hourly).
    #[serde(default)]
    pub event_retention: EventRetentionConfig,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: default_store_path(),
            event_retention: EventRetentionConfig::default(),
        }
    }
}

/// Event retention: events older than `maxAge`, and beyond the newest `maxCount`, are removed;
/// each node's newest event of every kind is always kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventRetentionConfig {
    /// Default 90 days.
    #[serde(default = "default_event_max_age")]
    pub max_age: model::Duration,
    /// Default 1,000,000 events.
    #[serde(default = "default_event_max_count")]
    pub max_count: u64,
}

impl Default for EventRetentionConfig {
    fn default() -> Self {
        Self {
            max_age: default_event_max_age(),
            max_count: default_event_max_count(),
        }
    }
}

impl EventRetentionConfig {
    /// The store's retention limits.
    pub fn retention(&self) -> store::EventRetention {
        store::EventRetention {
            max_age: Some(self.max_age.to_std()),
            max_count: Some(self.max_count),
        }
    }
}

fn default_event_max_age() -> model::Duration {
    model::Duration::from_secs(90 * 86_400).expect("90 days is a valid duration")
}

fn default_event_max_count() -> u64 {
    1_000_000
}

fn default_store_path() -> PathBuf {
    PathBuf::from("/var/lib/reborn/reborn.db")
}

/// The operator HTTP API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address. Default `127.0.0.1:7480`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Bearer tokens and their roles.
    #[serde(default)]
    pub tokens: Vec<ApiTokenConfig>,
    /// Require a (viewer) token for `/metrics`. Default true; set false for a scraper on a
    /// trusted network.
    #[serde(default = "yes")]
    pub metrics_auth: bool,
    /// Largest accepted request body in bytes. Default 1 MiB.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            tokens: Vec::new(),
            metrics_auth: true,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
        .parse()
        .expect("the default listen address parses")
}

fn yes() -> bool {
    true
}

fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

/// One API token as configured.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiTokenConfig {
    /// Who holds it; recorded as `created_by` of taints and breaker releases. Never secret.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Where the token value comes from.
    pub secret: SecretSource,
}

/// Cerbos audit-log sources.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditConfig {
    /// JSON-lines files written by Cerbos' file audit backend (rotation is followed).
    #[serde(default)]
    pub sources: Vec<AuditSource>,
    /// Tokens that may only ship NDJSON batches to `POST /v1/audit/cerbos` (operator-role API
    /// tokens may too). For log shippers next to remote PDPs.
    #[serde(default)]
    pub ingest_tokens: Vec<NamedSecretConfig>,
    /// Largest accepted NDJSON batch in bytes. Default 8 MiB.
    #[serde(default = "default_ingest_body")]
    pub max_ingest_bytes: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            sources: Vec::new(),
            ingest_tokens: Vec::new(),
            max_ingest_bytes: DEFAULT_MAX_INGEST_BYTES,
        }
    }
}

/// The default size limit of one NDJSON batch on `POST /v1/audit/cerbos`: 8 MiB.
pub const DEFAULT_MAX_INGEST_BYTES: usize = 8 * 1024 * 1024;

fn default_ingest_body() -> usize {
    DEFAULT_MAX_INGEST_BYTES
}

/// A named credential (a webhook token or HMAC key, an ingest token). The name is recorded as
/// the author of what the credential does; it is never secret.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedSecretConfig {
    /// Who holds it, e.g. `zabbix`.
    pub name: String,
    /// Where the value comes from.
    pub secret: SecretSource,
}

/// The taint webhook (`POST /v1/hooks/taint`). Its credentials are separate from the API's
/// tokens and can do nothing but add taints with source `webhook`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookConfig {
    /// Bearer tokens (`Authorization: Bearer <token>`).
    #[serde(default)]
    pub tokens: Vec<NamedSecretConfig>,
    /// HMAC-SHA256 keys (`X-Reborn-Signature: sha256=<hex>` over the body, or over
    /// `<timestamp>.<body>` with `X-Reborn-Timestamp`).
    #[serde(default)]
    pub hmac_keys: Vec<NamedSecretConfig>,
    /// Refuse signed requests without `X-Reborn-Timestamp` (replay protection). Default true.
    #[serde(default = "yes")]
    pub require_timestamp: bool,
    /// How far a signed timestamp may be from the operator's clock. Default 5 minutes.
    #[serde(default = "default_webhook_skew")]
    pub max_skew: model::Duration,
    /// Largest accepted body in bytes. Default 64 KiB.
    #[serde(default = "default_webhook_body")]
    pub max_body_bytes: usize,
    /// Expiry of webhook taints that do not ask for one. Default: none (cleared by a person
    /// or by the replacement).
    #[serde(default)]
    pub default_ttl: Option<model::Duration>,
}

/// The default body limit of the webhook: 64 KiB.
pub const DEFAULT_WEBHOOK_BODY_BYTES: usize = 64 * 1024;

fn default_webhook_skew() -> model::Duration {
    model::Duration::from_secs(300).expect("300 s is a valid duration")
}

fn default_webhook_body() -> usize {
    DEFAULT_WEBHOOK_BODY_BYTES
}

/// One audit-log file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditSource {
    /// The file path.
    pub path: PathBuf,
}

/// Where a secret comes from: exactly one of `env`, `file` or (only with
/// `allowInlineSecrets: true`) `inline`. `Debug` never shows an inline value.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSource {
    /// Name of an environment variable holding the secret.
    #[serde(default)]
    pub env: Option<String>,
    /// A file holding the secret (surrounding whitespace is trimmed).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// The secret itself (discouraged).
    #[serde(default, skip_serializing)]
    pub inline: Option<String>,
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inline = self.inline.as_ref().map(|_| "***");
        f.debug_struct("SecretSource")
            .field("env", &self.env)
            .field("file", &self.file)
            .field("inline", &inline)
            .finish()
    }
}

impl SecretSource {
    /// Reads the secret.
    ///
    /// `field` names the config field in errors; `allow_inline` is
    /// [`DaemonConfig::allow_inline_secrets`].
    ///
    /// # Errors
    /// Not exactly one source, an inline secret without permission, an unset variable, an
    /// unreadable file, or an empty secret. Errors name the variable or file, never the value.
    pub fn resolve(&self, field: &str, allow_inline: bool) -> Result<Secret, ConfigError> {
        let invalid = |reason: &str| ConfigError::Secret {
            field: field.to_owned(),
            reason: reason.to_owned(),
        };
        let value = match (&self.env, &self.file, &self.inline) {
            (Some(var), None, None) => std::env::var(var).map_err(|_| ConfigError::Secret {
                field: field.to_owned(),
                reason: format!("environment variable {var} is not set (or not UTF-8)"),
            })?,
            (None, Some(path), None) => read_secret_file(field, path)?,
            (None, None, Some(value)) => {
                if !allow_inline {
                    return Err(invalid(
                        "inline secrets are refused unless allowInlineSecrets: true; \
                         use env or file",
                    ));
                }
                value.clone()
            }
            (None, None, None) => return Err(invalid("set one of env or file")),
            _ => return Err(invalid("set only one of env, file and inline")),
        };
        let value = value.trim().to_owned();
        if value.is_empty() {
            return Err(invalid("the secret is empty"));
        }
        Ok(Secret::new(value))
    }
}

fn read_secret_file(field: &str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
        field: field.to_owned(),
        path: path.to_owned(),
        source,
    })
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A field has a value that cannot work.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field, e.g. `pve.tls`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A secret could not be resolved (the message never contains the secret).
    #[error("cannot read secret {field}: {reason}")]
    Secret {
        /// The field, e.g. `api.tokens[0].secret`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A secret file could not be read.
    #[error("cannot read secret {field} from {}", path.display())]
    SecretFile {
        /// The field.
        field: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The configuration with every secret read and every value checked: what the daemon runs
/// with. `Debug` redacts the secrets.
#[derive(Debug, Clone)]
pub struct ResolvedConfig {
    /// The PVE base URL.
    pub pve_endpoint: String,
    /// The PVE API token id.
    pub pve_token_id: String,
    /// The PVE API token secret.
    pub pve_token_secret: Secret,
    /// How the PVE certificate is checked.
    pub pve_tls: TlsMode,
    /// The API's tokens.
    pub api_tokens: TokenSet,
    /// The webhook's credentials and limits (empty when `webhook` is absent: every call 401).
    pub webhook: WebhookAuth,
    /// Who may ship audit batches besides operator tokens, and the batch size limit.
    pub audit_ingest: AuditIngestAuth,
    /// The original config (secrets in it are only references, except inline ones, which its
    /// `Debug` redacts).
    pub config: DaemonConfig,
}

impl DaemonConfig {
    /// Checks the values and reads every secret.
    ///
    /// # Errors
    /// The first problem found: a malformed endpoint, a TLS conflict, a token without a name,
    /// duplicate token names, a bad webhook or ingest credential, or an unreadable secret.
    pub fn resolve(&self) -> Result<ResolvedConfig, ConfigError> {
        if !(self.pve.endpoint.starts_with("https://") || self.pve.endpoint.starts_with("http://"))
        {
            return Err(ConfigError::Invalid {
                field: "pve.endpoint",
                reason: "expected an https:// URL".to_owned(),
            });
        }
        if self.pve.token_id.trim().is_empty() {
            return Err(ConfigError::Invalid {
                field: "pve.tokenId",
                reason: "must not be empty".to_owned(),
            });
        }
        if self.api.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid {
                field: "api.maxBodyBytes",
                reason: "must be at least 1024".to_owned(),
            });
        }
        let pve_tls = self.pve.tls.to_tls_mode()?;
        let pve_token_secret = self
            .pve
            .token_secret
            .resolve("pve.tokenSecret", self.allow_inline_secrets)?;
        let mut tokens = Vec::new();
        for (i, t) in self.api.tokens.iter().enumerate() {
            if t.name.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    field: "api.tokens",
                    reason: format!("token {i} has an empty name"),
                });
            }
            if self.api.tokens[..i].iter().any(|o| o.name == t.name) {
                return Err(ConfigError::Invalid {
                    field: "api.tokens",
                    reason: format!("token name {:?} is used twice", t.name),
                });
            }
            let secret = t.secret.resolve(
                &format!("api.tokens[{i}].secret"),
                self.allow_inline_secrets,
            )?;
            tokens.push(ApiToken::new(t.name.clone(), t.role, secret));
        }
        if tokens.is_empty() {
            tracing::warn!("api.tokens is empty: every API call except /healthz will be refused");
        }
        let webhook = match &self.webhook {
            None => WebhookAuth::default(),
            Some(w) => w.resolve(self.allow_inline_secrets)?,
        };
        let audit_ingest = self.audit.resolve_ingest(self.allow_inline_secrets)?;
        Ok(ResolvedConfig {
            pve_endpoint: self.pve.endpoint.clone(),
            pve_token_id: self.pve.token_id.clone(),
            pve_token_secret,
            pve_tls,
            api_tokens: TokenSet::new(tokens),
            webhook,
            audit_ingest,
            config: self.clone(),
        })
    }
}

/// Resolves a list of named secrets, refusing empty or duplicate names.
fn resolve_named(
    field: &'static str,
    list: &[NamedSecretConfig],
    allow_inline: bool,
) -> Result<Vec<(String, Secret)>, ConfigError> {
    let mut out: Vec<(String, Secret)> = Vec::new();
    for (i, c) in list.iter().enumerate() {
        if c.name.trim().is_empty() {
            return Err(ConfigError::Invalid {
                field,
                reason: format!("entry {i} has an empty name"),
            });
        }
        if out.iter().any(|(n, _)| *n == c.name) {
            return Err(ConfigError::Invalid {
                field,
                reason: format!("name {:?} is used twice", c.name),
            });
        }
        let secret = c
            .secret
            .resolve(&format!("{field}[{i}].secret"), allow_inline)?;
        out.push((c.name.clone(), secret));
    }
    Ok(out)
}

impl WebhookConfig {
    /// Reads the webhook's secrets.
    ///
    /// # Errors
    /// An unreadable secret, an empty or duplicate name, an HMAC key shorter than 16 bytes, or
    /// a body limit under 1 KiB.
    pub fn resolve(&self, allow_inline: bool) -> Result<WebhookAuth, ConfigError> {
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid {
                field: "webhook.maxBodyBytes",
                reason: "must be at least 1024".to_owned(),
            });
        }
        let tokens = resolve_named("webhook.tokens", &self.tokens, allow_inline)?;
        let keys = resolve_named("webhook.hmacKeys", &self.hmac_keys, allow_inline)?;
        if let Some((name, _)) = keys.iter().find(|(_, k)| k.expose().len() < 16) {
            return Err(ConfigError::Invalid {
                field: "webhook.hmacKeys",
                reason: format!("key {name:?} is shorter than 16 bytes"),
            });
        }
        if tokens.is_empty() && keys.is_empty() {
            tracing::warn!("webhook has no tokens and no hmacKeys: every webhook call is refused");
        }
        Ok(WebhookAuth::new(tokens, keys)
            .require_timestamp(self.require_timestamp)
            .max_skew(self.max_skew.to_std())
            .max_body_bytes(self.max_body_bytes)
            .default_ttl(self.default_ttl.map(|d| d.to_std())))
    }
}

impl AuditConfig {
    /// Reads the ingest tokens.
    ///
    /// # Errors
    /// An unreadable secret, an empty or duplicate name, or a batch limit under 1 KiB.
    pub fn resolve_ingest(&self, allow_inline: bool) -> Result<AuditIngestAuth, ConfigError> {
        if self.max_ingest_bytes < 1024 {
            return Err(ConfigError::Invalid {
                field: "audit.maxIngestBytes",
                reason: "must be at least 1024".to_owned(),
            });
        }
        let tokens = resolve_named("audit.ingestTokens", &self.ingest_tokens, allow_inline)?;
        Ok(AuditIngestAuth::new(tokens, self.max_ingest_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source_inline(v: &str) -> SecretSource {
        SecretSource {
            inline: Some(v.to_owned()),
            ..SecretSource::default()
        }
    }

    #[test]
    fn inline_secret_is_refused_by_default_and_never_shown_in_debug() {
        let s = source_inline("hunter2-secret");
        let err = s.resolve("pve.tokenSecret", false).unwrap_err().to_string();
        assert!(err.contains("allowInlineSecrets"), "{err}");
        assert!(!err.contains("hunter2"));
        assert!(!format!("{s:?}").contains("hunter2"));
        let ok = s.resolve("pve.tokenSecret", true).expect("allowed");
        assert_eq!(ok.expose(), "hunter2-secret");
        assert!(!format!("{ok:?}").contains("hunter2"));
    }

    #[test]
    fn secret_file_is_trimmed_and_missing_file_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").expect("write");
        let s = SecretSource {
            file: Some(path.clone()),
            ..SecretSource::default()
        };
        assert_eq!(s.resolve("x", false).expect("read").expose(), "s3cret");
        let missing = SecretSource {
            file: Some(dir.path().join("nope")),
            ..SecretSource::default()
        };
        let err = missing.resolve("x", false).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn webhook_section_resolves_its_credentials_and_refuses_short_hmac_keys() {
        let yaml = "tokens: [{name: z, secret: {inline: bearer-token-123}}]\n\
                    hmacKeys: [{name: k, secret: {inline: short}}]\n";
        let w: WebhookConfig = serde_yaml::from_str(yaml).expect("parses");
        assert!(w.require_timestamp);
        assert_eq!(w.max_skew.as_secs(), 300);
        let err = w.resolve(false).unwrap_err().to_string();
        assert!(err.contains("allowInlineSecrets"), "{err}");
        let err = w.resolve(true).unwrap_err().to_string();
        assert!(err.contains("shorter than 16"), "{err}");
        assert!(!err.contains("short\""), "{err}");
        let yaml = yaml.replace("inline: short", "inline: a-long-enough-hmac-key");
        let w: WebhookConfig = serde_yaml::from_str(&yaml).expect("parses");
        let auth = w.resolve(true).expect("resolves");
        assert!(auth.is_enabled());
        let shown = format!("{auth:?}");
        assert!(!shown.contains("a-long-enough-hmac-key") && !shown.contains("bearer-token-123"));
    }

    #[test]
    fn example_config_declares_the_webhook_and_ingest_tokens() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/reborn.yaml");
        let text = std::fs::read_to_string(path).expect("examples/reborn.yaml");
        let config: DaemonConfig = serde_yaml::from_str(&text).expect("valid");
        let webhook = config.webhook.expect("webhook section");
        assert_eq!(webhook.tokens.len(), 1);
        assert_eq!(webhook.hmac_keys.len(), 1);
        assert_eq!(webhook.max_body_bytes, DEFAULT_WEBHOOK_BODY_BYTES);
        assert_eq!(config.audit.ingest_tokens.len(), 1);
        assert_eq!(config.audit.max_ingest_bytes, DEFAULT_MAX_INGEST_BYTES);
    }

    #[test]
    fn example_config_spells_out_the_event_retention_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/reborn.yaml");
        let text = std::fs::read_to_string(path).expect("examples/reborn.yaml");
        let config: DaemonConfig = serde_yaml::from_str(&text).expect("valid");
        assert_eq!(
            config.store.event_retention,
            EventRetentionConfig::default()
        );
        let minimal: DaemonConfig = serde_yaml::from_str(
            "pve: {endpoint: 'https://pve:8006', tokenId: 'a@pve!b', tokenSecret: {env: X}}\n\
             store: {path: /tmp/r.db, eventRetention: {maxAge: 7d}}\n",
        )
        .expect("valid");
        let retention = minimal.store.event_retention.retention();
        assert_eq!(
            retention.max_age,
            Some(std::time::Duration::from_secs(7 * 86_400))
        );
        assert_eq!(retention.max_count, Some(1_000_000));
    }

    #[test]
    fn two_tls_modes_at_once_are_rejected() {
        let tls = TlsConfig {
            ca_file: Some(PathBuf::from("/ca.pem")),
            fingerprint: None,
            insecure: true,
        };
        assert!(tls.to_tls_mode().is_err());
        assert_eq!(
            TlsConfig::default().to_tls_mode().ok(),
            Some(TlsMode::System)
        );
    }
}
