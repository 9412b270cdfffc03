//! Canaries on disk: the commands `gantry promote|abort STACK` leave for the rollout watching a
//! canary step (which acts on them within a second), and the state of a canary in progress, so
//! that a new daemon resumes it at the step it had reached.
//!
//! Design: small files per stack, written atomically: `canary-command` (polled by the rollout
//! while it watches a step; a request while no canary watches a step below 100 % is refused:
//! the deploy would drop it or never read it) and `canary.json` ([`CanaryState`], rewritten each time a
//! step is reached or a probe fails, removed when the canary ends). A deploy that is not the
//! canary's resumption removes a stale `canary.json` when it takes the lock.
//!
//! A command is durable until acted on: the rollout reads it without removing it, records what
//! it does about it in `canary.json` (a promote: the next step; an abort: `aborted`, before
//! anything is undone), and only then removes it. Each command carries an id (`promote <id>`),
//! recorded with the step it led to, so a command file a daemon stopped before removing is not
//! acted on twice. A daemon that stops at any point leaves either the command or its record.
//! The command is dropped by renaming it aside first (`canary-command.claimed`), then removing
//! it if it is the one acted on: a newer command written meanwhile is never removed with it. A
//! claim left by a daemon that stopped is put back at the next read (the record then knows it
//! as acted on, if it was).
//!
//! Limits: one command waits at a time; a newer one replaces it. One canary per stack. A file
//! without an id (written by an older version) is acted on, but cannot be recognised as done.

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

/// A command waiting in `canary-command`: what is asked and the id of that request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryRequest {
    pub command: CanaryCommand,
    /// Unique per request (`None` in a file an older version wrote).
    pub id: Option<String>,
}

impl CanaryRequest {
    /// A new request for `command`, with a fresh id.
    pub fn new(command: CanaryCommand) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            command,
            id: Some(format!("{nanos:x}-{:x}", std::process::id())),
        }
    }

    /// The file's text: `promote <id>` (or the bare command without an id).
    fn to_text(&self) -> String {
        match &self.id {
            Some(id) => format!("{} {id}\n", self.command.as_str()),
            None => format!("{}\n", self.command.as_str()),
        }
    }

    /// Parses the file's text (a bare command, as older versions wrote it, has no id).
    pub fn parse(text: &str) -> Option<Self> {
        let mut words = text.split_whitespace();
        let command = CanaryCommand::parse(words.next()?)?;
        Some(Self {
            command,
            id: words.next().map(str::to_owned),
        })
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
    /// Why the canary is aborted, once that is decided (`gantry abort`, its probe, its
    /// restarts): recorded before anything is undone, so that a daemon that stops during the
    /// abort leaves it to the next one, which finishes the abort (and rolls the deploy back)
    /// rather than resuming the canary. Absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<String>,
    /// The id of the last operator command acted on ([`CanaryRequest::id`]), recorded with
    /// what it led to: a command file left behind by a daemon that stopped is not acted on
    /// twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

impl CanaryState {
    /// The share of new connections the canary is to have: the step reached's, none once it is
    /// [`CanaryState::aborted`] (a daemon that starts then keeps every new connection on the
    /// old version while it finishes the abort).
    pub fn share(&self) -> u8 {
        if self.aborted.is_some() {
            0
        } else {
            self.step_share()
        }
    }

    /// The share of new connections of the step reached (aborted or not).
    pub fn step_share(&self) -> u8 {
        self.steps.get(self.step).copied().unwrap_or(100)
    }

    /// Whether the canary watches a step below 100 % (not aborted): what `gantry promote` and
    /// `gantry abort` act on, and what a stopping daemon leaves to the next one.
    pub fn watching(&self) -> bool {
        self.aborted.is_none() && self.step_share() < 100
    }

    /// How long the step's pause still runs from now (none once aborted).
    pub fn pause_left(&self) -> Duration {
        if self.aborted.is_some() {
            return Duration::ZERO;
        }
        Duration::from_millis(
            self.pause_until_ms
                .saturating_sub(unix_ms(SystemTime::now())),
        )
    }

    /// Whether `request` was already acted on (its id is the one recorded).
    pub fn acted_on(&self, request: &CanaryRequest) -> bool {
        request.id.is_some() && request.id == self.command
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
    /// (`abort`): the rollout reads it ([`StackLedger::canary_command`]) while it watches a
    /// step. Written atomically, mode 0640 (group gantry may read the state).
    pub fn request_canary(&self, command: CanaryCommand) -> Result<(), LedgerError> {
        write_atomic(
            &self.dir.join(COMMAND_FILE),
            CanaryRequest::new(command).to_text().as_bytes(),
            0o640,
            Owner::default(),
        )?;
        Ok(())
    }

    /// The canary command waiting, if any, left in place: the rollout records what it does
    /// about it, then drops it ([`StackLedger::drop_canary_command`]). An unreadable command
    /// is removed (and logged). A command a drop had claimed when its process stopped is put
    /// back first (unless a newer one waits).
    pub fn canary_command(&self) -> Option<CanaryRequest> {
        let claim = self.dir.join(CLAIM_FILE);
        if claim.exists() {
            self.put_back(&claim);
        }
        let path = self.dir.join(COMMAND_FILE);
        let text = fs::read_to_string(&path).ok()?;
        let request = CanaryRequest::parse(&text);
        if request.is_none() {
            tracing::warn!(path = %path.display(), text = %text.trim(), "unreadable canary command ignored");
            self.take_command_if(|r| r.is_none(), || {});
        }
        request
    }

    /// Removes the command file if it still holds `request` (a newer command written since it
    /// was read stays, however close the two are).
    pub fn drop_canary_command(&self, request: &CanaryRequest) {
        self.take_command_if(|r| r == Some(request), || {});
    }

    /// Removes the command waiting if `drop` says so of what it holds, without ever removing
    /// one written meanwhile: the file is first renamed aside (atomically: a command written
    /// after that lands beside it and stays), then read, then removed or put back (unless a
    /// newer one waits: one command waits at a time). `claimed` runs once it is aside.
    fn take_command_if(
        &self,
        drop: impl FnOnce(Option<&CanaryRequest>) -> bool,
        claimed: impl FnOnce(),
    ) {
        let path = self.dir.join(COMMAND_FILE);
        let claim = self.dir.join(CLAIM_FILE);
        if fs::rename(&path, &claim).is_err() {
            return; // none waiting
        }
        claimed();
        let held = fs::read_to_string(&claim)
            .ok()
            .and_then(|t| CanaryRequest::parse(&t));
        if drop(held.as_ref()) {
            let _ = fs::remove_file(&claim);
        } else {
            self.put_back(&claim);
        }
    }

    /// Puts a claimed command back where commands wait, unless a newer one waits there (a
    /// hard link does not replace a file, as a rename would); then forgets the claim.
    fn put_back(&self, claim: &std::path::Path) {
        let path = self.dir.join(COMMAND_FILE);
        match fs::hard_link(claim, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            // A file system without hard links: a rename, if nothing newer waits.
            Err(_) => {
                if !path.exists() {
                    let _ = fs::rename(claim, &path);
                    return;
                }
            }
        }
        let _ = fs::remove_file(claim);
    }

    /// Removes any command waiting (a stale one, before a new canary starts).
    pub fn discard_canary_command(&self) {
        let _ = fs::remove_file(self.dir.join(COMMAND_FILE));
        let _ = fs::remove_file(self.dir.join(CLAIM_FILE));
    }
}

/// The file an operator's command waits in.
const COMMAND_FILE: &str = "canary-command";

/// Where a command being dropped is held meanwhile ([`StackLedger::drop_canary_command`]).
const CLAIM_FILE: &str = "canary-command.claimed";

/// Leaves `command` for the canary in progress on `stack`; the text to print. Errors carry the
/// exit code (no canary watching a step: 65).
pub fn canary_request(
    ledger: &Ledger,
    stack: &str,
    command: CanaryCommand,
) -> Result<String, (String, ExitCode)> {
    let s = ledger
        .stack(stack)
        .map_err(|e| (e.to_string(), ExitCode::InvalidInput))?;
    // Only a canary watching a step reads a command: one taken before the canary starts
    // (the deploy still pulling or migrating) would be dropped by it, one taken after its last
    // step never read. A canary left by a daemon that stopped is waiting for the next one: a
    // command for it is kept until then.
    let watching = s.canary().filter(CanaryState::watching);
    if watching.is_none() {
        let what = if s.live_holder().is_some() {
            "the deploy in progress is not watching a canary step (not reached yet, at 100 % \
             already, or being aborted); run it again once the deploy shows `canary N%`"
        } else {
            "no deploy in progress"
        };
        return Err((
            format!("stack {stack}: nothing to {}: {what}", command.as_str()),
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A record as versions before `aborted` and `command` wrote it.
    const OLD_RECORD: &str = r#"{
  "release": 7, "service": "web", "steps": [10, 50, 100], "step": 0,
  "pause_until_ms": 4102444800000, "probe_failures": 1, "restarts_at_start": 0,
  "new": {"id": "c2", "name": "shop-web-1-gantry-next"},
  "old": [{"id": "c1", "name": "shop-web-1"}],
  "ready_timeout_ms": 60000, "deadline_ms": 4102444800000
}"#;

    fn stack() -> (tempfile::TempDir, StackLedger) {
        let dir = tempfile::tempdir().unwrap();
        let stack = Ledger::new(dir.path()).stack("shop").unwrap();
        fs::create_dir_all(&stack.dir).unwrap();
        (dir, stack)
    }

    /// `gantry promote|abort` is taken only while a canary watches a step below 100 %: with
    /// the deploy still before its canary (it would drop the command when the canary starts),
    /// at 100 % (nothing reads it any more) or aborting, it is refused with exit 65 and no
    /// command is left; a canary a stopped daemon left at a step still takes one.
    #[test]
    fn a_command_is_taken_only_while_a_canary_watches_a_step() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path());
        let stack = ledger.stack("shop").unwrap();
        let lock = stack
            .try_lock(&crate::ledger::Holder::me("deploy", None))
            .unwrap();
        let refused = canary_request(&ledger, "shop", CanaryCommand::Abort).unwrap_err();
        assert_eq!(refused.1, ExitCode::InvalidInput, "{}", refused.0);
        assert!(
            refused.0.contains("not watching a canary step"),
            "{}",
            refused.0
        );
        assert!(stack.canary_command().is_none());

        let mut state: CanaryState = serde_json::from_str(OLD_RECORD).unwrap();
        stack.save_canary(&state).unwrap();
        assert!(state.watching());
        canary_request(&ledger, "shop", CanaryCommand::Abort).unwrap();
        assert!(stack.canary_command().is_some());
        stack.discard_canary_command();

        state.step = 2;
        stack.save_canary(&state).unwrap();
        assert!(!state.watching());
        assert!(canary_request(&ledger, "shop", CanaryCommand::Promote).is_err());
        state.step = 0;
        state.aborted = Some("aborted by hand".into());
        stack.save_canary(&state).unwrap();
        assert!(!state.watching());
        assert!(canary_request(&ledger, "shop", CanaryCommand::Promote).is_err());
        assert!(stack.canary_command().is_none());

        // Left by a daemon that stopped (no holder): kept for the next one.
        drop(lock);
        state.aborted = None;
        stack.save_canary(&state).unwrap();
        canary_request(&ledger, "shop", CanaryCommand::Promote).unwrap();
        let refused = {
            stack.clear_canary();
            canary_request(&ledger, "shop", CanaryCommand::Promote).unwrap_err()
        };
        assert!(refused.0.contains("no deploy in progress"), "{}", refused.0);
    }

    #[test]
    fn an_older_record_reads_as_not_aborted_and_is_written_back_the_same_way() {
        let state: CanaryState = serde_json::from_str(OLD_RECORD).unwrap();
        assert_eq!(
            (state.aborted.as_deref(), state.command.as_deref()),
            (None, None)
        );
        assert_eq!((state.share(), state.step_share()), (10, 10));
        assert!(state.pause_left() > Duration::ZERO);
        let written = serde_json::to_string(&state).unwrap();
        assert!(
            !written.contains("aborted") && !written.contains("command"),
            "{written}"
        );
    }

    #[test]
    fn an_aborted_record_gives_the_canary_no_share_and_no_pause() {
        let (_dir, stack) = stack();
        let mut state: CanaryState = serde_json::from_str(OLD_RECORD).unwrap();
        state.aborted = Some("aborted by hand".into());
        stack.save_canary(&state).unwrap();
        let read = stack.canary().unwrap();
        assert_eq!(read, state);
        assert_eq!((read.share(), read.step_share()), (0, 10));
        assert_eq!(read.pause_left(), Duration::ZERO);
    }

    #[test]
    fn a_command_stays_until_dropped_and_is_recognised_once_acted_on() {
        let (_dir, stack) = stack();
        stack.request_canary(CanaryCommand::Promote).unwrap();
        let first = stack.canary_command().unwrap();
        assert_eq!(first.command, CanaryCommand::Promote);
        assert!(first.id.is_some());
        // Read, not taken: a daemon that dies now finds it again.
        assert_eq!(stack.canary_command().as_ref(), Some(&first));

        let mut state: CanaryState = serde_json::from_str(OLD_RECORD).unwrap();
        assert!(!state.acted_on(&first));
        state.command.clone_from(&first.id);
        assert!(state.acted_on(&first));

        // A newer command written meanwhile is not dropped with the one acted on.
        std::thread::sleep(Duration::from_millis(2));
        stack.request_canary(CanaryCommand::Abort).unwrap();
        stack.drop_canary_command(&first);
        let second = stack.canary_command().unwrap();
        assert_eq!(second.command, CanaryCommand::Abort);
        assert_ne!(second.id, first.id);
        assert!(!state.acted_on(&second));
        stack.drop_canary_command(&second);
        assert_eq!(stack.canary_command(), None);
    }

    /// A command written between the drop's look at the file and its removal stays.
    #[test]
    fn a_command_written_while_the_one_acted_on_is_dropped_stays() {
        let (_dir, stack) = stack();
        stack.request_canary(CanaryCommand::Promote).unwrap();
        let first = stack.canary_command().unwrap();
        let mut newer = None;
        stack.take_command_if(
            |r| r == Some(&first),
            || {
                std::thread::sleep(Duration::from_millis(2));
                stack.request_canary(CanaryCommand::Abort).unwrap();
                newer = stack.canary_command();
            },
        );
        let newer = newer.expect("the newer command was readable at once");
        assert_eq!(newer.command, CanaryCommand::Abort);
        assert_eq!(stack.canary_command(), Some(newer.clone()));
        assert!(!stack.dir.join(CLAIM_FILE).exists());

        // One written between the read and the drop is put back, as it was.
        stack.request_canary(CanaryCommand::Promote).unwrap();
        let latest = stack.canary_command().unwrap();
        stack.drop_canary_command(&newer);
        assert_eq!(stack.canary_command(), Some(latest.clone()));

        // A claim left by a daemon that stopped mid-drop is put back at the next read...
        fs::rename(stack.dir.join(COMMAND_FILE), stack.dir.join(CLAIM_FILE)).unwrap();
        assert_eq!(stack.canary_command(), Some(latest.clone()));
        assert!(!stack.dir.join(CLAIM_FILE).exists());
        // ...unless a newer command waits: one command waits at a time.
        fs::rename(stack.dir.join(COMMAND_FILE), stack.dir.join(CLAIM_FILE)).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        stack.request_canary(CanaryCommand::Abort).unwrap();
        let last = stack.canary_command().unwrap();
        assert_ne!(last, latest);
        assert_eq!(last.command, CanaryCommand::Abort);
        assert!(!stack.dir.join(CLAIM_FILE).exists());
        stack.drop_canary_command(&last);
        assert_eq!(stack.canary_command(), None);
    }

    #[test]
    fn a_bare_command_of_an_older_version_is_read_without_an_id() {
        let (_dir, stack) = stack();
        fs::write(stack.dir.join(COMMAND_FILE), "abort\n").unwrap();
        let request = stack.canary_command().unwrap();
        assert_eq!(
            (request.command, request.id.as_deref()),
            (CanaryCommand::Abort, None)
        );
        let state: CanaryState = serde_json::from_str(OLD_RECORD).unwrap();
        assert!(!state.acted_on(&request));
        // Unreadable: removed, not acted on.
        fs::write(stack.dir.join(COMMAND_FILE), "rollback now\n").unwrap();
        assert_eq!(stack.canary_command(), None);
        assert!(!stack.dir.join(COMMAND_FILE).exists());
    }

    fn command() -> impl Strategy<Value = CanaryCommand> {
        prop_oneof![Just(CanaryCommand::Promote), Just(CanaryCommand::Abort)]
    }

    /// A request as the file holds one: a fresh id (what [`CanaryRequest::new`] makes), any
    /// word, or none (a file of an older version).
    fn request() -> impl Strategy<Value = CanaryRequest> {
        let id = prop_oneof![
            Just(CanaryRequest::new(CanaryCommand::Promote).id),
            "\\S{1,24}".prop_map(Some),
            Just(None),
        ];
        (command(), id).prop_map(|(command, id)| CanaryRequest { command, id })
    }

    proptest! {
        #[test]
        fn a_request_reads_back_from_its_text(request in request()) {
            prop_assert_eq!(CanaryRequest::parse(&request.to_text()), Some(request));
        }

        /// Any text: nothing, or the command its first word names with its second word as id.
        #[test]
        fn any_text_is_a_request_or_nothing(
            text in prop_oneof![
                any::<String>(),
                "[ \t\n]{0,2}(promote|abort|x)[ \t\n]{0,2}\\S{0,4}[ \t\n]{0,2}\\S{0,4}",
            ],
        ) {
            let words: Vec<&str> = text.split_whitespace().collect();
            match CanaryRequest::parse(&text) {
                Some(r) => {
                    prop_assert_eq!(Some(r.command.as_str()), words.first().copied());
                    prop_assert_eq!(r.id.as_deref(), words.get(1).copied());
                }
                None => prop_assert!(
                    words.first().copied().and_then(CanaryCommand::parse).is_none(),
                    "{text:?}"
                ),
            }
        }

        #[test]
        fn a_command_reads_back_from_its_name(command in command()) {
            prop_assert_eq!(CanaryCommand::parse(command.as_str()), Some(command));
        }
    }
}
