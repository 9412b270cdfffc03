//! The kill-and-wait stop over a fake daemon: the restart policy is restored when the caller
//! is dropped, and a container that outlives SIGKILL ends the stop as a timeout.

use std::sync::{Arc, Mutex};

use super::*;

/// A container that ignores every signal but those in `dies_on`.
#[derive(Clone)]
struct Container {
    calls: Arc<Mutex<Vec<String>>>,
    running: Arc<tokio::sync::watch::Sender<bool>>,
    dies_on: &'static [&'static str],
}

impl Container {
    fn new(dies_on: &'static [&'static str]) -> Self {
        Self {
            calls: Arc::default(),
            running: Arc::new(tokio::sync::watch::channel(true).0),
            dies_on,
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Stopper for Container {
    async fn set_policy(
        &self,
        _id: &str,
        policy: Option<bollard::models::RestartPolicy>,
    ) -> Result<()> {
        let name = policy.and_then(|p| p.name).map(|n| n.to_string());
        self.calls
            .lock()
            .unwrap()
            .push(format!("policy {}", name.unwrap_or_default()));
        Ok(())
    }

    async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        self.calls.lock().unwrap().push(format!("kill {signal}"));
        if !*self.running.borrow() {
            return Err(EngineError::Conflict {
                object: Object::Container(id.to_owned()),
                message: "not running".into(),
            });
        }
        if self.dies_on.contains(&signal) {
            self.running.send_replace(false);
        }
        Ok(())
    }

    async fn wait_stopped(&self, _id: &str) -> Result<i64> {
        let mut rx = self.running.subscribe();
        let _ = rx.wait_for(|running| !running).await;
        Ok(137)
    }
}

fn always() -> Option<Option<bollard::models::RestartPolicy>> {
    Some(Some(bollard::models::RestartPolicy {
        name: Some(RestartPolicyNameEnum::ALWAYS),
        maximum_retry_count: None,
    }))
}

const GRACE: Duration = Duration::from_secs(10);

#[tokio::test(start_paused = true)]
async fn a_stop_whose_caller_is_dropped_still_restores_the_restart_policy() {
    let expected = ["policy no", "kill SIGTERM", "kill SIGKILL", "policy always"];

    // The sequence run in the caller's future: dropped during the grace, the policy stays `no`.
    let inline = Container::new(&["SIGKILL"]);
    let stop = kill_stop(&inline, "c1", Signal::SIGTERM, GRACE, AFTER_KILL, always());
    assert!(tokio::time::timeout(GRACE / 2, stop).await.is_err());
    tokio::time::sleep(GRACE * 3).await;
    assert_eq!(inline.calls(), ["policy no", "kill SIGTERM"]);

    // In its own task: the caller's deadline does not cut it short.
    let container = Container::new(&["SIGKILL"]);
    let stop = spawn_kill_stop(
        container.clone(),
        "c1",
        Signal::SIGTERM,
        GRACE,
        AFTER_KILL,
        always(),
    );
    assert!(tokio::time::timeout(GRACE / 2, stop).await.is_err());
    tokio::time::sleep(GRACE * 3).await;
    assert_eq!(container.calls(), expected);

    // Awaited, it ends once the container is gone, the policy back.
    let container = Container::new(&["SIGKILL"]);
    let stop = spawn_kill_stop(
        container.clone(),
        "c1",
        Signal::SIGTERM,
        GRACE,
        AFTER_KILL,
        always(),
    );
    stop.await.unwrap();
    assert_eq!(container.calls(), expected);
}

#[tokio::test(start_paused = true)]
async fn a_container_that_outlives_sigkill_ends_the_stop_as_a_timeout_with_its_policy_back() {
    let container = Container::new(&[]);
    let started = tokio::time::Instant::now();
    let after_kill = Duration::from_secs(120);
    let err = spawn_kill_stop(
        container.clone(),
        "c1",
        Signal::SIGTERM,
        GRACE,
        after_kill,
        always(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, EngineError::Timeout { object: Object::Container(c), .. } if c == "c1"),
        "{err:?}"
    );
    assert_eq!(started.elapsed(), GRACE + after_kill);
    assert_eq!(
        container.calls(),
        ["policy no", "kill SIGTERM", "kill SIGKILL", "policy always"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_container_without_a_restart_policy_is_stopped_without_touching_it() {
    let container = Container::new(&["SIGTERM"]);
    kill_stop(&container, "c1", Signal::SIGTERM, GRACE, AFTER_KILL, None)
        .await
        .unwrap();
    assert_eq!(container.calls(), ["kill SIGTERM"]);
}
