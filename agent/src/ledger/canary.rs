//! Canary commands on disk: `gantry promote|abort STACK` leaves one for the rollout watching a
//! canary step, which takes it (reads and removes it) within a second.
//!
//! Design: one small file per stack, `canary-command`, written atomically; the rollout polls it
//! while it watches a step. No deploy in progress (no lock holder): the request is refused.
//!
//! Limits: one command waits at a time; a newer one replaces it.

use std::fs;

use gantry_common::fsx::{Owner, write_atomic};

use super::{Ledger, LedgerError, StackLedger};
use crate::ExitCode;

/// What an operator asks of a canary in progress (`gantry promote` / `gantry abort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryCommand {
    /// Go to the next step now.
    Promote,
    /// Stop, send every connection back to the old version and roll back.
    Abort,
}

impl CanaryCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Promote => "promote",
            Self::Abort => "abort",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "promote" => Some(Self::Promote),
            "abort" => Some(Self::Abort),
            _ => None,
        }
    }
}

impl StackLedger {
    /// Asks the canary in progress on this stack to move on (`promote`) or to stop and roll back
    /// (`abort`): the rollout reads it ([`StackLedger::take_canary_command`]) while it watches a
    /// step. Written atomically, mode 0640 (group gantry may read the state).
    pub fn request_canary(&self, command: CanaryCommand) -> Result<(), LedgerError> {
        write_atomic(
            &self.dir.join("canary-command"),
            command.as_str().as_bytes(),
            0o640,
            Owner::default(),
        )?;
        Ok(())
    }

    /// The canary command waiting, if any, removed as it is read.
    pub fn take_canary_command(&self) -> Option<CanaryCommand> {
        let path = self.dir.join("canary-command");
        let text = fs::read_to_string(&path).ok()?;
        let _ = fs::remove_file(&path);
        CanaryCommand::parse(text.trim())
    }
}

/// Leaves `command` for the canary in progress on `stack`; the text to print. Errors carry the
/// exit code (no deploy in progress: 65).
pub fn canary_request(
    ledger: &Ledger,
    stack: &str,
    command: CanaryCommand,
) -> Result<String, (String, ExitCode)> {
    let s = ledger
        .stack(stack)
        .map_err(|e| (e.to_string(), ExitCode::InvalidInput))?;
    if s.holder().is_none() {
        return Err((
            format!(
                "stack {stack} has no deploy in progress (nothing to {})",
                command.as_str()
            ),
            ExitCode::InvalidInput,
        ));
    }
    s.request_canary(command)
        .map_err(|e| (e.to_string(), ExitCode::CantWrite))?;
    Ok(format!(
        "[{stack}] {} requested: the canary in progress acts on it within a second\n",
        command.as_str()
    ))
}
