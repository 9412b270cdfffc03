//! Jobs: deploys, rollbacks, downs and reconciles run inside the daemon, one per stack at a time.
//!
//! Design: each stack has a FIFO queue (a fair `tokio::sync::Mutex`): jobs on one stack run in
//! the order they were submitted, jobs on different stacks run side by side. A job waits in the
//! queue at most its `lock_wait` (zero: fail fast with exit 75 naming the running job), then
//! the deployer takes the ledger's flock as usual (so a `--local` deploy in another process is
//! still excluded). A job is a spawned task: the client that submitted it may go away (SSM
//! SIGKILLs the CLI) and the job still finishes and is recorded. While a job runs on a stack,
//! [`Jobs::busy`] says so and supervision leaves that stack alone. The daemon's own short uses
//! of a stack's ledger (a resync recording a release held unrecorded) take a turn between its
//! jobs ([`Jobs::between_jobs`]): never while a job runs, and a job that arrives meanwhile waits
//! for it whatever its `lock_wait`, so no job finds the stack's lock taken by the daemon itself
//! (exit 75). The work itself runs in a
//! task of its own: a panic in it ends the job with a failed report and frees the stack.
//! After a job that changed something the allocator's freed pages go back to the system
//! ([`gantry_common::memory::release_free`]). After every job that ran, whatever its outcome,
//! once it has let go of its stack and before its report goes back, the [`AfterJob`] step runs
//! (the edge switch applies readiness again: a deploy's end rebuilds the routes from every
//! running container), for at most [`AFTER_JOB_WAIT`].
//!
//! Stopping: [`Jobs::stop`] (SIGTERM) lets the running jobs finish, and every job that has not
//! started (queued behind another, waiting for its turn, or submitted from then on) ends at
//! once, without an engine call, with exit 75 and `daemon stopping: ... not started; run it
//! again` ([`stopping_report`]): a deploy queued with `--lock-wait` must not start a rollout the
//! stop then cuts off. A job's report counts in [`Jobs::finishing`] until its client has it
//! ([`Jobs::submit_followed`]), so the stop waits for the answer to go out too.
//!
//! Limits: the queue lives in memory; a running deploy interrupted by a daemon stop (killed at
//! the end of the drain) is recovered by the ledger on the next deploy, but a canary, which the
//! next daemon resumes at its step ([`JobKind::ResumeCanary`], `deploy/resume.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::ExitCode;
use crate::deploy::{DeployReport, DeployRequest, Deployer, Progress};
use crate::ledger::Outcome;

use super::metrics::Metrics;

/// How long a job's report waits for its [`AfterJob`] step (which goes on after that).
pub const AFTER_JOB_WAIT: Duration = Duration::from_secs(30);

/// What runs after each job on its stack, once the job has let go of the stack and before its
/// report goes back (the daemon's edge switch applies readiness again there).
#[async_trait::async_trait]
pub trait AfterJob: Send + Sync + std::fmt::Debug {
    async fn job_ended(&self, stack: &str);
}

/// What a job does.
#[derive(Debug, Clone)]
pub enum JobKind {
    /// `gantry deploy`, or a redeploy after an env-file change.
    Deploy(DeployRequest),
    /// `gantry rollback [--to]`.
    Rollback {
        req: DeployRequest,
        to: Option<String>,
    },
    /// `gantry down [--volumes]`.
    Down { req: DeployRequest, volumes: bool },
    /// Supervision: re-apply the last good release after drift, recording nothing.
    Reconcile(DeployRequest),
    /// At start: resume the canary a daemon that stopped left at a step.
    ResumeCanary(DeployRequest),
}

/// Who asked for a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Cli,
    /// Supervision: drift against the last good release.
    Reconcile,
    /// An env file (or an opted-in compose file) changed.
    FileChange,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cli => "cli",
            Self::Reconcile => "reconcile",
            Self::FileChange => "file_change",
        }
    }
}

/// A job as submitted.
#[derive(Debug, Clone)]
pub struct Job {
    pub kind: JobKind,
    pub origin: Origin,
}

impl Job {
    fn req(&self) -> &DeployRequest {
        match &self.kind {
            JobKind::Deploy(r)
            | JobKind::Rollback { req: r, .. }
            | JobKind::Down { req: r, .. }
            | JobKind::Reconcile(r)
            | JobKind::ResumeCanary(r) => r,
        }
    }

    fn kind_str(&self) -> &'static str {
        match (&self.kind, self.origin) {
            (_, Origin::Reconcile) => "reconcile",
            (_, Origin::FileChange) => "file_change",
            (JobKind::Deploy(_), _) => "deploy",
            (JobKind::Rollback { .. }, _) => "rollback",
            (JobKind::Down { .. }, _) => "down",
            (JobKind::Reconcile(_), _) => "reconcile",
            (JobKind::ResumeCanary(_), _) => "resume_canary",
        }
    }
}

/// A running job, as `status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunningJob {
    pub id: String,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy_id: Option<String>,
    pub running_for_ms: u64,
}

#[derive(Debug)]
struct Running {
    id: String,
    kind: &'static str,
    deploy_id: Option<String>,
    since: Instant,
}

/// The daemon's job runner.
#[derive(Debug)]
pub struct Jobs {
    deployer: Deployer,
    metrics: Arc<Metrics>,
    queues: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Per stack: held by its running job and by the daemon's own uses between jobs.
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    running: Mutex<HashMap<String, Running>>,
    waiting: Mutex<HashMap<String, usize>>,
    next: AtomicU64,
    /// Tells the supervisor a job ended (to refresh watches and policies).
    done_tx: tokio::sync::watch::Sender<u64>,
    /// Runs after each job ([`Jobs::set_after_job`]).
    after_job: Mutex<Option<Arc<dyn AfterJob>>>,
    /// Jobs that let go of their stack and still run their after-job step, or whose report
    /// has not reached its client yet: a daemon told to stop waits for them too
    /// ([`Jobs::finishing`]).
    finishing: Arc<AtomicUsize>,
    /// Set by [`Jobs::stop`] (under the `running` lock): no job starts any more.
    stopping: AtomicBool,
    /// Wakes the jobs that wait for their stack when the daemon stops.
    stop_tx: tokio::sync::watch::Sender<bool>,
}

/// Counts a job in [`Jobs::finishing`] while it lives: from the moment it lets go of its stack
/// (or ends without starting) until its report has been handed over and dropped.
#[derive(Debug)]
pub struct Finishing(Arc<AtomicUsize>);

impl Finishing {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for Finishing {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A job's report, and its place in [`Jobs::finishing`] until this is dropped (once the report
/// has gone to its client).
#[derive(Debug)]
pub struct Ended {
    pub report: DeployReport,
    pub finishing: Finishing,
}

/// Sends progress to the submitting client (if still there) and to the log.
#[derive(Debug)]
struct JobProgress {
    stack: String,
    job: String,
    tx: Option<UnboundedSender<String>>,
}

impl Progress for JobProgress {
    fn step(&self, service: Option<&str>, message: &str) {
        tracing::info!(stack = %self.stack, service = service.unwrap_or(""), job = %self.job, "{message}");
        if let Some(tx) = &self.tx {
            let line = match service {
                Some(s) => format!("[{}] {s}: {message}", self.stack),
                None => format!("[{}] {message}", self.stack),
            };
            let _ = tx.send(line);
        }
    }
}

impl Jobs {
    pub fn new(deployer: Deployer, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            deployer,
            metrics,
            queues: Mutex::default(),
            turns: Mutex::default(),
            running: Mutex::default(),
            waiting: Mutex::default(),
            next: AtomicU64::new(1),
            done_tx: tokio::sync::watch::channel(0).0,
            after_job: Mutex::default(),
            finishing: Arc::default(),
            stopping: AtomicBool::new(false),
            stop_tx: tokio::sync::watch::channel(false).0,
        })
    }

    /// The daemon stops: the running jobs go on, and every job that has not started (queued,
    /// waiting for its turn, or submitted from now on) ends at once with [`stopping_report`].
    pub fn stop(&self) {
        // Under the lock that a job takes to enter `running`: a job is either running now (and
        // waited for) or sees the flag and does not start.
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        self.stopping.store(true, Ordering::SeqCst);
        let queued: usize = self
            .waiting
            .lock()
            .map(|w| w.values().sum())
            .unwrap_or_default();
        tracing::info!(
            running = running.len(),
            queued,
            "stopping: running jobs finish, queued jobs are not started"
        );
        drop(running);
        self.stop_tx.send_replace(true);
    }

    /// Whether [`Jobs::stop`] was called.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Resolves once [`Jobs::stop`] is called.
    async fn stopped(&self) {
        let mut rx = self.stop_tx.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    pub fn deployer(&self) -> &Deployer {
        &self.deployer
    }

    /// A receiver that changes each time a job ends.
    pub fn finished(&self) -> tokio::sync::watch::Receiver<u64> {
        self.done_tx.subscribe()
    }

    /// What runs after each job from now on (see [`AfterJob`]).
    pub fn set_after_job(&self, step: Arc<dyn AfterJob>) {
        *self.after_job.lock().unwrap_or_else(|e| e.into_inner()) = Some(step);
    }

    /// Runs the [`AfterJob`] step for `stack`, waiting for it at most [`AFTER_JOB_WAIT`].
    async fn after_job(&self, stack: &str, job: &str) {
        let Some(step) = self
            .after_job
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return;
        };
        let owned = stack.to_owned();
        // A task of its own: it goes on if the wait ends first, and a panic stays in it.
        let task = tokio::spawn(async move { step.job_ended(&owned).await });
        match tokio::time::timeout(AFTER_JOB_WAIT, task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(stack = %stack, job = %job, error = %e, "the step after the job failed")
            }
            Err(_) => tracing::warn!(
                stack = %stack,
                job = %job,
                wait_s = AFTER_JOB_WAIT.as_secs(),
                "the step after the job is slow; the job's report goes back without it"
            ),
        }
    }

    /// Whether a job that let go of its stack (or ended without starting) is still finishing:
    /// its after-job step runs, or its report has not reached its client yet.
    pub fn finishing(&self) -> bool {
        self.finishing.load(Ordering::SeqCst) > 0
    }

    /// Whether a job runs or waits on `stack` (supervision pauses then).
    pub fn busy(&self, stack: &str) -> bool {
        let running = self.running.lock().is_ok_and(|r| r.contains_key(stack));
        let waiting = self
            .waiting
            .lock()
            .is_ok_and(|w| w.get(stack).is_some_and(|n| *n > 0));
        running || waiting
    }

    /// The job running on `stack`, if any.
    pub fn running(&self, stack: &str) -> Option<RunningJob> {
        let r = self.running.lock().ok()?;
        r.get(stack).map(|j| RunningJob {
            id: j.id.clone(),
            kind: j.kind,
            deploy_id: j.deploy_id.clone(),
            running_for_ms: j.since.elapsed().as_millis() as u64,
        })
    }

    fn turn(&self, stack: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut t = self.turns.lock().unwrap_or_else(|e| e.into_inner());
        t.entry(stack.to_owned()).or_default().clone()
    }

    /// A turn on `stack` between its jobs, for the daemon's own short use of the stack's
    /// ledger while it is held: `None` while a job runs. A job that arrives meanwhile waits for
    /// the turn to end, whatever its `lock_wait`.
    pub fn between_jobs(&self, stack: &str) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        self.turn(stack).try_lock_owned().ok()
    }

    /// Records `stack`'s release held unrecorded ([`Deployer::retry_unrecorded`]) in a turn
    /// between its jobs, off the runtime's workers (it writes and syncs files); nothing while a
    /// job runs (the job records it).
    pub async fn retry_unrecorded(&self, stack: &str) {
        if self.deployer.unrecorded(stack).is_none() {
            return;
        }
        let Some(turn) = self.between_jobs(stack) else {
            return;
        };
        let (deployer, stack) = (self.deployer.clone(), stack.to_owned());
        let retry = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            deployer.retry_unrecorded(&stack);
        });
        if let Err(e) = retry.await {
            tracing::error!(error = %e, "recording a release held unrecorded panicked");
        }
    }

    /// Starts `job`: returns its id and a handle on its report. Progress lines go to `tx`.
    pub fn submit(
        self: &Arc<Self>,
        job: Job,
        tx: Option<UnboundedSender<String>>,
    ) -> (String, tokio::task::JoinHandle<DeployReport>) {
        let id = format!("j{}", self.next.fetch_add(1, Ordering::Relaxed));
        let this = self.clone();
        let job_id = id.clone();
        let handle = tokio::spawn(async move { this.run(job_id, job, tx).await.report });
        (id, handle)
    }

    /// [`Jobs::submit`] for a client that follows the job: the report comes with its place in
    /// [`Jobs::finishing`], which a stopping daemon waits for; drop it once the report is sent.
    pub fn submit_followed(
        self: &Arc<Self>,
        job: Job,
        tx: UnboundedSender<String>,
    ) -> (String, tokio::task::JoinHandle<Ended>) {
        let id = format!("j{}", self.next.fetch_add(1, Ordering::Relaxed));
        let this = self.clone();
        let job_id = id.clone();
        let handle = tokio::spawn(async move { this.run(job_id, job, Some(tx)).await });
        (id, handle)
    }

    /// The report of a job that did not start because the daemon stops.
    fn not_started(&self, stack: &str, id: &str, kind: &'static str) -> Ended {
        let finishing = Finishing::new(&self.finishing);
        tracing::info!(stack = %stack, job = %id, kind, "daemon stopping: the job was not started");
        Ended {
            report: stopping_report(stack),
            finishing,
        }
    }

    async fn run(
        self: Arc<Self>,
        id: String,
        job: Job,
        tx: Option<UnboundedSender<String>>,
    ) -> Ended {
        let req = job.req().clone();
        let stack = req.stack.clone();
        let kind = job.kind_str();
        let progress = JobProgress {
            stack: stack.clone(),
            job: id.clone(),
            tx,
        };
        let queue = {
            let mut q = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            q.entry(stack.clone()).or_default().clone()
        };
        let submitted = Instant::now();
        if self.stopping() {
            return self.not_started(&stack, &id, kind);
        }
        let guard = match queue.clone().try_lock_owned() {
            Ok(g) => g,
            Err(_) => {
                let ahead = self.running(&stack);
                if req.lock_wait.is_zero() {
                    let holder = ahead
                        .map(|j| format!("job {} ({})", j.id, j.kind))
                        .unwrap_or_else(|| "another job".into());
                    return self.ended_now(busy_report(&stack, &holder));
                }
                progress.step(None, "queued behind the stack's running job");
                self.waiting_add(&stack, 1);
                let got = tokio::select! {
                    got = tokio::time::timeout(req.lock_wait, queue.lock_owned()) => Some(got),
                    () = self.stopped() => None,
                };
                let Some(got) = got else {
                    // Counted as finishing before it stops counting as queued.
                    let ended = self.not_started(&stack, &id, kind);
                    self.waiting_add(&stack, -1);
                    return ended;
                };
                self.waiting_add(&stack, -1);
                match got {
                    Ok(g) => g,
                    Err(_) => {
                        let holder = self
                            .running(&stack)
                            .map(|j| format!("job {} ({})", j.id, j.kind))
                            .unwrap_or_else(|| "another job".into());
                        return self.ended_now(busy_report(&stack, &holder));
                    }
                }
            }
        };
        // The daemon's own use of the stack between jobs is short: waited for, as queued.
        let turn = self.turn(&stack);
        let turn = match turn.clone().try_lock_owned() {
            Ok(t) => t,
            Err(_) => {
                progress.step(None, "waiting for the daemon's write of the stack's ledger");
                self.waiting_add(&stack, 1);
                let t = tokio::select! {
                    t = turn.lock_owned() => Some(t),
                    () = self.stopped() => None,
                };
                let Some(t) = t else {
                    let ended = self.not_started(&stack, &id, kind);
                    self.waiting_add(&stack, -1);
                    return ended;
                };
                self.waiting_add(&stack, -1);
                t
            }
        };
        {
            // Stopping is decided under this lock (see `stop`): running now, or not at all.
            let mut r = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if self.stopping() {
                drop(r);
                return self.not_started(&stack, &id, kind);
            }
            r.insert(
                stack.clone(),
                Running {
                    id: id.clone(),
                    kind,
                    deploy_id: req.deploy_id.clone(),
                    since: Instant::now(),
                },
            );
        }
        let waited = submitted.elapsed();
        self.metrics.summary(
            "gantry_job_queue_wait_seconds",
            &[("stack", &stack)],
            waited,
        );
        tracing::info!(stack = %stack, job = %id, kind, origin = job.origin.as_str(), "job started");
        let mut req = req;
        req.lock_wait = req.lock_wait.saturating_sub(waited);
        // The work runs in its own task so that a panic in it (a bug) ends this job with a
        // report instead of leaving the stack marked busy forever.
        let deployer = self.deployer.clone();
        let (work_kind, work_req) = (job.kind.clone(), req.clone());
        let work = tokio::spawn(async move {
            match &work_kind {
                JobKind::Deploy(_) => deployer.deploy(&work_req, &progress).await,
                JobKind::Rollback { to, .. } => {
                    deployer.rollback(&work_req, to.as_deref(), &progress).await
                }
                JobKind::Down { volumes, .. } => {
                    deployer.down(&work_req, *volumes, &progress).await
                }
                JobKind::Reconcile(_) => deployer.reconcile(&work_req, &progress).await,
                JobKind::ResumeCanary(_) => deployer.resume_canary(&work_req, &progress).await,
            }
        });
        let report = match work.await {
            Ok(report) => report,
            Err(e) => {
                let what = if e.is_panic() {
                    "panicked"
                } else {
                    "was cancelled"
                };
                tracing::error!(stack = %stack, job = %id, kind, "the job {what}; the stack is free again");
                DeployReport {
                    error: Some(format!(
                        "{kind} job {id} {what} (a Gantry bug: the panic is in the daemon's log); the stack is free again and the next job recovers its ledger"
                    )),
                    ..DeployReport::failed(&stack)
                }
            }
        };
        let finishing = Finishing::new(&self.finishing);
        if let Ok(mut r) = self.running.lock() {
            r.remove(&stack);
        }
        drop((turn, guard));
        self.after_job(&stack, &id).await;
        self.record(&stack, kind, &report);
        tracing::info!(
            stack = %stack,
            job = %id,
            kind,
            outcome = %report.outcome,
            exit_code = report.exit_code().code(),
            duration_ms = report.duration_ms,
            "job finished"
        );
        // A no-op wrote nothing: the supervisor's view of the ledger still holds, and the
        // client gets its answer without waiting behind a refresh.
        let wrote = !(report.repeated
            || report.outcome == Outcome::Unchanged && req.deploy_id.is_none()
            || report.exit_code() == ExitCode::LockBusy
            || matches!(job.kind, JobKind::Reconcile(_)));
        if wrote {
            self.done_tx.send_modify(|n| *n += 1);
        }
        if report.outcome != Outcome::Unchanged {
            // What the job's requests in flight took is free again but stays with glibc's
            // per-thread arenas (about 1 MiB after twenty services at once): hand it back.
            tokio::task::spawn_blocking(gantry_common::memory::release_free);
        }
        Ended { report, finishing }
    }

    /// A report of a job that ended before it started, its place in [`Jobs::finishing`] taken.
    fn ended_now(&self, report: DeployReport) -> Ended {
        Ended {
            report,
            finishing: Finishing::new(&self.finishing),
        }
    }

    fn waiting_add(&self, stack: &str, d: isize) {
        if let Ok(mut w) = self.waiting.lock() {
            let n = w.entry(stack.to_owned()).or_default();
            *n = n.saturating_add_signed(d);
        }
    }

    fn record(&self, stack: &str, kind: &'static str, report: &DeployReport) {
        let outcome = if report.exit_code() == ExitCode::LockBusy {
            "lock_busy"
        } else {
            report.outcome.as_str()
        };
        self.metrics.inc(
            "gantry_deploys_total",
            &[("stack", stack), ("kind", kind), ("outcome", outcome)],
        );
        if report.repeated {
            return;
        }
        if report.outcome != Outcome::Unchanged {
            self.metrics.summary(
                "gantry_rollout_duration_seconds",
                &[("stack", stack)],
                Duration::from_millis(report.duration_ms),
            );
        }
        for s in report
            .services
            .iter()
            .filter(|s| s.action == crate::ledger::Action::Run)
        {
            self.metrics.summary(
                "gantry_job_duration_seconds",
                &[("stack", stack)],
                Duration::from_millis(s.duration_ms),
            );
        }
    }
}

/// The report of a job that could not get its stack.
fn busy_report(stack: &str, holder: &str) -> DeployReport {
    DeployReport {
        error: Some(format!(
            "stack {stack} is busy: {holder} is running (hint: wait with --lock-wait 10m)"
        )),
        exit_code_override: Some(ExitCode::LockBusy),
        ..DeployReport::failed(stack)
    }
}

/// The report of a job that had not started when the daemon began to stop (exit 75: nothing
/// was changed; run it again once the daemon is back).
pub fn stopping_report(stack: &str) -> DeployReport {
    DeployReport {
        error: Some(format!(
            "daemon stopping: this job on stack {stack} was not started and nothing was changed; run it again (hint: systemctl status gantry)"
        )),
        exit_code_override: Some(ExitCode::TempFail),
        ..DeployReport::failed(stack)
    }
}

#[cfg(test)]
mod tests;
