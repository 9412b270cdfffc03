//! The daemon: `gantry daemon` — jobs that outlive the CLI, supervision, env-file watching,
//! status and metrics.
//!
//! What: listens on a unix socket ([`crate::api`]), runs deploys and rollbacks as jobs (one per
//! stack at a time, in order: [`jobs`]), supervises Gantry-managed containers from Docker's
//! event stream ([`crate::supervise`]), redeploys a stack when an env file its services read
//! changes, and serves `status` and Prometheus metrics ([`metrics`]).
//!
//! Design: start-up order is config → ledger → Docker ping → socket bound and answering →
//! `READY=1`, then `STATUS=` as things change and `WATCHDOG=1` at half of `WATCHDOG_USEC` as
//! long as every loop task is alive (a dead loop stops the pings and systemd restarts us).
//! Nothing is restarted at start: the supervisor adopts what runs and only acts on drift
//! against the last good release. Errors are typed ([`DaemonError`]) and map to exit codes:
//! bad configuration 78, Docker or the socket unavailable 69.
//!
//! Limits: one daemon per state directory (the socket is the lock: a second daemon refuses to
//! replace a socket that answers).

pub mod jobs;
pub mod metrics;
pub mod server;
pub mod status;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::ExitCode;
use crate::config::{ConfigError, RawConfig};

/// The `daemon:` section of gantry.yaml, as written. Durations are humantime (`90s`, `10m`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemonConfig {
    /// Group that may use the socket (default `gantry`, when the group exists).
    pub socket_group: Option<String>,
    /// Loopback address for Prometheus metrics (`127.0.0.1:9464`); absent: no listener.
    pub metrics_address: Option<String>,
    /// Unhealthy-container restarts.
    #[serde(default)]
    pub heal: RawHeal,
    /// How long file changes and hand-made drift settle before Gantry acts (default 2s).
    pub debounce: Option<String>,
    /// How often every stack is compared with its last good release (default 60s).
    pub resync_interval: Option<String>,
    /// Default policy for every stack.
    #[serde(default)]
    pub defaults: RawStackPolicy,
    /// Per-stack policy over the defaults.
    #[serde(default)]
    pub stacks: BTreeMap<String, RawStackPolicy>,
}

/// `daemon.heal`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeal {
    /// Restarts allowed per window (default 5).
    pub max_restarts: Option<u32>,
    /// The window (default 10m).
    pub window: Option<String>,
    /// First backoff before a restart (default 1s), doubled each time.
    pub backoff: Option<String>,
    /// Backoff ceiling (default 1m).
    pub backoff_max: Option<String>,
    /// Deaths within the window after which a container is reported crash-looping (default 5).
    pub crash_loop_deaths: Option<u32>,
}

/// `daemon.defaults` and `daemon.stacks.<name>`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStackPolicy {
    /// Restart containers that turn unhealthy (default true).
    pub heal: Option<bool>,
    /// Bring back containers removed or stopped by hand (default true).
    pub reconcile: Option<bool>,
    /// Redeploy when an env file a service reads changes (default true).
    pub watch_env_files: Option<bool>,
    /// Redeploy when the stack's compose files change (default false).
    pub watch_compose_files: Option<bool>,
}

/// What a stack's supervision does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackPolicy {
    pub heal: bool,
    pub reconcile: bool,
    pub watch_env_files: bool,
    pub watch_compose_files: bool,
}

impl Default for StackPolicy {
    fn default() -> Self {
        Self {
            heal: true,
            reconcile: true,
            watch_env_files: true,
            watch_compose_files: false,
        }
    }
}

impl StackPolicy {
    fn over(self, raw: &RawStackPolicy) -> Self {
        Self {
            heal: raw.heal.unwrap_or(self.heal),
            reconcile: raw.reconcile.unwrap_or(self.reconcile),
            watch_env_files: raw.watch_env_files.unwrap_or(self.watch_env_files),
            watch_compose_files: raw.watch_compose_files.unwrap_or(self.watch_compose_files),
        }
    }
}

/// Restart budget and backoff for unhealthy containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealConfig {
    pub max_restarts: u32,
    pub window: Duration,
    pub backoff: Duration,
    pub backoff_max: Duration,
    pub crash_loop_deaths: u32,
}

impl Default for HealConfig {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            window: Duration::from_secs(600),
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            crash_loop_deaths: 5,
        }
    }
}

/// The validated daemon configuration.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub socket: PathBuf,
    pub socket_group: Option<String>,
    /// Whether `socket_group` was named explicitly (then a missing group is an error).
    pub socket_group_explicit: bool,
    pub metrics_address: Option<SocketAddr>,
    pub heal: HealConfig,
    pub debounce: Duration,
    pub resync_interval: Duration,
    pub defaults: StackPolicy,
    pub stacks: BTreeMap<String, StackPolicy>,
    pub state_dir: PathBuf,
    pub config_dir: PathBuf,
}

impl DaemonConfig {
    /// The policy for `stack`.
    pub fn policy(&self, stack: &str) -> StackPolicy {
        self.stacks.get(stack).copied().unwrap_or(self.defaults)
    }

    /// Reads `<config_dir>/gantry.yaml` and validates its `daemon:` section.
    pub fn load(
        config_dir: &Path,
        state_dir: &Path,
        socket: &Path,
        metrics_override: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let (path, raw) = RawConfig::load(config_dir)?;
        Self::from_raw(&path, raw.daemon, state_dir, socket, metrics_override).map(|c| Self {
            config_dir: config_dir.to_owned(),
            ..c
        })
    }

    fn from_raw(
        path: &Path,
        raw: RawDaemonConfig,
        state_dir: &Path,
        socket: &Path,
        metrics_override: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let key = |key: &str, message: String| ConfigError::Key {
            path: path.to_owned(),
            key: key.to_owned(),
            message,
        };
        let dur =
            |k: &str, v: &Option<String>, default: Duration| -> Result<Duration, ConfigError> {
                match v {
                    None => Ok(default),
                    Some(s) => humantime::parse_duration(s).map_err(|e| {
                        key(
                            k,
                            format!("{s:?} is not a duration ({e}); example: 90s, 10m"),
                        )
                    }),
                }
            };
        let metrics = metrics_override
            .map(str::to_owned)
            .or(raw.metrics_address.clone())
            .filter(|s| !s.is_empty());
        let metrics_address = match metrics {
            None => None,
            Some(s) => {
                let addr: SocketAddr = s.parse().map_err(|e| {
                    key(
                        "daemon.metrics_address",
                        format!("{s:?} is not an address ({e}); example: 127.0.0.1:9464"),
                    )
                })?;
                if !addr.ip().is_loopback() {
                    return Err(key(
                        "daemon.metrics_address",
                        format!(
                            "{addr} is not a loopback address: metrics are served on 127.0.0.1 or ::1 only"
                        ),
                    ));
                }
                Some(addr)
            }
        };
        let d = HealConfig::default();
        let heal = HealConfig {
            max_restarts: raw.heal.max_restarts.unwrap_or(d.max_restarts),
            window: dur("daemon.heal.window", &raw.heal.window, d.window)?,
            backoff: dur("daemon.heal.backoff", &raw.heal.backoff, d.backoff)?,
            backoff_max: dur(
                "daemon.heal.backoff_max",
                &raw.heal.backoff_max,
                d.backoff_max,
            )?,
            crash_loop_deaths: raw.heal.crash_loop_deaths.unwrap_or(d.crash_loop_deaths),
        };
        if heal.window.is_zero() {
            return Err(key("daemon.heal.window", "must be longer than 0s".into()));
        }
        if heal.backoff > heal.backoff_max {
            return Err(key(
                "daemon.heal.backoff",
                "must not be longer than daemon.heal.backoff_max".into(),
            ));
        }
        let defaults = StackPolicy::default().over(&raw.defaults);
        let mut stacks = BTreeMap::new();
        for (name, p) in &raw.stacks {
            if crate::ledger::Ledger::new(state_dir).stack(name).is_err() {
                return Err(key(
                    &format!("daemon.stacks.{name}"),
                    "is not a stack name".into(),
                ));
            }
            stacks.insert(name.clone(), defaults.over(p));
        }
        let resync_interval = dur(
            "daemon.resync_interval",
            &raw.resync_interval,
            Duration::from_secs(60),
        )?;
        if resync_interval < Duration::from_secs(1) {
            return Err(key("daemon.resync_interval", "must be at least 1s".into()));
        }
        Ok(Self {
            socket: socket.to_owned(),
            socket_group_explicit: raw.socket_group.is_some(),
            socket_group: Some(raw.socket_group.unwrap_or_else(|| "gantry".into()))
                .filter(|g| !g.is_empty()),
            metrics_address,
            heal,
            debounce: dur("daemon.debounce", &raw.debounce, Duration::from_secs(2))?,
            resync_interval,
            defaults,
            stacks,
            state_dir: state_dir.to_owned(),
            config_dir: PathBuf::new(),
        })
    }
}

/// Why the daemon could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
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
            Self::Config(_) => ExitCode::Config,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<DaemonConfig, ConfigError> {
        let raw: RawDaemonConfig = serde_yaml::from_str(yaml).unwrap();
        DaemonConfig::from_raw(
            Path::new("/etc/gantry/gantry.yaml"),
            raw,
            Path::new("/tmp"),
            Path::new("/run/gantry/gantry.sock"),
            None,
        )
    }

    #[test]
    fn defaults_and_overrides() {
        let c = parse("{}").unwrap();
        assert_eq!(c.heal, HealConfig::default());
        assert!(c.policy("web").reconcile && !c.policy("web").watch_compose_files);
        let c = parse(
            "heal: {max_restarts: 3, window: 1m}\nstacks: {web: {reconcile: false, watch_compose_files: true}}\n",
        )
        .unwrap();
        assert_eq!(c.heal.max_restarts, 3);
        assert_eq!(c.heal.window, Duration::from_secs(60));
        assert!(!c.policy("web").reconcile && c.policy("web").watch_compose_files);
        assert!(c.policy("other").reconcile);
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = parse("heal: {window: soon}").unwrap_err().to_string();
        assert!(e.contains("daemon.heal.window"), "{e}");
        let e = parse("metrics_address: 0.0.0.0:9464")
            .unwrap_err()
            .to_string();
        assert!(e.contains("loopback"), "{e}");
        assert!(serde_yaml::from_str::<RawDaemonConfig>("helth: {}").is_err());
    }
}
