//! Executor errors and how the controller treats each (retry with backoff, re-plan, hold).

/// How the controller reacts to a failed action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again on a later pass after the node's backoff.
    Transient,
    /// Re-plan right away (the plan was based on a stale fact, e.g. a VMID taken meanwhile).
    Replan,
    /// Stop acting on the node until a human looks (identity mismatch, backup lock, ...).
    Hold(String),
}

impl ErrorClass {
    /// `transient`, `replan` or `hold`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Replan => "replan",
            ErrorClass::Hold(_) => "hold",
        }
    }
}

/// Why an action failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A PVE call or task failed.
    #[error("{step} of VM {vmid} for node {node}")]
    Pve {
        /// The node.
        node: String,
        /// The VM.
        vmid: u32,
        /// What the executor was doing (`clone`, `configure`, `start`, ...).
        step: &'static str,
        /// The PVE error.
        #[source]
        source: Box<pve_client::Error>,
    },
    /// The store failed.
    #[error("store write for node {node}")]
    Store {
        /// The node.
        node: String,
        /// The store error.
        #[source]
        source: store::StoreError,
    },
    /// The VM carries a config lock.
    #[error("VM {vmid} of node {node} is locked ({reason})")]
    Locked {
        /// The node.
        node: String,
        /// The VM.
        vmid: u32,
        /// PVE's lock reason (`clone`, `backup`, ...).
        reason: String,
    },
    /// The VMID was taken by someone else between planning and cloning.
    #[error("vmid {vmid} for node {node} already exists in PVE")]
    VmidTaken {
        /// The node.
        node: String,
        /// The VMID.
        vmid: u32,
    },
    /// The plan contradicts what the store records now (it was made from older inputs).
    #[error("stale plan for node {node}: {what}")]
    StalePlan {
        /// The node.
        node: String,
        /// What the plan wanted and what the store says.
        what: String,
    },
    /// The VM is not the instance the store recorded: destroy refused.
    #[error("VM {vmid} is not the recorded instance of node {node}: {mismatch}")]
    IdentityMismatch {
        /// The node.
        node: String,
        /// The VMID.
        vmid: u32,
        /// What differs.
        mismatch: String,
    },
    /// A mutation's outcome is unknown and a re-read could not settle it.
    #[error("outcome of {step} of VM {vmid} for node {node} is unknown")]
    OutcomeUnknown {
        /// The node.
        node: String,
        /// The VM.
        vmid: u32,
        /// The step.
        step: &'static str,
    },
    /// The action refers to something that cannot be valid.
    #[error("invalid action for node {node}: {what}")]
    Invalid {
        /// The node.
        node: String,
        /// What is wrong.
        what: String,
    },
}

impl ExecError {
    /// The node the failed action was for.
    pub fn node(&self) -> &str {
        match self {
            ExecError::Pve { node, .. }
            | ExecError::Store { node, .. }
            | ExecError::Locked { node, .. }
            | ExecError::VmidTaken { node, .. }
            | ExecError::StalePlan { node, .. }
            | ExecError::IdentityMismatch { node, .. }
            | ExecError::OutcomeUnknown { node, .. }
            | ExecError::Invalid { node, .. } => node,
        }
    }

    /// How the controller treats this error (the one error policy).
    pub fn class(&self) -> ErrorClass {
        match self {
            ExecError::Locked { reason, vmid, .. } => match reason.as_str() {
                "clone" | "create" => ErrorClass::Transient,
                other => ErrorClass::Hold(format!("VM {vmid} is locked ({other})")),
            },
            ExecError::Pve { source, vmid, .. } => match &**source {
                pve_client::Error::Locked { reason, .. }
                    if !matches!(reason.as_str(), "clone" | "create") =>
                {
                    ErrorClass::Hold(format!("VM {vmid} is locked ({reason})"))
                }
                _ => ErrorClass::Transient,
            },
            ExecError::VmidTaken { .. } | ExecError::StalePlan { .. } => ErrorClass::Replan,
            ExecError::IdentityMismatch { vmid, mismatch, .. } => {
                ErrorClass::Hold(format!("identity of VM {vmid} not proven: {mismatch}"))
            }
            ExecError::Invalid { what, .. } => ErrorClass::Hold(what.clone()),
            ExecError::Store { .. } | ExecError::OutcomeUnknown { .. } => ErrorClass::Transient,
        }
    }

    /// A PVE error of `step` on `vmid` for `node`.
    pub fn pve(node: &str, vmid: u32, step: &'static str, source: pve_client::Error) -> Self {
        ExecError::Pve {
            node: node.to_owned(),
            vmid,
            step,
            source: Box::new(source),
        }
    }

    /// The error with its causes, one line (for events and status).
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(self);
        while let Some(e) = cur {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cur = e.source();
        }
        out
    }
}
