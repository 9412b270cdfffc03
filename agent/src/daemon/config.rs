//! The daemon's validated configuration: what `gantry daemon` runs with.
//!
//! Design: plain typed values, built once by the CLI from `gantry.yaml`, the environment and
//! the flags (see `cli::settings`), and shared read-only by the server, the jobs and the
//! supervisor. Nothing here reads a file or the environment.
//!
//! Limits: fixed for the daemon's life; a changed `gantry.yaml` takes a restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::compose::StackName;
use crate::registry::RegistriesConfig;

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
    pub stacks: BTreeMap<StackName, StackPolicy>,
    pub state_dir: PathBuf,
    /// Registry credentials for every deploy the daemon runs.
    pub registries: RegistriesConfig,
    /// The daemon's environment, for interpolation when a watched file redeploys a stack.
    pub environment: BTreeMap<String, String>,
}

impl DaemonConfig {
    /// The policy for `stack`.
    pub fn policy(&self, stack: &str) -> StackPolicy {
        self.stacks.get(stack).copied().unwrap_or(self.defaults)
    }
}
