//! Typed errors of the engine layer.
//!
//! What: [`EngineError`], one variant per thing a caller acts on differently: the daemon is
//! unreachable (exit 69), an object is missing, a name is taken, the API refused, a pull failed
//! (with the registry, so ECR credentials can be refreshed on an auth failure), a wait timed out.
//!
//! Design: every variant names the object it failed on ([`Object`]), so a message reads
//! "container shop-web-1: ..." without the caller adding context. Bollard's errors are mapped in
//! one place (`docker.rs`) and never escape this module.
//!
//! Limits: Docker's own message is kept verbatim in `message`; it can name paths and images but
//! never carries a registry password (those go in a header, not in the URL or the body).

use std::fmt;
use std::time::Duration;

use crate::exit::ExitCode;

/// The Docker object an operation was about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Object {
    /// The daemon itself (ping, version, events).
    Daemon,
    Container(String),
    Image(String),
    Network(String),
    Volume(String),
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::Daemon => f.write_str("docker daemon"),
            Object::Container(name) => write!(f, "container {name}"),
            Object::Image(name) => write!(f, "image {name}"),
            Object::Network(name) => write!(f, "network {name}"),
            Object::Volume(name) => write!(f, "volume {name}"),
        }
    }
}

/// Why a pull failed, as far as Docker's message tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullFailure {
    /// The registry refused the credentials (or none were given): refresh them and retry once.
    Unauthorized,
    /// The repository or tag does not exist.
    NotFound,
    /// The registry could not be reached (DNS, TCP, TLS).
    Unreachable,
    /// The connection to the Docker daemon broke after it accepted the pull (dockerd
    /// restarted): pull again.
    Interrupted,
    /// Anything else.
    Other,
}

impl fmt::Display for PullFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PullFailure::Unauthorized => "unauthorized",
            PullFailure::NotFound => "not found",
            PullFailure::Unreachable => "registry unreachable",
            PullFailure::Interrupted => "interrupted",
            PullFailure::Other => "failed",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No answer from the daemon at all: nothing was changed.
    #[error("cannot reach the Docker daemon at {host}: {reason}; hint: {hint}")]
    Unreachable {
        /// `DOCKER_HOST` as used, e.g. `unix:///var/run/docker.sock`.
        host: String,
        reason: String,
        hint: String,
    },

    #[error("{object} not found")]
    NotFound { object: Object },

    /// The name is already in use (container, network) or the object is in a state that
    /// forbids the operation (Docker's 409).
    #[error("{object}: conflict: {message}")]
    Conflict { object: Object, message: String },

    /// Any other refusal by the daemon.
    #[error("{object}: Docker API error {status}: {message}")]
    Api {
        object: Object,
        status: u16,
        message: String,
    },

    #[error("pulling {image} from {registry} failed ({kind}): {reason}")]
    Pull {
        image: String,
        registry: String,
        kind: PullFailure,
        reason: String,
    },

    /// An operation with a deadline (stop, wait) did not finish in time.
    #[error("{object}: {operation} did not finish within {}", humantime::format_duration(*after))]
    Timeout {
        object: Object,
        operation: &'static str,
        after: Duration,
    },

    /// A spec the engine cannot turn into a Docker request (caught before anything is sent).
    #[error("{object}: invalid spec: {reason}")]
    InvalidSpec { object: Object, reason: String },

    /// `DOCKER_HOST` is a plain-TCP address off this host and the opt-in is not given.
    #[error(
        "DOCKER_HOST {host} is a plain-TCP Docker that is not on loopback: its API is unauthenticated and unencrypted root on that machine; hint: use the unix socket or an SSH tunnel to a loopback port, or set GANTRY_DOCKER_ALLOW_REMOTE=true to accept the risk"
    )]
    RemoteNotAllowed { host: String },

    /// The daemon answered something we could not read (transport cut mid-stream, bad JSON).
    #[error("{object}: {message}")]
    Protocol { object: Object, message: String },
}

impl EngineError {
    /// The `gantry` exit code this error leads to when nothing else decides.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            EngineError::Unreachable { .. } => ExitCode::Unavailable,
            EngineError::RemoteNotAllowed { .. } => ExitCode::Config,
            _ => ExitCode::Failed,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, EngineError::NotFound { .. })
    }

    pub fn is_unreachable(&self) -> bool {
        matches!(self, EngineError::Unreachable { .. })
    }

    /// The object the error is about, if any.
    pub fn object(&self) -> Option<&Object> {
        match self {
            EngineError::NotFound { object }
            | EngineError::Conflict { object, .. }
            | EngineError::Api { object, .. }
            | EngineError::Timeout { object, .. }
            | EngineError::InvalidSpec { object, .. }
            | EngineError::Protocol { object, .. } => Some(object),
            EngineError::Unreachable { .. }
            | EngineError::RemoteNotAllowed { .. }
            | EngineError::Pull { .. } => None,
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
