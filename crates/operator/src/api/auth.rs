//! Bearer-token authentication with two roles, compared in constant time.

use pve_client::Secret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads: list, get, describe, events, plan, breaker state, metrics.
    Viewer,
    /// Reads and writes: apply, delete, taint, untaint, breaker release.
    Operator,
}

impl Role {
    /// Whether this role includes `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

/// One API token: a name (recorded as the author of writes), a role and the secret value.
#[derive(Clone)]
pub struct ApiToken {
    name: String,
    role: Role,
    digest: [u8; 32],
}

impl ApiToken {
    /// A token. Only a SHA-256 digest of the secret is kept.
    pub fn new(name: impl Into<String>, role: Role, secret: Secret) -> Self {
        Self {
            name: name.into(),
            role,
            digest: digest(secret.expose()),
        }
    }

    /// The token's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The token's role.
    pub fn role(&self) -> Role {
        self.role
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Who made a request: the matching token's name and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    /// The token's role.
    pub role: Role,
}

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct TokenSet {
    tokens: Vec<ApiToken>,
}

impl TokenSet {
    /// A set of tokens.
    pub fn new(tokens: Vec<ApiToken>) -> Self {
        Self { tokens }
    }

    /// The caller presenting `presented`, if it is a known token. Every configured token is
    /// compared, each in constant time, so the time taken does not depend on which token (if
    /// any) matched or on how much of it was right.
    pub fn authenticate(&self, presented: &str) -> Option<Caller> {
        let seen = digest(presented);
        let mut found = None;
        for t in &self.tokens {
            if constant_time_eq(&seen, &t.digest) {
                found = Some(Caller {
                    name: t.name.clone(),
                    role: t.role,
                });
            }
        }
        found
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

fn digest(value: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(Sha256::digest(value.as_bytes()).as_slice());
    out
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_authenticates() {
        let set = TokenSet::new(vec![
            ApiToken::new("ops", Role::Operator, Secret::new("op-token")),
            ApiToken::new("grafana", Role::Viewer, Secret::new("view-token")),
        ]);
        assert_eq!(
            set.authenticate("op-token").map(|c| c.role),
            Some(Role::Operator)
        );
        assert_eq!(
            set.authenticate("view-token").map(|c| c.name),
            Some("grafana".to_owned())
        );
        assert_eq!(set.authenticate("op-toke"), None);
        assert_eq!(set.authenticate(""), None);
    }

    #[test]
    fn operator_includes_viewer_but_not_the_reverse() {
        assert!(Role::Operator.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Operator));
    }

    #[test]
    fn debug_does_not_show_the_secret_or_its_digest() {
        let t = ApiToken::new("ops", Role::Operator, Secret::new("op-token"));
        let shown = format!("{t:?}");
        assert!(!shown.contains("op-token"));
        assert!(!shown.contains("digest"));
    }
}
