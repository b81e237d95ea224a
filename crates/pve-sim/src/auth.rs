//! Authentication (API tokens, tickets, CSRF) and role-based privilege checks.

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::config::Role;
use crate::model::Shared;

/// Who is calling.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    /// `user@realm`.
    pub user: String,
    /// Token name for token auth.
    pub tokenid: Option<String>,
    pub role: Role,
}

impl Identity {
    /// The authenticated id as PVE records it (`root@pam!reborn` for tokens).
    pub fn full(&self) -> String {
        match &self.tokenid {
            Some(t) => format!("{}!{t}", self.user),
            None => self.user.clone(),
        }
    }

    /// Only the user `root@pam` itself (not its tokens) is root.
    pub fn is_root(&self) -> bool {
        self.user == "root@pam" && self.tokenid.is_none()
    }

    pub fn has(&self, privilege: &str) -> bool {
        self.is_root() || role_has(self.role, privilege)
    }
}

/// Privileges of a role (on `/`, propagated).
pub(crate) fn role_has(role: Role, privilege: &str) -> bool {
    match role {
        Role::Administrator => true,
        Role::NoAccess => false,
        Role::PVEAuditor => privilege.ends_with(".Audit"),
        Role::PVEVMUser => matches!(
            privilege,
            "VM.Audit"
                | "VM.Console"
                | "VM.PowerMgmt"
                | "VM.Backup"
                | "VM.Config.CDROM"
                | "VM.Config.Cloudinit"
                | "VM.Monitor"
        ),
        Role::PVEVMAdmin => {
            privilege.starts_with("VM.")
                || matches!(
                    privilege,
                    "Datastore.AllocateSpace" | "Datastore.Audit" | "Sys.Audit"
                )
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn sign(key: &[u8; 32], purpose: &str, data: &str) -> String {
    let mut h = Sha256::new();
    h.update(key);
    h.update(purpose.as_bytes());
    h.update(data.as_bytes());
    base64(&h.finalize())
}

/// `PVE:<user>:<HEX time>::<signature>`.
pub(crate) fn make_ticket(key: &[u8; 32], user: &str, now: i64) -> String {
    let plain = format!("PVE:{}:{:08X}", user.replace(':', "%3A"), now);
    let sig = sign(key, "ticket", &plain);
    format!("{plain}::{sig}")
}

/// `<HEX time>:<signature>`.
pub(crate) fn make_csrf(key: &[u8; 32], user: &str, now: i64) -> String {
    let hex = format!("{now:08X}");
    let sig = sign(key, "csrf", &format!("{hex}:{user}"));
    format!("{hex}:{sig}")
}

/// Verify a ticket; returns the user.
pub(crate) fn verify_ticket(
    key: &[u8; 32],
    ticket: &str,
    now: i64,
    lifetime: i64,
) -> Option<String> {
    let (plain, sig) = ticket.split_once("::")?;
    let rest = plain.strip_prefix("PVE:")?;
    let (user, hex) = rest.rsplit_once(':')?;
    let t = i64::from_str_radix(hex, 16).ok()?;
    if sign(key, "ticket", plain) != sig {
        return None;
    }
    if now < t - 300 || now > t + lifetime {
        return None;
    }
    Some(user.replace("%3A", ":"))
}

fn verify_csrf(key: &[u8; 32], token: &str, user: &str, now: i64, lifetime: i64) -> bool {
    let Some((hex, _)) = token.split_once(':') else {
        return false;
    };
    if hex.len() != 8
        || !hex
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    {
        return false;
    }
    let Ok(t) = i64::from_str_radix(hex, 16) else {
        return false;
    };
    make_csrf(key, user, t) == token && now >= t - 300 && now <= t + lifetime
}

fn cookie_ticket(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == "PVEAuthCookie")
        .map(|(_, v)| unescape(v.trim_matches('"')))
}

fn unescape(v: &str) -> String {
    percent_encoding::percent_decode_str(v)
        .decode_utf8_lossy()
        .into_owned()
}

/// Authenticate a request. Errors are the auth-stage 401 reason phrases.
pub(crate) fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
    method: &http::Method,
) -> Result<Identity, &'static str> {
    let now = chrono::Utc::now().timestamp();
    let lifetime = shared.config.ticket_lifetime_secs as i64;
    let authz = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let authz_ticket = authz
        .strip_prefix("PVEAuthCookie=")
        .map(|v| unescape(v.split(';').next().unwrap_or(v)));
    if let Some(ticket) = cookie_ticket(headers).or(authz_ticket) {
        let user = verify_ticket(&shared.ticket_key, &ticket, now, lifetime)
            .ok_or("Authentication failed!")?;
        let u = shared
            .config
            .users
            .iter()
            .find(|u| u.userid == user && u.enabled)
            .ok_or("Authentication failed!")?;
        if method != http::Method::GET {
            let csrf = headers
                .get("CSRFPreventionToken")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !verify_csrf(&shared.ticket_key, csrf, &user, now, lifetime) {
                return Err("Permission denied - invalid csrf token");
            }
        }
        return Ok(Identity {
            user,
            tokenid: None,
            role: u.role,
        });
    }
    if let Some(pos) = authz.find("PVEAPIToken") {
        let rest = &authz[pos + "PVEAPIToken".len()..];
        let Some(rest) = rest.strip_prefix(['=', ' ']) else {
            return Err("No ticket");
        };
        let value = unescape(rest.split(';').next().unwrap_or(rest));
        let (id, secret) = value.rsplit_once('=').ok_or("Authentication failed!")?;
        let token = shared
            .config
            .tokens
            .iter()
            .find(|t| t.id == id)
            .ok_or("Authentication failed!")?;
        let secret_ok: bool = token.secret.len() == secret.len()
            && token
                .secret
                .bytes()
                .zip(secret.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !secret_ok {
            return Err("Authentication failed!");
        }
        let (user, tokenid) = id.split_once('!').ok_or("Authentication failed!")?;
        let user_enabled = shared
            .config
            .users
            .iter()
            .find(|u| u.userid == user)
            .is_none_or(|u| u.enabled);
        if !user_enabled {
            return Err("Authentication failed!");
        }
        return Ok(Identity {
            user: user.to_string(),
            tokenid: Some(tokenid.to_string()),
            role: token.role,
        });
    }
    Err("No ticket")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b"hello"), "aGVsbG8=");
        assert_eq!(base64(b"hi"), "aGk=");
        assert_eq!(base64(b"abc"), "YWJj");
    }

    #[test]
    fn tickets_verify_until_their_lifetime_ends() {
        let key = [7u8; 32];
        let t = make_ticket(&key, "root@pam", 1_000_000);
        assert!(t.starts_with("PVE:root@pam:000F4240::"));
        assert_eq!(
            verify_ticket(&key, &t, 1_000_100, 7200).as_deref(),
            Some("root@pam")
        );
        assert_eq!(verify_ticket(&key, &t, 1_000_000 + 7201, 7200), None);
        assert_eq!(verify_ticket(&[8u8; 32], &t, 1_000_100, 7200), None);
    }
}
