//! Stopping with a signal on daemons older than API 1.42 (no `stop?signal=`): kill with the
//! signal, wait for the container to stop, SIGKILL after the grace period; the restart policy
//! held at `no` meanwhile (dockerd restarts a killed container, unlike a stopped one) and
//! restored afterwards, even when the stop failed.
//!
//! Design: methods of [`DockerEngine`] used by `stop_container`.
//!
//! Limits: a concurrent `docker update` of the restart policy during the stop is overwritten.

use super::*;

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
        if restarts {
            self.set_restart_policy(
                id,
                Some(bollard::models::RestartPolicy {
                    name: Some(RestartPolicyNameEnum::NO),
                    maximum_retry_count: None,
                }),
            )
            .await?;
        }
        let outcome = self.kill_and_wait(id, signal, timeout).await;
        if restarts {
            // Restore even when the stop failed: the container must keep its declared policy.
            self.set_restart_policy(id, policy).await?;
        }
        outcome
    }

    pub(super) async fn kill_and_wait(
        &self,
        id: &str,
        signal: Signal,
        timeout: Duration,
    ) -> Result<()> {
        match self.kill_signal(id, signal.as_str()).await {
            Err(EngineError::Conflict { .. }) => return Ok(()), // not running any more
            other => other?,
        }
        if tokio::time::timeout(timeout, self.wait_not_running(id))
            .await
            .is_ok()
        {
            return Ok(());
        }
        warn!(container = id, signal = signal.as_str(), timeout = %humantime::format_duration(timeout), "container ignored its stop signal; killing");
        match self.kill_signal(id, "SIGKILL").await {
            Err(EngineError::Conflict { .. }) => return Ok(()),
            other => other?,
        }
        self.wait_not_running(id).await.map(|_| ())
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
