//! Deploys: from a Compose project to running containers, recorded as a release.
//!
//! Design: [`Deployer::deploy`] is the whole job, in the order DESIGN.md fixes: take the stack's
//! lock; answer a repeated deploy id from the ledger; resolve images (pull what is missing)
//! before anything running is touched; [`plan::compute`] what differs; run one-shot jobs; roll
//! the changed services out as their dependencies allow (several at once), each step gated on
//! health; on a failure during rollout return to the last good release
//! ([`Outcome::RolledBack`]); record the release. The same code serves `plan` (without applying), `rollback` and, later, the daemon.
//!
//! Convergence: every step is safe to interrupt with `kill -9`. The next deploy recovers the
//! interrupted release, removes leftover one-off job containers and, when two containers claim
//! one replica number (a replacement cut short), keeps the up-to-date one.
//!
//! Rollouts follow each service's strategy ([`health::strategy`]: start-first unless a fixed
//! host port or address, `container_name`, host networking or a shared read-write volume
//! forbids it) and readiness rule ([`health::rule`]); `deploy.update_config` sets
//! parallelism, delay, monitor and failure_action (rollback, pause, continue).
//!
//! Files, one job each: `apply.rs` orchestration and ledger transitions ([`Deployer`]),
//! `conclude.rs` how a rollout ends (outcome, rollback, record), `resume.rs` a canary resumed
//! by a new daemon, `down.rs` `gantry down`, `canary.rs` canary steps, `edge.rs` the edge switch's rotation,
//! `images.rs` pulls and pruning, `schedule.rs` which services converge when (all whose
//! dependencies are done, at once; [`DeployRequest::concurrency`] Docker calls in flight), `rollout.rs`
//! converging one service (a `Rollout` context), `jobs.rs` one-shot jobs, `ready.rs` readiness waits, [`health`] the
//! readiness rule and strategy, [`plan`] what differs, [`translate`] model to engine specs.
//! `x-gantry` arrives typed on [`crate::compose::Service::gantry`], validated at load time.
//!
//! Limits: published port ranges are not supported yet; start-first gives a
//! new container its network aliases only once it is ready, which reconnects it to its
//! networks once (connections it opened while starting are reset), and takes the old one out
//! of DNS the same way before it stops.

mod activity;
mod anonymous;
pub mod apply;
mod canary;
mod conclude;
mod down;
mod edge;
pub mod health;
mod hooks;
mod images;
mod jobs;
pub mod plan;
pub mod probe;
mod ready;
mod reconcile;
mod recorded;
pub mod render;
mod resume;
mod rollout;
mod schedule;
#[cfg(test)]
mod tests;
pub mod translate;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::ExitCode;
use crate::compose::{ComposeError, LoadOptions};
use crate::engine::{Engine, EngineError};
use crate::ledger::{Ledger, LedgerError, Outcome, ServiceRecord};

pub use activity::Activity;
pub use apply::Deployer;
pub use edge::{sync_edge_canary, sync_edge_except};
pub use hooks::{post_start, pre_stop};
pub use plan::{Action, Plan, ServicePlan};
pub use reconcile::{env_only, not_running};

/// Why a deploy failed. Each variant names what failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error("service {service}: {reason}")]
    Unsupported { service: String, reason: String },
    /// Docker refused a step of one service's rollout (the error names the container).
    #[error("service {service}: {source}")]
    ServiceEngine {
        service: String,
        #[source]
        source: EngineError,
    },
    #[error(
        "{kind} {name} is declared external but does not exist (hint: create it first: docker {kind} create {name})"
    )]
    MissingExternal { kind: &'static str, name: String },
    #[error("job {service} exited with code {exit_code}{}", tail(logs))]
    JobFailed {
        service: String,
        exit_code: i64,
        logs: Vec<String>,
    },
    /// A job container of an earlier deploy (killed, or cut by its `--timeout`) still runs
    /// after its job timeout: a migration is not killed half-way.
    #[error(
        "job {service}: container {container} of an earlier deploy is still running after the job timeout (hint: let it finish and deploy again, or remove it: docker rm -f {container})"
    )]
    JobStillRunning { service: String, container: String },
    #[error("job {service} did not finish within {}{}", humantime::format_duration(*after), tail(logs))]
    JobTimeout {
        service: String,
        after: Duration,
        logs: Vec<String>,
    },
    #[error(
        "service {service}: container {container} {problem}{}{}",
        health(health_log),
        tail(logs)
    )]
    NotReady {
        service: String,
        container: String,
        problem: String,
        health_log: Vec<String>,
        logs: Vec<String>,
    },
    /// A `post_start` hook failed or outlasted the readiness timeout: the new container did
    /// not start well.
    #[error(
        "service {service}: container {container}: post_start hook `{command}` {problem}{}",
        hook_output(output)
    )]
    Hook {
        service: String,
        container: String,
        command: String,
        problem: String,
        output: Vec<String>,
    },
    #[error("service {service} waits for {dependency}, which {problem}")]
    Dependency {
        service: String,
        dependency: String,
        problem: String,
    },
    #[error(
        "{source}\nrollout paused at service {service} (failure_action: pause): nothing was rolled back"
    )]
    Paused {
        service: String,
        #[source]
        source: Box<DeployError>,
    },
    #[error("{} service(s) failed (failure_action: continue): {}", failures.len(), failures.join("; "))]
    Continued { failures: Vec<String> },
    #[error("the deploy did not finish within {} (--timeout)", humantime::format_duration(*after))]
    Timeout { after: Duration },
    /// The job ended well but its release could not be written; the report says so (outcome
    /// `not_recorded`). Only ever returned inside the deployer, to stop the job there.
    #[error("the rollout succeeded but its release could not be recorded")]
    NotRecorded,
    #[error("service {service}: canary aborted at {share}%: {reason}")]
    CanaryAborted {
        service: String,
        share: u8,
        reason: String,
    },
    #[error("service {service}: {source}")]
    Edge {
        service: String,
        #[source]
        source: crate::edge::EdgeError,
    },
}

/// Caps on application output quoted in an error, and so in the ledger (`error` of a release)
/// and in `--output json`: the last [`TAIL_LINES`] lines, each cut at [`TAIL_LINE_BYTES`], at
/// most [`TAIL_BYTES`] in all (older lines go first).
pub const TAIL_LINES: usize = 50;
/// See [`TAIL_LINES`].
pub const TAIL_LINE_BYTES: usize = 512;
/// See [`TAIL_LINES`].
pub const TAIL_BYTES: usize = 8 << 10;

/// The last lines of `lines` within the caps of [`TAIL_LINES`], cut lines marked `[…cut]`.
pub fn capped_tail(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut total = 0;
    for line in lines.iter().rev().take(TAIL_LINES) {
        let line = if line.len() > TAIL_LINE_BYTES {
            let mut end = TAIL_LINE_BYTES;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}[…cut]", &line[..end])
        } else {
            line.clone()
        };
        total += line.len() + 1;
        if total > TAIL_BYTES {
            break;
        }
        out.push(line);
    }
    out.reverse();
    out
}

fn tail(logs: &[String]) -> String {
    let logs = capped_tail(logs);
    if logs.is_empty() {
        String::new()
    } else {
        format!(
            "\n--- last {} log lines ---\n{}",
            logs.len(),
            logs.join("\n")
        )
    }
}

fn hook_output(output: &[String]) -> String {
    if output.is_empty() {
        String::new()
    } else {
        format!("\n--- its last output ---\n{}", output.join("\n"))
    }
}

fn health(log: &[String]) -> String {
    let log = capped_tail(log);
    if log.is_empty() {
        String::new()
    } else {
        format!("\n--- last health checks ---\n{}", log.join("\n"))
    }
}

impl DeployError {
    /// The exit code this error means when it stops a deploy before anything changed.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Compose(_) | Self::Unsupported { .. } => ExitCode::InvalidInput,
            Self::Edge {
                source: crate::edge::EdgeError::PortTaken { .. },
                ..
            } => ExitCode::InvalidInput,
            Self::Engine(e) | Self::ServiceEngine { source: e, .. } => e.exit_code(),
            Self::Ledger(LedgerError::LockBusy { .. }) | Self::JobStillRunning { .. } => {
                ExitCode::TempFail
            }
            Self::Ledger(
                LedgerError::BadStackName { .. }
                | LedgerError::NoSuchRelease { .. }
                | LedgerError::AmbiguousRelease { .. },
            ) => ExitCode::InvalidInput,
            _ => ExitCode::Failed,
        }
    }
}

/// Something the deploy wants the operator to see as it happens.
pub trait Progress: Send + Sync {
    /// One line about the stack (`service: None`) or one service.
    fn step(&self, service: Option<&str>, message: &str);

    /// Bytes of `image` pulled so far, of `total` known so far (for a bar on a terminal).
    fn pull(&self, _image: &str, _done: u64, _total: u64) {}
}

/// A [`Progress`] that says nothing.
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn step(&self, _service: Option<&str>, _message: &str) {}
}

/// What to deploy.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub stack: String,
    /// Files, env files, profiles and the environment (process env plus `variables`).
    pub load: LoadOptions,
    /// The `--var K=V` given, recorded in the release.
    pub variables: BTreeMap<String, String>,
    /// `--id`: a deploy id already applied is reported again, not applied again.
    pub deploy_id: Option<String>,
    /// How long to wait for another deploy of the stack to finish.
    pub lock_wait: Duration,
    /// Bound on the whole deploy.
    pub timeout: Duration,
    /// How long one container may take to become ready.
    pub ready_timeout: Duration,
    /// Good releases to keep.
    pub keep_releases: usize,
    /// Docker calls of the rollout in flight at once (at least 1; [`crate::engine::Bounded`]).
    /// Services converge all at once as soon as their dependencies are done; one that only
    /// waits for its readiness holds no call.
    pub concurrency: usize,
    /// The project to apply instead of loading `load` (`gantry down`: an empty one). `None`
    /// loads the stack's files, under the stack's lock.
    pub preloaded: Option<crate::compose::Project>,
    /// `gantry down`: the project is empty on purpose, and the release is recorded even when
    /// nothing runs any more (so supervision stops restoring what the last one had); then,
    /// under the same lock, the networks of the last release that ran something go.
    pub down: bool,
    /// `gantry down --volumes`: that release's named volumes go too.
    pub down_volumes: bool,
}

/// The bound on a whole deploy unless `--timeout` says otherwise, and on every rollback
/// (`gantry rollback` has no `--timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

impl DeployRequest {
    pub fn new(stack: &str, load: LoadOptions) -> Self {
        Self {
            stack: stack.to_owned(),
            load,
            variables: BTreeMap::new(),
            deploy_id: None,
            lock_wait: Duration::ZERO,
            timeout: DEFAULT_TIMEOUT,
            ready_timeout: Duration::from_secs(120),
            keep_releases: 10,
            concurrency: schedule::DEFAULT_CONCURRENCY,
            preloaded: None,
            down: false,
            down_volumes: false,
        }
    }
}

/// How a deploy ended: printed as text or as one JSON object.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub stack: String,
    /// `r<seq>` of the release this deploy recorded (or repeated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    pub outcome: Outcome,
    /// True when the deploy id had been applied before and this is its recorded result.
    pub repeated: bool,
    pub services: Vec<ServiceRecord>,
    /// The release the stack was rolled back to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
    #[serde(skip)]
    pub exit_code_override: Option<ExitCode>,
}

impl DeployReport {
    /// A report for `stack` that says "failed" until the job says otherwise.
    pub fn failed(stack: &str) -> Self {
        Self {
            stack: stack.to_owned(),
            release: None,
            outcome: Outcome::Failed,
            repeated: false,
            services: Vec::new(),
            rolled_back_to: None,
            error: None,
            duration_ms: 0,
            exit_code_override: None,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        if let Some(code) = self.exit_code_override {
            return code;
        }
        match self.outcome {
            Outcome::Succeeded | Outcome::Unchanged => ExitCode::Ok,
            Outcome::RolledBack => ExitCode::RolledBack,
            Outcome::RollbackFailed | Outcome::InProgress | Outcome::Interrupted => {
                ExitCode::RollbackFailed
            }
            Outcome::Failed => ExitCode::Failed,
            Outcome::NotRecorded => ExitCode::NotRecorded,
        }
    }
}

/// Connects what a deploy needs: the ledger in `state_dir` and registry credentials as
/// `registries` (validated by the CLI from `gantry.yaml` and the environment) configure them.
pub fn deployer(
    engine: Arc<dyn Engine>,
    state_dir: &std::path::Path,
    registries: crate::registry::RegistriesConfig,
) -> Deployer {
    Deployer::new(engine, Ledger::new(state_dir))
        .with_registries(crate::registry::configured(registries))
}
