//! Gantry's own configuration, read and validated here, once: `<config-dir>/gantry.yaml`
//! (default `/etc/gantry/gantry.yaml`), the environment and the flags.
//!
//! What: [`Settings::load`] reads the file into raw types with `deny_unknown_fields`; the
//! `daemon:` section becomes a [`DaemonConfig`] ([`Settings::daemon`]) and the `registries:`
//! section, with its environment variables, a [`RegistriesConfig`] ([`Settings::registries`]).
//! Those typed values are passed down; no module below the CLI reads the file or the
//! environment. An invalid file is [`ConfigError`] (exit 78) naming the file and the key, for
//! the daemon and `--local` alike. A missing or empty file means every default.
//!
//! Design: layering is file < environment < flags (each section documents its variables; the
//! flags' own variables are clap's `env =`).
//!
//! Limits: read at start; the daemon takes a restart to see a changed file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::compose::StackName;
use crate::daemon::{DaemonConfig, HealConfig, StackPolicy};
use crate::registry::{RawRegistriesConfig, RegistriesConfig};

use super::GlobalArgs;

/// Why the configuration is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("{}: {key}: {message}", path.display())]
    Key {
        path: PathBuf,
        key: String,
        message: String,
    },
    /// A value given on the command line or in the environment, not in the file.
    #[error("{flag} (or {env}): {message}")]
    Flag {
        flag: &'static str,
        env: &'static str,
        message: String,
    },
}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Registry credentials (see [`crate::registry`]).
    #[serde(default)]
    pub registries: RawRegistriesConfig,
    /// The daemon (see [`crate::daemon`]).
    #[serde(default)]
    pub daemon: RawDaemonConfig,
}

/// The `daemon:` section of gantry.yaml, as written. Durations follow `gantry_common::duration`
/// (`90s`, `10m`, `1h 5m`, or seconds).
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

/// `gantry.yaml` as read, with where it was read from.
#[derive(Debug)]
pub struct Settings {
    pub path: PathBuf,
    pub raw: RawConfig,
}

impl Settings {
    /// Reads `<config_dir>/gantry.yaml`; a missing or empty file is the default configuration.
    pub fn load(config_dir: &Path) -> Result<Self, ConfigError> {
        let path = config_dir.join("gantry.yaml");
        let text = match gantry_common::fsx::read_bounded(&path, gantry_common::fsx::MAX_SMALL_FILE)
        {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        if text.trim().is_empty() {
            return Ok(Self {
                path,
                raw: RawConfig::default(),
            });
        }
        let raw = gantry_common::yaml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(Self { path, raw })
    }

    /// The `registries:` section with the process environment over it.
    pub fn registries(&self) -> Result<RegistriesConfig, ConfigError> {
        self.registries_with(&|key| std::env::var(key).ok())
    }

    fn registries_with(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<RegistriesConfig, ConfigError> {
        RegistriesConfig::resolve(&self.raw.registries, env).map_err(|e| ConfigError::Key {
            path: self.path.clone(),
            key: e.key,
            message: e.message,
        })
    }

    /// The daemon's configuration: the `daemon:` and `registries:` sections, the global flags,
    /// `--metrics-address` over `daemon.metrics_address`, and the process environment.
    pub fn daemon(
        &self,
        global: &GlobalArgs,
        metrics_override: Option<&str>,
    ) -> Result<DaemonConfig, ConfigError> {
        let mut config =
            self.daemon_section(&global.state_dir, &global.socket, metrics_override)?;
        config.registries = self.registries()?;
        config.environment = environment();
        Ok(config)
    }

    /// Validates the `daemon:` section alone (no registries, no environment).
    fn daemon_section(
        &self,
        state_dir: &Path,
        socket: &Path,
        metrics_override: Option<&str>,
    ) -> Result<DaemonConfig, ConfigError> {
        let raw = &self.raw.daemon;
        let key = |key: &str, message: String| ConfigError::Key {
            path: self.path.clone(),
            key: key.to_owned(),
            message,
        };
        let dur =
            |k: &str, v: &Option<String>, default: Duration| -> Result<Duration, ConfigError> {
                match v {
                    None => Ok(default),
                    Some(s) => gantry_common::duration::parse(s).map_err(|e| key(k, e.to_string())),
                }
            };
        let loopback = |s: &str| {
            gantry_common::net::parse_loopback(s).map_err(|e| {
                format!("{e} (metrics are served on loopback only; example: 127.0.0.1:9464)")
            })
        };
        let metrics_address = match (
            metrics_override.filter(|s| !s.is_empty()),
            &raw.metrics_address,
        ) {
            (Some(s), _) => Some(loopback(s).map_err(|message| ConfigError::Flag {
                flag: "--metrics-address",
                env: "GANTRY_METRICS_ADDRESS",
                message,
            })?),
            (None, Some(s)) if !s.is_empty() => {
                Some(loopback(s).map_err(|m| key("daemon.metrics_address", m))?)
            }
            (None, _) => None,
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
        let defaults = over(StackPolicy::default(), &raw.defaults);
        let mut stacks = BTreeMap::new();
        for (name, p) in &raw.stacks {
            let name = StackName::parse(name)
                .map_err(|e| key(&format!("daemon.stacks.{name}"), e.to_string()))?;
            stacks.insert(name, over(defaults, p));
        }
        let resync_interval = dur(
            "daemon.resync_interval",
            &raw.resync_interval,
            Duration::from_secs(60),
        )?;
        if resync_interval < Duration::from_secs(1) {
            return Err(key("daemon.resync_interval", "must be at least 1s".into()));
        }
        Ok(DaemonConfig {
            socket: socket.to_owned(),
            socket_group_explicit: raw.socket_group.is_some(),
            socket_group: Some(raw.socket_group.clone().unwrap_or_else(|| "gantry".into()))
                .filter(|g| !g.is_empty()),
            metrics_address,
            heal,
            debounce: dur("daemon.debounce", &raw.debounce, Duration::from_secs(2))?,
            resync_interval,
            defaults,
            stacks,
            state_dir: state_dir.to_owned(),
            registries: RegistriesConfig::default(),
            environment: BTreeMap::new(),
        })
    }
}

/// The process environment, for interpolation and the daemon: the variables whose name and
/// value are UTF-8 ([`std::env::vars`] panics on any other).
pub fn environment() -> BTreeMap<String, String> {
    utf8_variables(std::env::vars_os())
}

/// The UTF-8 variables of `vars`; another (a locale-encoded value, a stray byte) cannot be
/// interpolated, so it is left out and logged at debug, by name only: its value may be a
/// secret.
fn utf8_variables(
    vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> BTreeMap<String, String> {
    vars.into_iter()
        .filter_map(
            |(name, value)| match (name.into_string(), value.into_string()) {
                (Ok(name), Ok(value)) => Some((name, value)),
                (name, _) => {
                    let name = match &name {
                        Ok(n) => n.clone(),
                        Err(n) => n.to_string_lossy().into_owned(),
                    };
                    tracing::debug!(variable = %name, "environment variable left out: not UTF-8");
                    None
                }
            },
        )
        .collect()
}

/// `base` with what `raw` sets over it.
fn over(base: StackPolicy, raw: &RawStackPolicy) -> StackPolicy {
    StackPolicy {
        heal: raw.heal.unwrap_or(base.heal),
        reconcile: raw.reconcile.unwrap_or(base.reconcile),
        watch_env_files: raw.watch_env_files.unwrap_or(base.watch_env_files),
        watch_compose_files: raw.watch_compose_files.unwrap_or(base.watch_compose_files),
    }
}

#[cfg(test)]
mod tests;
