//! Canaries on disk: the commands `gantry promote|abort STACK` leave for the rollout watching a
//! canary step (which takes them, reading and removing them, within a second), and the state of
//! a canary in progress, so that a new daemon resumes it at the step it had reached.
//!
//! Design: small files per stack, written atomically: `canary-command` (polled by the rollout
//! while it watches a step; with no deploy in progress, i.e. no lock holder and no canary
//! recorded, a request is refused) and `canary.json` ([`CanaryState`], rewritten each time a step is reached or a probe
//! fails, removed when the canary ends). A deploy that is not the canary's resumption removes a
//! stale `canary.json` when it takes the lock.
//!
//! Limits: one command waits at a time; a newer one replaces it. One canary per stack.

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gantry_common::fsx::{Owner, write_atomic};
use serde::{Deserialize, Serialize};

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

/// A container a canary switches between, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryContainer {
    pub id: String,
    pub name: String,
}

/// A canary in progress, as its rollout last recorded it (`canary.json`): what a new daemon
/// needs to resume it at the step it had reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryState {
    /// The release being deployed (`in_progress`).
    pub release: u64,
    pub service: String,
    /// The steps (shares of new connections, ending at 100) and the index of the one reached.
    pub steps: Vec<u8>,
    pub step: usize,
    /// When the step's pause ends (Unix time, ms).
    pub pause_until_ms: u64,
    /// Probe failures counted so far in this step.
    pub probe_failures: u32,
    /// The new container's restart count when the canary started.
    pub restarts_at_start: u32,
    /// The canary (the new version) and the containers it shares new connections with.
    pub new: CanaryContainer,
    pub old: Vec<CanaryContainer>,
    /// One-shot jobs that succeeded in this deploy before the canary (service → run hash):
    /// not run again on resumption.
    #[serde(default)]
    pub jobs: BTreeMap<String, String>,
    /// How long one container may take to become ready (the deploy's `--ready-timeout`).
    pub ready_timeout_ms: u64,
    /// When the deploy's `--timeout` ends (Unix time, ms).
    pub deadline_ms: u64,
}

impl CanaryState {
    /// The share of new connections the canary has at the step reached.
    pub fn share(&self) -> u8 {
        self.steps.get(self.step).copied().unwrap_or(100)
    }

    /// How long the step's pause still runs from now.
    pub fn pause_left(&self) -> Duration {
        Duration::from_millis(
            self.pause_until_ms
                .saturating_sub(unix_ms(SystemTime::now())),
        )
    }
}

/// `t` as Unix time in milliseconds (0 before the epoch).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl StackLedger {
    /// Records the canary in progress (atomically replacing the last record), mode 0640.
    pub fn save_canary(&self, state: &CanaryState) -> Result<(), LedgerError> {
        let body = serde_json::to_vec_pretty(state).unwrap_or_default();
        write_atomic(
            &self.dir.join("canary.json"),
            &body,
            0o640,
            Owner::default(),
        )?;
        Ok(())
    }

    /// The canary in progress as last recorded, if any (an unreadable record is none: it is
    /// logged and ignored, the deploy then converges as after any interruption).
    pub fn canary(&self) -> Option<CanaryState> {
        let path = self.dir.join("canary.json");
        let body = fs::read(&path).ok()?;
        match serde_json::from_slice(&body) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable canary record ignored");
                None
            }
        }
    }

    /// Forgets the canary record (the canary ended, or it cannot be resumed).
    pub fn clear_canary(&self) {
        let _ = fs::remove_file(self.dir.join("canary.json"));
    }

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
    // A canary left by a daemon that stopped is waiting for the next one: a command for it
    // is kept until then.
    if s.live_holder().is_none() && s.canary().is_none() {
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
