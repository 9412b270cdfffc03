//! Run mode tests: actions (commands, pid files, units), rendering every output, the service loop.

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

/// Audit: a run-mode `on_change` command inherited the sidecar's AWS credentials. The test binary
/// runs itself again with Vault and AWS credentials in its environment (the sidecar's real
/// environment, not a `Command` the test could prepare): there the action writes its own
/// environment to a file, which must hold none of them, and still the other variables.
#[test]
fn command_action_gets_none_of_the_sidecars_credentials() {
    const OUT: &str = "GANTRY_TEST_ACTION_ENV_OUT";
    if let Some(out) = std::env::var_os(OUT) {
        // The inner run: as the sidecar, with the credentials in its environment.
        let a = Action::Command {
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                "exec env > \"$1\"".into(),
                "sh".into(),
                out.to_string_lossy().into_owned(),
            ],
            timeout: Duration::from_secs(10),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run_action(&a)).unwrap();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("action.env");
    let name = format!(
        "{}::command_action_gets_none_of_the_sidecars_credentials",
        module_path!().split_once("::").unwrap().1
    );
    let creds = [
        "VAULT_TOKEN",
        "VAULT_SECRET_ID",
        "VAULT_TOKEN_FILE",
        "VAULT_SECRET_ID_FILE",
        "VAULT_ROLE_ID",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    ];
    let mut run = std::process::Command::new(std::env::current_exe().unwrap());
    run.args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(OUT, &out)
        .env("GANTRY_TEST_KEPT", "kept-value");
    for (i, var) in creds.iter().enumerate() {
        run.env(var, format!("leaked-credential-{i}"));
    }
    let done = run.output().unwrap();
    assert!(
        done.status.success(),
        "{}{}",
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        String::from_utf8_lossy(&done.stdout).contains("1 passed"),
        "the inner run ran the test"
    );
    let seen = std::fs::read_to_string(&out).unwrap();
    assert!(seen.contains("GANTRY_TEST_KEPT=kept-value"), "{seen}");
    let names: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    for var in creds {
        assert!(!names.contains(&var), "{var} reached the action");
    }
    assert!(!seen.contains("leaked-credential"), "{seen}");
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
///
/// The refusal needs a process outside this service's cgroup: the cgroup rule allows any process
/// of the sidecar's own. In the root cgroup `/` (no service cgroup) the test's child will do; in
/// a service cgroup (a systemd unit, a container's cgroup) the child shares it and is allowed.
/// So, as root, the test also runs itself again in a cgroup namespace of its own
/// (`unshare --cgroup`), where its cgroup and its child's show as `/` and only the owner rule can
/// allow the process: the refusal is checked wherever the test runs, and under CI=true the test
/// fails if it could not be.
#[tokio::test]
async fn pid_file_action_signals_only_a_process_the_check_allows() {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(pid_file) = std::env::var_os(PID_FILE_REFUSAL) {
        // The inner run, in its own cgroup namespace: the owner rule alone decides.
        let pid_file = std::path::PathBuf::from(pid_file);
        let (target, _) = target::read_pid_file(&pid_file).unwrap();
        assert!(
            !target::same_service(target),
            "process {target} is still in this service's cgroup in a new cgroup namespace"
        );
        assert_refused(run_action(&sigcont(&pid_file)).await);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("other.pid");
    let mut sleeper = std::process::Command::new("/bin/sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let root = nix::unistd::geteuid().is_root();
    let target = if root {
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
    let a = sigcont(&pid_file);
    let mut refused = false;
    if target::same_service(target) {
        // In this service's own cgroup the process is allowed whoever owns the file.
        run_action(&a).await.unwrap();
    } else {
        assert_refused(run_action(&a).await);
        refused = true;
    }
    if root && refused_in_own_cgroup_namespace(&pid_file) {
        refused = true;
    }
    let _ = gantry_tests::prerequisite(
        refused,
        "a process outside this test's service cgroup, or root and `unshare --cgroup`: the owner rule's refusal was not checked",
    );
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

/// Set (to the pid file) for the inner run of
/// `pid_file_action_signals_only_a_process_the_check_allows` in its own cgroup namespace.
const PID_FILE_REFUSAL: &str = "GANTRY_TEST_PID_FILE_REFUSAL";

fn sigcont(pid_file: &std::path::Path) -> Action {
    Action::SignalPidFile {
        signal: Signal::SIGCONT,
        pid_file: pid_file.to_path_buf(),
    }
}

/// The pid file action was refused by the owner rule, naming the pid file.
fn assert_refused(r: Result<(), ActionError>) {
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("refused") && e.contains("other.pid") && e.contains("uid"),
        "{e}"
    );
}

/// Runs `pid_file_action_signals_only_a_process_the_check_allows` again under
/// `unshare --cgroup` (root only), where it checks that the action naming `pid_file` is refused.
/// `false` when `unshare --cgroup` cannot run here; a failed inner run fails the test.
fn refused_in_own_cgroup_namespace(pid_file: &std::path::Path) -> bool {
    let can = std::process::Command::new("unshare")
        .args(["--cgroup", "true"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !can {
        return false;
    }
    let name = format!(
        "{}::pid_file_action_signals_only_a_process_the_check_allows",
        module_path!().split_once("::").unwrap().1
    );
    let done = std::process::Command::new("unshare")
        .arg("--cgroup")
        .arg(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(PID_FILE_REFUSAL, pid_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(stdout.contains("1 passed"), "the inner run ran the test");
    true
}

/// Finding of a review: the pid file was read with `read_to_string` (following links, without
/// a bound, blocking on a FIFO) and its owner and mode checked by a second `stat`. Whoever could
/// write its directory could have the root sidecar signal any process (a link to
/// `/run/sshd.pid`), hang it (a FIFO) or fill its memory (`/dev/zero`).
#[tokio::test]
async fn pid_file_action_refuses_links_fifos_devices_and_large_files() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("/bin/sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let real = dir.path().join("real.pid");
    std::fs::write(&real, format!("{}\n", child.id())).unwrap();
    let action = |p: &std::path::Path| Action::SignalPidFile {
        signal: Signal::SIGTERM,
        pid_file: p.to_path_buf(),
    };
    // Each is refused within a bound (a FIFO must not hang the action), naming the pid file
    // and what to do, and signals nothing.
    let refused = |a: Action| async move {
        tokio::time::timeout(Duration::from_secs(5), run_action(&a))
            .await
            .expect("the pid file action must not hang")
            .unwrap_err()
            .to_string()
    };

    // A symbolic link, even to a pid file that would be allowed: not followed.
    let link = dir.path().join("link.pid");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let e = refused(action(&link)).await;
    assert!(e.contains("link.pid") && e.contains("symbolic link"), "{e}");
    assert!(e.contains("not followed") && e.contains("hint:"), "{e}");
    let to_zero = dir.path().join("zero.pid");
    std::os::unix::fs::symlink("/dev/zero", &to_zero).unwrap();
    let e = refused(action(&to_zero)).await;
    assert!(e.contains("zero.pid") && e.contains("symbolic link"), "{e}");

    // A FIFO nobody writes to.
    let fifo = dir.path().join("fifo.pid");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let e = refused(action(&fifo)).await;
    assert!(e.contains("fifo.pid") && e.contains("a FIFO"), "{e}");

    // A device.
    let e = refused(action(std::path::Path::new("/dev/zero"))).await;
    assert!(e.contains("/dev/zero") && e.contains("a device"), "{e}");

    // A file larger than a pid file, even one whose text trims to a valid pid.
    let big = dir.path().join("big.pid");
    std::fs::write(&big, format!("{}{}\n", child.id(), " ".repeat(64))).unwrap();
    let e = refused(action(&big)).await;
    assert!(e.contains("big.pid") && e.contains("32-byte cap"), "{e}");
    assert!(e.contains("hint: a pid file holds one process id"), "{e}");

    // A second hard link lends the file to whoever made it.
    let linked = dir.path().join("hard.pid");
    std::fs::hard_link(&real, &linked).unwrap();
    let e = refused(action(&linked)).await;
    assert!(e.contains("refused") && e.contains("2 hard links"), "{e}");
    std::fs::remove_file(&linked).unwrap();

    // A missing pid file names itself and says what to check.
    let e = refused(action(&dir.path().join("missing.pid"))).await;
    assert!(
        e.contains("missing.pid") && e.contains("is the app running"),
        "{e}"
    );

    assert!(
        child.try_wait().unwrap().is_none(),
        "a refused pid file signalled the child"
    );
    // The pid file itself: signalled.
    run_action(&action(&real)).await.unwrap();
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

pub(crate) fn values(pairs: &[(&str, &str)]) -> Snapshot {
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
        Owed::new(&config),
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
        Owed::new(&config),
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
        // The watchdog beats while the action runs: 5 pings after the action started, with the
        // action still running after them. A loop that awaited the action would give none.
        let count = || pings.load(std::sync::atomic::Ordering::SeqCst);
        let before = count();
        tokio::time::timeout(Duration::from_secs(5), async {
            while count() - before < 5 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("no 5 watchdog pings while the action ran (every 20 ms)");
        assert!(
            !gone(pid),
            "the action's process {pid} ended before the pings were counted"
        );
        shutdown.cancel();
        pid
    };
    // The action sleeps 30 s: a stop that waited for it would not end within 20 s.
    let ((), pid) = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(serving, check)
    })
    .await
    .expect("serve did not stop while the action ran");
    // The interrupted command was killed (kill_on_drop): gone, or a zombie not yet reaped.
    let mut ended = false;
    for _ in 0..500 {
        if gone(pid) {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ended, "the action's process {pid} still runs");
    // The interrupted action is still owed: its marker stays, and the next start runs it.
    assert!(marker(&dir.path().join("app.env")).exists());
    assert!(!Owed::load(&config).is_empty());
}

/// Whether process `pid` is gone, or a zombie not yet reaped.
fn gone(pid: i32) -> bool {
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.chars().next()))
        .flatten();
    matches!(state, None | Some('Z'))
}

/// Makes `dir` read-only for everyone, root included (root ignores the mode bits: the
/// immutable attribute through `chattr`); the dir is writable again when the guard drops.
pub(crate) struct ReadOnly<'a>(&'a std::path::Path);

impl<'a> ReadOnly<'a> {
    pub(crate) fn new(dir: &'a std::path::Path) -> Self {
        let guard = Self(dir);
        guard.set(true);
        assert!(
            std::fs::write(dir.join(".probe"), b"x").is_err(),
            "{} is still writable: this test cannot check a failed write",
            dir.display()
        );
        guard
    }

    fn set(&self, read_only: bool) {
        use std::os::unix::fs::PermissionsExt;
        if nix::unistd::geteuid().is_root() {
            let flag = if read_only { "+i" } else { "-i" };
            let ok = std::process::Command::new("chattr")
                .arg(flag)
                .arg(self.0)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chattr {flag} {} failed", self.0.display());
        } else {
            let mode = if read_only { 0o555 } else { 0o755 };
            std::fs::set_permissions(self.0, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

impl Drop for ReadOnly<'_> {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// Review item: an output that failed to be written (read-only dir, disk full) was only
/// logged: nothing tried it again, so the file kept its old values until the next change, and
/// `/readyz` said ready. Now the failed outputs are tried again with the sources' backoff and
/// the sidecar is not ready while one is stale.
#[tokio::test(start_paused = true)]
async fn an_output_that_failed_to_be_written_is_tried_again_and_not_ready_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let file = out_dir.join("app.env");
    let config = config_with(dir.path(), &format!("  - {{ path: {} }}\n", file.display()));
    let ids = vec!["fake".to_owned()];
    let status = Status::new(&ids, Duration::from_secs(24 * 3600));
    let start = vec![Some(values(&[("K", "1")]))];
    render_all(&config.outputs, &ids, &start, &status)
        .into_result()
        .unwrap();
    status.fetched(0, false);
    status.set_started();
    assert!(status.readiness().ready);

    let read_only = ReadOnly::new(&out_dir);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let notifier = Notifier::default();
    let serving = serve_loop(
        &config,
        rx,
        ids,
        start,
        status.clone(),
        &notifier,
        Watchdog::new(None, || {}),
        Owed::new(&config),
        shutdown.clone(),
    );
    let check = async {
        tx.send(engine::Change {
            index: 0,
            snapshot: values(&[("K", "2")]),
        })
        .await
        .unwrap();
        // Past the debounce (10 ms): the write failed.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let during = std::fs::read_to_string(&file).unwrap();
        let readiness = status.readiness();
        drop(read_only);
        // Past the longest backoff (60 s).
        tokio::time::sleep(Duration::from_secs(61)).await;
        let after = std::fs::read_to_string(&file).unwrap();
        let ready_after = status.readiness();
        shutdown.cancel();
        (during, readiness, after, ready_after)
    };
    let ((), (during, readiness, after, ready_after)) = tokio::join!(serving, check);
    assert_eq!(during, "K='1'\n", "the failed write left the old file");
    assert!(!readiness.ready, "ready while an output is stale");
    assert_eq!(readiness.stale, [format!("output:{}", file.display())]);
    assert_eq!(after, "K='2'\n", "the failed output was not tried again");
    assert!(ready_after.ready, "{ready_after:?}");
}

/// A retry of a failed output writes the values of the batch the debounce let through, not a
/// change still waiting in the debounce (which is written, with its actions, when it is due).
#[tokio::test(start_paused = true)]
async fn a_retry_writes_the_last_batch_not_a_change_still_in_the_debounce() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let file = out_dir.join("app.env");
    let path = dir.path().join("secrets.yaml");
    std::fs::write(
        &path,
        format!(
            "sources:\n  - aws: {{ id: fake }}\nrestart: {{ debounce: 5s }}\noutputs:\n  - {{ path: {} }}\n",
            file.display()
        ),
    )
    .unwrap();
    let config = crate::config::load(
        Some(&path),
        &Default::default(),
        &crate::config::Overrides::default(),
    )
    .unwrap();
    let ids = vec!["fake".to_owned()];
    let status = Status::new(&ids, Duration::from_secs(24 * 3600));
    let start = vec![Some(values(&[("K", "1")]))];
    render_all(&config.outputs, &ids, &start, &status)
        .into_result()
        .unwrap();
    status.fetched(0, false);
    status.set_started();

    let read_only = ReadOnly::new(&out_dir);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let notifier = Notifier::default();
    let serving = serve_loop(
        &config,
        rx,
        ids,
        start,
        status.clone(),
        &notifier,
        Watchdog::new(None, || {}),
        Owed::new(&config),
        shutdown.clone(),
    );
    let check = async {
        let send = |v: &'static str| {
            let tx = tx.clone();
            async move {
                tx.send(engine::Change {
                    index: 0,
                    snapshot: values(&[("K", v)]),
                })
                .await
                .unwrap();
            }
        };
        send("2").await;
        // Due at 5 s: the write fails (read-only), a retry comes within 1 s.
        tokio::time::sleep(Duration::from_millis(5200)).await;
        send("3").await;
        drop(read_only);
        tokio::time::sleep(Duration::from_millis(1800)).await;
        let retried = std::fs::read_to_string(&file).unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let due = std::fs::read_to_string(&file).unwrap();
        shutdown.cancel();
        (retried, due)
    };
    let ((), (retried, due)) = tokio::join!(serving, check);
    assert_eq!(retried, "K='2'\n", "the retry wrote the batch that failed");
    assert_eq!(due, "K='3'\n", "the later change once its debounce passed");
}

/// A config with one output, `app.env` in `dir`, whose action sends SIGCONT (harmless) to the
/// pid in `app.pid` (this test process once written).
fn config_with_pid_file_action(dir: &std::path::Path) -> (Config, std::path::PathBuf) {
    let file = dir.join("app.env");
    let mut config = config_with(dir, &format!("  - {{ path: {} }}\n", file.display()));
    config.outputs[0].on_change = Some(Action::SignalPidFile {
        signal: Signal::SIGCONT,
        pid_file: dir.join("app.pid"),
    });
    (config, file)
}

fn write_pid_file(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let pid_file = dir.join("app.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).unwrap();
    std::fs::set_permissions(&pid_file, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// Review item: an on_change action that failed was never run again (the next render found
/// the file unchanged), and /readyz said ready. Now it stays owed: tried again with the
/// backoff until it succeeds, the service not ready meanwhile, naming the output.
#[tokio::test(start_paused = true)]
async fn a_failed_action_is_tried_again_until_it_succeeds_and_not_ready_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let (config, file) = config_with_pid_file_action(dir.path());
    let ids = vec!["fake".to_owned()];
    let status = Status::new(&ids, Duration::from_secs(24 * 3600));
    let start = vec![Some(values(&[("K", "1")]))];
    render_all(&config.outputs, &ids, &start, &status)
        .into_result()
        .unwrap();
    status.fetched(0, false);
    status.set_started();

    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let notifier = Notifier::default();
    let serving = serve_loop(
        &config,
        rx,
        ids,
        start,
        status.clone(),
        &notifier,
        Watchdog::new(None, || {}),
        Owed::new(&config),
        shutdown.clone(),
    );
    let check = async {
        tx.send(engine::Change {
            index: 0,
            snapshot: values(&[("K", "2")]),
        })
        .await
        .unwrap();
        // Past the debounce (10 ms): the file is written, the action fails (no pid file yet).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let written = std::fs::read_to_string(&file).unwrap();
        let during = status.readiness();
        let marked = marker(&file).exists();
        write_pid_file(dir.path());
        // Past the first retry (1 s at most).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = status.readiness();
        let marked_after = marker(&file).exists();
        shutdown.cancel();
        (written, during, marked, after, marked_after)
    };
    let ((), (written, during, marked, after, marked_after)) = tokio::join!(serving, check);
    assert_eq!(written, "K='2'\n");
    assert!(!during.ready, "ready while the action is owed");
    assert_eq!(during.stale, [format!("action:{}", file.display())]);
    assert!(marked, "no marker while the action is owed");
    assert!(after.ready, "the action was not tried again: {after:?}");
    assert!(
        !marked_after,
        "the marker stayed after the action succeeded"
    );
    let m = status.metrics();
    assert!(m.contains("gantry_secrets_action_errors_total 1"), "{m}");
    assert!(m.contains("gantry_secrets_actions_owed 0"), "{m}");
}

/// Review item: an action interrupted by a stop (or still failing then) was never run after
/// the restart, the file being unchanged by then. Its marker makes the next start run it; a
/// render that leaves a file as it is leaves no marker.
#[tokio::test]
async fn an_action_still_owed_at_a_stop_runs_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let (config, file) = config_with_pid_file_action(dir.path());
    let ids = vec!["fake".to_owned()];
    let status = Status::new(&ids, Duration::from_secs(24 * 3600));
    let snaps = vec![Some(values(&[("K", "1")]))];
    status.fetched(0, false);
    // The last run wrote the file, and stopped before its action succeeded.
    let mut owed = Owed::new(&config);
    let r = render_owing(
        &config.outputs,
        &ids,
        &snaps,
        &status,
        Some((&mut owed, &|_| true)),
    );
    assert_eq!(r.written.len(), 1);
    assert!(
        marker(&file).exists(),
        "the marker is written with the file"
    );
    drop(owed);

    // The next start: the file is unchanged, the action is owed from before.
    let mut owed = Owed::load(&config);
    let r = render_owing(
        &config.outputs,
        &ids,
        &snaps,
        &status,
        Some((&mut owed, &|_| true)),
    );
    assert!(r.written.is_empty());
    assert!(!owed.is_empty(), "the marker was not taken as owed");
    run_owed(&config, &mut owed, &status).await;
    assert!(
        !owed.is_empty(),
        "the action failed (no pid file): still owed"
    );
    assert_eq!(
        status.readiness().stale,
        [format!("action:{}", file.display())]
    );
    write_pid_file(dir.path());
    let mut owed = Owed::load(&config);
    run_owed(&config, &mut owed, &status).await;
    assert!(owed.is_empty());
    assert!(
        !marker(&file).exists(),
        "the marker stayed after the action succeeded"
    );
    assert!(status.readiness().stale.is_empty());

    // Unchanged: no marker left behind, nothing owed.
    let mut owed = Owed::load(&config);
    let r = render_owing(
        &config.outputs,
        &ids,
        &snaps,
        &status,
        Some((&mut owed, &|_| true)),
    );
    assert!(r.written.is_empty() && owed.is_empty());
    assert!(!marker(&file).exists());
    let text = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    assert!(!text.iter().any(|n| n.contains(".tmp.")), "{text:?}");
}
