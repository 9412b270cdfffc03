//! The AWS side of `gantry remote`: [`SsmFleet`] speaks SSM's SendCommand, ListCommands,
//! ListCommandInvocations, GetCommandInvocation and CancelCommand through `aws-sdk-ssm`.
//!
//! Credentials and region come from the standard AWS chain of the CI runner (environment, web
//! identity from GitLab's OIDC token, profile, container or instance credentials);
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SSM` are honoured. GetCommandInvocation can answer
//! `InvocationDoesNotExist` right after SendCommand: it is retried for a while; an
//! `InvalidCommandId` within [`NEW_COMMAND`] of the send is tried again at the next poll (SSM's
//! listings may not know the command yet), after that it is final. GetCommandInvocation is sent
//! without PluginName, so a document of more than one step gets `InvalidPluginName`
//! ([`RemoteError::NotOneStep`]: Gantry follows one-step documents). Errors are
//! sorted by their code ([`classify`]): what SSM refuses in the command itself is
//! [`RemoteError::Refused`] (65), what retrying cannot cure (access denied, bad credentials,
//! validation) is [`RemoteError::Rejected`], anything else [`RemoteError::Api`] (both 69; only
//! the last is tried again by the wait). The SDK's own tracing is kept out of our subscriber
//! during calls (at TRACE it logs bodies).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_sdk_ssm::types::Target;
use tokio::time::Instant;
use tracing::instrument::WithSubscriber as _;

use super::{
    CommandSpec, CommandState, Fleet, InvocationResult, InvocationState, RemoteError, Targets,
};

/// How often, and how long, a GetCommandInvocation that answers InvocationDoesNotExist is tried.
const NOT_YET_RETRY: Duration = Duration::from_secs(1);
const NOT_YET_TRIES: u32 = 30;

/// How long after SendCommand an `InvalidCommandId` is taken as SSM not listing the new command
/// yet (its listings are eventually consistent) and tried again; after that it is final.
pub const NEW_COMMAND: Duration = Duration::from_secs(30);

/// SSM through the AWS SDK.
#[derive(Debug, Clone)]
pub struct SsmFleet {
    client: aws_sdk_ssm::Client,
    /// When each command this client sent was taken by SSM, for [`NEW_COMMAND`].
    sent: Arc<Mutex<HashMap<String, Instant>>>,
}

impl SsmFleet {
    /// A client from the standard chain, in `region` when given.
    pub async fn from_env(region: Option<String>) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = region {
            loader = loader.region(Region::new(r));
        }
        let sdk = loader.load().with_subscriber(quiet()).await;
        Self {
            client: aws_sdk_ssm::Client::new(&sdk),
            sent: Arc::default(),
        }
    }

    /// How long ago this client sent `command_id`; `None` for a command it did not send.
    fn since_send(&self, command_id: &str) -> Option<Duration> {
        let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        sent.get(command_id).map(Instant::elapsed)
    }

    /// Sorts an error of a call about `command_id` ([`command_error`]).
    fn error<E: ProvideErrorMetadata>(
        &self,
        operation: &'static str,
        command_id: &str,
        e: &E,
    ) -> RemoteError {
        command_error(
            operation,
            e.code(),
            e.message(),
            self.since_send(command_id),
        )
    }
}

/// A subscriber that drops everything: the SDK's events during our calls.
fn quiet() -> tracing::Dispatch {
    tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default())
}

/// Error codes with which SSM refuses a SendCommand as sent (its document, parameters or
/// targets; `ValidationException` for a request outside the API's own limits, such as more
/// than 50 instance ids or an empty tag value): exit 65, nothing ran.
const REFUSED: [&str; 8] = [
    "InvalidParameters",
    "ValidationException",
    "InvalidDocument",
    "InvalidDocumentVersion",
    "InvalidInstanceId",
    "DuplicateInstanceId",
    "UnsupportedPlatformType",
    "MaxDocumentSizeExceeded",
];

/// Error codes that the same call would get again: not worth retrying.
const PERMANENT: [&str; 10] = [
    "AccessDeniedException",
    "AccessDenied",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "MissingAuthenticationToken",
    "ValidationException",
    "InvalidCommandId",
    "InvalidPluginName",
];

/// Sorts an SSM error by its code: [`RemoteError::Refused`] for a SendCommand of `document`
/// that SSM refuses as sent, [`RemoteError::Rejected`] when retrying cannot help,
/// [`RemoteError::Api`] otherwise.
pub(crate) fn classify(
    operation: &'static str,
    document: Option<&str>,
    code: Option<&str>,
    message: Option<&str>,
) -> RemoteError {
    let text = format!(
        "{}: {}",
        code.unwrap_or("error"),
        message.unwrap_or("no message (network or credentials?)")
    );
    match (document, code) {
        (Some(document), Some(code)) if REFUSED.contains(&code) => RemoteError::Refused {
            document: document.to_owned(),
            message: text,
        },
        (_, Some(code)) if PERMANENT.contains(&code) => RemoteError::Rejected {
            operation,
            message: text,
        },
        _ => RemoteError::Api {
            operation,
            message: text,
        },
    }
}

/// Sorts an error of a call about a sent command as [`classify`] does, except `InvalidCommandId`
/// within [`NEW_COMMAND`] of the send (`since_send`; `None`: not sent by this client): SSM's
/// listings may not know a command that new yet, so it is tried again at the next poll
/// ([`RemoteError::NotListedYet`]) instead of ending the wait (and cancelling the command).
pub(crate) fn command_error(
    operation: &'static str,
    code: Option<&str>,
    message: Option<&str>,
    since_send: Option<Duration>,
) -> RemoteError {
    match since_send {
        Some(ago) if code == Some("InvalidCommandId") && ago < NEW_COMMAND => {
            RemoteError::NotListedYet {
                operation,
                message: format!(
                    "InvalidCommandId: {} (sent {} ago: SSM may not list it yet)",
                    message.unwrap_or("no message"),
                    humantime::format_duration(Duration::from_secs(ago.as_secs()))
                ),
            }
        }
        _ => classify(operation, None, code, message),
    }
}

/// Sorts an error of GetCommandInvocation as [`command_error`] does, but for the one it gives
/// when the document has several steps (no PluginName is sent: Gantry follows one-step
/// documents).
pub(crate) fn read_error(
    command_id: &str,
    instance_id: &str,
    code: Option<&str>,
    message: Option<&str>,
    since_send: Option<Duration>,
) -> RemoteError {
    if code == Some("InvalidPluginName") {
        return RemoteError::NotOneStep {
            command_id: command_id.to_owned(),
            instance_id: instance_id.to_owned(),
            message: format!("InvalidPluginName: {}", message.unwrap_or("no message")),
        };
    }
    command_error("GetCommandInvocation", code, message, since_send)
}

#[async_trait::async_trait]
impl Fleet for SsmFleet {
    async fn send(&self, spec: &CommandSpec) -> Result<String, RemoteError> {
        let mut req = self
            .client
            .send_command()
            .document_name(&spec.document)
            .comment(spec.comment.chars().take(100).collect::<String>())
            .max_concurrency(&spec.max_concurrency)
            .max_errors(&spec.max_errors)
            .timeout_seconds(i32::try_from(spec.delivery_timeout.as_secs()).unwrap_or(i32::MAX));
        for (k, v) in &spec.parameters {
            req = req.parameters(k, vec![v.clone()]);
        }
        req = match &spec.targets {
            Targets::Instances(ids) => req.set_instance_ids(Some(ids.clone())),
            Targets::Tag { key, values } => req.targets(
                Target::builder()
                    .key(format!("tag:{key}"))
                    .set_values(Some(values.clone()))
                    .build(),
            ),
        };
        let out = req.send().with_subscriber(quiet()).await.map_err(|e| {
            let e = e.into_service_error();
            classify("SendCommand", Some(&spec.document), e.code(), e.message())
        })?;
        let command_id = out
            .command()
            .and_then(|c| c.command_id())
            .map(str::to_owned)
            .ok_or(RemoteError::Api {
                operation: "SendCommand",
                message: "the answer carries no command id".into(),
            })?;
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(command_id.clone(), Instant::now());
        Ok(command_id)
    }

    async fn poll(&self, command_id: &str) -> Result<CommandState, RemoteError> {
        let commands = self
            .client
            .list_commands()
            .command_id(command_id)
            .send()
            .with_subscriber(quiet())
            .await
            .map_err(|e| self.error("ListCommands", command_id, &e.into_service_error()))?;
        let status = commands
            .commands()
            .first()
            .and_then(|c| c.status())
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        let target_count = commands
            .commands()
            .first()
            .map_or(0, |c| usize::try_from(c.target_count()).unwrap_or(0));
        let mut invocations = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .client
                .list_command_invocations()
                .command_id(command_id)
                .set_next_token(next.take())
                .send()
                .with_subscriber(quiet())
                .await
                .map_err(|e| {
                    self.error(
                        "ListCommandInvocations",
                        command_id,
                        &e.into_service_error(),
                    )
                })?;
            for inv in page.command_invocations() {
                if let Some(id) = inv.instance_id() {
                    invocations.push(InvocationState {
                        instance_id: id.to_owned(),
                        status: inv
                            .status()
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_default(),
                    });
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(CommandState {
            status,
            target_count,
            invocations,
        })
    }

    async fn result(
        &self,
        command_id: &str,
        instance_id: &str,
    ) -> Result<InvocationResult, RemoteError> {
        let mut tries = 0;
        let out = loop {
            match self
                .client
                .get_command_invocation()
                .command_id(command_id)
                .instance_id(instance_id)
                .send()
                .with_subscriber(quiet())
                .await
            {
                Ok(out) => break out,
                Err(e) => {
                    let e = e.into_service_error();
                    tries += 1;
                    if e.is_invocation_does_not_exist() && tries < NOT_YET_TRIES {
                        tokio::time::sleep(NOT_YET_RETRY).await;
                        continue;
                    }
                    return Err(read_error(
                        command_id,
                        instance_id,
                        e.code(),
                        e.message(),
                        self.since_send(command_id),
                    ));
                }
            }
        };
        // SSM answers -1 for a script that never ran.
        let code = out.response_code();
        Ok(InvocationResult {
            instance_id: instance_id.to_owned(),
            status: out
                .status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            status_details: out.status_details().unwrap_or_default().to_owned(),
            exit_code: (code >= 0).then_some(code),
            stdout: out.standard_output_content().unwrap_or_default().to_owned(),
            stderr: out.standard_error_content().unwrap_or_default().to_owned(),
            seen_running: false,
        })
    }

    async fn cancel(&self, command_id: &str) -> Result<(), RemoteError> {
        self.client
            .cancel_command()
            .command_id(command_id)
            .send()
            .with_subscriber(quiet())
            .await
            .map_err(|e| self.error("CancelCommand", command_id, &e.into_service_error()))?;
        Ok(())
    }
}
