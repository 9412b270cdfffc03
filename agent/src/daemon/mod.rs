//! The daemon: `gantry daemon` — jobs that outlive the CLI, supervision, env-file watching,
//! status and metrics.
//!
//! What: listens on a unix socket ([`crate::api`], [`server`]), runs deploys and rollbacks as
//! jobs (one per stack at a time, in order: [`jobs`]), supervises Gantry-managed containers from
//! Docker's event stream ([`supervise`]), redeploys a stack when an env file its services read
//! changes ([`supervise::watch`]), and serves `status` ([`status`]) and Prometheus metrics
//! ([`metrics`]). It runs with a [`DaemonConfig`] the CLI built and validated (`cli::settings`);
//! the daemon reads neither `gantry.yaml` nor the environment.
//!
//! Design: start-up order is config → ledger → Docker ping → socket bound and answering →
//! `READY=1`, then `STATUS=` as things change and `WATCHDOG=1` at half of `WATCHDOG_USEC` as
//! long as every loop task is alive (a dead loop stops the pings and systemd restarts us).
//! Nothing is restarted at start: the supervisor adopts what runs and only acts on drift
//! against the last good release. Errors are typed ([`DaemonError`]) and map to exit codes:
//! Docker, the socket or the metrics address unavailable 69 (a bad configuration, 78, never
//! gets this far). Dependencies point down: the daemon uses `deploy`, `engine`, `ledger` and
//! `api`; its submodules share [`config`], [`jobs`] and [`metrics`] without importing
//! anything above the daemon.
//!
//! Limits: one daemon per state directory (the socket is the lock: a second daemon refuses to
//! replace a socket that answers).

pub mod config;
pub mod edge_ready;
pub mod jobs;
pub mod metrics;
pub mod server;
pub mod status;
pub mod supervise;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::ExitCode;

pub use config::{DaemonConfig, HealConfig, StackPolicy};

/// Why the daemon could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{}: {reason} (hint: {hint})", socket.display())]
    Socket {
        socket: PathBuf,
        reason: String,
        hint: &'static str,
    },
    #[error("docker is unreachable: {source} (hint: systemctl status docker)")]
    Docker {
        #[source]
        source: Box<crate::engine::EngineError>,
    },
    #[error("metrics listener on {address}: {source} (hint: change daemon.metrics_address)")]
    Metrics {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("state directory {}: {source}", dir.display())]
    State {
        dir: PathBuf,
        #[source]
        source: Box<crate::ledger::LedgerError>,
    },
}

impl DaemonError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Docker { source } if source.exit_code() == ExitCode::Config => ExitCode::Config,
            Self::Docker { .. } | Self::Socket { .. } | Self::Metrics { .. } => {
                ExitCode::Unavailable
            }
            Self::State { .. } => ExitCode::Failed,
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    server::run(Arc::new(config)).await
}
