//! `gantry remote`: runs a Gantry SSM document (`Gantry-Deploy`, `Gantry-Rollback`,
//! `Gantry-Status`, shipped in `packaging/ssm/`) on a fleet from a CI runner, waits, and answers
//! with one exit code.
//!
//! Design: SSM Run Command is the fleet engine; Gantry adds no coordinator. [`run`] sends one
//! command to the instances chosen by id or tag with SSM's own `MaxConcurrency` and
//! `MaxErrors` (so SSM rolls the fleet and stops on errors), then polls the command's
//! invocations, printing each instance's status, exit code and output as soon as it ends (the
//! output as SSM returns it: the first 24,000 characters of stdout and 8,000 of stderr). The
//! exit code is the instances' common code when they all agree ([`Verdict`]), else a
//! documented code for a split or for instances that never reported a Gantry result. The
//! cloud side sits behind the small [`Fleet`] trait ([`ssm::SsmFleet`] is the AWS one); the
//! agreement rules are pure and unit-tested.
//!
//! Limits: one document and one command per call; outputs come from the API, not from S3 or
//! CloudWatch (SSM cuts them as said above, and Gantry's own output fits in that); a command
//! SSM never resolved to any instance is reported as such, not retried.

pub mod ssm;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use crate::ExitCode;

/// The codes a Gantry document's command (`gantry deploy`, `rollback`, `status`) ends with:
/// what an instance can agree on. Anything else (137 from SSM's kill, 127 for a missing
/// `gantry`) is no Gantry result.
const DEPLOY_CODES: [ExitCode; 10] = [
    ExitCode::Ok,
    ExitCode::Failed,
    ExitCode::RolledBack,
    ExitCode::RollbackFailed,
    ExitCode::NotRecorded,
    ExitCode::Usage,
    ExitCode::InvalidInput,
    ExitCode::Unavailable,
    ExitCode::LockBusy,
    ExitCode::Config,
];

/// SSM returns this much of an invocation's stdout through the API.
pub const STDOUT_LIMIT: usize = 24_000;
/// ... and this much of its stderr.
pub const STDERR_LIMIT: usize = 8_000;

/// Why talking to SSM failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// SSM refused the command as sent: a parameter its pattern refuses, a missing document.
    #[error("SSM refused the command for document {document}: {message}")]
    Refused { document: String, message: String },
    /// The API could not be reached or answered with an error.
    #[error(
        "SSM {operation} failed: {message} (hint: check the runner's AWS credentials, region and ssm:{operation} permission)"
    )]
    Api {
        operation: &'static str,
        message: String,
    },
    /// The command did not end within the wait bound.
    #[error("command {command_id} did not finish within {} (SSM keeps running it; see `aws ssm list-command-invocations --command-id {command_id}`)", humantime::format_duration(*after))]
    WaitTimeout { command_id: String, after: Duration },
}

impl RemoteError {
    /// The exit code this failure maps to.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Refused { .. } => ExitCode::InvalidInput,
            Self::Api { .. } => ExitCode::Unavailable,
            Self::WaitTimeout { .. } => ExitCode::RemoteNoResult,
        }
    }
}

/// Which instances: SSM's `InstanceIds`, or a `tag:KEY` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    Instances(Vec<String>),
    Tag { key: String, values: Vec<String> },
}

/// One command to send.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub document: String,
    pub parameters: BTreeMap<String, String>,
    pub targets: Targets,
    /// SSM's MaxConcurrency: a number or a percentage (`1`, `25%`).
    pub max_concurrency: String,
    /// SSM's MaxErrors: a number or a percentage.
    pub max_errors: String,
    /// SSM's delivery timeout (seconds an instance may take to start the command).
    pub delivery_timeout: Duration,
    pub comment: String,
}

/// An invocation as a poll sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationState {
    pub instance_id: String,
    /// SSM's status word: Pending, InProgress, Delayed, Success, Failed, TimedOut, Cancelled...
    pub status: String,
}

impl InvocationState {
    /// Whether SSM is done with this instance.
    pub fn is_terminal(&self) -> bool {
        is_terminal(&self.status)
    }
}

/// Whether an SSM command or invocation status is final.
pub fn is_terminal(status: &str) -> bool {
    !matches!(
        status,
        "Pending" | "InProgress" | "Delayed" | "Cancelling" | ""
    )
}

/// One poll of a command.
#[derive(Debug, Clone, Default)]
pub struct CommandState {
    /// The command's own status (final once every target is done or MaxErrors stopped it).
    pub status: String,
    /// How many instances the command targets (SSM's TargetCount: known for a tag target
    /// once SSM resolved it).
    pub target_count: usize,
    pub invocations: Vec<InvocationState>,
}

/// What an instance reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationResult {
    pub instance_id: String,
    pub status: String,
    /// The script's exit code; `None` when it never ran (undeliverable, cancelled, ...).
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// The cloud side of `gantry remote`, at our level: send, poll, read one result.
#[async_trait::async_trait]
pub trait Fleet: Send + Sync {
    /// Sends the command; returns its id.
    async fn send(&self, spec: &CommandSpec) -> Result<String, RemoteError>;
    /// The command's status and its invocations so far.
    async fn poll(&self, command_id: &str) -> Result<CommandState, RemoteError>;
    /// One instance's final result, with its output.
    async fn result(
        &self,
        command_id: &str,
        instance_id: &str,
    ) -> Result<InvocationResult, RemoteError>;
}

/// How [`run`] waits.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    pub poll_every: Duration,
    /// Give up waiting after this long (the command goes on in SSM).
    pub limit: Duration,
    /// When set, the limit grows to this per round of `max_concurrency` instances once the
    /// command's target count is known (a tag target: unknown when it is sent).
    pub per_round: Option<Duration>,
}

/// Poll failures in a row (throttling, a network blip past the SDK's own retries) that end
/// the wait; fewer are retried at the next poll.
const POLL_FAILURES: u32 = 5;

/// How many rounds SSM runs `targets` instances in at `max_concurrency` ("N" or "P%").
pub fn rounds(targets: usize, max_concurrency: &str) -> usize {
    let per_round = match max_concurrency.strip_suffix('%') {
        Some(p) => p
            .parse::<usize>()
            .map_or(1, |p| (targets.saturating_mul(p) / 100).max(1)),
        None => max_concurrency.parse::<usize>().unwrap_or(1).max(1),
    };
    targets.div_ceil(per_round).max(1)
}

/// What the fleet answered, and the one exit code for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub exit: ExitCode,
    pub summary: String,
}

/// Decides the exit code from every instance's result: the common code when all agree on a
/// code of Gantry's table; [`ExitCode::RemoteSplit`] when they disagree;
/// [`ExitCode::RemoteNoResult`] when none matched, or all agree on something that is not a
/// Gantry result (never ran, killed by SSM's timeout with 137, `gantry` missing with 127).
pub fn verdict(results: &[InvocationResult]) -> Verdict {
    if results.is_empty() {
        return Verdict {
            exit: ExitCode::RemoteNoResult,
            summary: "no instance matched the targets (check the instance ids or tag, and that the SSM agent is online)".into(),
        };
    }
    let mut by_code: BTreeMap<Option<i32>, Vec<&str>> = BTreeMap::new();
    for r in results {
        by_code
            .entry(r.exit_code)
            .or_default()
            .push(r.instance_id.as_str());
    }
    let describe = |code: &Option<i32>| match code {
        Some(c) => format!("exit {c}"),
        None => "no exit code".to_string(),
    };
    let parts: Vec<String> = by_code
        .iter()
        .map(|(code, ids)| {
            let mut ids = ids.clone();
            ids.sort_unstable();
            format!("{} {} ({})", ids.len(), describe(code), ids.join(", "))
        })
        .collect();
    let n = results.len();
    if by_code.len() == 1 {
        let code = *by_code.keys().next().expect("one code");
        let gantry_code = code
            .and_then(|c| u8::try_from(c).ok())
            .and_then(|c| DEPLOY_CODES.into_iter().find(|e| e.code() == c));
        return match gantry_code {
            Some(exit) => Verdict {
                exit,
                summary: format!("{n} of {n} instances agree: {}", describe(&code)),
            },
            None => Verdict {
                exit: ExitCode::RemoteNoResult,
                summary: format!(
                    "{n} of {n} instances gave no Gantry result: {} (137: killed by SSM's executionTimeout; 127: gantry not installed)",
                    parts.join("; ")
                ),
            },
        };
    }
    Verdict {
        exit: ExitCode::RemoteSplit,
        summary: format!("split result over {n} instances: {}", parts.join("; ")),
    }
}

/// Sends `spec`, waits for every instance, prints each result to `out` as it ends, and returns
/// the verdict. With `wait == None` it prints the command id and returns at once (exit 0).
pub async fn run(
    fleet: &dyn Fleet,
    spec: &CommandSpec,
    wait: Option<Wait>,
    out: &mut (dyn Write + Send),
) -> Result<Verdict, RemoteError> {
    let command_id = fleet.send(spec).await?;
    let _ = writeln!(
        out,
        "sent {} to {} as command {command_id} (max concurrency {}, max errors {})",
        spec.document,
        describe_targets(&spec.targets),
        spec.max_concurrency,
        spec.max_errors
    );
    let Some(wait) = wait else {
        return Ok(Verdict {
            exit: ExitCode::Ok,
            summary: format!("command {command_id} sent; not waiting"),
        });
    };
    let start = Instant::now();
    let mut limit = wait.limit;
    let mut done: BTreeMap<String, InvocationResult> = BTreeMap::new();
    let mut failures = 0;
    loop {
        // A failed call is tried again at the next poll (the rollout goes on in SSM either
        // way); only failures in a row end the wait.
        let mut complete = false;
        match fleet.poll(&command_id).await {
            Ok(state) => {
                failures = 0;
                if let Some(round) = wait.per_round {
                    let targets = state.target_count.max(state.invocations.len());
                    let n = rounds(targets, &spec.max_concurrency);
                    limit = limit.max(round * u32::try_from(n).unwrap_or(u32::MAX));
                }
                let mut fetched = true;
                for inv in state.invocations.iter().filter(|i| i.is_terminal()) {
                    if done.contains_key(&inv.instance_id) {
                        continue;
                    }
                    match fleet.result(&command_id, &inv.instance_id).await {
                        Ok(result) => {
                            print_result(out, &result);
                            done.insert(inv.instance_id.clone(), result);
                        }
                        Err(e) => {
                            fetched = false;
                            let _ = writeln!(out, "({}: {e}; trying again)", inv.instance_id);
                        }
                    }
                }
                let all_ended = state.invocations.iter().all(InvocationState::is_terminal);
                complete = is_terminal(&state.status) && all_ended && fetched;
            }
            Err(e) => {
                failures += 1;
                if failures >= POLL_FAILURES {
                    return Err(e);
                }
                let _ = writeln!(out, "({e}; trying again)");
            }
        }
        if complete {
            break;
        }
        if start.elapsed() >= limit {
            return Err(RemoteError::WaitTimeout {
                command_id,
                after: limit,
            });
        }
        tokio::time::sleep(wait.poll_every).await;
    }
    let results: Vec<InvocationResult> = done.into_values().collect();
    let v = verdict(&results);
    let _ = writeln!(
        out,
        "{}: {} (exit {})",
        spec.document,
        v.summary,
        v.exit.code()
    );
    Ok(v)
}

fn describe_targets(t: &Targets) -> String {
    match t {
        Targets::Instances(ids) => format!("instances {}", ids.join(",")),
        Targets::Tag { key, values } => format!("instances tagged {key}={}", values.join(",")),
    }
}

fn print_result(out: &mut (dyn Write + Send), r: &InvocationResult) {
    let code = r
        .exit_code
        .map_or_else(|| "no exit code".to_string(), |c| format!("exit {c}"));
    let _ = writeln!(out, "== {} {} {code}", r.instance_id, r.status);
    for line in r.stdout.lines() {
        let _ = writeln!(out, "   {line}");
    }
    if !r.stderr.trim().is_empty() {
        let _ = writeln!(out, "   -- stderr");
        for line in r.stderr.lines() {
            let _ = writeln!(out, "   {line}");
        }
    }
}

#[cfg(test)]
mod tests;
