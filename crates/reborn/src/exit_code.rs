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
}

impl ExitStatus {
    /// The numeric exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Unexpected => 1,
            ExitStatus::InvalidInput => 2,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}
