//! The daemon's socket API: line-delimited JSON over a unix socket.
//!
//! What: one request per connection. The client writes one [`Request`] as a JSON line; the
//! daemon answers with [`Event`] lines and closes the connection after the last one
//! ([`Event::Done`] or [`Event::Error`]). A deploy or rollback answers `accepted` (the job id),
//! then `progress` lines as the job goes, then `done` with what the CLI prints and its exit code.
//!
//! Design: the job runs in the daemon, not in the connection: when the client goes away (SSM
//! SIGKILLs the CLI's process group) the job goes on and is recorded; the same `--id` sent again
//! is answered from the ledger. The final output is rendered by the daemon with the same code
//! `--local` uses, so both modes print the same thing. The socket is the only access control
//! (mode 0660, root and group `gantry`): whoever can write to it can deploy, which is as much
//! as whoever can write to the Docker socket.
//!
//! Layering: the protocol's types ([`Request`], [`Event`], [`OutputFormat`], [`MAX_OUTPUT`])
//! and the client's connection only; it imports nothing but [`crate::compose`]'s load options
//! and [`StackName`] (parsed on the wire too), so the CLI, the daemon and the renderers of
//! reports (`deploy::render`, `ledger::render`) can all use it without a cycle.
//!
//! Limits: no versioning beyond an `op` tag (client and daemon ship in one binary); a line is
//! at most [`MAX_LINE`] bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::compose::{LoadOptions, StackName};

/// Longest line either side accepts.
pub const MAX_LINE: usize = 4 << 20;

/// Default socket path.
pub const DEFAULT_SOCKET: &str = "/run/gantry/gantry.sock";

/// Bound on what one command prints on stdout (progress and result): SSM returns only the
/// first 24,000 characters, so the end of a deploy must fit with room to spare.
pub const MAX_OUTPUT: usize = 20_000;

/// Of [`MAX_OUTPUT`], what progress lines may take; the end (summary line and the error,
/// cut to [`ERROR_OUTPUT`]) has the rest.
pub const PROGRESS_OUTPUT: usize = MAX_OUTPUT - 8_000;

/// What the error of a report may take when printed as text.
pub const ERROR_OUTPUT: usize = 6_000;

/// `--output`: what the CLI prints, and what the daemon renders for it. The one output enum
/// (the command line parses it, the protocol carries it, reports render by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

/// [`LoadOptions`] on the wire: paths are made absolute by the client.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireLoad {
    pub files: Vec<PathBuf>,
    pub project_name: Option<String>,
    pub project_dir: Option<PathBuf>,
    pub env_files: Vec<PathBuf>,
    pub profiles: Vec<String>,
    /// The client's environment plus `--var`s: compose interpolates from the caller's shell.
    pub environment: BTreeMap<String, String>,
}

impl WireLoad {
    /// From the client's options, with paths made absolute against `cwd`.
    pub fn from_options(opts: &LoadOptions, cwd: &Path) -> Self {
        let abs = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                cwd.join(p)
            }
        };
        Self {
            files: opts.files.iter().map(abs).collect(),
            project_name: opts.project_name.clone(),
            project_dir: opts.project_dir.as_ref().map(abs),
            env_files: opts.env_files.iter().map(abs).collect(),
            profiles: opts.profiles.clone(),
            environment: opts.environment.clone(),
        }
    }

    pub fn into_options(self) -> LoadOptions {
        LoadOptions {
            files: self.files,
            project_name: self.project_name,
            project_dir: self.project_dir,
            env_files: self.env_files,
            profiles: self.profiles,
            environment: self.environment,
        }
    }
}

/// What a client asks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// `gantry deploy`: a job.
    Deploy {
        stack: StackName,
        load: WireLoad,
        variables: BTreeMap<String, String>,
        deploy_id: Option<String>,
        /// How long the job may wait in the stack's queue (and for the ledger lock).
        lock_wait_ms: u64,
        timeout_ms: u64,
        ready_timeout_ms: u64,
        output: OutputFormat,
    },
    /// `gantry rollback`: a job.
    Rollback {
        stack: StackName,
        to: Option<String>,
        lock_wait_ms: u64,
        ready_timeout_ms: u64,
        output: OutputFormat,
    },
    /// `gantry down`: a job.
    Down {
        stack: StackName,
        volumes: bool,
        lock_wait_ms: u64,
        timeout_ms: u64,
        output: OutputFormat,
    },
    /// `gantry plan`.
    Plan {
        stack: StackName,
        load: WireLoad,
        output: OutputFormat,
    },
    /// `gantry releases`.
    Releases {
        stack: StackName,
        output: OutputFormat,
    },
    /// `gantry status [STACK]`.
    Status {
        stack: Option<StackName>,
        output: OutputFormat,
    },
    /// `gantry promote|abort STACK`: `command` is `promote` or `abort`.
    Canary { stack: StackName, command: String },
    /// Liveness: answers `done` with the daemon's version and uptime.
    Health,
}

impl Request {
    pub fn op(&self) -> &'static str {
        match self {
            Self::Deploy { .. } => "deploy",
            Self::Rollback { .. } => "rollback",
            Self::Down { .. } => "down",
            Self::Plan { .. } => "plan",
            Self::Releases { .. } => "releases",
            Self::Status { .. } => "status",
            Self::Canary { .. } => "canary",
            Self::Health => "health",
        }
    }
}

/// What the daemon answers, line by line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A job was queued under this id.
    Accepted { job: String },
    /// One progress line (`[stack] service: message`).
    Progress { line: String },
    /// The end: print `stdout` as is, exit with `exit_code`.
    Done { stdout: String, exit_code: u8 },
    /// The request could not be served: print `message` on stderr, exit with `exit_code`.
    Error { message: String, exit_code: u8 },
}

/// Why talking to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "the gantry daemon is not running: {} does not exist (hint: systemctl start gantry, or run in-process with --local)",
        socket.display()
    )]
    NoSocket { socket: PathBuf },
    #[error(
        "cannot reach the gantry daemon at {}: {source} (hint: systemctl status gantry; run in-process with --local)",
        socket.display()
    )]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the gantry daemon at {} broke the connection: {reason} (hint: journalctl -u gantry)", socket.display())]
    Protocol { socket: PathBuf, reason: String },
}

/// A connection carrying one request.
#[derive(Debug)]
pub struct Client {
    socket: PathBuf,
    lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    _write: tokio::net::unix::OwnedWriteHalf,
}

impl Client {
    /// Connects and sends `request`.
    pub async fn send(socket: &Path, request: &Request) -> Result<Self, ClientError> {
        let stream = match UnixStream::connect(socket).await {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClientError::NoSocket {
                    socket: socket.to_owned(),
                });
            }
            Err(source) => {
                return Err(ClientError::Connect {
                    socket: socket.to_owned(),
                    source,
                });
            }
        };
        let (read, mut write) = stream.into_split();
        let mut line = serde_json::to_vec(request).map_err(|e| ClientError::Protocol {
            socket: socket.to_owned(),
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        write
            .write_all(&line)
            .await
            .map_err(|source| ClientError::Connect {
                socket: socket.to_owned(),
                source,
            })?;
        Ok(Self {
            socket: socket.to_owned(),
            lines: BufReader::new(read).lines(),
            _write: write,
        })
    }

    /// The next event; `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Event>, ClientError> {
        let line = self
            .lines
            .next_line()
            .await
            .map_err(|e| ClientError::Protocol {
                socket: self.socket.clone(),
                reason: e.to_string(),
            })?;
        match line {
            None => Ok(None),
            Some(l) => serde_json::from_str(&l)
                .map(Some)
                .map_err(|e| ClientError::Protocol {
                    socket: self.socket.clone(),
                    reason: format!("unreadable answer: {e}"),
                }),
        }
    }

    /// Sends `request` and collects every event (for one-shot requests and tests).
    pub async fn call(socket: &Path, request: &Request) -> Result<Vec<Event>, ClientError> {
        let mut client = Self::send(socket, request).await?;
        let mut events = Vec::new();
        while let Some(e) = client.next().await? {
            let end = matches!(e, Event::Done { .. } | Event::Error { .. });
            events.push(e);
            if end {
                break;
            }
        }
        Ok(events)
    }
}

/// Why a deploy id (`--id`, `deploy_id` on the socket) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployIdError {
    #[error(
        "the deploy id is empty (hint: is the variable given to --id, e.g. CI_PIPELINE_ID, unset? pass a non-empty id, or leave --id out)"
    )]
    Empty,
}

/// Checks a deploy id: an empty or blank one would match every other empty one, so each
/// later deploy under it would be answered "already applied" and deploy nothing.
pub fn check_deploy_id(id: &str) -> Result<(), DeployIdError> {
    if id.trim().is_empty() {
        return Err(DeployIdError::Empty);
    }
    Ok(())
}

/// Milliseconds of a duration, saturating.
pub fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_events_round_trip() {
        let r = Request::Status {
            stack: Some(StackName::parse("web").unwrap()),
            output: OutputFormat::Json,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(text, r#"{"op":"status","stack":"web","output":"json"}"#);
        let back: Request = serde_json::from_str(&text).unwrap();
        assert_eq!(back.op(), "status");
        // A stack name is checked on the wire too.
        let bad = r#"{"op":"releases","stack":"../etc","output":"text"}"#;
        assert!(serde_json::from_str::<Request>(bad).is_err());
        let e = Event::Done {
            stdout: "ok\n".into(),
            exit_code: 0,
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), e);
    }

    #[test]
    fn an_empty_or_blank_deploy_id_is_refused() {
        for id in ["", " ", "\t\n"] {
            assert_eq!(check_deploy_id(id), Err(DeployIdError::Empty), "{id:?}");
        }
        assert!(DeployIdError::Empty.to_string().contains("CI_PIPELINE_ID"));
        assert_eq!(check_deploy_id("4242"), Ok(()));
    }

    #[test]
    fn relative_paths_become_absolute() {
        let opts = LoadOptions {
            files: vec!["a/compose.yaml".into(), "/abs.yaml".into()],
            ..LoadOptions::default()
        };
        let w = WireLoad::from_options(&opts, Path::new("/srv"));
        assert_eq!(
            w.files,
            vec![PathBuf::from("/srv/a/compose.yaml"), "/abs.yaml".into()]
        );
    }
}
