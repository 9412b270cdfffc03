//! Exec mode's loop on a paused clock, with a fake [`Launcher`] (no processes: a signalled
//! child exits at once) and no signals.

use std::sync::{Arc, Mutex};

use super::*;
use crate::host::tests::{ReadOnly, values};

fn snap(pairs: &[(&str, &str)]) -> Snapshot {
    Snapshot::of(pairs)
}

/// Review item: a rotated value with a NUL byte passed the check made when a change
/// arrives, the old child was stopped, and starting the new one failed ("nul byte found"):
/// the sidecar exited, naming no key. Now the check refuses it (the child keeps running
/// with the old values), and values that turn bad while the old child stops fall back to
/// those the restart was decided on.
#[test]
fn a_nul_value_is_refused_before_a_restart_and_cannot_fail_one() {
    let ids = vec!["vault:kv/app".to_owned()];
    let bad = [snap(&[("TOKEN", "new\0value")])];
    let e = child_env(&ids, &bad).unwrap_err();
    assert!(matches!(e, RenderError::NulInValue { .. }), "{e:?}");
    let e = e.to_string();
    assert!(e.contains("TOKEN") && e.contains("vault:kv/app"), "{e}");
    assert!(!e.contains("value\""), "{e}");

    let status = Status::new(&ids, Duration::from_secs(60));
    let good = [snap(&[("TOKEN", "new")])];
    let decided = child_env(&ids, &good).unwrap();
    // Values that came during the restart and cannot be used: the decided ones start.
    let (env, from) =
        restart_env(&ids, &bad, Some((decided.clone(), good.to_vec())), &status).unwrap();
    assert_eq!(env["TOKEN"].expose(), "new");
    assert_eq!(
        from[0].values["TOKEN"].expose(),
        "new",
        "its outputs come from the same values"
    );
    assert!(
        status
            .metrics()
            .contains("gantry_secrets_render_errors_total 1"),
        "{}",
        status.metrics()
    );
    // Usable latest values win over the decided ones.
    let later = [snap(&[("TOKEN", "newer")])];
    let (env, from) = restart_env(&ids, &later, Some((decided, good.to_vec())), &status).unwrap();
    assert_eq!(env["TOKEN"].expose(), "newer");
    assert_eq!(from[0].values["TOKEN"].expose(), "newer");
    // Nothing decided (cannot happen in the loop): the error, naming the key.
    let e = restart_env(&ids, &bad, None, &status).unwrap_err();
    assert!(e.to_string().contains("TOKEN"), "{e}");
}

/// What the fake children saw.
#[derive(Debug, Default)]
struct Seen {
    /// The environment of every child started, in order.
    started: Vec<Env>,
    /// Signals sent (pid, signal).
    signals: Vec<(i32, Signal)>,
    /// A child that exited and awaits its reaping.
    exited: Option<i32>,
}

/// A [`Launcher`] without processes: a child stops as soon as it is signalled.
#[derive(Debug, Clone, Default)]
struct Fake(Arc<Mutex<Seen>>);

impl Fake {
    /// The value of `key` in the environment of each child started.
    fn started(&self, key: &str) -> Vec<String> {
        let seen = self.0.lock().unwrap();
        seen.started
            .iter()
            .map(|e| e.get(key).map(|v| v.expose().clone()).unwrap_or_default())
            .collect()
    }
}

impl Launcher for Fake {
    fn spawn(&mut self, env: &Env) -> Result<i32, SpawnError> {
        let mut seen = self.0.lock().unwrap();
        seen.started.push(env.clone());
        Ok(1000 + seen.started.len() as i32)
    }

    fn signal(&mut self, pid: i32, sig: Signal) {
        let mut seen = self.0.lock().unwrap();
        seen.signals.push((pid, sig));
        seen.exited = Some(pid);
    }

    fn kill(&mut self, pid: i32) {
        self.0.lock().unwrap().exited = Some(pid);
    }

    fn reap(&mut self, main: i32, _kill_group: bool) -> Option<i32> {
        let mut seen = self.0.lock().unwrap();
        (seen.exited == Some(main)).then(|| {
            seen.exited = None;
            0
        })
    }
}

/// No signal ever comes.
struct NoSignals;

impl SignalSource for NoSignals {
    fn next(&mut self) -> impl std::future::Future<Output = SignalEvent> {
        std::future::pending()
    }
}

/// A config whose only source is `aws:fake`, with `restart` (YAML flow) and an output at
/// `file`.
fn config_with(dir: &std::path::Path, restart: &str, file: &std::path::Path) -> Config {
    let path = dir.join("secrets.yaml");
    let text = format!(
        "sources:\n  - aws: {{ id: fake }}\nrestart: {restart}\noutputs:\n  - {{ path: {} }}\n",
        file.display()
    );
    std::fs::write(&path, text).unwrap();
    crate::config::load(
        Some(&path),
        &Default::default(),
        &crate::config::Overrides::default(),
    )
    .unwrap()
}

/// Sends `K=v` as the source's new values.
async fn send(tx: &tokio::sync::mpsc::Sender<engine::Change>, v: &str) {
    tx.send(engine::Change {
        index: 0,
        snapshot: values(&[("K", v)]),
    })
    .await
    .unwrap();
}

/// Review item (exec mode, as 219b401 in run mode): a retry of an output that failed at a
/// restart rendered the newest values, a change still waiting in the debounce (or refused),
/// not those the new child was started with. It now writes the values the child runs with;
/// the later change is written, with its restart, when it is due.
#[tokio::test(start_paused = true)]
async fn exec_a_retry_writes_the_values_the_child_runs_with_not_a_change_still_in_the_debounce() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let file = out_dir.join("app.env");
    let config = config_with(dir.path(), "{ debounce: 5s, min_interval: 5s }", &file);
    let ids = vec!["fake".to_owned()];
    let status = Status::new(&ids, Duration::from_secs(24 * 3600));
    let start = vec![values(&[("K", "1")])];
    crate::host::render_all(&config.outputs, &ids, &[Some(start[0].clone())], &status)
        .into_result()
        .unwrap();
    status.fetched(0, false);

    let read_only = ReadOnly::new(&out_dir);
    let fake = Fake::default();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let mut procs = fake.clone();
    let mut signals = NoSignals;
    let running = supervise_loop(
        &config,
        &mut procs,
        &mut signals,
        rx,
        start,
        &ids,
        &status,
        &shutdown,
    );
    let check = async {
        send(&tx, "2").await;
        // Due at 5 s: the child restarts with K=2, its output fails (read-only), a retry
        // comes within 1 s.
        tokio::time::sleep(Duration::from_millis(5200)).await;
        send(&tx, "3").await;
        drop(read_only);
        tokio::time::sleep(Duration::from_millis(1800)).await;
        let retried = std::fs::read_to_string(&file).unwrap();
        // K=3 is due at 10.2 s (debounce and min_interval).
        tokio::time::sleep(Duration::from_secs(5)).await;
        let due = std::fs::read_to_string(&file).unwrap();
        shutdown.cancel();
        (retried, due)
    };
    let (ended, (retried, due)) = tokio::join!(running, check);
    assert_eq!(ended.unwrap(), 0);
    assert_eq!(fake.started("K"), ["1", "2", "3"]);
    assert_eq!(
        retried, "K='2'\n",
        "the retry wrote what the child runs with"
    );
    assert_eq!(due, "K='3'\n", "the later change once its debounce passed");
}

/// Review item: the child was restarted although the values had come back to those it runs
/// with (A, then B, then A within the debounce or the min_interval). Now the debounce fires
/// without a restart.
#[tokio::test(start_paused = true)]
async fn exec_a_change_undone_before_it_is_due_does_not_restart_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.env");
    let config = config_with(dir.path(), "{ debounce: 1s, min_interval: 30s }", &file);
    let ids = vec!["fake".to_owned()];
    let status = Status::new(&ids, Duration::from_secs(24 * 3600));
    let start = vec![values(&[("K", "a")])];
    crate::host::render_all(&config.outputs, &ids, &[Some(start[0].clone())], &status)
        .into_result()
        .unwrap();
    let fake = Fake::default();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let shutdown = CancellationToken::new();
    let mut procs = fake.clone();
    let mut signals = NoSignals;
    let running = supervise_loop(
        &config,
        &mut procs,
        &mut signals,
        rx,
        start,
        &ids,
        &status,
        &shutdown,
    );
    let restarts = || {
        status
            .metrics()
            .lines()
            .find_map(|l| l.strip_prefix("gantry_secrets_child_restarts_total "))
            .unwrap()
            .to_owned()
    };
    let check = async {
        // B then A within the debounce: due at 1.5 s, the same as the running child's.
        send(&tx, "b").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        send(&tx, "a").await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let first = restarts();
        // B for real: due once the min_interval since that fire passed (31.5 s).
        send(&tx, "b").await;
        tokio::time::sleep(Duration::from_secs(31)).await;
        let second = restarts();
        // C then B within the min_interval: due at 61.5 s, the same as the running child's.
        send(&tx, "c").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        send(&tx, "b").await;
        tokio::time::sleep(Duration::from_secs(40)).await;
        let third = restarts();
        shutdown.cancel();
        (first, second, third)
    };
    let (ended, (first, second, third)) = tokio::join!(running, check);
    assert_eq!(ended.unwrap(), 0);
    assert_eq!(first, "0", "B then A restarted the child");
    assert_eq!(second, "1");
    assert_eq!(third, "1", "C then B restarted the child");
    assert_eq!(fake.started("K"), ["a", "b"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "K='b'\n");
    // Only the restart and the final stop signalled the child.
    assert_eq!(fake.0.lock().unwrap().signals.len(), 2);
}
