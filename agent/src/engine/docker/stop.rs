//! Stopping with a signal on daemons older than API 1.42 (no `stop?signal=`): kill with the
//! signal, wait for the container to stop, SIGKILL after the grace period; the restart policy
//! held at `no` meanwhile (dockerd restarts a killed container, unlike a stopped one) and
//! restored afterwards, even when the stop failed.
//!
//! Design: the sequence (flip the policy, kill, wait, SIGKILL, restore) is [`kill_stop`] over a
//! small trait, [`Stopper`], which [`DockerEngine`] implements (and the unit tests fake). It
//! runs in a task of its own that `stop_container` awaits, so a caller dropped meanwhile (a
//! deploy's timeout) does not skip the restore. The wait after SIGKILL is bounded (120 s, as
//! the whole stop is with `stop?signal=`): a container that does not die then is a timeout.
//!
//! Limits: a concurrent `docker update` of the restart policy during the stop is overwritten.
//! A daemon that stops during the sequence (or a dockerd that does not answer the restore)
//! leaves the container at `no`.

use super::*;

#[cfg(test)]
mod tests;

/// How long a container may take to go once SIGKILLed before the stop is a timeout.
const AFTER_KILL: Duration = Duration::from_secs(REQUEST_TIMEOUT_SECS);

/// What the kill-and-wait stop asks of the daemon.
#[async_trait]
pub(super) trait Stopper: Clone + Send + Sync + 'static {
    /// Sets the container's restart policy (`None`: Docker's default, `no`).
    async fn set_policy(
        &self,
        id: &str,
        policy: Option<bollard::models::RestartPolicy>,
    ) -> Result<()>;

    /// Sends `signal`; a container not running is [`EngineError::Conflict`].
    async fn kill(&self, id: &str, signal: &str) -> Result<()>;

    /// Waits until the container is not running.
    async fn wait_stopped(&self, id: &str) -> Result<i64>;
}

#[async_trait]
impl Stopper for DockerEngine {
    async fn set_policy(
        &self,
        id: &str,
        policy: Option<bollard::models::RestartPolicy>,
    ) -> Result<()> {
        self.set_restart_policy(id, policy).await
    }

    async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        self.kill_signal(id, signal).await
    }

    async fn wait_stopped(&self, id: &str) -> Result<i64> {
        self.wait_not_running(id).await
    }
}

/// [`kill_stop`] in a task of its own, awaited: dropping the returned future leaves the task
/// running to its end, so a policy flipped to `no` is restored.
pub(super) async fn spawn_kill_stop<S: Stopper>(
    stopper: S,
    id: &str,
    signal: Signal,
    grace: Duration,
    after_kill: Duration,
    restore: Option<Option<bollard::models::RestartPolicy>>,
) -> Result<()> {
    let owned = id.to_owned();
    let task = tokio::spawn(async move {
        kill_stop(&stopper, &owned, signal, grace, after_kill, restore).await
    });
    task.await.unwrap_or_else(|e| {
        Err(EngineError::Protocol {
            object: Object::Container(id.to_owned()),
            message: format!("the stop did not finish: {e}"),
        })
    })
}

/// Kills container `id` with `signal`, waits `grace`, then SIGKILLs it and waits at most
/// `after_kill`. With `restore` (the policy the container had), its restart policy is `no`
/// meanwhile and set back afterwards, even when the stop failed.
pub(super) async fn kill_stop<S: Stopper>(
    stopper: &S,
    id: &str,
    signal: Signal,
    grace: Duration,
    after_kill: Duration,
    restore: Option<Option<bollard::models::RestartPolicy>>,
) -> Result<()> {
    if restore.is_some() {
        let no = bollard::models::RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        };
        stopper.set_policy(id, Some(no)).await?;
    }
    let outcome = kill_and_wait(stopper, id, signal, grace, after_kill).await;
    if let Some(policy) = restore {
        // Restore even when the stop failed: the container must keep its declared policy.
        stopper.set_policy(id, policy).await?;
    }
    outcome
}

async fn kill_and_wait<S: Stopper>(
    stopper: &S,
    id: &str,
    signal: Signal,
    grace: Duration,
    after_kill: Duration,
) -> Result<()> {
    match stopper.kill(id, signal.as_str()).await {
        Err(EngineError::Conflict { .. }) => return Ok(()), // not running any more
        other => other?,
    }
    if tokio::time::timeout(grace, stopper.wait_stopped(id))
        .await
        .is_ok()
    {
        return Ok(());
    }
    warn!(container = id, signal = signal.as_str(), timeout = %humantime::format_duration(grace), "container ignored its stop signal; killing");
    match stopper.kill(id, "SIGKILL").await {
        Err(EngineError::Conflict { .. }) => return Ok(()),
        other => other?,
    }
    match tokio::time::timeout(after_kill, stopper.wait_stopped(id)).await {
        Ok(waited) => waited.map(|_| ()),
        Err(_) => Err(EngineError::Timeout {
            object: Object::Container(id.to_owned()),
            operation: "stop (the container outlived SIGKILL)",
            after: grace + after_kill,
        }),
    }
}

impl DockerEngine {
    /// Stop for daemons without `stop?signal=` (API < 1.42) when the signal differs from the
    /// container's own: kill with the signal, wait, SIGKILL; restart policy held at `no`.
    pub(super) async fn stop_with_kill(
        &self,
        id: &str,
        signal: Signal,
        timeout: Duration,
    ) -> Result<()> {
        let object = || Object::Container(id.to_owned());
        let inspect = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.err(object(), e))?;
        if !inspect
            .state
            .as_ref()
            .and_then(|s| s.running)
            .unwrap_or(false)
        {
            return Ok(());
        }
        let policy = inspect
            .host_config
            .as_ref()
            .and_then(|h| h.restart_policy.clone());
        let restarts = policy.as_ref().is_some_and(|p| {
            !matches!(
                p.name,
                None | Some(RestartPolicyNameEnum::EMPTY) | Some(RestartPolicyNameEnum::NO)
            )
        });
        let restore = restarts.then_some(policy);
        spawn_kill_stop(self.clone(), id, signal, timeout, AFTER_KILL, restore).await
    }

    pub(super) async fn kill_signal(&self, id: &str, signal: &str) -> Result<()> {
        self.docker
            .kill_container(
                id,
                Some(KillContainerOptions {
                    signal: signal.to_owned(),
                }),
            )
            .await
            .map_err(|e| self.err(Object::Container(id.to_owned()), e))
    }

    pub(super) async fn set_restart_policy(
        &self,
        id: &str,
        policy: Option<bollard::models::RestartPolicy>,
    ) -> Result<()> {
        self.docker
            .update_container(
                id,
                ContainerUpdateBody {
                    restart_policy: policy,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.err(Object::Container(id.to_owned()), e))
    }

    pub(super) async fn wait_not_running(&self, id: &str) -> Result<i64> {
        let mut stream = self.docker.wait_container(
            id,
            Some(WaitContainerOptions {
                condition: "not-running".to_owned(),
            }),
        );
        match stream.next().await {
            Some(Ok(resp)) => Ok(resp.status_code),
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(self.err(Object::Container(id.to_owned()), e)),
            None => Err(EngineError::Protocol {
                object: Object::Container(id.to_owned()),
                message: "wait ended without a status".into(),
            }),
        }
    }
}
