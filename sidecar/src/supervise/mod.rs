//! Exec mode: `gantry-secrets exec -- CMD ARGS...`, the container's ENTRYPOINT.
//!
//! Design: one select loop owns the child. Events are signals (forwarded ones and SIGCHLD), a
//! 1 s reap tick (in case a SIGCHLD was coalesced), changes from the engine's watchers, the
//! debouncer's deadline and the kill deadline. When the debouncer fires, the new environment is
//! checked ([`child_env`]: variable names, no NUL in a value) before the child is touched: if it
//! cannot be used, the child keeps running with the old values. After each event every exited
//! process is reaped ([`child::reap`]); when the child itself exited:
//! - during a restart, the old group gets a SIGKILL (stragglers), sent before the old child is
//!   reaped so that its pid cannot have been reused, and a new child starts with
//!   the latest values (or, if values that came while it stopped cannot be used, with those
//!   checked when the restart was decided);
//! - otherwise we exit with its code (128+n if it died of signal n), or with
//!   [`EXIT_CHANGED`] when it was stopped because of a change with `exit_on_change`.
//!
//! SIGTERM and SIGINT are forwarded to the child's process group and start the stop timeout
//! (default 25 s, below ECS's 30 s stopTimeout), after which the group is killed. SIGHUP,
//! SIGQUIT, SIGUSR1 and SIGUSR2 are only forwarded. SIGCHLD and SIGURG are never forwarded.
//!
//! When the debouncer fires with values that give the running child's environment and
//! outputs (a change undone before it was due: A, B, A), nothing is restarted.
//!
//! `outputs:` of a config file are rendered before the first child starts (an error stops us)
//! and again before each restart (an error is logged; the new child gets the old files, which
//! are tried again with the sources' backoff until written, without another restart; the
//! sidecar reports not ready meanwhile). Outputs, and their retries, are rendered from the
//! values the running child was started with (`applied`), never from newer ones still waiting
//! in the debouncer or refused.
//!
//! The loop (`supervise_loop`) reaches processes through a `Launcher` and signals through a
//! `SignalSource`, so that its timing is tested on a paused clock with a fake child.
//!
//! Before the first child starts, the sidecar makes itself non-dumpable and drops its Vault
//! credentials from its own environment ([`protect`]), so the child cannot read them from
//! `/proc/<sidecar>/environ` or `/proc/<sidecar>/mem`.
//!
//! Limits: the child is not given the terminal's foreground group (`docker run -it` shells
//! cannot read the terminal); a secret change never interrupts a stop in progress.

pub mod child;
pub mod protect;

use std::collections::BTreeMap;
use std::time::Duration;

use gantry_common::Secret;
use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::engine::{self, Debouncer, Status};
use crate::render::{self, RenderError};
use crate::source::{Snapshot, Source};

pub use child::{Child, Command, SpawnError};

/// Exit code after stopping the child because secrets changed (`exit_on_change`).
pub const EXIT_CHANGED: i32 = 75;

/// Signals forwarded to the child's process group.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Signal handlers could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot handle {signal}: {source}")]
pub struct SignalError {
    pub signal: Signal,
    #[source]
    pub source: std::io::Error,
}

/// What one wake-up of [`Signals::next`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalEvent {
    Forward(Signal),
    Child,
}

/// The signal streams exec mode listens to. Install them before starting the child.
#[derive(Debug)]
pub struct Signals {
    forwarded: Vec<(Signal, tokio::signal::unix::Signal)>,
    child: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> Result<Self, SignalError> {
        let mut forwarded = Vec::with_capacity(FORWARDED.len());
        for sig in FORWARDED {
            let s = signal(SignalKind::from_raw(sig as i32)).map_err(|source| SignalError {
                signal: sig,
                source,
            })?;
            forwarded.push((sig, s));
        }
        let child = signal(SignalKind::child()).map_err(|source| SignalError {
            signal: Signal::SIGCHLD,
            source,
        })?;
        Ok(Self { forwarded, child })
    }

    /// Waits for the next signal.
    pub async fn next(&mut self) -> SignalEvent {
        let forwarded =
            futures_util::future::select_all(self.forwarded.iter_mut().map(|(sig, s)| {
                Box::pin(async move {
                    s.recv().await;
                    *sig
                })
            }));
        tokio::select! {
            _ = self.child.recv() => SignalEvent::Child,
            (sig, _, _) = forwarded => SignalEvent::Forward(sig),
        }
    }

    /// Waits for SIGTERM or SIGINT (ignoring the others), for the time before the child runs.
    pub async fn stop_requested(&mut self) -> Signal {
        loop {
            if let SignalEvent::Forward(sig @ (Signal::SIGTERM | Signal::SIGINT)) =
                self.next().await
            {
                return sig;
            }
        }
    }
}

/// The child's variables by name.
pub type Env = BTreeMap<String, Secret<String>>;

/// The variables the child gets: every source merged, names and values checked.
pub fn child_env(ids: &[String], snaps: &[Snapshot]) -> Result<Env, RenderError> {
    let pairs: Vec<(&str, &Snapshot)> = ids.iter().map(String::as_str).zip(snaps.iter()).collect();
    render::merge("the child's environment", &pairs, None)
}

/// The environment of the child a restart starts, with the snapshots it comes from (its
/// outputs are rendered from the same): the latest values, or, when values that came while the
/// old child was stopping cannot be used, `decided` (the environment checked when the restart
/// was decided; the old child is gone by now, so its values cannot be kept running).
/// An error only when there is no decided environment either.
fn restart_env(
    ids: &[String],
    snaps: &[Snapshot],
    decided: Option<(Env, Vec<Snapshot>)>,
    status: &Status,
) -> Result<(Env, Vec<Snapshot>), RenderError> {
    match (child_env(ids, snaps), decided) {
        (Ok(env), _) => Ok((env, snaps.to_vec())),
        (Err(e), Some(decided)) => {
            status.rendered(false);
            tracing::error!(error = %e, "values that came during the restart are unusable, the new child gets those the restart was decided on");
            Ok(decided)
        }
        (Err(e), None) => Err(e),
    }
}

/// Whether the values `snaps` give the child what it runs with (`applied`): the same
/// environment and the same content for every output (a change undone before the debounce
/// fired: A, then B, then A again).
fn same_as_running(
    config: &Config,
    ids: &[String],
    env: &Env,
    snaps: &[Snapshot],
    applied: &[Snapshot],
) -> bool {
    let Ok(running) = child_env(ids, applied) else {
        return false;
    };
    if running != *env {
        return false;
    }
    let wrap = |v: &[Snapshot]| v.iter().cloned().map(Some).collect::<Vec<_>>();
    let (new, old) = (wrap(snaps), wrap(applied));
    let (new, old) = (engine::view(ids, &new), engine::view(ids, &old));
    config.outputs.iter().all(
        |o| match (render::render(o, &new), render::render(o, &old)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        },
    )
}

/// The processes exec mode starts, signals and reaps: real ones ([`Procs`]), or a fake in
/// the tests (the loop's timing on a paused clock, without processes).
pub(crate) trait Launcher {
    /// Starts the child with `env` added; its pid.
    fn spawn(&mut self, env: &Env) -> Result<i32, SpawnError>;
    /// Sends `sig` to the child's process group.
    fn signal(&mut self, pid: i32, sig: Signal);
    /// SIGKILL to the child's group (only before it was reaped).
    fn kill(&mut self, pid: i32);
    /// Collects every exited process; the exit code of `main` if it exited, its group killed
    /// first when `kill_group` (while it is a zombie, see [`child::reap`]).
    fn reap(&mut self, main: i32, kill_group: bool) -> Option<i32>;
}

/// The real [`Launcher`]: `cmd` in its own process group, reaped as PID 1 or subreaper.
#[derive(Debug)]
struct Procs<'a> {
    cmd: &'a Command,
}

impl Launcher for Procs<'_> {
    fn spawn(&mut self, env: &Env) -> Result<i32, SpawnError> {
        Child::spawn(self.cmd, env).map(|c| c.pid.as_raw())
    }

    fn signal(&mut self, pid: i32, sig: Signal) {
        Child::of(pid).signal(sig);
    }

    fn kill(&mut self, pid: i32) {
        Child::of(pid).kill();
    }

    fn reap(&mut self, main: i32, kill_group: bool) -> Option<i32> {
        let main = Child::of(main);
        child::reap(Some(main.pid), |_| {
            if kill_group {
                main.kill();
            }
        })
    }
}

/// Where the loop's signals come from: [`Signals`], or none in the tests.
pub(crate) trait SignalSource {
    fn next(&mut self) -> impl std::future::Future<Output = SignalEvent>;
}

impl SignalSource for Signals {
    fn next(&mut self) -> impl std::future::Future<Output = SignalEvent> {
        Signals::next(self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// The restart signal was sent; start a new child when this one exits.
    Restarting,
    /// Stopping for good; exit with `code` if set, else with the child's code.
    Stopping {
        code: Option<i32>,
    },
}

/// How exec mode ended.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Signals(#[from] SignalError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// Runs the child with the first snapshots and supervises it until it ends for good.
/// Returns the exit code to exit with. `signals` must have been installed before the first
/// fetch; `shutdown` acts like SIGTERM (for tests and embedding).
#[allow(clippy::too_many_arguments)]
pub async fn supervise(
    config: &Config,
    cmd: &Command,
    mut signals: Signals,
    sources: Vec<Box<dyn Source>>,
    snapshots: Vec<Snapshot>,
    ids: Vec<String>,
    status: Status,
    shutdown: CancellationToken,
) -> Result<i32, ExecError> {
    child::become_subreaper();
    protect::protect_credentials();
    let watchers_stop = shutdown.child_token();
    let changes = engine::spawn_watchers(
        sources,
        snapshots.clone(),
        config.refresh,
        status.clone(),
        watchers_stop.clone(),
    );
    tracing::info!(program = %cmd.program.to_string_lossy(), "starting the child");
    let mut procs = Procs { cmd };
    let ended = supervise_loop(
        config,
        &mut procs,
        &mut signals,
        changes,
        snapshots,
        &ids,
        &status,
        &shutdown,
    )
    .await;
    watchers_stop.cancel();
    ended
}

/// The loop of [`supervise`]: starts the first child with `snapshots`, then owns it until it
/// ends for good.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn supervise_loop<L: Launcher, S: SignalSource>(
    config: &Config,
    procs: &mut L,
    signals: &mut S,
    mut changes: tokio::sync::mpsc::Receiver<engine::Change>,
    snapshots: Vec<Snapshot>,
    ids: &[String],
    status: &Status,
    shutdown: &CancellationToken,
) -> Result<i32, ExecError> {
    let policy = config.restart;
    let env = child_env(ids, &snapshots)?;
    let mut current = procs.spawn(&env)?;
    drop(env);
    status.set_child(Some(current));
    status.set_started();
    tracing::info!(pid = current, "child started");

    // The latest values of every source.
    let mut snaps = snapshots.clone();
    // The values the running child was started with, and its outputs rendered from: a retry
    // of a failed output writes these, never values still in the debounce or refused.
    let mut applied = snapshots;
    let mut debounce = Debouncer::new(policy.debounce, policy.min_interval);
    let mut phase = Phase::Running;
    let mut kill_at: Option<Instant> = None;
    let mut reap_tick = tokio::time::interval(Duration::from_secs(1));
    let mut shutdown_seen = false;
    // The environment checked when a restart was decided (and its values), for the child that
    // restart starts.
    let mut decided: Option<(Env, Vec<Snapshot>)> = None;
    // Outputs that failed to be written before a restart, tried again until they are.
    let mut retry = crate::host::OutputRetry::default();

    loop {
        let due = match phase {
            Phase::Running => debounce.deadline(),
            _ => None,
        };
        tokio::select! {
            ev = signals.next() => {
                if let SignalEvent::Forward(sig) = ev {
                    tracing::info!(pid = current, signal = %sig, "forwarding signal");
                    procs.signal(current, sig);
                    if matches!(sig, Signal::SIGTERM | Signal::SIGINT) {
                        begin_stop(&mut phase, &mut kill_at, policy.stop_timeout, None);
                    }
                }
            }
            _ = reap_tick.tick() => {}
            () = engine::sleep_until_opt(retry.at()) => {
                let opt: Vec<Option<Snapshot>> = applied.iter().cloned().map(Some).collect();
                let rendered = crate::host::render_all(&config.outputs, ids, &opt, status);
                rendered.log_errors("its old file stays until a retry succeeds");
                retry.record(&rendered, status, config.refresh);
            }
            Some(change) = changes.recv() => {
                if let Some(slot) = snaps.get_mut(change.index) {
                    *slot = change.snapshot;
                    debounce.changed(Instant::now());
                }
            }
            () = engine::sleep_until_opt(due) => {
                debounce.fired(Instant::now());
                match child_env(ids, &snaps) {
                    Err(e) => {
                        status.rendered(false);
                        tracing::error!(error = %e, "new values unusable, the child keeps the old ones");
                    }
                    Ok(env) if same_as_running(config, ids, &env, &snaps, &applied) => {
                        tracing::info!(pid = current, "secrets changed back to the values the child runs with, not restarting it");
                    }
                    Ok(_) if policy.exit_on_change => {
                        tracing::info!(pid = current, signal = %policy.signal, "secrets changed, stopping the child to exit (exit_on_change)");
                        procs.signal(current, policy.signal);
                        begin_stop(&mut phase, &mut kill_at, policy.timeout, Some(EXIT_CHANGED));
                    }
                    Ok(env) => {
                        decided = Some((env, snaps.clone()));
                        tracing::info!(pid = current, signal = %policy.signal, "secrets changed, restarting the child");
                        procs.signal(current, policy.signal);
                        phase = Phase::Restarting;
                        kill_at = Some(Instant::now() + policy.timeout);
                    }
                }
            }
            () = engine::sleep_until_opt(kill_at) => {
                tracing::warn!(pid = current, "child did not stop in time, sending SIGKILL");
                procs.kill(current);
                kill_at = None;
            }
            () = shutdown.cancelled(), if !shutdown_seen => {
                shutdown_seen = true;
                procs.signal(current, Signal::SIGTERM);
                begin_stop(&mut phase, &mut kill_at, policy.stop_timeout, None);
            }
        }
        // Stragglers of the old group would hold ports or files: a restart kills them, while
        // the old child is still a zombie (never after it was reaped: its pid may be reused).
        let restarting = phase == Phase::Restarting;
        let Some(code) = procs.reap(current, restarting) else {
            continue;
        };
        match phase {
            Phase::Restarting => {
                let (env, values) = match restart_env(ids, &snaps, decided.take(), status) {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::error!(error = %e, "new values unusable while restarting");
                        return Err(e.into());
                    }
                };
                // The outputs of the new child come from the values its environment does.
                if !config.outputs.is_empty() {
                    let opt: Vec<Option<Snapshot>> = values.iter().cloned().map(Some).collect();
                    let rendered = crate::host::render_all(&config.outputs, ids, &opt, status);
                    rendered.log_errors("the new child gets its old file until a retry succeeds");
                    retry.record(&rendered, status, config.refresh);
                }
                current = procs.spawn(&env)?;
                drop(env);
                applied = values;
                debounce.fired(Instant::now());
                status.restarted();
                status.set_child(Some(current));
                tracing::info!(
                    pid = current,
                    old_exit = code,
                    "child restarted with new values"
                );
                phase = Phase::Running;
                kill_at = None;
            }
            Phase::Stopping { code: ours } => {
                status.set_child(None);
                let exit = ours.unwrap_or(code);
                tracing::info!(child_exit = code, exit, "child stopped, exiting");
                return Ok(exit);
            }
            Phase::Running => {
                status.set_child(None);
                tracing::info!(child_exit = code, "child exited, exiting with its code");
                return Ok(code);
            }
        }
    }
}

fn begin_stop(
    phase: &mut Phase,
    kill_at: &mut Option<Instant>,
    timeout: Duration,
    code: Option<i32>,
) {
    match phase {
        Phase::Stopping { .. } => {}
        _ => {
            // A stop during a restart keeps the restart's kill deadline if sooner.
            let deadline = Instant::now() + timeout;
            *kill_at = Some(kill_at.map_or(deadline, |k| k.min(deadline)));
            *phase = Phase::Stopping { code };
        }
    }
}

#[cfg(test)]
mod tests;
