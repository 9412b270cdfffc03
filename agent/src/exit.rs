//! The exit-code table every `gantry` command uses (documented in docs/exit-codes.md).
//!
//! SSM Run Command gives 137 (killed: timeout) and 194 (reboot and run again) their own
//! meaning, so no code here is ever either of them.

/// A process exit code with a meaning an operator or a CI job can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Succeeded, or there was nothing to do.
    Ok = 0,
    /// Failed before anything running changed.
    Failed = 1,
    /// Failed during rollout and rolled back: the previous release is serving.
    RolledBack = 2,
    /// Failed and the rollback failed too: look now.
    RollbackFailed = 3,
    /// `gantry remote`: the instances disagree (a split result); each one's code is printed.
    RemoteSplit = 4,
    /// `gantry remote`: no instance gave a Gantry result (none matched, SSM's timeout killed
    /// the script, or the command never ran).
    RemoteNoResult = 5,
    /// Bad command line.
    Usage = 64,
    /// Invalid input: compose files, variables, env files.
    InvalidInput = 65,
    /// Docker (or the Gantry daemon) is unreachable.
    Unavailable = 69,
    /// The stack's lock is held by another deploy.
    LockBusy = 75,
    /// Gantry's own configuration is invalid.
    Config = 78,
}

impl ExitCode {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The table entry for a number, if it is one.
    pub fn from_code(code: u8) -> Option<Self> {
        [
            Self::Ok,
            Self::Failed,
            Self::RolledBack,
            Self::RollbackFailed,
            Self::RemoteSplit,
            Self::RemoteNoResult,
            Self::Usage,
            Self::InvalidInput,
            Self::Unavailable,
            Self::LockBusy,
            Self::Config,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}
