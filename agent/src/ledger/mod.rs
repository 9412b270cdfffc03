//! The release ledger: what was deployed, when, by which deploy id, and how it ended.
//!
//! Layout under the state dir (default `/var/lib/gantry`):
//!
//! ```text
//! stacks/<stack>/lock              flock(2) target; the holder's details are in lock.json
//! stacks/<stack>/lock.json         who holds the lock (deploy id, pid, start time, command)
//! stacks/<stack>/releases/<seq>.json   one release each, <seq> zero-padded and increasing
//! stacks/<stack>/jobs/<seq>-<service>.log   a one-shot job's output, kept with its release
//! stacks/<stack>/canary.json       the canary in progress: the step it reached (canary.rs)
//! stacks/<stack>/canary-command    `gantry promote|abort` waiting for that canary
//! stacks/<stack>/canary-command.claimed   that command while the rollout drops it
//! ```
//!
//! A stack's directories are created when its lock is first taken, never by a read.
//!
//! Design:
//! - Every file is replaced atomically ([`gantry_common::fsx::write_atomic`]), so `kill -9` at
//!   any moment leaves either the old or the new file, never a torn one.
//! - A release is written when a deploy starts (`in_progress`) and again when it ends. A
//!   release still `in_progress` whose lock is free was interrupted; [`StackLedger::recover`]
//!   marks it so, and the next deploy converges from what runs.
//! - The lock is `flock(2)` on a file: the kernel drops it when its holder dies, however it
//!   dies, so there is no stale lock to clean up. Its holder is recorded next to it for the
//!   "lock busy" message.
//! - Idempotency: a deploy id maps to the release that carried it; a retry of the same id
//!   (SSM and CI retry) reports that release again.
//!
//! Limits: one host; the ledger is not shared between machines.

mod canary;
pub mod render;

pub use canary::{CanaryCommand, CanaryContainer, CanaryState, canary_request, unix_ms};

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use gantry_common::fsx::{Owner, WriteError, write_atomic};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// Why the ledger could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot use the state dir {path}: {source} (hint: run as root, or set --state-dir)")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(
        "release file {path} is unreadable: {source} (it is kept as it is; move it away to continue)"
    )]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "stack {stack} is being deployed by {holder} (hint: wait for it, or pass --lock-wait 10m)"
    )]
    LockBusy { stack: String, holder: Holder },
    #[error("stack {stack} has no release {release} (see `gantry releases {stack}`)")]
    NoSuchRelease { stack: String, release: String },
    #[error(
        "stack {stack}: {value:?} names more than one release: {} (hint: pass the release, e.g. --to {})",
        candidates.join(", "),
        candidates.first().map_or("r1", |c| c.split(' ').next().unwrap_or("r1"))
    )]
    AmbiguousRelease {
        stack: String,
        value: String,
        candidates: Vec<String>,
    },
    #[error("invalid stack name {name:?}: use lowercase letters, digits, '-' and '_'")]
    BadStackName { name: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LedgerError + '_ {
    move |source| LedgerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How a release ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    InProgress,
    Succeeded,
    Unchanged,
    Failed,
    RolledBack,
    RollbackFailed,
    Interrupted,
    /// The rollout ended well and is serving, but its release could not be written (the state
    /// dir is full or read-only). Reported, never on disk.
    NotRecorded,
}

impl Outcome {
    /// Whether this release is one a rollback may return to.
    pub fn is_good(self) -> bool {
        matches!(self, Self::Succeeded | Self::Unchanged)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Succeeded => "succeeded",
            Self::Unchanged => "unchanged",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
            Self::RollbackFailed => "rollback_failed",
            Self::Interrupted => "interrupted",
            Self::NotRecorded => "not_recorded",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An image as a release pinned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The reference the compose file named (`registry/app:tag`).
    pub reference: String,
    /// The local image id (`sha256:...`): what containers were created from.
    pub id: String,
    /// The registry digest (`registry/app@sha256:...`) when the image came from a registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// What a deploy does to a service (planned) and did (recorded). On disk as the snake_case
/// names releases have always held (`create`, `recreate`, ..., `run`, `remove`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// No container yet: create it.
    Create,
    /// A container differs from the model: replace it.
    Recreate,
    /// Up to date but stopped: start it.
    Start,
    /// Up to date; only the number of replicas changes.
    Scale,
    /// Nothing to do.
    Unchanged,
    /// A one-off job that has to run for this release.
    Run,
    /// The service left the files: its containers are removed.
    Remove,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Recreate => "recreate",
            Self::Start => "start",
            Self::Scale => "scale",
            Self::Unchanged => "unchanged",
            Self::Run => "run",
            Self::Remove => "remove",
        }
    }

    /// Whether this action changes anything.
    pub fn changes(self) -> bool {
        self != Self::Unchanged
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to one service in a deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub service: String,
    pub action: Action,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One deploy of a stack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Release {
    pub seq: u64,
    pub stack: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_id: Option<String>,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub outcome: Outcome,
    /// The process that ran the deploy (to tell an interrupted release from a running one).
    pub pid: u32,
    /// Variables given to the deploy (`--var`), e.g. IMAGE_TAG.
    pub variables: BTreeMap<String, String>,
    /// The compose files it was resolved from.
    pub files: Vec<PathBuf>,
    /// The resolved Compose model (Gantry's serde form: values as the containers get them,
    /// not `$$`-escaped like `gantry config` prints them).
    pub model: serde_json::Value,
    /// service → its `x-gantry` settings (not part of the Compose model's JSON).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub x_gantry: BTreeMap<String, serde_json::Value>,
    /// service → image it ran, pinned by id and digest.
    pub images: BTreeMap<String, ImageRecord>,
    /// env file path → sha256 of its content at deploy time.
    #[serde(default)]
    pub env_files: BTreeMap<String, String>,
    /// service → its `env_file:` entries. The values they gave are not in `model` (only the
    /// keys `environment:` set itself are): re-applying a release reads the files as they are
    /// then. Releases written before this field existed carry the values in `model`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_file_refs: BTreeMap<String, Vec<crate::compose::EnvFile>>,
    #[serde(default)]
    pub services: Vec<ServiceRecord>,
    /// job service → hash of its last successful run (carried from release to release), so a
    /// job runs at most once for a given configuration and image.
    #[serde(default)]
    pub jobs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The exit code the deploy ended with, where its outcome alone does not say it (a rollout
    /// stopped by `failure_action: pause` or `continue`: 3; bad input found on the way: 65):
    /// a repeat of its deploy id exits with it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u8>,
    /// A deploy that failed without a rollback after a killed one: the stack may still sit
    /// between two releases, and the next deploy knows it (see `deploy::conclude`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsettled: bool,
    /// `gantry down` recorded it: the default target of `gantry rollback` skips it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub down: bool,
}

impl Release {
    /// The release's id as operators see it: `r<seq>`.
    pub fn id(&self) -> String {
        format!("r{}", self.seq)
    }

    /// A release with no services: what `gantry down` records (or a deploy of a file with
    /// none).
    pub fn runs_nothing(&self) -> bool {
        self.model
            .get("services")
            .and_then(serde_json::Value::as_object)
            .is_none_or(serde_json::Map::is_empty)
    }

    /// Whether this release is a rollout that `failure_action: pause` or `continue` stopped
    /// where it failed, or a `gantry down` that failed part-way: what runs is left as it is,
    /// on purpose, until the next deploy, rollback or down.
    pub fn stopped_where_it_failed(&self) -> bool {
        self.outcome == Outcome::Failed
            && self.exit_code == Some(crate::ExitCode::RollbackFailed.code())
    }
}

/// Who holds a stack's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_id: Option<String>,
    pub started_at: String,
    pub command: String,
    /// Held for milliseconds (the daemon rebuilding a stack's edge routes): a deploy that
    /// finds it waits for it (at most [`BRIEF_WAIT`]) whatever its `--lock-wait`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub brief: bool,
}

/// How long a lock request waits for a [`Holder::brief`] holder before it reports it busy.
pub const BRIEF_WAIT: Duration = Duration::from_secs(10);

impl Holder {
    /// This process, running `command`.
    pub fn me(command: &str, deploy_id: Option<&str>) -> Self {
        Self {
            pid: std::process::id(),
            deploy_id: deploy_id.map(str::to_owned),
            started_at: now_rfc3339(),
            command: command.to_owned(),
            brief: false,
        }
    }

    /// This process, holding the lock for milliseconds only (see [`Holder::brief`]).
    pub fn brief(command: &str) -> Self {
        Self {
            brief: true,
            ..Self::me(command, None)
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` (pid {}", self.command, self.pid)?;
        if let Some(id) = &self.deploy_id {
            write!(f, ", deploy id {id}")?;
        }
        write!(f, ", since {})", self.started_at)
    }
}

/// The current time as RFC 3339 UTC, second precision.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Whether process `pid` lives and, when `since` is known, started no later than it (with a
/// second's slack for the whole seconds it is recorded in): a pid that exists but started
/// after `since` is another process under a recycled pid. What cannot be read counts as alive.
pub fn process_alive_since(pid: u32, since: Option<SystemTime>) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw == 0
        || nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) == Err(Errno::ESRCH)
    {
        return false;
    }
    match (since, process_started(pid)) {
        (Some(since), Some(started)) => started <= since + Duration::from_secs(1),
        _ => true,
    }
}

/// When process `pid` started: boot time (`/proc/stat` btime) plus its start in clock ticks
/// (field 22 of `/proc/PID/stat`, after the command name, which may hold spaces and parens).
fn process_started(pid: u32) -> Option<SystemTime> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields from the third (state) on: starttime is the 22nd field, the 20th here.
    let ticks: u64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let boot: u64 = fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|hz| *hz > 0)? as u64;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(
        boot.checked_mul(1000)?
            .checked_add(ticks.checked_mul(1000)? / hz)?,
    ))
}

/// The ledger of every stack under a state dir.
#[derive(Debug, Clone)]
pub struct Ledger {
    root: PathBuf,
}

impl Ledger {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            root: state_dir.to_path_buf(),
        }
    }

    /// One stack's part of the ledger. Creates nothing: its directories are made when its lock
    /// is first taken, so read-only requests (plan, status, releases) leave no phantom stack.
    pub fn stack(&self, name: &str) -> Result<StackLedger, LedgerError> {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid {
            return Err(LedgerError::BadStackName {
                name: name.to_owned(),
            });
        }
        let dir = self.root.join("stacks").join(name);
        Ok(StackLedger {
            name: name.to_owned(),
            dir,
        })
    }

    /// Names of the stacks that have a ledger.
    pub fn stacks(&self) -> Result<Vec<String>, LedgerError> {
        let dir = self.root.join("stacks");
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }
}

/// One stack's releases and lock.
#[derive(Debug, Clone)]
pub struct StackLedger {
    name: String,
    dir: PathBuf,
}

/// A held stack lock; dropping it releases the lock.
#[derive(Debug)]
pub struct StackLock {
    _file: Flock<File>,
    holder_path: PathBuf,
}

impl Drop for StackLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.holder_path);
    }
}

impl StackLedger {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where a job's log is kept for a release.
    pub fn job_log_path(&self, seq: u64, service: &str) -> PathBuf {
        self.dir
            .join("jobs")
            .join(format!("{seq:06}-{service}.log"))
    }

    /// Takes the stack's lock, or fails at once naming the holder.
    pub fn try_lock(&self, holder: &Holder) -> Result<StackLock, LedgerError> {
        for sub in ["releases", "jobs"] {
            let d = self.dir.join(sub);
            fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(file) => {
                // Informational only (for the "lock busy" message): replaced atomically but
                // not fsynced, since the lock itself lives in the kernel.
                let holder_path = self.dir.join("lock.json");
                let tmp = self.dir.join(format!(".lock.json.{}", std::process::id()));
                let body = serde_json::to_vec_pretty(holder).unwrap_or_default();
                fs::write(&tmp, &body)
                    .and_then(|()| fs::rename(&tmp, &holder_path))
                    .map_err(io_err(&holder_path))?;
                // A writer of this stack killed mid-write (kill -9 of a --local deploy) left
                // its temp file, which can hold `environment:` values; with the lock held,
                // the stack's files are ours to tidy.
                match gantry_common::fsx::remove_leftover_temps_of_others(&self.dir) {
                    Ok(removed) if !removed.is_empty() => tracing::info!(
                        stack = %self.name,
                        count = removed.len(),
                        "removed leftover temp files of the stack's state"
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(stack = %self.name, error = %e, "cannot remove leftover temp files")
                    }
                }
                Ok(StackLock {
                    _file: file,
                    holder_path,
                })
            }
            Err((_, Errno::EWOULDBLOCK)) => Err(LedgerError::LockBusy {
                stack: self.name.clone(),
                holder: self.holder().unwrap_or_else(|| Holder {
                    pid: 0,
                    deploy_id: None,
                    started_at: "unknown".into(),
                    command: "another gantry process".into(),
                    brief: false,
                }),
            }),
            Err((_, errno)) => Err(io_err(&path)(io::Error::from(errno))),
        }
    }

    /// Takes the lock, waiting up to `wait` for the holder to finish (polling every 200 ms);
    /// a [`Holder::brief`] one is waited for up to [`BRIEF_WAIT`] in any case (polling every
    /// 20 ms).
    pub async fn lock(&self, holder: &Holder, wait: Duration) -> Result<StackLock, LedgerError> {
        let start = tokio::time::Instant::now();
        let deadline = start + wait;
        loop {
            match self.try_lock(holder) {
                Err(LedgerError::LockBusy { holder: h, .. })
                    if h.brief && start.elapsed() < BRIEF_WAIT.max(wait) =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(LedgerError::LockBusy { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other,
            }
        }
    }

    /// Who holds the lock now, if recorded.
    pub fn holder(&self) -> Option<Holder> {
        let body = fs::read(self.dir.join("lock.json")).ok()?;
        serde_json::from_slice(&body).ok()
    }

    /// The recorded holder if its process still lives: not one that died without removing
    /// its record (kill -9, a power loss), whose pid may since belong to another process
    /// (after a reboot, likely).
    pub fn live_holder(&self) -> Option<Holder> {
        self.holder().filter(|h| {
            let since = humantime::parse_rfc3339_weak(&h.started_at).ok();
            process_alive_since(h.pid, since)
        })
    }

    fn release_path(&self, seq: u64) -> PathBuf {
        self.dir.join("releases").join(format!("{seq:06}.json"))
    }

    /// Every release, oldest first. An unreadable file is an error naming it: the ledger never
    /// guesses and never deletes what it cannot read.
    pub fn releases(&self) -> Result<Vec<Release>, LedgerError> {
        let dir = self.dir.join("releases");
        let mut out = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(&dir)(e)),
        };
        for entry in entries {
            let path = entry.map_err(io_err(&dir))?.path();
            let is_release = path.extension().is_some_and(|e| e == "json")
                && path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()));
            if !is_release {
                continue;
            }
            let body = fs::read(&path).map_err(io_err(&path))?;
            let release: Release = serde_json::from_slice(&body)
                .map_err(|source| LedgerError::Corrupt { path, source })?;
            out.push(release);
        }
        out.sort_by_key(|r| r.seq);
        Ok(out)
    }

    /// A release by id (`r7` or `7`).
    pub fn release(&self, id: &str) -> Result<Release, LedgerError> {
        let seq = id.strip_prefix('r').unwrap_or(id).parse::<u64>().ok();
        self.releases()?
            .into_iter()
            .find(|r| Some(r.seq) == seq)
            .ok_or_else(|| LedgerError::NoSuchRelease {
                stack: self.name.clone(),
                release: id.to_owned(),
            })
    }

    /// The release `to` names, as a user knows it: a release (`r12`), its number, a deploy id
    /// (`$CI_PIPELINE_ID`), or the value of a variable it was deployed with (the commit SHA
    /// given as `IMAGE_TAG`). Deploy ids and values match good releases only; releases that
    /// deployed the same model count once (the newest is taken). Unknown or ambiguous: an
    /// error listing the candidates.
    pub fn resolve_release(&self, to: &str) -> Result<Release, LedgerError> {
        let releases = self.releases()?;
        if let Some(seq) = to.strip_prefix('r').and_then(|n| n.parse::<u64>().ok()) {
            return releases.into_iter().find(|r| r.seq == seq).ok_or_else(|| {
                LedgerError::NoSuchRelease {
                    stack: self.name.clone(),
                    release: to.to_owned(),
                }
            });
        }
        let seq = to.parse::<u64>().ok();
        let mut matches: Vec<(&Release, String)> = Vec::new();
        for r in releases.iter().rev() {
            let why = if Some(r.seq) == seq {
                Some("release number".to_string())
            } else if !r.outcome.is_good() {
                None
            } else if r.deploy_id.as_deref() == Some(to) {
                Some("deploy id".to_string())
            } else {
                r.variables
                    .iter()
                    .find(|(_, v)| v.as_str() == to)
                    .map(|(k, _)| k.clone())
            };
            if let Some(why) = why
                && !matches.iter().any(|(m, _)| m.model == r.model)
            {
                matches.push((r, why));
            }
        }
        match matches.as_slice() {
            [(one, _)] => Ok((*one).clone()),
            [] => Err(LedgerError::NoSuchRelease {
                stack: self.name.clone(),
                release: to.to_owned(),
            }),
            many => Err(LedgerError::AmbiguousRelease {
                stack: self.name.clone(),
                value: to.to_owned(),
                candidates: many
                    .iter()
                    .map(|(r, why)| format!("{} ({why})", r.id()))
                    .collect(),
            }),
        }
    }

    /// The newest release, however it ended.
    pub fn newest(&self) -> Result<Option<Release>, LedgerError> {
        Ok(self.releases()?.pop())
    }

    /// The newest release that ended well (a rollback's target, what supervision keeps).
    pub fn last_good(&self) -> Result<Option<Release>, LedgerError> {
        Ok(self
            .releases()?
            .into_iter()
            .rev()
            .find(|r| r.outcome.is_good()))
    }

    /// The release a deploy id already produced, if it finished.
    pub fn find_deploy(&self, deploy_id: &str) -> Result<Option<Release>, LedgerError> {
        Ok(self.releases()?.into_iter().rev().find(|r| {
            r.deploy_id.as_deref() == Some(deploy_id) && r.outcome != Outcome::Interrupted
        }))
    }

    /// Marks releases left `in_progress` by a process that died as `interrupted`. Call with the
    /// lock held: then no live deploy can own them.
    pub fn recover(&self, lock: &StackLock) -> Result<Vec<u64>, LedgerError> {
        let mut releases = self.releases()?;
        self.recover_in(lock, &mut releases)
    }

    /// [`StackLedger::recover`] on releases already read; updates them in place.
    pub fn recover_in(
        &self,
        _lock: &StackLock,
        releases: &mut [Release],
    ) -> Result<Vec<u64>, LedgerError> {
        let mut fixed = Vec::new();
        for r in releases.iter_mut() {
            if r.outcome == Outcome::InProgress {
                r.outcome = Outcome::Interrupted;
                r.finished_at = Some(now_rfc3339());
                r.error.get_or_insert_with(|| {
                    format!("deploy process {} stopped before it ended", r.pid)
                });
                self.write(r)?;
                fixed.push(r.seq);
            }
        }
        Ok(fixed)
    }

    /// Starts a release: gives it the next sequence number and records it `in_progress`.
    pub fn begin(&self, lock: &StackLock, draft: Release) -> Result<Release, LedgerError> {
        let releases = self.releases()?;
        self.begin_after(lock, &releases, draft)
    }

    /// [`StackLedger::begin`] with the releases already read.
    pub fn begin_after(
        &self,
        _lock: &StackLock,
        releases: &[Release],
        mut draft: Release,
    ) -> Result<Release, LedgerError> {
        let next = releases.iter().map(|r| r.seq).max().map_or(1, |s| s + 1);
        draft.seq = next;
        draft.stack = self.name.clone();
        draft.outcome = Outcome::InProgress;
        draft.pid = std::process::id();
        self.write(&draft)?;
        Ok(draft)
    }

    /// Records a release (atomically replacing its file). Mode 0600: the model holds the
    /// environment that `environment:` and interpolation gave (env files' values are not
    /// recorded, see [`Release::env_file_refs`]).
    pub fn write(&self, release: &Release) -> Result<(), LedgerError> {
        let body = serde_json::to_vec_pretty(release).unwrap_or_default();
        write_atomic(
            &self.release_path(release.seq),
            &body,
            0o600,
            Owner::default(),
        )?;
        Ok(())
    }

    /// Keeps the newest `keep_good` succeeded releases and every release newer than the oldest kept
    /// one; removes older release files and their job logs. Returns the removed releases.
    pub fn prune(&self, _lock: &StackLock, keep_good: usize) -> Result<Vec<Release>, LedgerError> {
        let releases = self.releases()?;
        let good: Vec<u64> = releases
            .iter()
            .filter(|r| r.outcome == Outcome::Succeeded)
            .map(|r| r.seq)
            .collect();
        if good.len() <= keep_good {
            return Ok(Vec::new());
        }
        let oldest_kept = good[good.len() - keep_good.max(1)];
        let mut removed = Vec::new();
        for r in releases.into_iter().filter(|r| r.seq < oldest_kept) {
            let path = self.release_path(r.seq);
            fs::remove_file(&path).map_err(io_err(&path))?;
            let prefix = format!("{:06}-", r.seq);
            let jobs = self.dir.join("jobs");
            if let Ok(entries) = fs::read_dir(&jobs) {
                for e in entries.flatten() {
                    if e.file_name().to_string_lossy().starts_with(&prefix) {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
            removed.push(r);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests;
