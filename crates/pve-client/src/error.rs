//! Typed errors, and the mapping from PVE's status + reason phrase + body to them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::ids::{NodeName, VmId};
use crate::upid::Upid;

/// The API call an error belongs to: method and path below `/api2/json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// HTTP method.
    pub method: reqwest::Method,
    /// Path below `/api2/json`, e.g. `/nodes/pve1/qemu/100/config`.
    pub path: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// Everything a PVE call can fail with. Every variant names the call (or the task) it came from;
/// none ever contains the token secret, the password or the ticket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// HTTP 401: no/invalid ticket or token, bad CSRF token, bad password. `reason` is PVE's
    /// reason phrase (`No ticket`, `Authentication failed!`, ...).
    #[error("{endpoint}: not authenticated: {reason}")]
    Unauthenticated {
        /// The call.
        endpoint: Endpoint,
        /// PVE's reason phrase or message.
        reason: String,
    },
    /// HTTP 403: the identity lacks a privilege (`Permission check failed (/vms/100, VM.Audit)`).
    #[error("{endpoint}: permission denied: {message}")]
    PermissionDenied {
        /// The call.
        endpoint: Endpoint,
        /// PVE's message.
        message: String,
    },
    /// The VM's config does not exist on that node (PVE answers 500, never 404).
    #[error("{endpoint}: VM config does not exist: {message}")]
    ConfigNotFound {
        /// The call.
        endpoint: Endpoint,
        /// The VM, from the message or the path.
        vmid: Option<VmId>,
        /// The node, from the message or the path.
        node: Option<NodeName>,
        /// PVE's message.
        message: String,
    },
    /// `VM is locked (<reason>)`: another operation holds the config lock.
    #[error("{endpoint}: VM is locked ({reason})")]
    Locked {
        /// The call.
        endpoint: Endpoint,
        /// The lock value: `clone`, `backup`, `migrate`, `create`, `destroyed`, ...
        reason: String,
    },
    /// `can't lock file '...' - got timeout`: the per-VM or storage file lock was busy.
    #[error("{endpoint}: lock timeout: {message}")]
    LockTimeout {
        /// The call.
        endpoint: Endpoint,
        /// PVE's message.
        message: String,
    },
    /// The VM id (or its config) already exists.
    #[error("{endpoint}: already exists: {message}")]
    AlreadyExists {
        /// The call.
        endpoint: Endpoint,
        /// PVE's message.
        message: String,
    },
    /// HTTP 400 `Parameter verification failed.` with per-parameter messages.
    #[error("{endpoint}: parameter verification failed: {}", format_param_errors(.errors))]
    ParameterVerification {
        /// The call.
        endpoint: Endpoint,
        /// Parameter name → message (trimmed).
        errors: BTreeMap<String, String>,
    },
    /// 595/596/597/599: pveproxy got no answer from the daemon in time. The outcome is
    /// **unknown**: the request may have been carried out. Re-read state; never blindly retry.
    #[error("{endpoint}: proxy gave up ({status} {reason}); outcome unknown")]
    ProxyTimeout {
        /// The call.
        endpoint: Endpoint,
        /// 595, 596, 597 or 599.
        status: u16,
        /// The reason phrase (`Connection timed out`, ...).
        reason: String,
    },
    /// Any other non-success answer.
    #[error("{endpoint}: HTTP {status}: {message}")]
    Api {
        /// The call.
        endpoint: Endpoint,
        /// HTTP status.
        status: u16,
        /// PVE's message, reason phrase or body text.
        message: String,
    },
    /// The guest agent answered with an error object (HTTP 200, in-band).
    #[error("{endpoint}: guest agent error {class}: {desc}")]
    Agent {
        /// The call.
        endpoint: Endpoint,
        /// QGA error class.
        class: String,
        /// QGA error description.
        desc: String,
    },
    /// A task ended with an exit status other than `OK` / `WARNINGS: n`.
    #[error("task {upid} failed: {exitstatus}")]
    TaskFailed {
        /// The task.
        upid: Upid,
        /// PVE's exit status text (the error message).
        exitstatus: String,
    },
    /// A task was still running when the wait's timeout expired (it keeps running in PVE).
    #[error("task {upid} still running after {waited:?}")]
    TaskTimeout {
        /// The task.
        upid: Upid,
        /// How long we waited.
        waited: Duration,
    },
    /// The request could not be sent or the answer not received (connect, TLS, timeout, ...).
    #[error("{endpoint}: transport error")]
    Transport {
        /// The call.
        endpoint: Endpoint,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The answer was not the JSON shape this client expects.
    #[error("{endpoint}: unexpected response body")]
    Decode {
        /// The call.
        endpoint: Endpoint,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
}

fn format_param_errors(errors: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    parts.join("; ")
}

impl Error {
    /// The HTTP status of an API error, if the error came from an HTTP answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthenticated { .. } => Some(401),
            Error::PermissionDenied { .. } => Some(403),
            Error::ParameterVerification { .. } => Some(400),
            Error::ProxyTimeout { status, .. } | Error::Api { status, .. } => Some(*status),
            Error::ConfigNotFound { .. } | Error::Locked { .. } | Error::LockTimeout { .. } => {
                Some(500)
            }
            _ => None,
        }
    }

    /// True when the request may or may not have been carried out (transport error or
    /// 595/596): the caller must re-read state before deciding anything.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Error::ProxyTimeout { .. } | Error::Transport { .. })
    }

    /// True for errors a read may be retried on: transport errors, proxy timeouts, lock
    /// timeouts and 5xx answers without a semantic meaning.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::ProxyTimeout { .. } | Error::LockTimeout { .. } => {
                true
            }
            Error::Api { status, .. } => *status >= 500 && *status != 501,
            _ => false,
        }
    }
}

/// The error body PVE sends (all fields optional: older PVE sends only `{"data":null}`).
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Option<BTreeMap<String, serde_json::Value>>,
}

/// Maps a non-success answer to an [`Error`]. `reason` is the HTTP reason phrase as sent.
pub(crate) fn classify(
    endpoint: Endpoint,
    status: u16,
    reason: Option<&str>,
    body: &[u8],
) -> Error {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let json_message = parsed
        .as_ref()
        .and_then(|b| b.message.as_deref())
        .map(str::trim)
        .filter(|m| !m.is_empty());
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    let plain_body = if parsed.is_none() {
        std::str::from_utf8(body)
            .ok()
            .map(str::trim)
            .filter(|b| !b.is_empty())
    } else {
        None
    };
    let message = json_message
        .or(reason)
        .or(plain_body)
        .unwrap_or("(no message)")
        .to_owned();

    let errors: BTreeMap<String, String> = parsed
        .and_then(|b| b.errors)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text.replace("\\n", "\n").trim().to_owned())
        })
        .collect();

    match status {
        401 => {
            return Error::Unauthenticated {
                endpoint,
                reason: message,
            };
        }
        403 => return Error::PermissionDenied { endpoint, message },
        595 | 596 | 597 | 599 => {
            return Error::ProxyTimeout {
                endpoint,
                status,
                reason: message,
            };
        }
        _ => {}
    }

    if !errors.is_empty() {
        if let Some(text) = errors.values().find(|v| v.contains("already exists")) {
            return Error::AlreadyExists {
                message: text.clone(),
                endpoint,
            };
        }
        return Error::ParameterVerification { endpoint, errors };
    }

    if let Some(lock) = lock_reason(&message) {
        return Error::Locked {
            endpoint,
            reason: lock.to_owned(),
        };
    }
    let missing_config = (message.contains("does not exist")
        && message.contains("onfiguration file"))
        || message.contains("unable to find configuration file");
    if missing_config {
        let (msg_node, msg_vmid) = config_path_ids(&message);
        let (path_node, path_vmid) = path_ids(&endpoint.path);
        return Error::ConfigNotFound {
            vmid: msg_vmid.or(path_vmid),
            node: msg_node.or(path_node),
            message,
            endpoint,
        };
    }
    if message.contains("can't lock file") && message.contains("got timeout") {
        return Error::LockTimeout { endpoint, message };
    }
    if message.contains("already exists") {
        return Error::AlreadyExists { endpoint, message };
    }
    Error::Api {
        endpoint,
        status,
        message,
    }
}

/// `VM is locked (clone)` → `clone` (also `CT is locked (...)`).
pub(crate) fn lock_reason(message: &str) -> Option<&str> {
    let start = message.find(" is locked (")? + " is locked (".len();
    let rest = &message[start..];
    let end = rest.find(')')?;
    let reason = &rest[..end];
    (!reason.is_empty()).then_some(reason)
}

/// Node and vmid from `Configuration file 'nodes/<node>/qemu-server/<vmid>.conf' ...`.
fn config_path_ids(message: &str) -> (Option<NodeName>, Option<VmId>) {
    let Some(start) = message.find("nodes/") else {
        return (None, None);
    };
    let mut parts = message[start + "nodes/".len()..].split('/');
    let node = parts.next().and_then(|n| NodeName::new(n).ok());
    let _kind = parts.next();
    let vmid = parts
        .next()
        .and_then(|f| f.split(".conf").next())
        .and_then(|v| v.parse().ok());
    (node, vmid)
}

/// Node and vmid from an API path `/nodes/<node>/qemu/<vmid>/...`.
fn path_ids(path: &str) -> (Option<NodeName>, Option<VmId>) {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let node = match segs.as_slice() {
        ["nodes", node, ..] => NodeName::new(*node).ok(),
        _ => None,
    };
    let vmid = match segs.as_slice() {
        ["nodes", _, "qemu" | "lxc", vmid, ..] => vmid.parse().ok(),
        _ => None,
    };
    (node, vmid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(method: reqwest::Method, path: &str) -> Endpoint {
        Endpoint {
            method,
            path: path.to_owned(),
        }
    }

    fn get(path: &str) -> Endpoint {
        ep(reqwest::Method::GET, path)
    }

    #[test]
    fn unauthenticated_keeps_reason_phrase_of_empty_body() {
        let e = classify(get("/version"), 401, Some("No ticket"), b"");
        assert!(matches!(&e, Error::Unauthenticated { reason, .. } if reason == "No ticket"));
        assert_eq!(e.to_string(), "GET /version: not authenticated: No ticket");
    }

    #[test]
    fn permission_denied_prefers_json_message() {
        let body = br#"{"data":null,"message":"Permission check failed (/vms/100, VM.Audit)\n"}"#;
        let e = classify(
            get("/nodes/pve1/qemu/100/config"),
            403,
            Some("Forbidden"),
            body,
        );
        assert!(
            matches!(&e, Error::PermissionDenied { message, .. } if message == "Permission check failed (/vms/100, VM.Audit)")
        );
    }

    #[test]
    fn missing_config_500_maps_to_config_not_found_with_ids() {
        let msg = "Configuration file 'nodes/pve2/qemu-server/999.conf' does not exist";
        let body = format!(r#"{{"data":null,"message":"{msg}\n"}}"#);
        let e = classify(
            get("/nodes/pve1/qemu/998/config"),
            500,
            Some(msg),
            body.as_bytes(),
        );
        match e {
            Error::ConfigNotFound { vmid, node, .. } => {
                assert_eq!(vmid.map(VmId::get), Some(999));
                assert_eq!(node.as_ref().map(NodeName::as_str), Some("pve2"));
            }
            other => panic!("got {other:?}"),
        }
    }

    #[test]
    fn old_pve_without_message_uses_reason_phrase() {
        let e = classify(
            get("/nodes/pve1/qemu/101/status/current"),
            500,
            Some("Configuration file 'nodes/pve1/qemu-server/101.conf' does not exist"),
            br#"{"data":null}"#,
        );
        assert!(matches!(e, Error::ConfigNotFound { vmid: Some(v), .. } if v.get() == 101));
        let e = classify(
            ep(reqwest::Method::POST, "/nodes/pve1/qemu/101/config"),
            500,
            Some("VM is locked (backup)"),
            br#"{"data":null}"#,
        );
        assert!(matches!(&e, Error::Locked { reason, .. } if reason == "backup"));
    }

    #[test]
    fn locked_carries_lock_reason() {
        let body = br#"{"data":null,"message":"VM is locked (clone)\n"}"#;
        let e = classify(
            ep(reqwest::Method::PUT, "/nodes/pve1/qemu/101/config"),
            500,
            None,
            body,
        );
        assert!(matches!(&e, Error::Locked { reason, .. } if reason == "clone"));
        assert_eq!(
            e.to_string(),
            "PUT /nodes/pve1/qemu/101/config: VM is locked (clone)"
        );
    }

    #[test]
    fn parameter_errors_are_kept_per_parameter_and_trimmed() {
        let body = br#"{"data":null,"errors":{"sshkeys":"invalid format - invalid urlencoded string: a b\n","name":"invalid format - value does not look like a valid DNS name\\ntoo long"}}"#;
        let e = classify(
            ep(reqwest::Method::PUT, "/nodes/pve1/qemu/101/config"),
            400,
            Some("Parameter verification failed."),
            body,
        );
        match e {
            Error::ParameterVerification { errors, .. } => {
                assert_eq!(
                    errors.get("sshkeys").map(String::as_str),
                    Some("invalid format - invalid urlencoded string: a b")
                );
                assert_eq!(
                    errors.get("name").map(String::as_str),
                    Some("invalid format - value does not look like a valid DNS name\ntoo long")
                );
            }
            other => panic!("got {other:?}"),
        }
    }

    #[test]
    fn already_exists_from_500_and_from_nextid_400() {
        let e = classify(
            ep(reqwest::Method::POST, "/nodes/pve1/qemu/9000/clone"),
            500,
            None,
            br#"{"data":null,"message":"unable to create VM 4103: config file already exists\n"}"#,
        );
        assert!(matches!(e, Error::AlreadyExists { .. }));
        let e = classify(
            get("/cluster/nextid"),
            400,
            Some("Parameter verification failed."),
            br#"{"data":null,"errors":{"vmid":"VM 100 already exists"}}"#,
        );
        assert!(
            matches!(&e, Error::AlreadyExists { message, .. } if message == "VM 100 already exists")
        );
    }

    #[test]
    fn proxy_timeouts_mean_unknown_outcome() {
        let e = classify(
            ep(reqwest::Method::PUT, "/nodes/pve1/qemu/101/config"),
            596,
            Some("Connection timed out"),
            b"",
        );
        assert!(matches!(e, Error::ProxyTimeout { status: 596, .. }));
        assert!(e.outcome_unknown());
        assert!(e.is_transient());
    }

    #[test]
    fn lock_file_timeout_is_its_own_kind() {
        let e = classify(
            ep(reqwest::Method::PUT, "/nodes/pve1/qemu/101/config"),
            500,
            None,
            br#"{"data":null,"message":"can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout\n"}"#,
        );
        assert!(matches!(e, Error::LockTimeout { .. }));
    }

    #[test]
    fn plain_text_501_body_becomes_message() {
        let e = classify(
            get("/nodes/x/foo"),
            501,
            None,
            b"Method 'GET /nodes/x/foo' not implemented",
        );
        assert!(
            matches!(&e, Error::Api { status: 501, message, .. } if message == "Method 'GET /nodes/x/foo' not implemented")
        );
        assert!(!e.is_transient());
    }

    #[test]
    fn semantic_500s_are_not_transient_but_generic_ones_are() {
        let locked = classify(get("/p"), 500, Some("VM is locked (migrate)"), b"");
        assert!(!locked.is_transient());
        let generic = classify(get("/p"), 500, Some("Internal Server Error"), b"");
        assert!(generic.is_transient());
    }
}
