//! Rendering API answers for people (tables, `describe` text) and machines (`-o json|yaml`).

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::{ContentArrangement, Table, presets};
use operator::api::wire::{ApplyResponse, Condition, NodeDescription, ResourceList, ResourceView};
use serde::Serialize;
use serde_json::Value;
use store::{Event, Taint};

use crate::cli::OutputFormat;

/// The data as JSON (pretty) or YAML; `None` for [`OutputFormat::Table`].
pub fn machine<T: Serialize>(format: OutputFormat, value: &T) -> Option<String> {
    match format {
        OutputFormat::Table => None,
        OutputFormat::Json => Some(
            serde_json::to_string_pretty(value)
                .map(|mut s| {
                    s.push('\n');
                    s
                })
                .unwrap_or_else(|e| format!("{{\"error\": \"cannot encode: {e}\"}}\n")),
        ),
        OutputFormat::Yaml => Some(
            serde_yaml::to_string(value).unwrap_or_else(|e| format!("error: cannot encode: {e}\n")),
        ),
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    t
}

/// A table as text with trailing spaces removed from every line (stable golden files).
fn render(t: &Table) -> String {
    let mut out = String::new();
    for line in t.to_string().lines() {
        // comfy-table's NOTHING preset starts every line with one padding space.
        let line = line.strip_prefix(' ').unwrap_or(line);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A timestamp as RFC 3339, to the second, UTC.
pub fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn s(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// The list table for a kind (`Node`, `GoldImage`, `DisruptionBudget`, `TaintPolicy`).
pub fn resource_table(kind: &str, list: &ResourceList) -> String {
    if list.items.is_empty() {
        return format!("No {kind} resources.\n");
    }
    let mut t = match kind {
        "Node" => table(&[
            "NAME",
            "READY",
            "INSTANCE",
            "GOLD IMAGE",
            "TAINTS",
            "GENERATION",
        ]),
        "GoldImage" => table(&["NAME", "TEMPLATE", "DIGEST", "VERIFIED", "GENERATION"]),
        "DisruptionBudget" => table(&["NAME", "SELECTOR", "MAX UNAVAILABLE", "GENERATION"]),
        "TaintPolicy" => table(&["NAME", "SEVERITY", "ACTION", "THRESHOLD", "GENERATION"]),
        _ => table(&["NAME", "GENERATION"]),
    };
    for r in &list.items {
        t.add_row(resource_row(kind, r));
    }
    render(&t)
}

fn resource_row(kind: &str, r: &ResourceView) -> Vec<String> {
    let generation = r.generation.to_string();
    match kind {
        "Node" => vec![
            r.name.clone(),
            ready_text(r),
            r.instance
                .as_ref()
                .map_or("-".to_owned(), |i| format!("{}@{}", i.vmid, i.pve_node)),
            s(r.spec.get("goldImage")),
            r.active_taints.map_or("-".to_owned(), |n| n.to_string()),
            generation,
        ],
        "GoldImage" => vec![
            r.name.clone(),
            format!(
                "{}/{}",
                s(at(&r.spec, &["template", "pveNode"])),
                s(at(&r.spec, &["template", "vmid"]))
            ),
            short_digest(&s(r.spec.get("digest"))),
            verified_text(r),
            generation,
        ],
        "DisruptionBudget" => vec![
            r.name.clone(),
            selector_text(r.spec.get("selector")),
            s(r.spec.get("maxUnavailable")),
            generation,
        ],
        "TaintPolicy" => vec![
            r.name.clone(),
            s(r.spec.get("severity")),
            match r.spec.get("quarantineRetention") {
                Some(keep) => format!("{} {}", s(r.spec.get("action")), s(Some(keep))),
                None => s(r.spec.get("action")),
            },
            format!(
                "{} in {}",
                s(at(&r.spec, &["threshold", "count"])),
                s(at(&r.spec, &["threshold", "window"]))
            ),
            generation,
        ],
        _ => vec![r.name.clone(), generation],
    }
}

fn ready_text(r: &ResourceView) -> String {
    match r.ready() {
        Some(true) => "True".to_owned(),
        Some(false) => "False".to_owned(),
        None => "Unknown".to_owned(),
    }
}

/// The GoldImage's `Verified` condition: `True`, `False (<reason>)` (the template was refused:
/// nothing is cloned from it), or `Unknown` before the controller checked it.
fn verified_text(r: &ResourceView) -> String {
    match r.conditions().into_iter().find(|c| c.type_ == "Verified") {
        Some(c) => match (c.is_true(), c.reason.as_deref()) {
            (Some(true), _) => "True".to_owned(),
            (Some(false), Some(reason)) if !reason.is_empty() => format!("False ({reason})"),
            (Some(false), _) => "False".to_owned(),
            (None, _) => "Unknown".to_owned(),
        },
        None => "Unknown".to_owned(),
    }
}

fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((algo, hex)) if hex.len() > 12 => format!("{algo}:{}…", &hex[..12]),
        _ => d.to_owned(),
    }
}

fn selector_text(v: Option<&Value>) -> String {
    let Some(v) = v else {
        return "-".to_owned();
    };
    match serde_json::from_value::<model::LabelSelector>(v.clone()) {
        Ok(sel) => sel.to_string(),
        Err(_) => v.to_string(),
    }
}

/// The taints table (`reborn get taints`).
pub fn taint_table(taints: &[Taint], now: DateTime<Utc>) -> String {
    if taints.is_empty() {
        return "No taints.\n".to_owned();
    }
    let mut t = table(&[
        "ID", "NODE", "KEY", "SOURCE", "SEVERITY", "STATE", "BY", "CREATED", "REASON",
    ]);
    for x in taints {
        t.add_row(vec![
            x.id.to_string(),
            x.node.clone(),
            x.key.clone(),
            x.source.to_string(),
            x.severity.to_string(),
            taint_state(x, now),
            x.created_by.clone(),
            time(&x.created_at),
            x.reason.clone(),
        ]);
    }
    render(&t)
}

fn taint_state(x: &Taint, now: DateTime<Utc>) -> String {
    match (&x.cleared_at, &x.cleared_by, &x.expires_at) {
        (Some(_), Some(by), _) => format!("cleared by {by}"),
        (Some(_), None, _) => "cleared".to_owned(),
        (None, _, Some(e)) if *e <= now => "expired".to_owned(),
        (None, _, Some(e)) => format!("active until {}", time(e)),
        (None, _, None) => "active".to_owned(),
    }
}

/// The events table.
pub fn event_table(events: &[Event]) -> String {
    if events.is_empty() {
        return "No events.\n".to_owned();
    }
    let mut t = table(&["TIME", "NODE", "KIND", "MESSAGE"]);
    for e in events {
        t.add_row(event_cells(e));
    }
    render(&t)
}

fn event_cells(e: &Event) -> Vec<String> {
    vec![
        time(&e.at),
        e.node.clone().unwrap_or_else(|| "-".to_owned()),
        e.kind.clone(),
        e.message.clone(),
    ]
}

/// One event as one line (for `events --follow`).
pub fn event_line(e: &Event) -> String {
    event_cells(e).join("  ")
}

/// What `apply` did, one line per resource: `Node/worker-1 created (generation 1)`.
pub fn apply_lines(r: &ApplyResponse, dry_run: bool) -> String {
    let mut out = String::new();
    for i in &r.items {
        let _ = writeln!(
            out,
            "{}/{} {}{} (generation {})",
            i.kind,
            i.name,
            i.action,
            if dry_run { " (dry run)" } else { "" },
            i.generation
        );
    }
    out
}

/// `reborn describe node NAME`.
pub fn describe_node(d: &NodeDescription, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let n = &d.node;
    let labels = if n.labels.is_empty() {
        "-".to_owned()
    } else {
        n.labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "Name:          {}", n.name);
    let _ = writeln!(out, "Labels:        {labels}");
    let _ = writeln!(
        out,
        "Generation:    {} (resourceVersion {})",
        n.generation, n.resource_version
    );
    let _ = writeln!(out, "Gold image:    {}", s(n.spec.get("goldImage")));
    let _ = writeln!(out, "Created:       {}", time(&n.created_at));
    match &d.instance {
        Some(i) => {
            let _ = writeln!(
                out,
                "Instance:      VM {} on {} ({})",
                i.vmid, i.pve_node, i.name
            );
            let _ = writeln!(out, "  Instance id: {}", i.instance_id);
            let _ = writeln!(out, "  SMBIOS UUID: {}", i.smbios_uuid);
            let _ = writeln!(out, "  Spec hash:   {}", i.spec_hash);
            let _ = writeln!(out, "  Gold digest: {}", i.gold_digest);
            let _ = writeln!(out, "  Created:     {}", time(&i.created_at));
        }
        None => {
            let _ = writeln!(out, "Instance:      none");
        }
    }
    if let Some(kept) = n.status.get("quarantined").and_then(|q| q.as_array())
        && !kept.is_empty()
    {
        out.push_str("Quarantined:   (replaced, kept stopped and isolated for inspection)\n");
        for q in kept {
            let _ = writeln!(
                out,
                "  VM {} on {} ({}, instance {}) until {} (taint {})",
                q["vmid"],
                s(q.get("pveNode")),
                s(q.get("name")),
                s(q.get("instanceId")),
                s(q.get("until")),
                q["taint"]
            );
        }
    }
    out.push_str("\nConditions:\n");
    if d.conditions.is_empty() {
        out.push_str("  none reported yet\n");
    } else {
        out.push_str(&indent(&conditions_table(&d.conditions)));
    }
    out.push_str("\nTaints:\n");
    if d.taints.is_empty() {
        out.push_str("  none\n");
    } else {
        for x in &d.taints {
            let _ = writeln!(
                out,
                "  #{} {} ({}, {}) {} — by {} at {}",
                x.id,
                x.key,
                x.source,
                x.severity,
                taint_state(x, now),
                x.created_by,
                time(&x.created_at)
            );
            let _ = writeln!(out, "    Reason:   {}", x.reason);
            if let Some(instance) = &x.instance_id {
                let _ = writeln!(out, "    Instance: {instance}");
            }
            if !x.evidence.is_null() {
                let _ = writeln!(out, "    Evidence: {}", x.evidence);
            }
        }
    }
    out.push_str("\nEvents:\n");
    if d.events.is_empty() {
        out.push_str("  none\n");
    } else {
        out.push_str(&indent(&event_table(&d.events)));
    }
    out.push_str("\nSpec:\n");
    let spec = serde_yaml::to_string(&n.spec).unwrap_or_default();
    out.push_str(&indent(&spec));
    out
}

fn conditions_table(conditions: &[Condition]) -> String {
    let mut t = table(&["TYPE", "STATUS", "REASON", "MESSAGE"]);
    for c in conditions {
        t.add_row(vec![
            c.type_.clone(),
            c.status_text(),
            c.reason.clone().unwrap_or_else(|| "-".to_owned()),
            c.message.clone().unwrap_or_default(),
        ]);
    }
    render(&t)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_owned()
            } else {
                format!("  {l}\n")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gold(status: Value) -> ResourceView {
        serde_json::from_value(serde_json::json!({
            "kind": "GoldImage", "name": "worker",
            "labels": {}, "spec": {"template": {"pveNode": "pve1", "vmid": 9002}, "digest": "sha256:00"},
            "status": status, "generation": 1, "resourceVersion": 7,
            "createdAt": "2026-11-21T00:00:00Z", "updatedAt": "2026-11-21T00:00:00Z"
        }))
        .expect("a resource view")
    }

    #[test]
    fn goldimages_table_says_whether_the_template_was_verified_and_why_not() {
        let verified = gold(serde_json::json!({"conditions": [
            {"type": "Verified", "status": "True", "reason": "AttestationValid"}]}));
        let refused = gold(serde_json::json!({"conditions": [
            {"type": "Verified", "status": "False", "reason": "UntrustedKey"}]}));
        let unchecked = gold(Value::Null);
        assert_eq!(verified_text(&verified), "True");
        assert_eq!(verified_text(&refused), "False (UntrustedKey)");
        assert_eq!(verified_text(&unchecked), "Unknown");
    }
}
