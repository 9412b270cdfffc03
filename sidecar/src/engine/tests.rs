//! Engine tests with a fake source (a test double of the `Source` trait, scripted by the test)
//! and tokio's paused clock. The real backends are exercised in tests/tests/sidecar_*.rs.

use std::sync::{Arc, Mutex};

use super::*;

/// What the fake answers next: a value map or an error.
#[derive(Debug, Clone)]
enum Step {
    Values(&'static [(&'static str, &'static str)]),
    Fail,
}

#[derive(Debug)]
struct FakeSource {
    id: String,
    script: Arc<Mutex<Vec<Step>>>,
    calls: Arc<Mutex<Vec<&'static str>>>,
    every: Duration,
}

impl FakeSource {
    fn new(id: &str, script: Vec<Step>, every: Duration) -> (Self, Arc<Mutex<Vec<&'static str>>>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        (
            Self {
                id: id.to_owned(),
                script: Arc::new(Mutex::new(script)),
                calls: calls.clone(),
                every,
            },
            calls,
        )
    }

    fn next(&self) -> Result<Snapshot, SourceError> {
        let mut s = self.script.lock().unwrap();
        let step = if s.len() > 1 {
            s.remove(0)
        } else {
            s[0].clone()
        };
        match step {
            Step::Values(pairs) => Ok(snap(pairs)),
            Step::Fail => Err(SourceError::new(&self.id, "connection refused")),
        }
    }
}

fn snap(pairs: &[(&str, &str)]) -> Snapshot {
    Snapshot::of(pairs)
}

#[async_trait::async_trait]
impl Source for FakeSource {
    fn id(&self) -> &str {
        &self.id
    }
    async fn fetch(&mut self) -> Result<Snapshot, SourceError> {
        self.calls.lock().unwrap().push("fetch");
        self.next()
    }
    async fn refresh(&mut self) -> Result<Option<Snapshot>, SourceError> {
        self.calls.lock().unwrap().push("refresh");
        self.next().map(Some)
    }
    fn next_refresh(&self) -> Duration {
        self.every
    }
}

#[tokio::test(start_paused = true)]
async fn first_fetch_fails_closed_naming_every_failing_source() {
    let (a, _) = FakeSource::new(
        "vault:kv/a",
        vec![Step::Values(&[("A", "1")])],
        Duration::from_secs(60),
    );
    let (b, _) = FakeSource::new("aws:prod/b", vec![Step::Fail], Duration::from_secs(60));
    let (c, _) = FakeSource::new("vault:kv/c", vec![Step::Fail], Duration::from_secs(60));
    let mut sources: Vec<Box<dyn Source>> = vec![Box::new(a), Box::new(b), Box::new(c)];
    let status = Status::new(
        &[
            "vault:kv/a".into(),
            "aws:prod/b".into(),
            "vault:kv/c".into(),
        ],
        Duration::from_secs(180),
    );
    let err = first_fetch(&mut sources, &status).await.unwrap_err();
    assert_eq!(err.first_index(), 1);
    let msg = err.to_string();
    assert!(msg.starts_with("2 of 3 sources failed"), "{msg}");
    assert!(msg.contains("aws:prod/b: connection refused"), "{msg}");
    assert!(msg.contains("vault:kv/c"), "{msg}");
}

#[tokio::test(start_paused = true)]
async fn watcher_sends_only_real_changes_and_survives_errors() {
    let script = vec![
        Step::Values(&[("A", "1")]), // first fetch
        Step::Values(&[("A", "1")]), // refresh: same values, no change
        Step::Values(&[("A", "2")]), // change
        Step::Fail,                  // outage
        Step::Fail,
        Step::Values(&[("A", "2")]), // back, same values: no change
        Step::Values(&[("A", "3")]), // change again
    ];
    let (src, calls) = FakeSource::new("vault:kv/a", script, Duration::from_secs(10));
    let mut sources: Vec<Box<dyn Source>> = vec![Box::new(src)];
    let status = Status::new(&["vault:kv/a".into()], Duration::from_secs(30));
    let first = first_fetch(&mut sources, &status).await.unwrap();
    let stop = CancellationToken::new();
    let mut rx = spawn_watchers(
        sources,
        first,
        Duration::from_secs(60),
        status.clone(),
        stop.clone(),
    );
    let t0 = Instant::now();
    let c = rx.recv().await.unwrap();
    assert_eq!(c.snapshot.values["A"].expose(), "2");
    // two refreshes of 10 s each
    assert!(t0.elapsed() >= Duration::from_secs(20) && t0.elapsed() < Duration::from_secs(21));
    let c = rx.recv().await.unwrap();
    assert_eq!(c.snapshot.values["A"].expose(), "3");
    let calls = calls.lock().unwrap().clone();
    // after the failures the source is re-read with fetch, then refreshed again
    assert_eq!(
        calls,
        [
            "fetch", "refresh", "refresh", "refresh", "fetch", "fetch", "refresh"
        ]
    );
    stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn readiness_goes_stale_after_grace() {
    let status = Status::new(&["vault:kv/a".into()], Duration::from_secs(30));
    assert!(!status.readiness().ready);
    status.fetched(0, false);
    assert!(!status.readiness().ready, "not started yet");
    status.set_started();
    assert!(status.readiness().ready);
    tokio::time::advance(Duration::from_secs(31)).await;
    let r = status.readiness();
    assert!(!r.ready);
    assert_eq!(r.stale, ["vault:kv/a"]);
    let m = status.metrics();
    assert!(m.contains("gantry_secrets_ready 0"), "{m}");
    assert!(
        m.contains("gantry_secrets_source_up{source=\"vault:kv/a\"} 1"),
        "{m}"
    );
}

#[test]
fn backoff_grows_is_capped_and_jittered() {
    for n in 1..20 {
        let d = backoff(n, Duration::from_secs(60));
        let cap = BACKOFF_BASE
            .saturating_mul(1 << (n - 1).min(16))
            .min(BACKOFF_MAX);
        assert!(
            d >= cap / 2 && d <= cap,
            "attempt {n}: {d:?} vs cap {cap:?}"
        );
    }
    // a short refresh caps the retry delay
    assert!(backoff(10, Duration::from_secs(2)) <= Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn debouncer_gathers_changes_and_rate_limits() {
    let mut d = Debouncer::new(Duration::from_millis(500), Duration::from_secs(5));
    assert!(d.deadline().is_none());
    let t0 = Instant::now();
    d.changed(t0);
    d.changed(t0 + Duration::from_millis(300));
    assert_eq!(d.deadline(), Some(t0 + Duration::from_millis(800)));
    d.fired(t0 + Duration::from_millis(800));
    assert!(!d.pending());
    // the next change waits for the minimum interval
    d.changed(t0 + Duration::from_secs(1));
    assert_eq!(d.deadline(), Some(t0 + Duration::from_millis(5800)));
    // changes that never stop still act after 10 × debounce
    let mut d = Debouncer::new(Duration::from_millis(100), Duration::ZERO);
    for i in 0..50 {
        d.changed(t0 + Duration::from_millis(50 * i));
    }
    assert_eq!(d.deadline(), Some(t0 + Duration::from_secs(1)));
}

/// Finding of a review: a Vault login failure carries the session's id (`vault:<addr>`), which
/// is no source's, so the exit code fell back to 100 whatever the Vault source's place. It is
/// the first Vault source's (the session is set up for it): here the second source, 101.
#[tokio::test]
async fn a_vault_login_failure_counts_as_the_first_vault_source() {
    use crate::source::{RawSourcesConfig, SourcesConfig};
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "hvs.not-a-real-token\n").unwrap();
    // Port 1 on loopback: the login's token lookup is refused at once.
    let yaml = format!(
        "sources:\n  - aws: {{ id: prod/app/db }}\n  - vault: {{ path: kv/app }}\n  - vault: {{ path: kv/other }}\n\
         vault: {{ addr: 'http://127.0.0.1:1', auth: {{ token_file: {} }} }}\n\
         aws: {{ region: eu-west-1, endpoint_url: 'http://127.0.0.1:1' }}\n",
        token.display()
    );
    let raw: RawSourcesConfig = serde_yaml::from_str(&yaml).unwrap();
    let cfg = SourcesConfig::from_raw(raw, Duration::from_secs(60)).unwrap();
    let e = tokio::time::timeout(Duration::from_secs(20), build_sources(&cfg))
        .await
        .expect("the login is refused at once")
        .unwrap_err();
    assert_eq!(e.index(), 1, "{e}");
    let msg = e.to_string();
    // Names the source counted and the server that refused, never the token.
    assert!(
        msg.contains("vault:kv/app: vault:http://127.0.0.1:1"),
        "{msg}"
    );
    assert!(!msg.contains("not-a-real-token"), "{msg}");
    assert_eq!(crate::cli::Error::from(e).exit_code(), 101);

    // The same sources without an address (validation refuses that first; set up alone it
    // names the source once, not twice).
    let mut cfg = cfg;
    cfg.vault = None;
    let e = build_sources(&cfg).await.unwrap_err();
    assert_eq!(e.index(), 1);
    assert_eq!(
        e.to_string(),
        "cannot set up sources: vault:kv/app: no Vault address configured (hint: set vault.addr or VAULT_ADDR)"
    );
}
