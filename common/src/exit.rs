//! The exit-code table both programs use: `gantry` (docs/exit-codes.md) and `gantry-secrets`
//! (docs/sidecar.md).
//!
//! What: [`ExitCode`] is a process exit code with a meaning an operator, systemd or a CI job
//! can act on. The codes both programs share follow `sysexits.h`: 0 ok, 1 failed, 64 usage,
//! 65 invalid input (EX_DATAERR), 69 unavailable, 73 cannot write (EX_CANTCREAT), 75 try again
//! (EX_TEMPFAIL), 78 configuration (EX_CONFIG). Each program's own codes sit beside them,
//! named for the program: `gantry` 2 and 3 (rolled back, rollback failed), 4 and 5 (`gantry
//! remote`: split result, no result), 6 (applied but not recorded) and 75 as "lock busy"; `gantry-secrets` 75 as "secrets changed", 100..=125 (a source failed, by its
//! index) and 126/127 (exec: the command cannot be run / is not found).
//!
//! Design: a `u8` newtype with named constants rather than an enum, so a program's own range
//! ([`ExitCode::source_failed`]) is a value of the same type. The constants keep the names
//! the `gantry` enum had (`ExitCode::Ok`, `ExitCode::LockBusy`...), so they read as variants
//! and match as patterns.
//!
//! Limits: SSM Run Command gives 137 (killed: timeout) and 194 (reboot and run again) their own
//! meaning, so no code of this table is either of them ([`ExitCode::from_code`] refuses them).
//! A child's own code passed through by `gantry-secrets exec` is not a table code and does not
//! go through this type.

/// A process exit code from the table (see the module header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExitCode(u8);

#[allow(non_upper_case_globals)] // the names read as the enum variants they replace
impl ExitCode {
    // Shared by both programs.
    /// Succeeded, or there was nothing to do.
    pub const Ok: Self = Self(0);
    /// Failed (`gantry`: before anything running changed; `gantry-secrets`: unexpectedly).
    pub const Failed: Self = Self(1);
    /// Bad command line (EX_USAGE).
    pub const Usage: Self = Self(64);
    /// Invalid input: compose files, variables, env files; secret data (EX_DATAERR).
    pub const InvalidInput: Self = Self(65);
    /// Something needed cannot be reached: Docker, the daemon, a secret source (EX_UNAVAILABLE).
    pub const Unavailable: Self = Self(69);
    /// An output file cannot be written (EX_CANTCREAT).
    pub const CantWrite: Self = Self(73);
    /// Temporary: run it again later (EX_TEMPFAIL); each program names its own case below.
    pub const TempFail: Self = Self(75);
    /// The program's own configuration is invalid (EX_CONFIG).
    pub const Config: Self = Self(78);

    // `gantry`'s own.
    /// `gantry`: failed during rollout and rolled back; the previous release is serving.
    pub const RolledBack: Self = Self(2);
    /// `gantry`: failed and the rollback failed too: look now.
    pub const RollbackFailed: Self = Self(3);
    /// `gantry remote`: the instances disagree (a split result); each one's code is printed.
    pub const RemoteSplit: Self = Self(4);
    /// `gantry remote`: no instance gave a Gantry result (none matched, SSM's timeout killed
    /// the script, or the command never ran).
    pub const RemoteNoResult: Self = Self(5);
    /// `gantry`: the rollout succeeded and is serving, but its release could not be recorded
    /// (the state dir is full or read-only): free space, the next job records it.
    pub const NotRecorded: Self = Self(6);
    /// `gantry`: the stack's lock is held by another deploy ([`ExitCode::TempFail`]).
    pub const LockBusy: Self = Self::TempFail;

    // `gantry-secrets`' own.
    /// `gantry-secrets exec` with `exit_on_change`: the child was stopped because secrets
    /// changed ([`ExitCode::TempFail`]).
    pub const SecretsChanged: Self = Self::TempFail;
    /// `gantry-secrets`: the first code of "a source failed" (100 + its index in config order).
    pub const SourceFailedFirst: Self = Self(100);
    /// `gantry-secrets`: the last code of that range (sources at index 25 and beyond share it).
    pub const SourceFailedLast: Self = Self(125);
    /// `gantry-secrets exec`: the command exists but cannot be run.
    pub const NotExecutable: Self = Self(126);
    /// `gantry-secrets exec`: the command is not found.
    pub const NotFound: Self = Self(127);

    /// Every named code, in order (for lookups and tests).
    pub const TABLE: [Self; 17] = [
        Self::Ok,
        Self::Failed,
        Self::RolledBack,
        Self::RollbackFailed,
        Self::RemoteSplit,
        Self::RemoteNoResult,
        Self::NotRecorded,
        Self::Usage,
        Self::InvalidInput,
        Self::Unavailable,
        Self::CantWrite,
        Self::TempFail,
        Self::Config,
        Self::SourceFailedFirst,
        Self::SourceFailedLast,
        Self::NotExecutable,
        Self::NotFound,
    ];

    /// The code for a failure of the source at `index` (config order), `gantry-secrets`' range.
    pub const fn source_failed(index: usize) -> Self {
        let first = Self::SourceFailedFirst.0 as usize;
        let last = Self::SourceFailedLast.0 as usize;
        let code = if index > last - first {
            last
        } else {
            first + index
        };
        Self(code as u8)
    }

    /// The table's code with this number: a named one or one of the source-failure range;
    /// `None` for any other number (never 137 or 194).
    pub fn from_code(code: u8) -> Option<Self> {
        let named = Self::TABLE.into_iter().find(|c| c.0 == code);
        named.or_else(|| {
            (Self::SourceFailedFirst.0..=Self::SourceFailedLast.0)
                .contains(&code)
                .then_some(Self(code))
        })
    }

    /// The number.
    pub const fn code(self) -> u8 {
        self.0
    }

    /// The number as `std::process::exit` and child statuses take it.
    pub const fn as_i32(self) -> i32 {
        self.0 as i32
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

impl std::fmt::Display for ExitCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_numbers() {
        let numbers: Vec<u8> = ExitCode::TABLE.iter().map(|c| c.code()).collect();
        assert_eq!(
            numbers,
            [
                0, 1, 2, 3, 4, 5, 6, 64, 65, 69, 73, 75, 78, 100, 125, 126, 127
            ]
        );
        assert_eq!(ExitCode::LockBusy, ExitCode::TempFail);
        assert_eq!(ExitCode::SecretsChanged.as_i32(), 75);
    }

    #[test]
    fn never_137_or_194_and_lookups_round_trip() {
        for code in 0..=u8::MAX {
            match ExitCode::from_code(code) {
                Some(c) => {
                    assert_eq!(c.code(), code);
                    assert!(code != 137 && code != 194);
                }
                None => assert!(!ExitCode::TABLE.iter().any(|c| c.code() == code)),
            }
        }
        assert_eq!(ExitCode::from_code(103), Some(ExitCode::source_failed(3)));
        assert_eq!(ExitCode::from_code(137), None);
        assert_eq!(ExitCode::from_code(194), None);
    }

    #[test]
    fn source_failures_saturate_at_the_end_of_their_range() {
        assert_eq!(ExitCode::source_failed(0).code(), 100);
        assert_eq!(ExitCode::source_failed(25).code(), 125);
        assert_eq!(ExitCode::source_failed(26).code(), 125);
        assert_eq!(ExitCode::source_failed(usize::MAX).code(), 125);
    }
}
