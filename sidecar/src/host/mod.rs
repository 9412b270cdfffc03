//! Run mode: `gantry-secrets run`, the host service that keeps files rendered.
//!
//! Design: after the first fetch every output is rendered and written (only if its content,
//! mode or owner differ), then systemd hears `READY=1`. Changes from the engine are debounced,
//! the outputs are rendered again, and for every file that really changed its action runs
//! once (the output's own `on_change`, else the top-level one; equal actions run once per
//! batch). Every output is rendered on its own ([`render_all`]): one that fails keeps its old
//! file and is logged with its path (`N of M outputs failed`), while the others are still
//! written and their actions run; the service goes on. At start any failed output fails the
//! command ([`Rendered::into_result`]).
//! `STATUS=` lines follow each batch; `WATCHDOG=1` is sent at half of `WATCHDOG_USEC`, also
//! while actions run (a command may take its whole timeout). A stop request is handled at once,
//! even during an action: the action is dropped (a command is killed) and logged as interrupted.
//!
//! Actions: a signal to the pid in a pid file (only to a process [`target::check`] allows: same
//! service cgroup, or owned by the pid file's owner), a signal to a systemd unit's main process
//! (`systemctl show -p MainPID --value UNIT`), or a program run without a shell (its output
//! goes to our stderr, the secrets are not in its environment, bounded by its timeout).

mod target;

use std::time::Duration;

use gantry_common::sdnotify::{self, Notifier};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Action, Config, Output};
use crate::engine::{self, Debouncer, Status};
use crate::render::{self, RenderError};
use crate::source::{Snapshot, Source};

/// An on_change action failed (logged; the service goes on).
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("cannot read pid file {path}: {message}")]
    PidFile { path: String, message: String },
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
    let view = engine::view(ids, snaps);
    let mut done = Rendered {
        written: Vec::new(),
        errors: Vec::new(),
        total: outputs.len(),
    };
    for o in outputs {
        let result = render::render(o, &view).and_then(|c| match c {
            Some(c) => render::write(o, &c),
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

/// The actions the written outputs call for, each distinct action once, with the first output
/// that asked for it (for the logs).
fn due_actions<'a>(config: &'a Config, written: &[&'a Output]) -> Vec<(&'a Output, &'a Action)> {
    let mut due: Vec<(&Output, &Action)> = Vec::new();
    for o in written {
        let action = o.on_change.as_ref().unwrap_or(&config.on_change);
        if *action != Action::None && !due.iter().any(|(_, a)| *a == action) {
            due.push((o, action));
        }
    }
    due
}

/// Runs one output's action and logs how it went.
async fn run_logged(o: &Output, action: &Action, status: &Status) {
    match run_action(action).await {
        Ok(()) => {
            tracing::info!(output = %o.path.display(), action = %describe(action), "on_change action done")
        }
        Err(e) => {
            status.action_failed();
            tracing::error!(output = %o.path.display(), error = %e, "on_change action failed");
        }
    }
}

/// Runs the actions of the written outputs, each distinct action once.
pub async fn run_actions(config: &Config, written: &[&Output], status: &Status) {
    for (o, action) in due_actions(config, written) {
        run_logged(o, action, status).await;
    }
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

/// [`run_actions`] inside the service loop: the watchdog keeps beating while an action runs
/// (a command may take its whole timeout), and a stop request drops the running action (a
/// command is killed: `kill_on_drop`). `false` when a stop interrupted an action.
async fn run_actions_alive<P: FnMut()>(
    config: &Config,
    written: &[&Output],
    status: &Status,
    watchdog: &mut Watchdog<P>,
    shutdown: &CancellationToken,
) -> bool {
    for (o, action) in due_actions(config, written) {
        let run = run_logged(o, action, status);
        tokio::pin!(run);
        loop {
            tokio::select! {
                () = &mut run => break,
                () = watchdog.beat() => {}
                () = shutdown.cancelled() => {
                    tracing::warn!(output = %o.path.display(), action = %describe(action), "stop requested, on_change action interrupted");
                    return false;
                }
            }
        }
    }
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
            let text =
                tokio::fs::read_to_string(pid_file)
                    .await
                    .map_err(|e| ActionError::PidFile {
                        path: pid_file.display().to_string(),
                        message: e.to_string(),
                    })?;
            let pid = text
                .trim()
                .parse::<i32>()
                .ok()
                .filter(|p| *p > 1)
                .ok_or_else(|| ActionError::PidFile {
                    path: pid_file.display().to_string(),
                    message: "does not hold a process id".to_owned(),
                })?;
            target::check(pid, pid_file).map_err(|reason| ActionError::Refused {
                path: pid_file.display().to_string(),
                reason,
            })?;
            send(*signal, pid)
        }
        Action::SignalUnit { signal, unit } => {
            let out = tokio::process::Command::new("systemctl")
                .args(["show", "-p", "MainPID", "--value", unit])
                .env_remove("VAULT_TOKEN")
                .env_remove("VAULT_SECRET_ID")
                .kill_on_drop(true)
                .output();
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
                .env_remove("VAULT_TOKEN")
                .env_remove("VAULT_SECRET_ID")
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true);
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

fn send(signal: Signal, pid: i32) -> Result<(), ActionError> {
    kill(Pid::from_raw(pid), signal).map_err(|source| ActionError::Signal {
        signal,
        pid,
        source,
    })
}

/// The service loop after the first fetch and render: until `shutdown`.
pub async fn serve(
    config: &Config,
    sources: Vec<Box<dyn Source>>,
    snapshots: Vec<Snapshot>,
    ids: Vec<String>,
    status: Status,
    notifier: &Notifier,
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
        config, changes, ids, snaps, status, notifier, watchdog, shutdown,
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
    shutdown: CancellationToken,
) {
    let mut debounce = Debouncer::new(config.restart.debounce, Duration::ZERO);
    let mut status_tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(change) = changes.recv() => {
                if let Some(slot) = snaps.get_mut(change.index) {
                    *slot = Some(change.snapshot);
                    debounce.changed(Instant::now());
                }
            }
            () = engine::sleep_until_opt(debounce.deadline()) => {
                debounce.fired(Instant::now());
                let rendered = render_all(&config.outputs, &ids, &snaps, &status);
                rendered.log_errors("its old file stays");
                if !run_actions_alive(config, &rendered.written, &status, &mut watchdog, &shutdown).await {
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
mod tests {
    use super::*;

    #[tokio::test]
    async fn command_action_runs_without_a_shell_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("marker");
        let ok = Action::Command {
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("echo hi > {}", marker.display()),
            ],
            timeout: Duration::from_secs(5),
        };
        run_action(&ok).await.unwrap();
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "hi\n");

        let fails = Action::Command {
            argv: vec!["/bin/sh".into(), "-c".into(), "exit 4".into()],
            timeout: Duration::from_secs(5),
        };
        let e = run_action(&fails).await.unwrap_err().to_string();
        assert!(e.contains("/bin/sh") && e.contains('4'), "{e}");

        let slow = Action::Command {
            argv: vec!["/bin/sleep".into(), "5".into()],
            timeout: Duration::from_millis(200),
        };
        let e = run_action(&slow).await.unwrap_err().to_string();
        assert!(e.contains("killed after"), "{e}");

        let missing = Action::Command {
            argv: vec!["/nonexistent/reload".into()],
            timeout: Duration::from_secs(1),
        };
        let e = run_action(&missing).await.unwrap_err().to_string();
        assert!(
            e.contains("/nonexistent/reload") && e.contains("cannot start"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn pid_file_action_signals_the_pid_and_names_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid_file = dir.path().join("app.pid");
        std::fs::write(&pid_file, format!("{}\n", child.id())).unwrap();
        let a = Action::SignalPidFile {
            signal: Signal::SIGTERM,
            pid_file: pid_file.clone(),
        };
        run_action(&a).await.unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));

        std::fs::write(&pid_file, "not a pid").unwrap();
        let e = run_action(&a).await.unwrap_err().to_string();
        assert!(e.contains("app.pid"), "{e}");
    }

    /// Issue 11 item 8: whoever can write the pid file must not choose which process gets the
    /// signal. The signal is SIGCONT (harmless even if the check were wrong).
    #[tokio::test]
    async fn pid_file_action_signals_only_a_process_the_check_allows() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("other.pid");
        let mut sleeper = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let target = if nix::unistd::geteuid().is_root() {
            // Root's process, named by a pid file an unprivileged user owns.
            std::fs::write(&pid_file, format!("{}\n", sleeper.id())).unwrap();
            nix::unistd::chown(&pid_file, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
            sleeper.id() as i32
        } else {
            // Not root: our own pid file names a process of root's (other than pid 1).
            let root_pid = std::fs::read_dir("/proc")
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .find(|p| *p > 1 && target::real_uid_of(*p) == Some(0))
                .expect("no process of root's to name: cannot check the owner rule");
            std::fs::write(&pid_file, format!("{root_pid}\n")).unwrap();
            root_pid
        };
        let a = Action::SignalPidFile {
            signal: Signal::SIGCONT,
            pid_file: pid_file.clone(),
        };
        let same_service = target::same_service(target);
        let r = run_action(&a).await;
        if same_service {
            // In this service's own cgroup the process is allowed whoever owns the file.
            r.unwrap();
        } else {
            let e = r.unwrap_err().to_string();
            assert!(
                e.contains("refused") && e.contains("other.pid") && e.contains("uid"),
                "{e}"
            );
        }
        sleeper.kill().unwrap();
        let _ = sleeper.wait();
        // A pid file anyone may write is refused whatever it names.
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let own = dir.path().join("own.pid");
        std::fs::write(&own, format!("{}\n", child.id())).unwrap();
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o666)).unwrap();
        let a = Action::SignalPidFile {
            signal: Signal::SIGTERM,
            pid_file: own.clone(),
        };
        let e = run_action(&a).await.unwrap_err().to_string();
        assert!(e.contains("writable by group or others"), "{e}");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child was signalled"
        );
        // The same file, 0644 and ours, naming our own child: allowed.
        std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o644)).unwrap();
        run_action(&a).await.unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(child.wait().unwrap().signal(), Some(Signal::SIGTERM as i32));
    }

    #[tokio::test]
    async fn render_all_writes_only_complete_and_changed_outputs() {
        use crate::config::Format;
        let dir = tempfile::tempdir().unwrap();
        let out = |name: &str, sources: Option<Vec<String>>| Output {
            path: dir.path().join(name),
            format: Format::Dotenv,
            mode: 0o600,
            uid: None,
            gid: None,
            sources,
            keys: None,
            on_change: None,
        };
        let outputs = vec![out("a.env", Some(vec!["a".into()])), out("all.env", None)];
        let ids = vec!["a".to_owned(), "b".to_owned()];
        let snap = |v: &str| Snapshot {
            values: [("K".to_owned(), gantry_common::Secret::from(v))]
                .into_iter()
                .collect(),
            binary: None,
            version: v.to_owned(),
        };
        let status = Status::new(&ids, Duration::from_secs(60));
        let mut snaps = vec![Some(snap("1")), None];
        let w = render_all(&outputs, &ids, &snaps, &status)
            .into_result()
            .unwrap();
        assert_eq!(w.len(), 1, "all.env waits for source b");
        assert!(!outputs[1].path.exists());
        snaps[1] = Some(Snapshot {
            values: [("L".to_owned(), gantry_common::Secret::from("2"))]
                .into_iter()
                .collect(),
            binary: None,
            version: "x".into(),
        });
        let w = render_all(&outputs, &ids, &snaps, &status)
            .into_result()
            .unwrap();
        assert_eq!(w.len(), 1, "a.env unchanged, all.env new");
        assert_eq!(
            std::fs::read_to_string(&outputs[1].path).unwrap(),
            "K='1'\nL='2'\n"
        );
        assert!(
            render_all(&outputs, &ids, &snaps, &status)
                .into_result()
                .unwrap()
                .is_empty()
        );
    }

    /// A source for [`serve`]: its first refresh gives `next`, then nothing changes.
    #[derive(Debug)]
    struct OneChange {
        next: Option<Snapshot>,
    }

    #[async_trait::async_trait]
    impl Source for OneChange {
        fn id(&self) -> &str {
            "fake"
        }
        async fn fetch(&mut self) -> Result<Snapshot, crate::source::SourceError> {
            unreachable!("serve starts from the first fetch's snapshots")
        }
        async fn refresh(&mut self) -> Result<Option<Snapshot>, crate::source::SourceError> {
            Ok(self.next.take())
        }
        fn next_refresh(&self) -> Duration {
            Duration::from_millis(10)
        }
    }

    fn values(pairs: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            values: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), gantry_common::Secret::from(*v)))
                .collect(),
            binary: None,
            version: format!("{pairs:?}"),
        }
    }

    /// A config whose only source is `aws:fake`, with `outputs` (YAML) in `dir`.
    fn config_with(dir: &std::path::Path, outputs: &str) -> Config {
        let path = dir.join("secrets.yaml");
        let text = format!(
            "sources:\n  - aws: {{ id: fake }}\nrestart: {{ debounce: 10ms }}\noutputs:\n{outputs}"
        );
        std::fs::write(&path, text).unwrap();
        crate::config::load(
            Some(&path),
            &Default::default(),
            &crate::config::Overrides::default(),
        )
        .unwrap()
    }

    /// Waits (real time, up to 10 s) until `path` exists.
    async fn appears(path: &std::path::Path) -> bool {
        for _ in 0..1000 {
            if path.exists() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Review item: one output that cannot be rendered stopped the batch, so the outputs
    /// written before it never ran their action and those after it were never written.
    #[tokio::test]
    async fn one_bad_output_neither_stops_the_others_nor_their_actions() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let touch = |name: &str| format!("[/bin/sh, -c, 'touch {d}/{name}']");
        // The middle output is a raw file of two values: it cannot be rendered.
        let config = config_with(
            dir.path(),
            &format!(
                "  - {{ path: {d}/first.env, on_change: {{ command: {} }} }}\n  - {{ path: {d}/bad.raw, format: raw }}\n  - {{ path: {d}/last.json, format: json, on_change: {{ command: {} }} }}\n",
                touch("first.ran"),
                touch("last.ran"),
            ),
        );
        let ids = vec!["fake".to_owned()];
        let status = Status::new(&ids, Duration::from_secs(60));

        // render_all renders every output and reports the bad one by its path.
        let start = vec![Some(values(&[("K", "1"), ("L", "1")]))];
        let r = render_all(&config.outputs, &ids, &start, &status);
        assert_eq!(r.written.len(), 2, "first.env and last.json");
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].0.path, dir.path().join("bad.raw"));
        let e = r.into_result().unwrap_err().to_string();
        assert!(e.contains("bad.raw"), "{e}");

        // serve: after a change both good files are rewritten and both actions run.
        let source = OneChange {
            next: Some(values(&[("K", "2"), ("L", "2")])),
        };
        let shutdown = CancellationToken::new();
        let notifier = Notifier::default();
        let serving = serve(
            &config,
            vec![Box::new(source)],
            vec![values(&[("K", "1"), ("L", "1")])],
            ids.clone(),
            status.clone(),
            &notifier,
            shutdown.clone(),
        );
        let check = async {
            let first = appears(&dir.path().join("first.ran")).await;
            let last = appears(&dir.path().join("last.ran")).await;
            shutdown.cancel();
            (first, last)
        };
        let ((), (first, last)) = tokio::join!(serving, check);
        assert!(
            first,
            "the action of the output before the bad one did not run"
        );
        assert!(
            last,
            "the output after the bad one was not written or its action did not run"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("first.env")).unwrap(),
            "K='2'\nL='2'\n"
        );
        assert!(!dir.path().join("bad.raw").exists());
    }

    /// Review item: serve awaited the actions inside its select loop, so while an action ran
    /// (up to its timeout) systemd got no WATCHDOG=1 and a stop request waited for it.
    #[tokio::test]
    async fn the_watchdog_beats_and_a_stop_interrupts_while_an_action_runs() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("action.pid");
        let config = config_with(
            dir.path(),
            &format!(
                "  - {{ path: {}/app.env, on_change: {{ command: [/bin/sh, -c, 'echo $$ > {}; exec sleep 30'], timeout: 2m }} }}\n",
                dir.path().display(),
                pid_file.display()
            ),
        );
        let ids = vec!["fake".to_owned()];
        let status = Status::new(&ids, Duration::from_secs(60));
        let pings = std::sync::atomic::AtomicUsize::new(0);
        let watchdog = Watchdog::new(Some(Duration::from_millis(20)), || {
            pings.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(engine::Change {
            index: 0,
            snapshot: values(&[("K", "2")]),
        })
        .await
        .unwrap();
        let shutdown = CancellationToken::new();
        let notifier = Notifier::default();
        let serving = serve_loop(
            &config,
            rx,
            ids,
            vec![Some(values(&[("K", "1")]))],
            status,
            &notifier,
            watchdog,
            shutdown.clone(),
        );
        let check = async {
            assert!(appears(&pid_file).await, "the action did not start");
            let pid: i32 = loop {
                // The shell may not have finished writing its pid yet.
                if let Ok(p) = std::fs::read_to_string(&pid_file).unwrap().trim().parse() {
                    break p;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            let before = pings.load(std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            let during = pings.load(std::sync::atomic::Ordering::SeqCst) - before;
            shutdown.cancel();
            (pid, during, Instant::now())
        };
        let ((), (pid, during, stop_asked)) =
            tokio::time::timeout(Duration::from_secs(20), async {
                tokio::join!(serving, check)
            })
            .await
            .expect("serve did not stop while the action ran");
        assert!(
            during >= 5,
            "{during} watchdog pings in 300 ms of action (every 20 ms)"
        );
        assert!(
            stop_asked.elapsed() < Duration::from_secs(5),
            "the stop waited {:?} for the action",
            stop_asked.elapsed()
        );
        // The interrupted command was killed (kill_on_drop): gone, or a zombie not yet reaped.
        let mut gone = false;
        for _ in 0..500 {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.chars().next()))
                .flatten();
            if matches!(state, None | Some('Z')) {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(gone, "the action's process {pid} still runs");
    }
}
