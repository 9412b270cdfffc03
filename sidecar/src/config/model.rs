//! The validated configuration's parts: output files, actions after a change, and exec
//! mode's restart policy.
//!
//! Design: plain data with typed fields (signals resolved, modes as numbers, owners as ids),
//! built only by [`super::validate`]; `render`, `host` and `supervise` read them.
//!
//! Limits: the paths are not checked for existence here (a missing directory is an error when
//! the file is written).

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Deserialize;

use super::{
    DEFAULT_DEBOUNCE, DEFAULT_MIN_INTERVAL, DEFAULT_RESTART_TIMEOUT, DEFAULT_STOP_TIMEOUT,
};

/// Output file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `KEY='value'` lines that Docker Compose's `env_file` reads back exactly.
    Dotenv,
    /// One JSON object, key → string.
    Json,
    /// One value (or the binary secret) as-is.
    Raw,
}

/// One rendered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub path: PathBuf,
    pub format: Format,
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Source ids that feed this file; `None`: all sources.
    pub sources: Option<Vec<String>>,
    /// Keys to keep; `None`: all keys of those sources.
    pub keys: Option<Vec<String>>,
    /// Overrides the top-level action for this file.
    pub on_change: Option<Action>,
}

/// What to do after an output file changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Action {
    /// Nothing (the agent watches env files itself).
    #[default]
    None,
    /// Send `signal` to the pid read from `pid_file`.
    SignalPidFile { signal: Signal, pid_file: PathBuf },
    /// Send `signal` to the main process of a systemd unit (`systemctl show -p MainPID`).
    SignalUnit { signal: Signal, unit: String },
    /// Run a program (no shell), waiting up to `timeout`.
    Command {
        argv: Vec<String>,
        timeout: Duration,
    },
}

/// How exec mode restarts or stops its child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub signal: Signal,
    pub timeout: Duration,
    pub stop_timeout: Duration,
    pub debounce: Duration,
    pub min_interval: Duration,
    pub exit_on_change: bool,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            signal: Signal::SIGTERM,
            timeout: DEFAULT_RESTART_TIMEOUT,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            debounce: DEFAULT_DEBOUNCE,
            min_interval: DEFAULT_MIN_INTERVAL,
            exit_on_change: false,
        }
    }
}
