//! Run mode: `gantry-secrets run`, the host service that keeps files rendered.
//!
//! Design: after the first fetch every output is rendered and written (only if its content,
//! mode or owner differ), then systemd hears `READY=1`. Changes from the engine are debounced,
//! the outputs are rendered again, and for every file that really changed its action runs
//! once (the output's own `on_change`, else the top-level one; equal actions run once per
//! batch). Every output is rendered on its own ([`render_all`]): one that fails keeps its old
//! file and is logged with its path (`N of M outputs failed`), while the others are still
//! written and their actions run; the service goes on, reports not ready while an output is
//! stale, and tries the failed outputs again with the sources' backoff ([`OutputRetry`]) until
//! they are written (their actions run then). At start any failed output fails the command
//! ([`Rendered::into_result`]).
//! An action that fails, or that a stop interrupts, stays owed ([`Owed`]): tried again with the
//! same backoff until it succeeds, the service not ready meanwhile (`action:<path>`), and run at
//! the next start if it was still owed at the stop (a marker file beside the output, see
//! `owed`).
//! `STATUS=` lines follow each batch; `WATCHDOG=1` is sent at half of `WATCHDOG_USEC`, also
//! while actions run (a command may take its whole timeout). A stop request is handled at once,
//! even during an action: the action is dropped (a command is killed) and logged as interrupted.
//!
//! Actions: a signal to the pid in a pid file (read once through a descriptor that follows no
//! symbolic link and waits on no FIFO, at most 32 bytes: [`target::read_pid_file`]; only to a
//! process [`target::check`] allows: same service cgroup, or owned by the pid file's owner), a
//! signal to a systemd unit's main process (`systemctl show -p MainPID --value UNIT`), or a
//! program run without a shell (its output goes to our stderr, bounded by its timeout). Neither
//! the secrets nor the sidecar's own Vault and AWS credentials are in an action's environment
//! ([`credentials::for_action`]).

mod owed;
mod target;

use std::time::Duration;

use gantry_common::sdnotify::{self, Notifier};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Action, Config, Output};
use crate::credentials;
use crate::engine::{self, Debouncer, Status};
use crate::render::{self, RenderError};
use crate::source::{Snapshot, Source};

pub use owed::{Owed, marker};

/// An on_change action failed (logged; the service goes on).
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("cannot read pid file {path}: {message} (hint: {hint})")]
    PidFile {
        path: String,
        message: String,
        hint: &'static str,
    },
    #[error("refused to signal the pid in {path}: {reason}")]
    Refused { path: String, reason: String },
    #[error(
        "cannot find the main process of unit {unit}: {message} (hint: is it running? `systemctl status {unit}`)"
    )]
    Unit { unit: String, message: String },
    #[error("cannot send {signal} to pid {pid}: {source}")]
    Signal {
        signal: Signal,
        pid: i32,
        #[source]
        source: nix::Error,
    },
    #[error("command {program} {outcome}")]
    Command { program: String, outcome: String },
}

/// What one pass of [`render_all`] did: the outputs written, and those that failed.
#[derive(Debug)]
pub struct Rendered<'a> {
    /// Outputs whose file was (re)written: their actions are due.
    pub written: Vec<&'a Output>,
    /// Outputs that cannot be rendered or written, each with why (their old file stays).
    pub errors: Vec<(&'a Output, RenderError)>,
    /// How many outputs there are.
    pub total: usize,
}

impl<'a> Rendered<'a> {
    /// Logs every failed output (with its path) and how many failed, saying what `happens`.
    pub fn log_errors(&self, happens: &str) {
        for (o, e) in &self.errors {
            tracing::error!(output = %o.path.display(), error = %e, "cannot render output, {happens}");
        }
        if !self.errors.is_empty() {
            tracing::error!(
                failed = self.errors.len(),
                total = self.total,
                "{} of {} outputs failed",
                self.errors.len(),
                self.total
            );
        }
    }

    /// For the start, where any failed output fails the command: the written outputs, or the
    /// first error (the others, if any, are logged first so none goes unseen).
    pub fn into_result(mut self) -> Result<Vec<&'a Output>, RenderError> {
        if self.errors.is_empty() {
            return Ok(self.written);
        }
        if self.errors.len() > 1 {
            self.log_errors("stopping");
        }
        Err(self.errors.swap_remove(0).1)
    }
}

/// Renders every output from `snaps`, each on its own: one that fails does not stop the
/// others (files already written stay: each file is whole on its own).
pub fn render_all<'a>(
    outputs: &'a [Output],
    ids: &[String],
    snaps: &[Option<Snapshot>],
    status: &Status,
) -> Rendered<'a> {
    render_owing(outputs, ids, snaps, status, None)
}

/// [`render_all`] for run mode: the action of an output written (and for which `owes(index)`)
/// becomes owed in `owed`, its marker written before the file (see [`Owed`]).
pub fn render_owing<'a>(
    outputs: &'a [Output],
    ids: &[String],
    snaps: &[Option<Snapshot>],
    status: &Status,
    mut owed: Option<(&mut Owed, &dyn Fn(usize) -> bool)>,
) -> Rendered<'a> {
    let view = engine::view(ids, snaps);
    let mut done = Rendered {
        written: Vec::new(),
        errors: Vec::new(),
        total: outputs.len(),
    };
    for (i, o) in outputs.iter().enumerate() {
        let result = render::render(o, &view).and_then(|c| match c {
            Some(c) => match owed.as_mut() {
                Some((owed, owes)) if owes(i) => {
                    let marked = owed.before_write(i);
                    let wrote = render::write(o, &c);
                    owed.written(i, matches!(wrote, Ok(true)), marked);
                    wrote
                }
                _ => render::write(o, &c),
            },
            None => Ok(false),
        });
        match result {
            Ok(true) => {
                status.rendered(true);
                tracing::info!(output = %o.path.display(), "output written");
                done.written.push(o);
            }
            Ok(false) => tracing::debug!(output = %o.path.display(), "output unchanged"),
            Err(e) => {
                status.rendered(false);
                done.errors.push((o, e));
            }
        }
    }
    done
}

/// Outputs that failed to render or write: they are tried again with the sources' backoff
/// ([`engine::backoff`]: 1 s doubling, capped at the refresh interval and 60 s) until a pass
/// succeeds, and [`Status`] reports them stale meanwhile (`/readyz` 503).
#[derive(Debug, Default)]
pub struct OutputRetry {
    failures: u32,
    at: Option<Instant>,
}

impl OutputRetry {
    /// When the next try is due, if an output failed.
    pub fn at(&self) -> Option<Instant> {
        self.at
    }

    /// Records how a pass of [`render_all`] went: after a failure the next try is scheduled,
    /// after a whole success the retry stops; `status` learns which outputs are stale.
    pub fn record(&mut self, rendered: &Rendered<'_>, status: &Status, refresh: Duration) {
        let failed: Vec<String> = rendered
            .errors
            .iter()
            .map(|(o, _)| o.path.display().to_string())
            .collect();
        if failed.is_empty() {
            if self.failures > 0 {
                tracing::info!(after_failures = self.failures, "every output written again");
            }
            self.failures = 0;
            self.at = None;
        } else {
            self.failures = self.failures.saturating_add(1);
            let wait = engine::backoff(self.failures, refresh);
            tracing::warn!(
                failed = failed.len(),
                attempt = self.failures,
                retry_in_ms = wait.as_millis() as u64,
                "outputs failed, trying them again"
            );
            self.at = Some(Instant::now() + wait);
        }
        status.set_failed_outputs(failed);
    }
}

/// Runs one output's action and logs how it went; `true` when it succeeded.
async fn run_logged(o: &Output, action: &Action, status: &Status) -> bool {
    match run_action(action).await {
        Ok(()) => {
            tracing::info!(output = %o.path.display(), action = %describe(action), "on_change action done");
            true
        }
        Err(e) => {
            status.action_failed();
            tracing::error!(output = %o.path.display(), error = %e, "on_change action failed, it stays owed");
            false
        }
    }
}

/// Runs the owed actions, each distinct action once (at start, before the service loop).
pub async fn run_owed(config: &Config, owed: &mut Owed, status: &Status) {
    let mut watchdog = Watchdog::new(None, || {});
    run_owed_alive(
        config,
        owed,
        status,
        &mut watchdog,
        &CancellationToken::new(),
    )
    .await;
}

/// The systemd watchdog of [`serve`]: `ping` at every tick (half of `WATCHDOG_USEC`), never
/// when systemd asked for none.
struct Watchdog<P> {
    tick: Option<tokio::time::Interval>,
    ping: P,
}

impl<P: FnMut()> Watchdog<P> {
    fn new(every: Option<Duration>, ping: P) -> Self {
        Self {
            tick: every.map(tokio::time::interval),
            ping,
        }
    }

    /// Waits for the next tick and pings (cancel-safe: the ping follows the tick at once).
    async fn beat(&mut self) {
        match &mut self.tick {
            Some(tick) => {
                tick.tick().await;
                (self.ping)();
            }
            None => std::future::pending().await,
        }
    }
}

/// [`run_owed`] inside the service loop: the watchdog keeps beating while an action runs
/// (a command may take its whole timeout), and a stop request drops the running action (a
/// command is killed: `kill_on_drop`; its marker stays, so the next start runs it). A failed
/// action stays owed and is tried again with the backoff. `false` when a stop interrupted an
/// action.
async fn run_owed_alive<P: FnMut()>(
    config: &Config,
    owed: &mut Owed,
    status: &Status,
    watchdog: &mut Watchdog<P>,
    shutdown: &CancellationToken,
) -> bool {
    for (o, action, outputs) in owed.due(config) {
        let run = run_logged(o, action, status);
        tokio::pin!(run);
        let ok = loop {
            tokio::select! {
                ok = &mut run => break ok,
                () = watchdog.beat() => {}
                () = shutdown.cancelled() => {
                    tracing::warn!(output = %o.path.display(), action = %describe(action), "stop requested, on_change action interrupted (it runs at the next start)");
                    return false;
                }
            }
        };
        if ok {
            owed.done(&outputs);
        }
    }
    owed.record(status, config.refresh);
    true
}

fn describe(a: &Action) -> String {
    match a {
        Action::None => "none".to_owned(),
        Action::SignalPidFile { signal, pid_file } => {
            format!("{signal} to pid in {}", pid_file.display())
        }
        Action::SignalUnit { signal, unit } => format!("{signal} to {unit}"),
        Action::Command { argv, .. } => format!("run {}", argv[0]),
    }
}

/// Runs one action.
pub async fn run_action(action: &Action) -> Result<(), ActionError> {
    match action {
        Action::None => Ok(()),
        Action::SignalPidFile { signal, pid_file } => {
            // One open, no symbolic link followed, at most 32 bytes; the checks are on that
            // open file's own metadata (see `target`).
            let (pid, meta) =
                target::read_pid_file(pid_file).map_err(|e| ActionError::PidFile {
                    path: pid_file.display().to_string(),
                    message: e.message,
                    hint: e.hint,
                })?;
            target::check(pid, &meta).map_err(|reason| ActionError::Refused {
                path: pid_file.display().to_string(),
                reason,
            })?;
            send(*signal, pid)
        }
        Action::SignalUnit { signal, unit } => {
            let mut cmd = tokio::process::Command::new("systemctl");
            cmd.args(["show", "-p", "MainPID", "--value", unit])
                .kill_on_drop(true);
            strip_credentials(&mut cmd);
            let out = cmd.output();
            let out = tokio::time::timeout(Duration::from_secs(10), out)
                .await
                .map_err(|_| ActionError::Unit {
                    unit: unit.clone(),
                    message: "systemctl did not answer in 10s".to_owned(),
                })?
                .map_err(|e| ActionError::Unit {
                    unit: unit.clone(),
                    message: format!("cannot run systemctl: {e}"),
                })?;
            let pid = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<i32>()
                .unwrap_or(0);
            if !out.status.success() || pid <= 0 {
                return Err(ActionError::Unit {
                    unit: unit.clone(),
                    message: "no main process".to_owned(),
                });
            }
            send(*signal, pid)
        }
        Action::Command { argv, timeout } => {
            let program = argv[0].clone();
            let mut cmd = tokio::process::Command::new(&argv[0]);
            cmd.args(&argv[1..])
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true);
            strip_credentials(&mut cmd);
            let mut child = cmd.spawn().map_err(|e| ActionError::Command {
                program: program.clone(),
                outcome: format!("cannot start: {e}"),
            })?;
            match tokio::time::timeout(*timeout, child.wait()).await {
                Ok(Ok(s)) if s.success() => Ok(()),
                Ok(Ok(s)) => Err(ActionError::Command {
                    program,
                    outcome: format!("failed: {s}"),
                }),
                Ok(Err(e)) => Err(ActionError::Command {
                    program,
                    outcome: format!("cannot be waited for: {e}"),
                }),
                Err(_) => {
                    let _ = child.kill().await;
                    Err(ActionError::Command {
                        program,
                        outcome: format!("killed after {}s", timeout.as_secs()),
                    })
                }
            }
        }
    }
}

/// An action runs without the sidecar's Vault and AWS credentials ([`credentials::for_action`]).
fn strip_credentials(cmd: &mut tokio::process::Command) {
    for var in credentials::for_action() {
        cmd.env_remove(var);
    }
}

fn send(signal: Signal, pid: i32) -> Result<(), ActionError> {
    kill(Pid::from_raw(pid), signal).map_err(|source| ActionError::Signal {
        signal,
        pid,
        source,
    })
}

/// The service loop after the first fetch and render (and the actions owed then): until
/// `shutdown`.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    config: &Config,
    sources: Vec<Box<dyn Source>>,
    snapshots: Vec<Snapshot>,
    ids: Vec<String>,
    status: Status,
    notifier: &Notifier,
    owed: Owed,
    shutdown: CancellationToken,
) {
    let snaps: Vec<Option<Snapshot>> = snapshots.iter().cloned().map(Some).collect();
    let changes = engine::spawn_watchers(
        sources,
        snapshots,
        config.refresh,
        status.clone(),
        shutdown.child_token(),
    );
    let every = sdnotify::watchdog_interval().map(|w| w / 2);
    let watchdog = Watchdog::new(every, || {
        let _ = notifier.watchdog();
    });
    serve_loop(
        config, changes, ids, snaps, status, notifier, watchdog, owed, shutdown,
    )
    .await;
}

/// The loop of [`serve`], with the watchdog given (tests count its pings).
#[allow(clippy::too_many_arguments)]
async fn serve_loop<P: FnMut()>(
    config: &Config,
    mut changes: tokio::sync::mpsc::Receiver<engine::Change>,
    ids: Vec<String>,
    mut snaps: Vec<Option<Snapshot>>,
    status: Status,
    notifier: &Notifier,
    mut watchdog: Watchdog<P>,
    mut owed: Owed,
    shutdown: CancellationToken,
) {
    let mut debounce = Debouncer::new(config.restart.debounce, Duration::ZERO);
    let mut retry = OutputRetry::default();
    // The values of the last batch the debounce let through: a retry of a failed output
    // renders these, never a change still waiting in the debounce (a rotation of two sources
    // is written whole, once).
    let mut fired = snaps.clone();
    let mut status_tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        // A change due, or a retry of the outputs that failed: one pass renders every output
        // (unchanged files are left alone) from the values of the last batch let through.
        // Or a retry of the owed actions.
        let due = [debounce.deadline(), retry.at(), owed.at()]
            .into_iter()
            .flatten()
            .min();
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(change) = changes.recv() => {
                if let Some(slot) = snaps.get_mut(change.index) {
                    *slot = Some(change.snapshot);
                    debounce.changed(Instant::now());
                }
            }
            () = engine::sleep_until_opt(due) => {
                let now = Instant::now();
                let fire = debounce.deadline().is_some_and(|d| d <= now);
                if fire {
                    debounce.fired(now);
                    fired.clone_from(&snaps);
                }
                let mut wrote = false;
                if fire || retry.at().is_some_and(|t| t <= now) {
                    let rendered = render_owing(
                        &config.outputs,
                        &ids,
                        &fired,
                        &status,
                        Some((&mut owed, &|_| true)),
                    );
                    rendered.log_errors("its old file stays until a retry succeeds");
                    retry.record(&rendered, &status, config.refresh);
                    wrote = !rendered.written.is_empty();
                }
                if (wrote || owed.at().is_some_and(|t| t <= now))
                    && !owed.is_empty()
                    && !run_owed_alive(config, &mut owed, &status, &mut watchdog, &shutdown).await
                {
                    break;
                }
                let _ = notifier.status(&status.summary());
            }
            () = watchdog.beat() => {}
            _ = status_tick.tick() => {
                let _ = notifier.status(&status.summary());
            }
        }
    }
    let _ = notifier.stopping();
    tracing::info!("stopping");
}

#[cfg(test)]
pub(crate) mod tests;
