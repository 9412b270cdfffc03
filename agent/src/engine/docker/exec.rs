//! Running a command in a container to its end (lifecycle hooks).
//!
//! Design: one exec, attached to stdout and stderr; the output is read until Docker closes it
//! (the command ended), keeping only a bounded tail of each stream ([`Tail`]), then the exec is
//! inspected for its exit code. No TTY, no stdin: nothing waits for input.

use bollard::container::LogOutput;
use bollard::exec::StartExecResults;
use bollard::models::ExecConfig;
use futures_util::StreamExt;

use super::super::{ExecOutcome, ExecSpec, Object, Result};
use super::DockerEngine;
use super::tail::Tail;

impl DockerEngine {
    /// [`Engine::exec`](super::super::Engine::exec): create, start attached, read the output
    /// to its end (keeping a bounded tail of each stream), then ask for the exit code.
    pub(super) async fn run_exec(&self, id: &str, exec: &ExecSpec) -> Result<ExecOutcome> {
        let object = || Object::Container(id.to_owned());
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(exec.command.clone()),
            user: exec.user.clone(),
            privileged: exec.privileged.then_some(true),
            working_dir: exec.working_dir.clone(),
            env: (!exec.env.is_empty())
                .then(|| exec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(id, config)
            .await
            .map_err(|e| self.err(object(), e))?;
        let started = self
            .docker
            .start_exec(&created.id, None)
            .await
            .map_err(|e| self.err(object(), e))?;
        let (mut out, mut err) = (Tail::default(), Tail::default());
        if let StartExecResults::Attached { mut output, .. } = started {
            while let Some(chunk) = output.next().await {
                match chunk.map_err(|e| self.err(object(), e))? {
                    LogOutput::StdErr { message } => err.push(&message),
                    other => out.push(&other.into_bytes()),
                }
            }
        }
        let inspected = self
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(|e| self.err(object(), e))?;
        Ok(ExecOutcome {
            exit_code: inspected.exit_code.unwrap_or(-1),
            output: if err.is_empty() { out } else { err }.into_lines(),
        })
    }
}
