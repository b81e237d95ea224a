//! The documented exit codes of `reborn` (see `docs/cli.md`).

use std::process::ExitCode;

/// Every way `reborn` can end, each with a stable exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: the command did what was asked.
    Success,
    /// 1: an unexpected failure (a bug, or an environment problem with no better code).
    Unexpected,
    /// 2: the input (manifests, flags, config) is invalid; nothing was changed.
    InvalidInput,
    /// 3: the reborn API could not be reached (or the controller behind it is unavailable).
    Unreachable,
    /// 4: the named resource or node does not exist.
    NotFound,
    /// 5: a resourceVersion precondition failed; nothing was changed.
    Conflict,
    /// 6: the token is missing, unknown, or lacks the role the command needs.
    Unauthorized,
    /// 7: `apply --wait` gave up before every node was Ready.
    TimedOut,
    /// 8: `gold verify`: the attestation, its signature, or the image digest is not verified.
    NotVerified,
}

impl ExitStatus {
    /// The numeric exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Unexpected => 1,
            ExitStatus::InvalidInput => 2,
            ExitStatus::Unreachable => 3,
            ExitStatus::NotFound => 4,
            ExitStatus::Conflict => 5,
            ExitStatus::Unauthorized => 6,
            ExitStatus::TimedOut => 7,
            ExitStatus::NotVerified => 8,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}
