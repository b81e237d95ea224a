//! `Plan` as text: the table a person reads in `reborn plan`.

use crate::output::{ActionKind, BreakerState, Plan};
use std::fmt;

fn target(kind: &ActionKind) -> String {
    match kind {
        ActionKind::Create(c) => {
            format!(
                "VM {} on {} from {} (template {}, {}{})",
                c.vmid,
                c.pve_node,
                c.template.gold_image,
                c.template.vmid,
                match c.clone_mode {
                    model::CloneMode::Linked => "linked",
                    model::CloneMode::Full => "full",
                },
                c.storage
                    .as_ref()
                    .map(|s| format!(" to {s}"))
                    .unwrap_or_default()
            ) + &format!(" as {} {}", c.role, c.instance_id)
        }
        ActionKind::Start(r) | ActionKind::Stop(r) | ActionKind::Isolate(r) => {
            format!("VM {} on {} ({})", r.vmid, r.pve_node, r.instance_id)
        }
        ActionKind::Destroy(id) => format!(
            "VM {} on {} (name {}, uuid {}, instance {}{})",
            id.vmid,
            id.pve_node,
            id.name,
            id.smbios_uuid,
            id.instance_id,
            if id.recorded { "" } else { ", orphan" }
        ),
        ActionKind::PromoteIncoming {
            instance_id,
            vmid,
            supersedes,
        } => match supersedes {
            Some(old) => format!("{instance_id} (VM {vmid}) replaces {old}"),
            None => format!("{instance_id} (VM {vmid})"),
        },
        ActionKind::ForgetInstance { instance_id, vmid } => {
            format!("record {instance_id} (VM {vmid})")
        }
        ActionKind::AdoptInstance { record } => format!(
            "VM {} on {} as {} {}",
            record.vmid, record.pve_node, record.role, record.instance_id
        ),
    }
}

fn table(f: &mut fmt::Formatter<'_>, rows: &[[String; 4]], head: [&str; 4]) -> fmt::Result {
    let mut width = head.map(str::len);
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |f: &mut fmt::Formatter<'_>, cells: [&str; 4]| {
        writeln!(
            f,
            "  {:<w0$}  {:<w1$}  {:<w2$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2]
        )
    };
    line(f, head)?;
    for row in rows {
        line(f, [&row[0], &row[1], &row[2], &row[3]])?;
    }
    Ok(())
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Plan at {}: {} action(s), {} hold(s)",
            self.planned_at.format("%Y-%m-%d %H:%M:%SZ"),
            self.actions.len(),
            self.holds.len()
        )?;
        let breaker = match &self.breaker.state {
            BreakerState::Disabled => "disabled".to_string(),
            BreakerState::Armed => "armed".to_string(),
            BreakerState::Released { by, at } => {
                format!("released by {by} at {}", at.format("%Y-%m-%d %H:%M:%SZ"))
            }
            BreakerState::Tripped { detail, newly } => {
                format!("TRIPPED{}: {detail}", if *newly { " now" } else { "" })
            }
        };
        writeln!(
            f,
            "Breaker: {breaker} (destroys in window {}/{}, planned {})",
            self.breaker.destroys_in_window,
            self.breaker.max_destroys,
            self.breaker.destroys_planned
        )?;
        for b in &self.budgets {
            writeln!(
                f,
                "Budget {}: {}/{} unavailable of {} node(s)",
                b.budget, b.unavailable, b.max, b.nodes
            )?;
        }
        if !self.actions.is_empty() {
            writeln!(f, "\nActions:")?;
            let rows: Vec<[String; 4]> = self
                .actions
                .iter()
                .map(|a| {
                    [
                        a.node.to_string(),
                        a.kind.verb().to_string(),
                        target(&a.kind),
                        a.reason.to_string(),
                    ]
                })
                .collect();
            table(f, &rows, ["NODE", "ACTION", "TARGET", "REASON"])?;
        }
        if !self.holds.is_empty() {
            writeln!(f, "\nHolds:")?;
            let rows: Vec<[String; 4]> = self
                .holds
                .iter()
                .map(|h| {
                    [
                        h.node.to_string(),
                        h.wanted.clone(),
                        h.blocked_by.to_string(),
                        h.reason.to_string(),
                    ]
                })
                .collect();
            table(f, &rows, ["NODE", "WANTED", "BLOCKED BY", "REASON"])?;
        }
        if self.actions.is_empty() && self.holds.is_empty() {
            writeln!(f, "\nNothing to do.")?;
        }
        Ok(())
    }
}
