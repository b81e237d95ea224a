//! VM config keys: types, validation and normalisation like qemu-server, digest, volumes.

use std::collections::BTreeMap;

use serde_json::Value;
use sha1::{Digest, Sha1};

use crate::config::StorageKind;

/// Declared type of a config key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyType {
    Bool,
    Int { min: i64, max: i64 },
    Str(Fmt),
}

/// String formats with their own checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fmt {
    Plain,
    DnsName,
    Tags,
    SshKeys,
    Net,
    IpConfig,
    Memory,
    Agent,
    Drive,
    Enum(&'static [&'static str]),
}

const LOCKS: &[&str] = &[
    "backup",
    "clone",
    "create",
    "migrate",
    "rollback",
    "snapshot",
    "snapshot-delete",
    "suspending",
    "suspended",
];
const NET_MODELS: &[&str] = &[
    "e1000",
    "e1000-82540em",
    "e1000-82544gc",
    "e1000-82545em",
    "e1000e",
    "i82551",
    "i82557b",
    "i82559er",
    "ne2k_isa",
    "ne2k_pci",
    "pcnet",
    "rtl8139",
    "virtio",
    "vmxnet3",
];
const SCSIHW: &[&str] = &[
    "lsi",
    "lsi53c810",
    "virtio-scsi-pci",
    "virtio-scsi-single",
    "megasas",
    "pvscsi",
];
const OSTYPES: &[&str] = &[
    "other", "wxp", "w2k", "w2k3", "w2k8", "wvista", "win7", "win8", "win10", "win11", "l24",
    "l26", "solaris",
];
const CITYPES: &[&str] = &["configdrive2", "nocloud", "opennebula"];
const BIOS: &[&str] = &["seabios", "ovmf"];

const I64MAX: i64 = i64::MAX;

fn indexed(key: &str, prefix: &str, max: u32) -> bool {
    key.strip_prefix(prefix)
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        .filter(|n| n.len() == 1 || !n.starts_with('0'))
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| n <= max)
}

/// Whether `key` is a drive (disk, cdrom, cloud-init, efi, tpm) key.
pub(crate) fn is_drive_key(key: &str) -> bool {
    indexed(key, "scsi", 30)
        || indexed(key, "virtio", 15)
        || indexed(key, "sata", 5)
        || indexed(key, "ide", 3)
        || key == "efidisk0"
        || key == "tpmstate0"
}

/// The type of config key `key`, or `None` if PVE's schema does not know it.
pub(crate) fn key_type(key: &str) -> Option<KeyType> {
    use Fmt::*;
    use KeyType::*;
    let t = match key {
        "acpi" | "autostart" | "ciupgrade" | "freeze" | "keephugepages" | "kvm" | "localtime"
        | "numa" | "onboot" | "protection" | "reboot" | "tablet" | "tdf" | "template" => Bool,
        "cores" | "sockets" | "vcpus" | "smp" => Int {
            min: 1,
            max: I64MAX,
        },
        "balloon" | "migrate_speed" => Int {
            min: 0,
            max: I64MAX,
        },
        "cpuunits" => Int {
            min: 1,
            max: 262_144,
        },
        "shares" => Int {
            min: 0,
            max: 50_000,
        },
        "name" => Str(DnsName),
        "tags" => Str(Tags),
        "sshkeys" => Str(SshKeys),
        "memory" => Str(Memory),
        "agent" => Str(Agent),
        "lock" => Str(Enum(LOCKS)),
        "scsihw" => Str(Enum(SCSIHW)),
        "ostype" => Str(Enum(OSTYPES)),
        "citype" => Str(Enum(CITYPES)),
        "bios" => Str(Enum(BIOS)),
        "description" | "ciuser" | "cipassword" | "cicustom" | "nameserver" | "searchdomain"
        | "boot" | "bootdisk" | "cpu" | "cpulimit" | "smbios1" | "vmgenid" | "machine"
        | "hotplug" | "startup" | "vga" | "args" | "hookscript" | "affinity" | "arch"
        | "audio0" | "cdrom" | "hugepages" | "ivshmem" | "keyboard" | "migrate_downtime"
        | "rng0" | "spice_enhancements" | "startdate" | "vmstatestorage" | "watchdog"
        | "amd-sev" => Str(Plain),
        k if indexed(k, "net", 31) => Str(Net),
        k if indexed(k, "ipconfig", 31) => Str(IpConfig),
        k if is_drive_key(k) => Str(Drive),
        k if indexed(k, "unused", 255)
            || indexed(k, "serial", 3)
            || indexed(k, "usb", 14)
            || indexed(k, "hostpci", 15)
            || indexed(k, "numa", 7)
            || indexed(k, "parallel", 2)
            || indexed(k, "virtiofs", 9) =>
        {
            Str(Plain)
        }
        _ => return None,
    };
    Some(t)
}

/// Keys only `root@pam` may set or delete.
pub(crate) fn root_only_key(key: &str) -> bool {
    matches!(key, "lock" | "args" | "hookscript")
}

/// Check one scalar value against its type; on success return the stored form.
pub(crate) fn check_type(ty: KeyType, value: &str) -> Result<String, String> {
    match ty {
        KeyType::Bool => match value {
            "1" | "0" => Ok(value.to_string()),
            _ => Err(format!("type check ('boolean') failed - got '{value}'")),
        },
        KeyType::Int { min, max } => {
            let n = parse_int(value)
                .ok_or_else(|| format!("type check ('integer') failed - got '{value}'"))?;
            if n < min {
                return Err(format!("value must have a minimum value of {min}"));
            }
            if n > max {
                return Err(format!("value must have a maximum value of {max}"));
            }
            Ok(n.to_string())
        }
        KeyType::Str(fmt) => check_format(fmt, value),
    }
}

pub(crate) fn parse_int(v: &str) -> Option<i64> {
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    v.parse::<i64>().ok()
}

fn check_format(fmt: Fmt, v: &str) -> Result<String, String> {
    match fmt {
        Fmt::Plain | Fmt::Drive => Ok(v.to_string()),
        Fmt::DnsName => {
            if is_dns_name(v) {
                Ok(v.to_string())
            } else {
                Err("invalid format - value does not look like a valid DNS name\n".into())
            }
        }
        Fmt::Tags => normalize_tags(v),
        Fmt::SshKeys => {
            if v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-%_.!~*'()".contains(c))
            {
                Ok(v.to_string())
            } else {
                Err(format!("invalid format - invalid urlencoded string: {v}\n"))
            }
        }
        Fmt::Memory => {
            let n = v.strip_prefix("current=").unwrap_or(v);
            match parse_int(n) {
                Some(m) if m >= 16 => Ok(v.to_string()),
                Some(_) => Err("invalid format - value must have a minimum value of 16\n".into()),
                None => Err(format!(
                    "invalid format - type check ('integer') failed - got '{n}'\n"
                )),
            }
        }
        Fmt::Agent => {
            let first = v.split(',').next().unwrap_or("");
            let en = first.strip_prefix("enabled=").unwrap_or(first);
            if en == "1" || en == "0" {
                Ok(v.to_string())
            } else {
                Err(format!(
                    "invalid format - type check ('boolean') failed - got '{en}'\n"
                ))
            }
        }
        Fmt::Enum(values) => {
            if values.contains(&v) {
                Ok(v.to_string())
            } else {
                Err(format!(
                    "value '{v}' does not have a value in the enumeration '{}'",
                    values.join(", ")
                ))
            }
        }
        Fmt::Net => normalize_net(v, None),
        Fmt::IpConfig => check_ipconfig(v),
    }
}

/// `dns-name`: `^(label\.)*label$`, label `[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?`.
pub(crate) fn is_dns_name(v: &str) -> bool {
    !v.is_empty()
        && v.split('.').all(|l| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// `pve-node`: `^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$`.
pub(crate) fn is_node_name(v: &str) -> bool {
    !v.is_empty()
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !v.starts_with('-')
        && !v.ends_with('-')
}

/// Split like `PVE::Tools::split_list`: `,` `;` or whitespace.
pub(crate) fn split_list(v: &str) -> Vec<String> {
    v.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Validate and normalise a tag list: lower-cased, unique, sorted, joined with `;`.
pub(crate) fn normalize_tags(v: &str) -> Result<String, String> {
    let mut tags: Vec<String> = Vec::new();
    for t in split_list(v) {
        let mut chars = t.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_-+.".contains(c));
        if !first_ok || !rest_ok {
            return Err("invalid format - invalid characters in tag\n".into());
        }
        let t = t.to_lowercase();
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    tags.sort();
    Ok(tags.join(";"))
}

/// Normalise `net[n]`: `<model>=<MAC>,<other keys sorted>`. Without `mac`, a missing MAC is
/// left out (validation only); with one, it is filled in.
pub(crate) fn normalize_net(v: &str, mac: Option<&str>) -> Result<String, String> {
    let mut model: Option<String> = None;
    let mut macaddr: Option<String> = None;
    let mut rest: BTreeMap<String, String> = BTreeMap::new();
    for (i, part) in v.split(',').filter(|p| !p.is_empty()).enumerate() {
        let (k, val) = match part.split_once('=') {
            Some((k, val)) => (k.to_string(), Some(val.to_string())),
            None => (part.to_string(), None),
        };
        if NET_MODELS.contains(&k.as_str()) {
            model = Some(k);
            if let Some(m) = val {
                macaddr = Some(m);
            }
            continue;
        }
        match (k.as_str(), val) {
            ("model", Some(m)) => model = Some(m),
            ("macaddr", Some(m)) => macaddr = Some(m),
            (_, None) if i == 0 => model = Some(k),
            (
                "bridge" | "firewall" | "link_down" | "mtu" | "queues" | "rate" | "tag" | "trunks",
                Some(val),
            ) => {
                rest.insert(k, val);
            }
            (other, _) => {
                return Err(format!(
                    "invalid format - format error\n{other}: property is not defined in schema and the schema does not allow additional properties\n"
                ));
            }
        }
    }
    let model = model.ok_or(
        "invalid format - format error\nmodel: property is missing and it is not optional\n",
    )?;
    if !NET_MODELS.contains(&model.as_str()) {
        return Err(format!(
            "invalid format - format error\nmodel: value '{model}' does not have a value in the enumeration '{}'\n",
            NET_MODELS.join(", ")
        ));
    }
    if let Some(m) = &macaddr {
        if !is_mac(m) {
            return Err(format!(
                "invalid format - format error\nmacaddr: value does not look like a valid MAC address\n{m}\n"
            ));
        }
    }
    for key in ["firewall", "link_down"] {
        if let Some(b) = rest.get(key) {
            if b != "0" && b != "1" {
                return Err(format!(
                    "invalid format - format error\n{key}: type check ('boolean') failed - got '{b}'\n"
                ));
            }
        }
    }
    let mac = macaddr.or(mac.map(str::to_string));
    let mut out = match mac {
        Some(m) => format!("{model}={}", m.to_uppercase()),
        None => model,
    };
    for (k, v) in rest {
        out.push_str(&format!(",{k}={v}"));
    }
    Ok(out)
}

/// Whether a normalised `net` value lacks a MAC.
pub(crate) fn net_needs_mac(v: &str) -> bool {
    !v.split(',').next().unwrap_or("").contains('=')
}

/// Replace the MAC of a normalised `net` value.
pub(crate) fn net_with_mac(v: &str, mac: &str) -> String {
    let mut parts = v.splitn(2, ',');
    let first = parts.next().unwrap_or("");
    let model = first.split('=').next().unwrap_or(first);
    match parts.next() {
        Some(rest) => format!("{model}={mac},{rest}"),
        None => format!("{model}={mac}"),
    }
}

/// The MAC of a `net` value.
pub(crate) fn net_mac(v: &str) -> Option<String> {
    v.split(',')
        .next()
        .and_then(|f| f.split_once('='))
        .map(|(_, m)| m.to_string())
}

fn is_mac(m: &str) -> bool {
    let parts: Vec<&str> = m.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn check_ipconfig(v: &str) -> Result<String, String> {
    let mut has_ip = false;
    let mut has_gw = false;
    for part in v.split(',').filter(|p| !p.is_empty()) {
        let Some((k, val)) = part.split_once('=') else {
            return Err(format!(
                "invalid format - format error\n{part}: invalid key\n"
            ));
        };
        match k {
            "ip" => {
                has_ip = true;
                if !(val == "dhcp" || val == "manual" || parse_cidr4(val).is_some()) {
                    return Err(format!(
                        "invalid format - format error\nip: invalid format - invalid IPv4 CIDR '{val}'\n"
                    ));
                }
            }
            "gw" => {
                has_gw = true;
                if val.parse::<std::net::Ipv4Addr>().is_err() {
                    return Err("invalid format - format error\ngw: invalid format - value does not look like a valid IPv4 address\n".to_string());
                }
            }
            "ip6" | "gw6" => {}
            other => {
                return Err(format!(
                    "invalid format - format error\n{other}: property is not defined in schema and the schema does not allow additional properties\n"
                ));
            }
        }
    }
    if has_gw && !has_ip {
        return Err("invalid format - gateway specified without specifying an IP address\n".into());
    }
    Ok(v.to_string())
}

/// Parse `a.b.c.d/nn`.
pub(crate) fn parse_cidr4(v: &str) -> Option<(std::net::Ipv4Addr, u8)> {
    let (ip, prefix) = v.split_once('/')?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some((ip.parse().ok()?, prefix))
}

/// Static IPv4 address from `ipconfig0`, if any.
pub(crate) fn static_ip(config: &BTreeMap<String, String>) -> Option<(std::net::Ipv4Addr, u8)> {
    config
        .get("ipconfig0")?
        .split(',')
        .find_map(|p| p.strip_prefix("ip=").and_then(parse_cidr4))
}

/// Decode a strictly percent-encoded `sshkeys` value and check each key line.
pub(crate) fn check_ssh_keys(v: &str) -> Result<(), String> {
    let decoded = percent_encoding::percent_decode_str(v)
        .decode_utf8()
        .map_err(|_| "SSH public key validation error".to_string())?;
    for line in decoded.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with('#') {
            continue;
        }
        let mut it = line.split_whitespace();
        let kind = it.next().unwrap_or("");
        let blob = it.next().unwrap_or("");
        let kind_ok =
            kind.starts_with("ssh-") || kind.starts_with("ecdsa-sha2-") || kind.starts_with("sk-");
        let blob_ok = blob.len() >= 16
            && blob
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=');
        if !kind_ok || !blob_ok {
            return Err("SSH public key validation error".into());
        }
    }
    Ok(())
}

/// Memory in MiB from the `memory` property string (default 512).
pub(crate) fn memory_mib(config: &BTreeMap<String, String>) -> u64 {
    config
        .get("memory")
        .map(|m| m.strip_prefix("current=").unwrap_or(m))
        .and_then(|m| m.split(',').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or(512)
}

/// Size in bytes of a drive value's `size=` option.
pub(crate) fn drive_size(v: &str) -> u64 {
    v.split(',')
        .find_map(|p| p.strip_prefix("size="))
        .and_then(parse_size)
        .unwrap_or(0)
}

fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1u64 << 10),
        'M' => (&s[..s.len() - 1], 1 << 20),
        'G' => (&s[..s.len() - 1], 1 << 30),
        'T' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: f64 = num.parse().ok()?;
    Some((n * mult as f64) as u64)
}

/// Size of the boot disk (first disk in `boot: order=`, else the first disk).
pub(crate) fn boot_disk_bytes(config: &BTreeMap<String, String>) -> u64 {
    let from_order = config
        .get("boot")
        .and_then(|b| b.strip_prefix("order="))
        .and_then(|o| o.split(';').find(|d| config.contains_key(*d)))
        .and_then(|d| config.get(d));
    let first_disk = || {
        config
            .iter()
            .find(|(k, v)| is_drive_key(k) && !is_cdrom(v))
            .map(|(_, v)| v)
    };
    from_order
        .or_else(first_disk)
        .map(|v| drive_size(v))
        .unwrap_or(0)
}

/// Whether a drive value is a CD-ROM (ISO, `none`, or the cloud-init drive).
pub(crate) fn is_cdrom(v: &str) -> bool {
    v.split(',').any(|p| p == "media=cdrom")
}

/// Whether a drive value is a cloud-init volume.
pub(crate) fn is_cloudinit(v: &str) -> bool {
    v.split(',')
        .next()
        .is_some_and(|vol| vol.contains("-cloudinit"))
}

/// `(storage, volume name)` of a drive value, `None` for `none`/`cdrom`/paths.
pub(crate) fn volume_of(v: &str) -> Option<(&str, &str)> {
    let vol = v.split(',').next()?;
    let (s, name) = vol.split_once(':')?;
    if s.is_empty() || s.starts_with('/') {
        return None;
    }
    Some((s, name))
}

/// Volume name of an image on a storage of `kind` (`<vmid>/<name>.qcow2` on file storages).
pub(crate) fn volume_name(kind: StorageKind, vmid: u32, base: &str) -> String {
    if kind.file_based() {
        format!("{vmid}/{base}.qcow2")
    } else {
        base.to_string()
    }
}

/// Raw `.conf` text: description as `#` comments, then `key: value` lines sorted by key.
pub(crate) fn serialize(config: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    if let Some(d) = config.get("description") {
        for line in d.lines() {
            out.push('#');
            out.push_str(
                &percent_encoding::utf8_percent_encode(line, percent_encoding::CONTROLS)
                    .to_string(),
            );
            out.push('\n');
        }
    }
    for (k, v) in config.iter().filter(|(k, _)| *k != "description") {
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
        out.push('\n');
    }
    out
}

/// SHA-1 hex of the serialised config.
pub(crate) fn digest(config: &BTreeMap<String, String>) -> String {
    hex::encode(Sha1::digest(serialize(config).as_bytes()))
}

/// SHA-1 hex of the serialised config file including its `[PENDING]` section (PVE's digest
/// covers the whole file).
pub(crate) fn digest_with_pending(
    config: &BTreeMap<String, String>,
    pending: &BTreeMap<String, String>,
    pending_delete: &BTreeMap<String, bool>,
) -> String {
    if pending.is_empty() && pending_delete.is_empty() {
        return digest(config);
    }
    let mut text = serialize(config);
    text.push_str("\n[PENDING]\n");
    text.push_str(&serialize(pending));
    if !pending_delete.is_empty() {
        let keys: Vec<String> = pending_delete
            .iter()
            .map(|(k, force)| if *force { format!("!{k}") } else { k.clone() })
            .collect();
        text.push_str(&format!("delete: {}\n", keys.join(",")));
    }
    hex::encode(Sha1::digest(text.as_bytes()))
}

/// Keys PVE applies at once even on a running VM (qemu-server `$fast_plug_option`, plus the
/// cloud-init keys, which only take effect when the cloud-init drive is regenerated).
pub(crate) fn fast_plug_key(key: &str) -> bool {
    matches!(
        key,
        "description"
            | "hookscript"
            | "lock"
            | "migrate_downtime"
            | "migrate_speed"
            | "name"
            | "onboot"
            | "protection"
            | "shares"
            | "startup"
            | "tags"
            | "vmstatestorage"
            | "ciuser"
            | "cipassword"
            | "citype"
            | "ciupgrade"
            | "cicustom"
            | "sshkeys"
            | "nameserver"
            | "searchdomain"
    ) || indexed(key, "ipconfig", 31)
}

/// Hotplug features enabled by the `hotplug` key (default `network,disk,usb`; `0` = none,
/// `1` = the default).
pub(crate) fn hotplug_features(config: &BTreeMap<String, String>) -> Vec<String> {
    let v = config.get("hotplug").map(String::as_str).unwrap_or("1");
    match v {
        "0" => Vec::new(),
        "1" => vec!["network".into(), "disk".into(), "usb".into()],
        other => other.split(',').map(str::to_string).collect(),
    }
}

/// Whether a change of `key` is applied to a running VM at once (fast-plug or hotplug);
/// otherwise it stays in `[PENDING]` until the next start.
pub(crate) fn applies_live(
    key: &str,
    value: Option<&str>,
    config: &BTreeMap<String, String>,
) -> bool {
    if fast_plug_key(key) {
        return true;
    }
    let features = hotplug_features(config);
    let has = |f: &str| features.iter().any(|x| x == f);
    match key {
        "balloon" | "cpulimit" | "cpuunits" => true,
        // Changing `hotplug` itself is live unless memory hotplug is involved.
        "hotplug" => {
            !value.is_some_and(|v| v.contains("memory"))
                && !config.get("hotplug").is_some_and(|v| v.contains("memory"))
        }
        "tablet" => has("usb"),
        "memory" => has("memory"),
        "vcpus" => has("cpu"),
        k if indexed(k, "net", 31) => has("network"),
        k if indexed(k, "usb", 14) => has("usb"),
        k if is_drive_key(k) => {
            value.is_some_and(is_cdrom)
                || config.get(k).is_some_and(|v| is_cdrom(v))
                || (has("disk") && !k.starts_with("ide") && !k.starts_with("sata"))
        }
        _ => false,
    }
}

/// JSON value of a stored config value, typed like `GET config` returns it.
pub(crate) fn json_value(key: &str, v: &str) -> Value {
    match key_type(key) {
        Some(KeyType::Bool) | Some(KeyType::Int { .. }) => parse_int(v)
            .map(Value::from)
            .unwrap_or_else(|| Value::String(v.to_string())),
        _ => Value::String(v.to_string()),
    }
}

/// Whether the agent is enabled (`agent: 1` / `enabled=1,...`).
pub(crate) fn agent_enabled(config: &BTreeMap<String, String>) -> bool {
    config.get("agent").is_some_and(|a| {
        let first = a.split(',').next().unwrap_or("");
        first.strip_prefix("enabled=").unwrap_or(first) == "1"
    })
}

/// Replace `uuid=` in an `smbios1` value (or build one).
pub(crate) fn smbios_with_uuid(old: Option<&str>, uuid: &str) -> String {
    let mut parts: Vec<String> = old
        .unwrap_or("")
        .split(',')
        .filter(|p| !p.is_empty() && !p.starts_with("uuid="))
        .map(str::to_string)
        .collect();
    parts.insert(0, format!("uuid={uuid}"));
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_lowercased_deduplicated_sorted_and_joined_with_semicolons() {
        assert_eq!(normalize_tags("Web, prod web").as_deref(), Ok("prod;web"));
        assert!(normalize_tags("bad tag!").is_err());
    }

    #[test]
    fn net_is_normalised_with_model_first_and_keys_sorted() {
        assert_eq!(
            normalize_net(
                "bridge=vmbr0,model=virtio,firewall=1",
                Some("bc:24:11:00:00:01")
            ),
            Ok("virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1".into())
        );
        assert!(normalize_net("foo,bridge=vmbr0", None).is_err());
    }

    #[test]
    fn sshkeys_must_be_strictly_percent_encoded() {
        assert!(check_format(Fmt::SshKeys, "ssh-ed25519%20AAAA").is_ok());
        assert!(check_format(Fmt::SshKeys, "ssh-ed25519+AAAA").is_err());
        assert!(check_format(Fmt::SshKeys, "ssh-ed25519 AAAA").is_err());
    }

    #[test]
    fn dns_names_reject_underscores_and_edge_hyphens() {
        assert!(is_dns_name("worker-1.lab"));
        assert!(!is_dns_name("worker_1"));
        assert!(!is_dns_name("-worker"));
    }
}
