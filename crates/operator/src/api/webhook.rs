//! `POST /v1/hooks/taint`: external monitoring (e.g. Zabbix) taints a node, authenticated by a webhook bearer token or an HMAC-SHA256 signature.
//!
//! Webhook credentials are separate from the API's tokens: they are accepted on this route
//! only, and this route accepts nothing else, so a leaked monitoring secret can add taints with
//! source `webhook` and do nothing more. Every credential check is constant-time and every
//! refusal is the same bare 401. See `docs/decisions/0010-webhook.md`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use pve_client::Secret;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use store::{NewEvent, NewTaint, Op, OpResult, ResourceKey, Severity, Taint, TaintSource, Txn};

use super::ApiState;
use super::auth::{ApiToken, Role, TokenSet};
use super::error::ApiError;
use super::wire::ErrorBody;

/// The header carrying `sha256=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "x-reborn-signature";
/// The header carrying the signing time in Unix seconds; when present it is part of the MAC.
pub const TIMESTAMP_HEADER: &str = "x-reborn-timestamp";
/// The taint keys of webhook taints start with this.
pub const KEY_PREFIX: &str = "webhook/";

const HMAC_BLOCK: usize = 64;
/// At most this many recently seen signatures are remembered for replay detection.
const SEEN_CAPACITY: usize = 100_000;
const MAX_REASON_CHARS: usize = 2048;
const MAX_NAME_CHARS: usize = 128;

/// HMAC-SHA256 (RFC 2104) of the concatenated `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    hmac_with_block(&key_block(key), parts)
}

/// The `X-Reborn-Signature` value for `body`, signed at `timestamp` (Unix seconds) if given:
/// `sha256=` and the lowercase hex HMAC of `<timestamp>.<body>` (or of the body alone).
pub fn sign(key: &[u8], timestamp: Option<i64>, body: &[u8]) -> String {
    let mac = match timestamp {
        Some(ts) => hmac_sha256(key, &[ts.to_string().as_bytes(), b".", body]),
        None => hmac_sha256(key, &[body]),
    };
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in mac {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn key_block(key: &[u8]) -> [u8; HMAC_BLOCK] {
    let mut block = [0u8; HMAC_BLOCK];
    if key.len() > HMAC_BLOCK {
        block[..32].copy_from_slice(Sha256::digest(key).as_slice());
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    block
}

fn hmac_with_block(block: &[u8; HMAC_BLOCK], parts: &[&[u8]]) -> [u8; 32] {
    let mut ipad = [0x36u8; HMAC_BLOCK];
    let mut opad = [0x5cu8; HMAC_BLOCK];
    for i in 0..HMAC_BLOCK {
        ipad[i] ^= block[i];
        opad[i] ^= block[i];
    }
    let mut inner = Sha256::new();
    inner.update(ipad);
    for p in parts {
        inner.update(p);
    }
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(opad);
    outer.update(inner.as_slice());
    let mut out = [0u8; 32];
    out.copy_from_slice(outer.finalize().as_slice());
    out
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn parse_signature(value: &str) -> Option<[u8; 32]> {
    let hex = value.trim().strip_prefix("sha256=")?;
    if hex.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// One HMAC key: its holder's name and the key padded to SHA-256's block (never shown).
#[derive(Clone)]
struct HmacKey {
    name: String,
    block: [u8; HMAC_BLOCK],
}

/// Signatures already accepted, until their timestamp leaves the allowed skew.
#[derive(Debug, Default)]
struct SeenMacs {
    until: HashMap<[u8; 32], i64>,
}

impl SeenMacs {
    /// Records `mac` (valid until `expires`, Unix seconds); false when it was already seen or
    /// the cache is full of unexpired entries.
    fn insert(&mut self, mac: [u8; 32], expires: i64, now: i64) -> bool {
        if self.until.get(&mac).is_some_and(|e| *e >= now) {
            return false;
        }
        if self.until.len() >= SEEN_CAPACITY {
            self.until.retain(|_, e| *e >= now);
            if self.until.len() >= SEEN_CAPACITY {
                tracing::warn!(
                    "webhook replay cache is full; refusing signed requests until entries expire"
                );
                return false;
            }
        }
        self.until.insert(mac, expires);
        true
    }
}

/// The webhook's credentials and limits. Cheap to clone; `Debug` shows only counts. The
/// default has no credentials, so every call is refused.
#[derive(Clone)]
pub struct WebhookAuth {
    tokens: TokenSet,
    keys: Arc<[HmacKey]>,
    require_timestamp: bool,
    max_skew: Duration,
    max_body_bytes: usize,
    default_ttl: Option<Duration>,
    seen: Arc<Mutex<SeenMacs>>,
}

impl Default for WebhookAuth {
    fn default() -> Self {
        Self::new(Vec::new(), Vec::new())
    }
}

impl std::fmt::Debug for WebhookAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookAuth")
            .field("tokens", &self.tokens.len())
            .field("hmac_keys", &self.keys.len())
            .field("require_timestamp", &self.require_timestamp)
            .field("max_skew", &self.max_skew)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl WebhookAuth {
    /// Bearer `tokens` and HMAC `keys`, each with its holder's name. Timestamps required,
    /// 5 minutes of skew, 64 KiB bodies, no default expiry.
    pub fn new(tokens: Vec<(String, Secret)>, keys: Vec<(String, Secret)>) -> Self {
        let tokens = TokenSet::new(
            tokens
                .into_iter()
                // The role is never consulted: this set is only checked by the webhook route.
                .map(|(name, secret)| ApiToken::new(name, Role::Viewer, secret))
                .collect(),
        );
        let keys: Vec<HmacKey> = keys
            .into_iter()
            .map(|(name, secret)| HmacKey {
                name,
                block: key_block(secret.expose().as_bytes()),
            })
            .collect();
        Self {
            tokens,
            keys: keys.into(),
            require_timestamp: true,
            max_skew: Duration::from_secs(300),
            max_body_bytes: crate::config::DEFAULT_WEBHOOK_BODY_BYTES,
            default_ttl: None,
            seen: Arc::new(Mutex::new(SeenMacs::default())),
        }
    }

    /// Whether signed requests must carry `X-Reborn-Timestamp` (default true).
    #[must_use]
    pub fn require_timestamp(mut self, yes: bool) -> Self {
        self.require_timestamp = yes;
        self
    }

    /// How far a signed timestamp may be from the operator's clock (default 5 minutes).
    #[must_use]
    pub fn max_skew(mut self, skew: Duration) -> Self {
        self.max_skew = skew;
        self
    }

    /// The body size limit (default 64 KiB).
    #[must_use]
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// The expiry of taints whose request has no `ttl` (default none).
    #[must_use]
    pub fn default_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Whether any credential is configured.
    pub fn is_enabled(&self) -> bool {
        !self.tokens.is_empty() || !self.keys.is_empty()
    }

    /// The name of the token holder presenting `token`.
    fn bearer(&self, token: &str) -> Option<String> {
        self.tokens.authenticate(token).map(|c| c.name)
    }

    /// The name of the key holder whose key signed `body` as `signature`, checking the
    /// timestamp's skew and refusing a signature seen before.
    fn signed(
        &self,
        signature: &str,
        timestamp: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Option<String> {
        let presented = parse_signature(signature)?;
        let now_secs = now.timestamp();
        let skew = i64::try_from(self.max_skew.as_secs()).unwrap_or(i64::MAX);
        let ts = match timestamp {
            Some(t) => {
                let t = t.trim();
                let ts: i64 = t.parse().ok()?;
                if ts.abs_diff(now_secs) > skew.unsigned_abs() {
                    tracing::debug!("webhook signature timestamp outside the allowed skew");
                    return None;
                }
                Some((ts, t))
            }
            None if self.require_timestamp => return None,
            None => None,
        };
        let mut found = None;
        for key in self.keys.iter() {
            let mac = match ts {
                Some((_, text)) => hmac_with_block(&key.block, &[text.as_bytes(), b".", body]),
                None => hmac_with_block(&key.block, &[body]),
            };
            if constant_time_eq(&mac, &presented) {
                found = Some(key.name.clone());
            }
        }
        let name = found?;
        if let Some((ts, _)) = ts {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if !seen.insert(presented, ts.saturating_add(skew), now_secs) {
                tracing::warn!(credential = %name, "webhook signature replayed; refused");
                return None;
            }
        }
        Some(name)
    }
}

/// The body of `POST /v1/hooks/taint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookTaintRequest {
    /// The node to taint (its current instance is marked).
    pub node: String,
    /// Why, for a person (e.g. the trigger name).
    pub reason: String,
    /// `info`, `warning` or `critical`.
    pub severity: Severity,
    /// The monitoring system, e.g. `zabbix`; recorded in the evidence and the taint key.
    pub source: String,
    /// The taint key after `webhook/` (default: `source`). An identical active taint (same
    /// node, instance and key) is not added twice.
    #[serde(default)]
    pub key: Option<String>,
    /// Expiry, e.g. `6h` (default: the configured `defaultTtl`, else none).
    #[serde(default)]
    pub ttl: Option<String>,
    /// Anything the monitor wants kept as evidence (event id, trigger id, item value).
    #[serde(default)]
    pub details: Option<serde_json::Value>,
}

/// The answer of `POST /v1/hooks/taint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookTaintResponse {
    /// The taint (the existing one when an identical active taint was already there).
    pub taint: Taint,
    /// Whether this request added it.
    pub created: bool,
}

/// The bare 401 of every refused webhook call: it never says what was wrong.
fn unauthenticated() -> Response {
    let body = ErrorBody {
        error: "missing or invalid webhook credentials".to_owned(),
        code: "unauthenticated".to_owned(),
        diagnostics: Vec::new(),
        rendered: None,
    };
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= MAX_NAME_CHARS
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':'))
}

fn check(req: &WebhookTaintRequest) -> Result<(), ApiError> {
    if req.node.trim().is_empty() {
        return Err(ApiError::BadRequest("node must not be empty".to_owned()));
    }
    if req.reason.trim().is_empty() {
        return Err(ApiError::BadRequest("reason must not be empty".to_owned()));
    }
    if req.reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::BadRequest(format!(
            "reason is longer than {MAX_REASON_CHARS} characters"
        )));
    }
    if !valid_name(&req.source) {
        return Err(ApiError::BadRequest(
            "source must be 1-128 characters of letters, digits and -_./:".to_owned(),
        ));
    }
    if let Some(k) = &req.key
        && !valid_name(k)
    {
        return Err(ApiError::BadRequest(
            "key must be 1-128 characters of letters, digits and -_./:".to_owned(),
        ));
    }
    Ok(())
}

fn expiry(
    req: &WebhookTaintRequest,
    default: Option<Duration>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let ttl = match &req.ttl {
        Some(text) => Some(
            text.parse::<model::Duration>()
                .map_err(|e: model::ValueError| ApiError::BadRequest(format!("ttl: {e}")))?
                .to_std(),
        ),
        None => default,
    };
    let Some(ttl) = ttl else { return Ok(None) };
    let secs = i64::try_from(ttl.as_secs())
        .map_err(|_| ApiError::BadRequest("ttl is too long".to_owned()))?;
    now.checked_add_signed(chrono::Duration::seconds(secs))
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest("ttl is too long".to_owned()))
}

/// `POST /v1/hooks/taint`. Order of checks: a bearer token before the body is read; the body
/// limit (413); a signature over the exact bytes; then JSON (400) and the node (404). An
/// unauthenticated caller therefore learns nothing about nodes.
pub(crate) async fn taint(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match handle(state, headers, body).await {
        Ok(Some(resp)) => Json(resp).into_response(),
        Ok(None) => unauthenticated(),
        Err(e) => e.into_response(),
    }
}

async fn handle(
    state: ApiState,
    headers: HeaderMap,
    body: Body,
) -> Result<Option<WebhookTaintResponse>, ApiError> {
    let auth = state.webhook().clone();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().ok().and_then(bearer_token));
    let bearer_name = match bearer {
        // An Authorization header decides alone: a wrong token never falls back to HMAC.
        Some(Some(token)) => match auth.bearer(token) {
            Some(name) => Some(name),
            None => return Ok(None),
        },
        Some(None) => return Ok(None),
        None => None,
    };
    let bytes = super::body::read(body, auth.max_body_bytes).await?;
    let now = state.now();
    let credential = match bearer_name {
        Some(name) => name,
        None => {
            let Some(signature) = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok())
            else {
                return Ok(None);
            };
            let timestamp = headers
                .get(TIMESTAMP_HEADER)
                .map(|v| v.to_str().unwrap_or(""));
            match auth.signed(signature, timestamp, &bytes, now) {
                Some(name) => name,
                None => return Ok(None),
            }
        }
    };
    let req: WebhookTaintRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    check(&req)?;
    let expires_at = expiry(&req, auth.default_ttl, now)?;
    let (taint, created) = state
        .blocking(move |store| {
            if store
                .get(&ResourceKey::new(model::Kind::Node.as_str(), &req.node))?
                .is_none()
            {
                return Err(ApiError::NotFound {
                    what: "node".to_owned(),
                    name: req.node.clone(),
                });
            }
            let key = format!(
                "{KEY_PREFIX}{}",
                req.key.as_deref().unwrap_or(req.source.as_str())
            );
            let by = format!("webhook:{credential}");
            let new = NewTaint {
                node: req.node.clone(),
                instance_id: None,
                key,
                source: TaintSource::Webhook,
                severity: req.severity,
                reason: req.reason.clone(),
                evidence: json!({
                    "via": "webhook",
                    "monitor": req.source,
                    "credential": credential,
                    "details": req.details,
                }),
                created_at: now,
                created_by: by.clone(),
                expires_at,
            };
            let outcome = store.commit(Txn::new().with(Op::AddTaint(new)))?;
            let Some(OpResult::Taint { taint, changed }) = outcome.results.into_iter().next()
            else {
                return Err(ApiError::Internal("taint returned no taint".to_owned()));
            };
            if changed {
                store.append_event(NewEvent {
                    at: now,
                    node: Some(req.node.clone()),
                    kind: "TaintAdded".to_owned(),
                    message: format!(
                        "taint {} ({}, {}) added by {} via the webhook: {}",
                        taint.id, taint.key, taint.severity, by, taint.reason
                    ),
                    data: json!({
                        "taint": taint.id,
                        "source": "webhook",
                        "monitor": req.source,
                        "by": by,
                    }),
                })?;
            }
            Ok((taint, changed))
        })
        .await?;
    if created {
        tracing::info!(node = %taint.node, taint = taint.id, by = %taint.created_by, "webhook taint added");
        state.metrics().taint(TaintSource::Webhook);
        state.controller().wake();
    }
    Ok(Some(WebhookTaintResponse { taint, created }))
}

fn bearer_token(value: &str) -> Option<&str> {
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231_test_vectors() {
        // Test case 2: a short key.
        assert_eq!(
            hex(&hmac_sha256(
                b"Jefe",
                &[b"what do ya want ", b"for nothing?"]
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        let key = [0xaau8; 131];
        assert_eq!(
            hex(&hmac_sha256(
                &key,
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn signature_header_parses_only_sha256_hex_of_the_right_length() {
        let s = sign(b"k", None, b"body");
        assert!(parse_signature(&s).is_some());
        assert!(parse_signature(&s.to_uppercase().replace("SHA256=", "sha256=")).is_some());
        assert!(parse_signature(&s.replace("sha256=", "sha1=")).is_none());
        assert!(parse_signature(&s[..s.len() - 1]).is_none());
        assert!(parse_signature("sha256=zz").is_none());
    }

    #[test]
    fn signed_request_is_accepted_once_and_refused_when_replayed() {
        let auth = WebhookAuth::new(
            Vec::new(),
            vec![("zabbix".to_owned(), Secret::new("0123456789abcdef-key"))],
        );
        let now = Utc::now();
        let ts = now.timestamp();
        let sig = sign(b"0123456789abcdef-key", Some(ts), b"{}");
        let text = ts.to_string();
        assert_eq!(
            auth.signed(&sig, Some(&text), b"{}", now),
            Some("zabbix".to_owned())
        );
        assert_eq!(auth.signed(&sig, Some(&text), b"{}", now), None);
    }

    #[test]
    fn debug_shows_counts_but_no_secret() {
        let auth = WebhookAuth::new(
            vec![("t".to_owned(), Secret::new("token-value-123"))],
            vec![("k".to_owned(), Secret::new("hmac-key-value-456"))],
        );
        let shown = format!("{auth:?}");
        assert!(!shown.contains("token-value-123"));
        assert!(!shown.contains("hmac-key-value-456"));
        assert!(shown.contains("hmac_keys: 1"), "{shown}");
    }
}
