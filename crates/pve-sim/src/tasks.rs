//! Worker tasks: UPIDs, progression on tokio time, log lines, exit status, failure injection.

use std::sync::Arc;
use std::time::Duration;

use crate::fault::Fault;
use crate::model::{Cluster, Shared, Task};

/// Work done when the task's duration has elapsed. Log lines go to the `Vec`; an `Err` is the
/// task's error text (the closure must undo its own partial work).
pub(crate) type Finish =
    Box<dyn FnOnce(&mut Cluster, &mut Vec<String>) -> Result<(), String> + Send>;
/// Undo applied when an injected failure replaces the work.
pub(crate) type Rollback = Box<dyn FnOnce(&mut Cluster) + Send>;

/// What to run.
pub(crate) struct TaskSpec {
    pub node: String,
    pub kind: &'static str,
    pub id: String,
    pub user: String,
    pub duration: Duration,
    pub log: Vec<String>,
    pub finish: Finish,
    pub rollback: Rollback,
}

/// `UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:`.
pub(crate) fn upid(
    node: &str,
    pid: u32,
    pstart: u64,
    starttime: i64,
    kind: &str,
    id: &str,
    user: &str,
) -> String {
    format!("UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{id}:{user}:")
}

/// Parsed UPID fields.
pub(crate) struct UpidParts {
    pub node: String,
}

/// Parse like `PVE::Tools::upid_decode`.
pub(crate) fn parse_upid(s: &str) -> Option<UpidParts> {
    let rest = s.strip_prefix("UPID:")?.strip_suffix(':')?;
    let f: Vec<&str> = rest.split(':').collect();
    if f.len() != 7 {
        return None;
    }
    let hex = |v: &str, lens: &[usize]| {
        lens.contains(&v.len()) && v.chars().all(|c| c.is_ascii_hexdigit())
    };
    let plain = |v: &str, empty: bool| {
        (empty || !v.is_empty()) && !v.chars().any(|c| c.is_whitespace() || c == '/')
    };
    let ok = crate::vmconf::is_node_name(f[0])
        && hex(f[1], &[8])
        && hex(f[2], &[8, 9])
        && hex(f[3], &[8])
        && plain(f[4], false)
        && plain(f[5], true)
        && plain(f[6], false);
    ok.then(|| UpidParts {
        node: f[0].to_string(),
    })
}

fn take_injected_failure(cl: &mut Cluster, kind: &str) -> Option<String> {
    let f = cl.faults.iter_mut().find(|f| {
        !f.exhausted()
            && matches!(&f.fault, Fault::TaskFailure { task_type, .. } if task_type == kind)
    })?;
    f.consume();
    match &f.fault {
        Fault::TaskFailure { message, .. } => Some(message.clone()),
        _ => None,
    }
}

fn complete(
    cl: &mut Cluster,
    upid: &str,
    failure: Option<String>,
    finish: Finish,
    rollback: Rollback,
) {
    let mut lines = Vec::new();
    let result = match failure {
        Some(msg) => {
            rollback(cl);
            Err(msg)
        }
        None => finish(cl, &mut lines),
    };
    let now = chrono::Utc::now().timestamp();
    if let Some(t) = cl.task_mut(upid) {
        t.log.extend(lines);
        match result {
            Ok(()) => {
                t.log.push("TASK OK".into());
                t.exitstatus = Some("OK".into());
            }
            Err(e) => {
                let e = e.trim_end().replace('\n', " ");
                t.log.push(format!("TASK ERROR: {e}"));
                t.exitstatus = Some(e);
            }
        }
        t.endtime = Some(now);
    }
}

/// Register a task and run it: inline when its duration is zero and tasks are not held,
/// otherwise on a tokio task. Returns the UPID.
pub(crate) fn spawn(shared: &Arc<Shared>, cl: &mut Cluster, spec: TaskSpec) -> String {
    let pid = cl.alloc_pid();
    let pstart = cl.pstart();
    let starttime = chrono::Utc::now().timestamp();
    let upid = upid(
        &spec.node, pid, pstart, starttime, spec.kind, &spec.id, &spec.user,
    );
    cl.tasks.push(Task {
        upid: upid.clone(),
        node: spec.node.clone(),
        pid,
        pstart,
        starttime,
        endtime: None,
        kind: spec.kind.to_string(),
        id: spec.id.clone(),
        user: spec.user.clone(),
        log: spec.log,
        exitstatus: None,
    });
    let failure = take_injected_failure(cl, spec.kind);
    let held = *shared.hold_tasks.borrow();
    if spec.duration.is_zero() && !held {
        complete(cl, &upid, failure, spec.finish, spec.rollback);
        return upid;
    }
    let shared = Arc::clone(shared);
    let id = upid.clone();
    let (finish, rollback, duration) = (spec.finish, spec.rollback, spec.duration);
    tokio::spawn(async move {
        tokio::time::sleep(duration).await;
        let mut rx = shared.hold_tasks.subscribe();
        let held = *rx.borrow_and_update();
        if held {
            // Stepped mode: tasks held at the end of their duration finish in the order they
            // got there once released, so a test's outcome does not depend on scheduling.
            shared.lock().held_queue.push_back(id.clone());
        }
        loop {
            // A closed channel means the simulator is gone; finishing is harmless either way.
            if rx.wait_for(|held| !*held).await.is_err() {
                break;
            }
            let my_turn = {
                let cl = shared.lock();
                cl.held_queue.front().is_none_or(|f| *f == id) || !cl.held_queue.contains(&id)
            };
            if my_turn || rx.changed().await.is_err() {
                break;
            }
        }
        let mut cl = shared.lock();
        cl.held_queue.retain(|u| *u != id);
        complete(&mut cl, &id, failure, finish, rollback);
        drop(cl);
        // Wake the next held task (the value is unchanged, the version is not).
        shared.hold_tasks.send_modify(|_| {});
    });
    upid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upid_has_the_pve_layout_with_trailing_colon() {
        let u = upid(
            "pve1",
            0x35D677,
            0x03AB00C3,
            0x66DC5987,
            "qmclone",
            "132",
            "root@pam!reborn",
        );
        assert_eq!(
            u,
            "UPID:pve1:0035D677:03AB00C3:66DC5987:qmclone:132:root@pam!reborn:"
        );
        assert!(parse_upid(&u).is_some());
        assert!(parse_upid("UPID:pve1:xx").is_none());
    }
}
