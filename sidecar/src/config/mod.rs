//! Configuration of `gantry-secrets`: the YAML file, the environment-only form, and flags.
//!
//! Design: the file is read into [`RawConfig`] (`deny_unknown_fields`, everything optional),
//! then validated into [`Config`] (durations parsed, signals resolved, owners looked up, the
//! listener checked to be loopback). Layering is file < environment < flags: [`Overrides`]
//! carries the scalar settings of one layer and [`load`] applies them in that order. The
//! `sources:`/`vault:` parts belong to the backends (`crate::source`): they are kept as YAML
//! here and handed on untouched. When no file is given (containers), the sources come from the
//! environment (`VAULT_ADDR`, `VAULT_SECRET_PATH`, `GANTRY_SECRETS_AWS_IDS`, ...).
//!
//! Every error names where the bad value came from (the file path, the environment variable or
//! the flag) and the key, never a secret.
//!
//! Files: [`raw`] (the file as written), [`validate`] (raw text to typed values, overrides),
//! [`model`] (outputs, actions, restart policy); this module holds the entry point [`load`],
//! the error type and [`Config`]. Dependencies point one way: `config` uses `source` (the
//! backends validate their own part) and `gantry_common`; `render`, `host`, `supervise` and
//! `cli` use `config`, never the reverse.
//!
//! Limits: outputs' `sources:` are matched against the sources' ids (`vault:kv/app`) after the
//! sources are built, so an unknown id is reported at start, not here.

mod model;
mod raw;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::source::{self, RawSourcesConfig, SourcesConfig};

pub use model::{Action, Format, Output, RestartPolicy};
pub use raw::{RawAction, RawConfig, RawOutput, RawRestart, parse_raw};
use validate::{OverrideOrigin, apply};
pub use validate::{parse_listen, parse_signal, validate};

/// Default interval between two checks of a source when it does not say otherwise.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);
/// Default time given to the child to stop on a restart before SIGKILL.
pub const DEFAULT_RESTART_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time given to the child to stop when we are asked to stop (below ECS's 30 s).
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(25);
/// Default quiet period that gathers several changes into one restart or render.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);
/// Default minimum time between two restarts of the child.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(5);

/// Why the configuration cannot be used. Exit code 78.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{column}: {message}")]
    Parse {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// Several problems, each on its own line.
    #[error("{} problems:\n  {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Many(Vec<ConfigError>),
    #[error("{origin}: {key}: {message}{}", hint.as_ref().map(|h| format!(" (hint: {h})")).unwrap_or_default())]
    Invalid {
        origin: String,
        key: String,
        message: String,
        hint: Option<String>,
    },
}

impl ConfigError {
    fn invalid(origin: &str, key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            origin: origin.to_owned(),
            key: key.into(),
            message: message.into(),
            hint: None,
        }
    }
    /// `None` for no error, the error itself for one, [`ConfigError::Many`] for more.
    fn many(mut errs: Vec<ConfigError>) -> Option<Self> {
        match errs.len() {
            0 => None,
            1 => errs.pop(),
            _ => Some(Self::Many(errs)),
        }
    }

    fn hint(mut self, h: impl Into<String>) -> Self {
        if let Self::Invalid { hint, .. } = &mut self {
            *hint = Some(h.into());
        }
        self
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The sources, validated by `crate::source` (file < environment), `refresh` set.
    pub sources: SourcesConfig,
    pub outputs: Vec<Output>,
    /// Default refresh interval (sources may ask for another through `next_refresh`).
    pub refresh: Duration,
    /// How long a source may go without a successful refresh and still count as ready.
    pub grace: Option<Duration>,
    pub on_change: Action,
    pub restart: RestartPolicy,
    pub listen: Option<SocketAddr>,
    /// The config file, if any.
    pub file: Option<PathBuf>,
}

impl Config {
    /// The readiness grace: the configured one or three refresh intervals.
    pub fn grace(&self) -> Duration {
        self.grace.unwrap_or(self.refresh * 3)
    }
}

/// Scalar settings that the environment or flags can override.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub refresh: Option<String>,
    pub restart_signal: Option<String>,
    pub restart_timeout: Option<String>,
    pub stop_timeout: Option<String>,
    pub exit_on_change: Option<String>,
    pub listen: Option<String>,
}

impl Overrides {
    /// The `GANTRY_SECRETS_*` variables of `env`.
    pub fn from_env(env: &BTreeMap<String, String>) -> Self {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        Self {
            refresh: get("GANTRY_SECRETS_REFRESH"),
            restart_signal: get("GANTRY_SECRETS_RESTART_SIGNAL"),
            restart_timeout: get("GANTRY_SECRETS_RESTART_TIMEOUT"),
            stop_timeout: get("GANTRY_SECRETS_STOP_TIMEOUT"),
            exit_on_change: get("GANTRY_SECRETS_EXIT_ON_CHANGE"),
            listen: get("GANTRY_SECRETS_LISTEN"),
        }
    }
}

/// Loads the configuration: `file` (if any) < `env` < `flags`.
pub fn load(
    file: Option<&Path>,
    env: &BTreeMap<String, String>,
    flags: &Overrides,
) -> Result<Config, ConfigError> {
    let (mut raw, origin) = match file {
        Some(path) => {
            let text = gantry_common::fsx::read_bounded(path, gantry_common::fsx::MAX_SMALL_FILE)
                .map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let origin = path.display().to_string();
            (parse_raw(&text, &origin)?, origin)
        }
        None => (RawConfig::default(), "environment".to_owned()),
    };
    let raw_sources = RawSourcesConfig {
        sources: std::mem::take(&mut raw.sources),
        vault: raw.vault.take(),
        aws: raw.aws.take(),
    };
    let file_has_sources =
        !raw_sources.sources.is_empty() || raw_sources.vault.is_some() || raw_sources.aws.is_some();
    // Every problem (file, environment, flags, sources) is reported at once.
    let mut errs: Vec<ConfigError> = Vec::new();
    let mut settings = validate(raw, &origin).unwrap_or_else(|e| {
        errs.push(e);
        Settings::default()
    });
    apply(
        &mut settings,
        &Overrides::from_env(env),
        OverrideOrigin::Env,
        &mut errs,
    );
    apply(&mut settings, flags, OverrideOrigin::Flag, &mut errs);
    let source_err = |origin: &str, e: source::ConfigError| match e {
        source::ConfigError::Invalid {
            field,
            message,
            hint,
        } => {
            let e = ConfigError::invalid(origin, field, message);
            match hint {
                Some(h) => e.hint(h),
                None => e,
            }
        }
    };
    let merged_origin = if source::config::raw_sources_from_env(env).is_some() && file_has_sources {
        format!("{origin} + environment")
    } else if file_has_sources {
        origin.clone()
    } else {
        "environment".to_owned()
    };
    let sources = match source::merge(file_has_sources.then_some(&raw_sources), env) {
        Ok(Some(s)) if !s.sources.is_empty() => Some(s),
        Ok(_) => {
            errs.push(
                ConfigError::invalid(&origin, "sources", "no secret source is configured").hint(
                    "list them under `sources:` in the file, or set VAULT_SECRET_PATH or \
                     GANTRY_SECRETS_AWS_IDS",
                ),
            );
            None
        }
        Err(e) => {
            errs.push(source_err(&merged_origin, e));
            None
        }
    };
    let flat: Vec<ConfigError> = errs
        .into_iter()
        .flat_map(|e| match e {
            ConfigError::Many(v) => v,
            e => vec![e],
        })
        .collect();
    if let Some(e) = ConfigError::many(flat) {
        return Err(e);
    }
    let Some(mut sources) = sources else {
        unreachable!("a missing source is an error above")
    };
    sources.refresh = settings.refresh;
    Ok(Config {
        sources,
        outputs: settings.outputs,
        refresh: settings.refresh,
        grace: settings.grace,
        on_change: settings.on_change,
        restart: settings.restart,
        listen: settings.listen,
        file: file.map(Path::to_path_buf),
    })
}

/// Everything of [`Config`] but the sources.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub outputs: Vec<Output>,
    pub refresh: Duration,
    pub grace: Option<Duration>,
    pub on_change: Action,
    pub restart: RestartPolicy,
    pub listen: Option<SocketAddr>,
}

#[cfg(test)]
mod tests;
