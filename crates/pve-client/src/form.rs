//! Request parameters: strict percent-encoding, PVE booleans, and the typed parameter sets
//! (config update, clone, destroy).

use std::collections::BTreeMap;
use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::ids::{NodeName, Secret, VmId};

/// Everything but `A-Z a-z 0-9 - _ . ~` is encoded; a space becomes `%20`, never `+`.
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes `s` strictly (RFC 3986 unreserved characters stay, everything else is
/// `%XX`), which is what PVE's `urlencoded` format (`sshkeys`) requires.
pub fn pve_urlencode(s: &str) -> String {
    utf8_percent_encode(s, STRICT).to_string()
}

/// Ordered request parameters, encoded as a form body or a query string.
#[derive(Default, Clone, PartialEq, Eq)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn push(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.0.push((key.into(), value.into()));
        self
    }

    pub(crate) fn push_opt(&mut self, key: &str, value: Option<impl ToString>) -> &mut Self {
        if let Some(v) = value {
            self.0.push((key.to_owned(), v.to_string()));
        }
        self
    }

    pub(crate) fn push_bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.push(key, if value { "1" } else { "0" })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `k=v&k=v` with strict percent-encoding (usable as body and as query string).
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.0 {
            if !out.is_empty() {
                out.push('&');
            }
            out.extend(utf8_percent_encode(k, STRICT));
            out.push('=');
            out.extend(utf8_percent_encode(v, STRICT));
        }
        out
    }

    /// Keys only, for logs (values may be secrets).
    pub(crate) fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Keys whose values must never show up in `Debug` output or logs.
const SECRET_KEYS: &[&str] = &["cipassword", "password"];

/// A config change for `PUT`/`POST /nodes/{node}/qemu/{vmid}/config`: keys to set, keys to
/// delete, and an optional `digest` for optimistic concurrency.
///
/// Booleans are sent as `1`/`0`; `sshkeys` is percent-encoded the strict PVE way (and thus
/// double-encoded in the form body); `cipassword` is masked in `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConfigUpdate {
    values: BTreeMap<String, String>,
    delete: Vec<String>,
    digest: Option<String>,
}

impl ConfigUpdate {
    /// An empty update.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets any config key to a raw value (as PVE's property string).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.values.insert(key.into(), value.into());
        self
    }

    /// Sets a boolean key (`onboot`, `protection`, ...) as `1`/`0`.
    pub fn set_bool(self, key: impl Into<String>, value: bool) -> Self {
        self.set(key, if value { "1" } else { "0" })
    }

    /// `name` (must be a DNS name).
    pub fn name(self, name: impl Into<String>) -> Self {
        self.set("name", name)
    }

    /// `cores`.
    pub fn cores(self, cores: u32) -> Self {
        self.set("cores", cores.to_string())
    }

    /// `memory` in MiB.
    pub fn memory_mib(self, mib: u64) -> Self {
        self.set("memory", mib.to_string())
    }

    /// `description` (free text; PVE stores it as comment lines).
    pub fn description(self, text: impl Into<String>) -> Self {
        self.set("description", text)
    }

    /// `tags`, joined with `;` (PVE normalises: lower-cases, de-duplicates, sorts).
    pub fn tags<S: AsRef<str>>(self, tags: &[S]) -> Self {
        let joined: Vec<&str> = tags.iter().map(AsRef::as_ref).collect();
        self.set("tags", joined.join(";"))
    }

    /// `onboot`.
    pub fn onboot(self, on: bool) -> Self {
        self.set_bool("onboot", on)
    }

    /// `net<index>`, e.g. `virtio,bridge=vmbr0`.
    pub fn net(self, index: u8, value: impl Into<String>) -> Self {
        self.set(format!("net{index}"), value)
    }

    /// `ipconfig<index>`, e.g. `ip=10.0.10.21/24,gw=10.0.10.1`.
    pub fn ipconfig(self, index: u8, value: impl Into<String>) -> Self {
        self.set(format!("ipconfig{index}"), value)
    }

    /// `ciuser`.
    pub fn ciuser(self, user: impl Into<String>) -> Self {
        self.set("ciuser", user)
    }

    /// `cipassword` (masked in `Debug`).
    pub fn cipassword(self, password: &Secret) -> Self {
        self.set("cipassword", password.expose())
    }

    /// `cicustom`, e.g. `user=local:snippets/worker.yaml`.
    pub fn cicustom(self, value: impl Into<String>) -> Self {
        self.set("cicustom", value)
    }

    /// `sshkeys`: one key per line, percent-encoded strictly as PVE requires.
    pub fn sshkeys<S: AsRef<str>>(self, keys: &[S]) -> Self {
        let lines: Vec<&str> = keys.iter().map(|k| k.as_ref().trim()).collect();
        self.set("sshkeys", pve_urlencode(&lines.join("\n")))
    }

    /// Removes `key` from the config (`delete=`).
    pub fn delete(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        if !self.delete.contains(&key) {
            self.delete.push(key);
        }
        self
    }

    /// Only apply if the config's digest is still `digest` (else PVE fails with
    /// `checksum mismatch`).
    pub fn digest(mut self, digest: impl Into<String>) -> Self {
        self.digest = Some(digest.into());
        self
    }

    /// True when nothing would be changed.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.delete.is_empty()
    }

    /// The raw value set for `key`, as it will be sent (before form encoding).
    pub fn value(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub(crate) fn to_params(&self) -> Params {
        let mut p = Params::new();
        for (k, v) in &self.values {
            p.push(k.clone(), v.clone());
        }
        if !self.delete.is_empty() {
            p.push("delete", self.delete.join(","));
        }
        p.push_opt("digest", self.digest.as_deref());
        p
    }
}

impl fmt::Debug for ConfigUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: BTreeMap<&str, &str> = self
            .values
            .iter()
            .map(|(k, v)| {
                let v = if SECRET_KEYS.contains(&k.as_str()) {
                    "***"
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("ConfigUpdate")
            .field("values", &shown)
            .field("delete", &self.delete)
            .field("digest", &self.digest)
            .finish()
    }
}

/// Parameters of `POST /nodes/{node}/qemu/{vmid}/clone`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneParams {
    /// The new VM's id (required; PVE does not allocate one).
    pub newid: VmId,
    /// The new VM's name (DNS name).
    pub name: Option<String>,
    /// Target node (requires all source volumes on shared storage).
    pub target: Option<NodeName>,
    /// Full clone (`Some(true)`), linked (`Some(false)`), or PVE's default: linked for
    /// templates, full otherwise (`None`).
    pub full: Option<bool>,
    /// Target storage (full clones only).
    pub storage: Option<String>,
    /// Pool to add the new VM to.
    pub pool: Option<String>,
    /// Description (default: copied from the source).
    pub description: Option<String>,
}

impl CloneParams {
    /// A clone to `newid` with PVE's defaults for everything else.
    pub fn new(newid: VmId) -> Self {
        Self {
            newid,
            name: None,
            target: None,
            full: None,
            storage: None,
            pool: None,
            description: None,
        }
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the target node.
    pub fn target(mut self, node: NodeName) -> Self {
        self.target = Some(node);
        self
    }

    /// Requests a full (`true`) or linked (`false`) clone.
    pub fn full(mut self, full: bool) -> Self {
        self.full = Some(full);
        self
    }

    /// Sets the target storage (full clones only).
    pub fn storage(mut self, storage: impl Into<String>) -> Self {
        self.storage = Some(storage.into());
        self
    }

    /// Sets the pool.
    pub fn pool(mut self, pool: impl Into<String>) -> Self {
        self.pool = Some(pool.into());
        self
    }

    /// Sets the description.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    pub(crate) fn to_params(&self) -> Params {
        let mut p = Params::new();
        p.push("newid", self.newid.to_string());
        p.push_opt("name", self.name.as_deref());
        p.push_opt("target", self.target.as_ref());
        if let Some(full) = self.full {
            p.push_bool("full", full);
        }
        p.push_opt("storage", self.storage.as_deref());
        p.push_opt("pool", self.pool.as_deref());
        p.push_opt("description", self.description.as_deref());
        p
    }
}

/// Parameters of `DELETE /nodes/{node}/qemu/{vmid}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestroyParams {
    /// Also remove the VM from backup jobs, replication and HA.
    pub purge: bool,
    /// Also delete disks named for this vmid that the config does not reference.
    pub destroy_unreferenced_disks: bool,
}

impl DestroyParams {
    /// `purge=1&destroy-unreferenced-disks=1`: leave nothing behind.
    pub fn thorough() -> Self {
        Self {
            purge: true,
            destroy_unreferenced_disks: true,
        }
    }

    pub(crate) fn to_params(self) -> Params {
        let mut p = Params::new();
        if self.purge {
            p.push_bool("purge", true);
        }
        if self.destroy_unreferenced_disks {
            p.push_bool("destroy-unreferenced-disks", true);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vmid(n: u32) -> VmId {
        VmId::new(n).expect("valid")
    }

    #[test]
    fn strict_encoding_never_uses_plus_for_space() {
        assert_eq!(
            pve_urlencode("a b+c/d=e:f@g\nh"),
            "a%20b%2Bc%2Fd%3De%3Af%40g%0Ah"
        );
        assert_eq!(pve_urlencode("A-z_0.9~"), "A-z_0.9~");
    }

    #[test]
    fn sshkeys_are_encoded_then_double_encoded_in_the_body() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB+x/y= ops@ctl";
        let u = ConfigUpdate::new().sshkeys(&[key, "ssh-rsa AAAAB3 b@c"]);
        let stored = u.value("sshkeys").expect("set");
        assert_eq!(
            stored,
            "ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIB%2Bx%2Fy%3D%20ops%40ctl%0Assh-rsa%20AAAAB3%20b%40c"
        );
        // Matches PVE's `urlencoded` format pattern ^[-%a-zA-Z0-9_.!~*'()]*$.
        assert!(
            stored
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-%_.!~*'()".contains(&b))
        );
        let body = u.to_params().encode();
        assert!(body.starts_with("sshkeys=ssh-ed25519%2520AAAAC3NzaC1lZDI1NTE5AAAAIB%252Bx"));
        assert!(!body.contains('+'));
    }

    #[test]
    fn booleans_are_zero_one_and_delete_digest_are_sent() {
        let u = ConfigUpdate::new()
            .onboot(true)
            .set_bool("protection", false)
            .tags(&["reborn", "role-worker"])
            .delete("ide2")
            .delete("net1")
            .digest("0123abcd");
        assert_eq!(
            u.to_params().encode(),
            "onboot=1&protection=0&tags=reborn%3Brole-worker&delete=ide2%2Cnet1&digest=0123abcd"
        );
    }

    #[test]
    fn config_update_debug_masks_cipassword() {
        let u = ConfigUpdate::new()
            .cipassword(&Secret::new("hunter2"))
            .ciuser("app");
        let dbg = format!("{u:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("app"));
    }

    #[test]
    fn clone_params_encode_all_fields() {
        let p = CloneParams::new(vmid(4103))
            .name("worker-1")
            .target(NodeName::new("pve2").expect("valid"))
            .full(true)
            .storage("local-lvm")
            .pool("reborn")
            .description("managed by reborn\nnode=worker-1");
        assert_eq!(
            p.to_params().encode(),
            "newid=4103&name=worker-1&target=pve2&full=1&storage=local-lvm&pool=reborn&description=managed%20by%20reborn%0Anode%3Dworker-1"
        );
        assert_eq!(
            CloneParams::new(vmid(200)).full(false).to_params().encode(),
            "newid=200&full=0"
        );
    }

    #[test]
    fn destroy_params_send_only_requested_flags() {
        assert!(DestroyParams::default().to_params().is_empty());
        assert_eq!(
            DestroyParams::thorough().to_params().encode(),
            "purge=1&destroy-unreferenced-disks=1"
        );
    }
}
