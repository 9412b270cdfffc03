//! `gantry remote`: runs a Gantry SSM document (`Gantry-Deploy`, `Gantry-Rollback`,
//! `Gantry-Status`, shipped in `packaging/ssm/`) on a fleet from a CI runner, waits, and answers
//! with one exit code.
//!
//! Design: SSM Run Command is the fleet engine; Gantry adds no coordinator. [`run`] sends one
//! command to the instances chosen by id or tag with SSM's own `MaxConcurrency` and
//! `MaxErrors` (so SSM rolls the fleet and stops on errors), then polls the command's
//! invocations, printing each instance's status, exit code and output as soon as SSM gives a
//! final result for it (the output as SSM returns it: the first 24,000 characters of stdout
//! and 8,000 of stderr; a result read that still says InProgress is read again at the next
//! poll; a command SSM says is done while it lists fewer invocations than it targets is polled
//! twice more, as its listings are eventually consistent). The exit code is the common code of
//! the instances that ran the command when all agree ([`Verdict`], [`verdict`]; those SSM
//! never ran it on, stopped at MaxErrors or never delivered, are listed apart), 3 when any
//! ended 3, else a documented code for a split or for instances that never reported a Gantry
//! result. A poll or result read that fails is tried again at the next poll; five polls in a
//! row with a failed call end the wait (69), and an error retrying cannot cure (access denied,
//! validation, a document of more than one step) ends it at once and cancels the command in
//! SSM (best effort, said in the summary). When the wait bound passes ([`Wait`]: it can follow the CI
//! job's own timeout, an instant no poll or sleep goes past) or a signal arrives (a GitLab job
//! cancelled or timing out sends SIGTERM), [`run`] asks SSM to cancel the command (best effort,
//! said in the output), prints what came back so far and returns the error (exit 5): an SSM
//! command nobody watches does not go on rolling the fleet. A command the last poll showed
//! ended (its status final, or every targeted invocation ended) is not cancelled: the summary
//! says it had already ended and its results could not be read. When the CI job's ceiling
//! leaves less than one poll interval right before the send (a slow upload or AWS set-up),
//! nothing is sent (64). The cloud side sits behind the
//! small [`Fleet`] trait ([`ssm::SsmFleet`] is the AWS one); the agreement rules ([`verdict`])
//! are pure and unit-tested.
//!
//! Limits: one document and one command per call; outputs come from the API, not from S3 or
//! CloudWatch (SSM cuts them as said above, and Gantry's own output fits in that); a command
//! SSM never resolved to any instance is reported as such, not retried.

pub mod ssm;
mod verdict;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use tokio::time::Instant;

use crate::ExitCode;
pub use verdict::{Verdict, rounds, so_far, verdict};
use verdict::{describe_targets, print_result};

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
    /// The API could not be reached or answered with an error that may pass (throttling, a
    /// network blip, a server error): a call of the wait is tried again at the next poll.
    #[error(
        "SSM {operation} failed: {message} (hint: check the runner's AWS credentials, region and ssm:{operation} permission)"
    )]
    Api {
        operation: &'static str,
        message: String,
    },
    /// SSM does not list a command this client sent moments ago (its listings are eventually
    /// consistent): tried again at the next poll, and not counted as a failed poll.
    #[error("SSM {operation}: {message}")]
    NotListedYet {
        operation: &'static str,
        message: String,
    },
    /// The API refused the call in a way retrying cannot cure (access denied, bad credentials,
    /// a request it does not take): the wait ends at once.
    #[error(
        "SSM {operation} was refused: {message} (hint: check the runner's AWS credentials, region and ssm:{operation} permission; not retried)"
    )]
    Rejected {
        operation: &'static str,
        message: String,
    },
    /// GetCommandInvocation wants the step to read (InvalidPluginName): the document has more
    /// than one, and Gantry reads an instance's one result.
    #[error(
        "SSM GetCommandInvocation of command {command_id} on {instance_id} was refused: {message} (Gantry follows one-step documents: the document given with --document must have exactly one step, as Gantry-Deploy, Gantry-Rollback and Gantry-Status have; not retried)"
    )]
    NotOneStep {
        command_id: String,
        instance_id: String,
        message: String,
    },
    /// The command did not end within the wait bound; SSM was asked to cancel it, unless the
    /// last poll showed it had already ended (`ended`: how, and its results were not all read).
    #[error("{}", ended_early(command_id, Some(*after), ended.as_deref()))]
    WaitTimeout {
        command_id: String,
        after: Duration,
        ended: Option<String>,
    },
    /// A signal ended the wait (the CI job was cancelled or timed out); SSM was asked to cancel
    /// the command, unless it had already ended (`ended`, as for [`Self::WaitTimeout`]).
    #[error("{signal} while waiting for command {command_id}; {}", ended_early(command_id, None, ended.as_deref()))]
    Interrupted {
        command_id: String,
        signal: &'static str,
        ended: Option<String>,
    },
    /// The CI job's ceiling left less than one poll interval when the command was to be sent
    /// (a slow upload or AWS set-up): nothing was sent.
    #[error(
        "the CI job's timeout (--job-timeout / CI_JOB_TIMEOUT) leaves {} to wait, less than one --poll-interval ({}), once the bundle was uploaded and the SSM client set up: nothing was sent; raise the job's `timeout:`, or pass --no-wait",
        humantime::format_duration(*left),
        humantime::format_duration(*needed)
    )]
    NoTimeLeft { left: Duration, needed: Duration },
}

/// What a wait that ended early says of the command: that Gantry asked SSM to cancel it, or,
/// when the last poll showed it had already ended (`ended`: how), that only its results are
/// missing. `within`: the wait's bound, when that ended it.
fn ended_early(command_id: &str, within: Option<Duration>, ended: Option<&str>) -> String {
    let within = within.map(|d| humantime::format_duration(d).to_string());
    match (within, ended) {
        (None, None) => format!(
            "Gantry asked SSM to cancel it (`aws ssm list-command-invocations --command-id {command_id}` shows where each instance stopped)"
        ),
        (Some(within), None) => format!(
            "command {command_id} did not finish within {within}; {}",
            ended_early(command_id, None, None)
        ),
        (None, Some(how)) => format!(
            "the command had already ended in SSM ({how}); its results could not be read (`aws ssm list-command-invocations --command-id {command_id} --details` shows them)"
        ),
        (Some(within), Some(how)) => format!(
            "command {command_id} had already ended in SSM ({how}), but its results were not all read within {within} (`aws ssm list-command-invocations --command-id {command_id} --details` shows them)"
        ),
    }
}

impl RemoteError {
    /// The exit code this failure maps to.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Refused { .. } => ExitCode::InvalidInput,
            Self::Api { .. }
            | Self::NotListedYet { .. }
            | Self::Rejected { .. }
            | Self::NotOneStep { .. } => ExitCode::Unavailable,
            Self::WaitTimeout { .. } | Self::Interrupted { .. } => ExitCode::RemoteNoResult,
            // As the command line's own check of the CI job's time (64).
            Self::NoTimeLeft { .. } => ExitCode::Usage,
        }
    }

    /// Whether a call that failed so may succeed when tried again.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Api { .. } | Self::NotListedYet { .. })
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
    /// SSM's StatusDetails, finer than the status for an instance that never ran the command
    /// (Undeliverable, DeliveryTimedOut, Terminated); empty when SSM gave none.
    pub status_details: String,
    /// The script's exit code; `None` when it never ran (undeliverable, cancelled, ...) or was
    /// stopped without one.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Whether a poll saw the instance running the command (InProgress): set by the wait, not
    /// by SSM's answer. One that then ends without an exit code (cancelled mid-run) ran it: it
    /// gave no Gantry result, as a 137 does, and is not counted as never run.
    pub seen_running: bool,
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
    /// Asks SSM to cancel the command on every instance it has not finished on.
    async fn cancel(&self, command_id: &str) -> Result<(), RemoteError>;
}

/// How [`run`] waits.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    pub poll_every: Duration,
    /// Give up waiting this long after the command was sent (and cancel it in SSM).
    pub limit: Duration,
    /// When set, the limit grows to this per round of `max_concurrency` instances once the
    /// command's target count is known (a tag target: unknown when it is sent).
    pub per_round: Option<Duration>,
    /// The wait never goes past this instant, however the limit grows: shortly before the CI
    /// job's own timeout kills this process (less a margin to cancel and report), fixed before
    /// anything was uploaded or sent, so that time counts against it. A poll in flight is cut
    /// short at it.
    pub ceiling: Option<Instant>,
}

/// How long the cancel call at the end of a wait may take.
const CANCEL_BOUND: Duration = Duration::from_secs(15);

/// Polls more when SSM says the command is done but lists fewer invocations than it targets
/// (its listings are eventually consistent): then the missing ones are taken as never run.
const SHORT_LISTING_POLLS: u32 = 2;

/// Polls in a row with a failed call, the poll or a result read (throttling, a network blip
/// past the SDK's own retries), that end the wait; fewer are tried again at the next poll.
const FAILED_POLLS: u32 = 5;

/// Sends `spec`, waits for every instance, prints each result to `out` as it ends, and returns
/// the verdict. With `wait == None` it prints the command id and returns at once (exit 0).
/// `interrupt` resolves to a signal's name when the wait is to end early (SIGTERM from a CI
/// job that is cancelled or timed out): the command is cancelled in SSM, as when the bound
/// passes.
pub async fn run(
    fleet: &dyn Fleet,
    spec: &CommandSpec,
    wait: Option<Wait>,
    out: &mut (dyn Write + Send),
    interrupt: impl Future<Output = &'static str> + Send,
) -> Result<Verdict, RemoteError> {
    // The time to the CI job's ceiling is taken right before the send: uploading the bundle and
    // setting up the SSM client (IMDS, web identity) may have used it all. A command nobody
    // could watch for one poll is not sent (64, as the command line's own check).
    if let Some(wait) = &wait
        && let Some(ceiling) = wait.ceiling
    {
        let left = ceiling.saturating_duration_since(Instant::now());
        if left < min_useful_wait(wait) {
            let e = RemoteError::NoTimeLeft {
                left: Duration::from_secs(left.as_secs()),
                needed: min_useful_wait(wait),
            };
            let _ = writeln!(
                out,
                "{}: not sent, no time left before the CI job's timeout (exit {})",
                spec.document,
                e.exit_code().code()
            );
            return Err(e);
        }
    }
    let command_id = match fleet.send(spec).await {
        Ok(id) => id,
        Err(e) => {
            // Said on the runner's side: an instance's own 65 or 69 reads "instances agree".
            let why = match e {
                RemoteError::Refused { .. } => "SSM refused the command",
                _ => "the runner's SSM call failed",
            };
            let _ = writeln!(
                out,
                "{}: not sent, {why} (exit {})",
                spec.document,
                e.exit_code().code()
            );
            return Err(e);
        }
    };
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
    let mut watch = Watch {
        fleet,
        spec,
        command_id: &command_id,
        wait,
        start: Instant::now(),
        limit: wait.limit,
        done: BTreeMap::new(),
        target_count: 0,
        short_listings: 0,
        last: None,
        seen_running: BTreeSet::new(),
    };
    let mut interrupt = std::pin::pin!(interrupt);
    let end = tokio::select! {
        biased;
        signal = &mut interrupt => End::Interrupted(signal),
        end = watch.follow(out) => end,
    };
    let results: Vec<InvocationResult> = std::mem::take(&mut watch.done).into_values().collect();
    // Whether SSM had ended the command by the last poll: then an early end does not cancel it.
    let ended = watch.ended();
    match end {
        End::Complete => {
            let v = verdict(&results, watch.target_count);
            let _ = writeln!(
                out,
                "{}: {} (exit {})",
                spec.document,
                v.summary,
                v.exit.code()
            );
            Ok(v)
        }
        End::Failed(e) => {
            // An error retrying cannot cure: nobody can watch the command, so it is stopped
            // rather than left rolling the fleet unseen, unless it had already ended. Calls that
            // kept failing say the API cannot be reached; the command is left to go on.
            let command = if let Some(how) = &ended {
                already_ended(how)
            } else if e.is_transient() {
                "the command goes on in SSM".to_string()
            } else if cancel(fleet, &command_id, out).await {
                "command cancelled".to_string()
            } else {
                "could not cancel the command, it goes on in SSM".to_string()
            };
            let _ = writeln!(
                out,
                "{}: stopped waiting, the runner's SSM calls failed; {command}; {} (exit {})",
                spec.document,
                so_far(&results, watch.target_count),
                e.exit_code().code()
            );
            Err(e)
        }
        End::TimedOut => {
            let command = stop(fleet, &command_id, ended.as_deref(), out).await;
            let deadline = watch.deadline();
            let why = if wait.ceiling == Some(deadline) {
                ", just before the CI job's timeout"
            } else {
                ""
            };
            // Whole seconds: the ceiling is an instant, not a round number from the start.
            let after =
                Duration::from_secs(deadline.saturating_duration_since(watch.start).as_secs());
            let e = RemoteError::WaitTimeout {
                command_id: command_id.clone(),
                after,
                ended,
            };
            let _ = writeln!(
                out,
                "{}: stopped waiting after {}{why}{command}; {} (exit {})",
                spec.document,
                humantime::format_duration(after),
                so_far(&results, watch.target_count),
                e.exit_code().code()
            );
            Err(e)
        }
        End::Interrupted(signal) => {
            let command = stop(fleet, &command_id, ended.as_deref(), out).await;
            let e = RemoteError::Interrupted {
                command_id: command_id.clone(),
                signal,
                ended,
            };
            let _ = writeln!(
                out,
                "{}: stopped waiting on {signal}{command}; {} (exit {})",
                spec.document,
                so_far(&results, watch.target_count),
                e.exit_code().code()
            );
            Err(e)
        }
    }
}

/// The least time to the CI job's ceiling worth sending a command for: one poll interval (the
/// ceiling already keeps the margin to cancel and report before the job's timeout).
fn min_useful_wait(wait: &Wait) -> Duration {
    wait.poll_every
}

/// The summary's words for a command the last poll showed ended (`how`: its status).
fn already_ended(how: &str) -> String {
    format!("the command had already ended in SSM ({how}); its results could not be read")
}

/// Ends a wait cut short: cancels the command in SSM unless the last poll showed it had
/// already ended (`ended`); returns the summary's words for it, after the wait's own.
async fn stop(
    fleet: &dyn Fleet,
    command_id: &str,
    ended: Option<&str>,
    out: &mut (dyn Write + Send),
) -> String {
    match ended {
        Some(how) => format!("; {}", already_ended(how)),
        None => {
            // Best effort: the exit code does not depend on it, its own line says how it went.
            cancel(fleet, command_id, out).await;
            ", command cancelled".to_string()
        }
    }
}

/// Asks SSM to cancel the command, within [`CANCEL_BOUND`]; says how that went, and returns
/// whether it was cancelled (best effort: the exit code does not depend on it).
async fn cancel(fleet: &dyn Fleet, command_id: &str, out: &mut (dyn Write + Send)) -> bool {
    let answer = tokio::time::timeout(CANCEL_BOUND, fleet.cancel(command_id)).await;
    let failure = match answer {
        Ok(Ok(())) => {
            tracing::info!(command_id, "cancelled the command in SSM");
            let _ = writeln!(
                out,
                "cancelled command {command_id} in SSM: instances that had not started it will not; one mid-deploy stops waiting, its deploy goes on in gantryd"
            );
            return true;
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!(
            "no answer within {}",
            humantime::format_duration(CANCEL_BOUND)
        ),
    };
    tracing::warn!(command_id, error = %failure, "could not cancel the command in SSM");
    let _ = writeln!(
        out,
        "(could not cancel command {command_id}: {failure}; it goes on in SSM: `aws ssm cancel-command --command-id {command_id}`)"
    );
    false
}

/// How a wait ended.
enum End {
    /// SSM is done with the command and every instance's result was read.
    Complete,
    /// Calls failed [`FAILED_POLLS`] times in a row, or once in a way retrying cannot cure.
    Failed(RemoteError),
    /// The wait bound passed.
    TimedOut,
    /// A signal arrived (its name).
    Interrupted(&'static str),
}

/// One command being waited for: the results read so far and what SSM said of its size.
struct Watch<'a> {
    fleet: &'a dyn Fleet,
    spec: &'a CommandSpec,
    command_id: &'a str,
    wait: Wait,
    /// When the command was sent: the limit counts from here.
    start: Instant,
    /// The bound now (it grows with the target count, see [`Wait::per_round`]).
    limit: Duration,
    /// Every instance's final result, once read.
    done: BTreeMap<String, InvocationResult>,
    /// The most instances SSM said the command targets.
    target_count: usize,
    /// Polls made since SSM said the command is done with fewer invocations than targets.
    short_listings: u32,
    /// What the last poll that answered said.
    last: Option<CommandState>,
    /// The instances a poll saw running the command (InProgress).
    seen_running: BTreeSet<String>,
}

impl Watch<'_> {
    /// When the wait ends: the limit from the send, or the CI job's ceiling if that is sooner.
    fn deadline(&self) -> Instant {
        let limit = self.start + self.limit;
        self.wait.ceiling.map_or(limit, |c| c.min(limit))
    }

    /// How the command had ended in SSM by the last poll, if it had: every invocation listed
    /// ended, and either a final status (SSM starts no other: those it never listed never run)
    /// or every instance it targets listed. `None` while it may still run somewhere: a command
    /// SSM marks Failed at `--max-errors` lets the invocations already running go on.
    fn ended(&self) -> Option<String> {
        let last = self.last.as_ref()?;
        if !last.invocations.iter().all(InvocationState::is_terminal) {
            return None;
        }
        if is_terminal(&last.status) {
            return Some(format!("status {}", last.status));
        }
        let listed = last.invocations.len();
        (listed > 0 && listed >= self.target_count).then(|| {
            let status = if last.status.is_empty() {
                "unknown"
            } else {
                &last.status
            };
            format!("status {status}, every invocation ended")
        })
    }

    /// Polls until the command is complete, the calls keep failing, or the bound passes.
    async fn follow(&mut self, out: &mut (dyn Write + Send)) -> End {
        let mut failed_polls = 0;
        loop {
            let deadline = self.deadline();
            // A failed call is tried again at the next poll (the rollout goes on in SSM either
            // way); only polls failing in a row, or an error retrying cannot cure, end the wait.
            // A poll still in flight at the deadline is cut short (the results it read stay); one
            // at the deadline gets an answer only if it is at hand.
            let Ok(polled) = tokio::time::timeout_at(deadline, self.poll_once(out)).await else {
                return End::TimedOut;
            };
            match polled {
                Ok(true) => return End::Complete,
                Ok(false) => failed_polls = 0,
                Err(e) => {
                    if !matches!(e, RemoteError::NotListedYet { .. }) {
                        failed_polls += 1;
                    }
                    if !e.is_transient() || failed_polls >= FAILED_POLLS {
                        return End::Failed(e);
                    }
                    let _ = writeln!(out, "({e}; trying again)");
                }
            }
            // The next poll, or the deadline if that comes first (it may have grown with the
            // target count this poll saw).
            let deadline = self.deadline();
            let now = Instant::now();
            if now >= deadline {
                return End::TimedOut;
            }
            tokio::time::sleep_until(deadline.min(now + self.wait.poll_every)).await;
        }
    }

    /// One poll and the result reads of the instances it shows ended: whether the command is
    /// complete, or the first call that failed (the reads stop there until the next poll).
    async fn poll_once(&mut self, out: &mut (dyn Write + Send)) -> Result<bool, RemoteError> {
        let state = self.fleet.poll(self.command_id).await?;
        self.last = Some(state.clone());
        self.target_count = self.target_count.max(state.target_count);
        for inv in state
            .invocations
            .iter()
            .filter(|i| i.status == "InProgress")
        {
            self.seen_running.insert(inv.instance_id.clone());
        }
        if let Some(round) = self.wait.per_round {
            let targets = self.target_count.max(state.invocations.len());
            let n = rounds(targets, &self.spec.max_concurrency);
            self.limit = self.limit.max(round * u32::try_from(n).unwrap_or(u32::MAX));
        }
        let mut fetched = true;
        for inv in state.invocations.iter().filter(|i| i.is_terminal()) {
            if self.done.contains_key(&inv.instance_id) {
                continue;
            }
            let mut result = self.fleet.result(self.command_id, &inv.instance_id).await?;
            // GetCommandInvocation can lag behind ListCommandInvocations: a result that is not
            // final yet (InProgress, code -1, no output) is read again at the next poll.
            if !is_terminal(&result.status) {
                if result.status == "InProgress" {
                    self.seen_running.insert(inv.instance_id.clone());
                }
                fetched = false;
                continue;
            }
            result.seen_running = self.seen_running.contains(&inv.instance_id);
            print_result(out, &result);
            self.done.insert(inv.instance_id.clone(), result);
        }
        let all_ended = state.invocations.iter().all(InvocationState::is_terminal);
        let complete = is_terminal(&state.status) && all_ended && fetched;
        if complete
            && state.invocations.len() < self.target_count
            && self.short_listings < SHORT_LISTING_POLLS
        {
            // The listing may not show every invocation yet: look again before concluding.
            self.short_listings += 1;
            return Ok(false);
        }
        Ok(complete)
    }
}

#[cfg(test)]
mod tests;
