//! Tracing set-up shared by both binaries.
//!
//! Under systemd (`JOURNAL_STREAM` names the device and inode of our stderr) we log to journald
//! natively, with structured fields (`STACK=`, `SERVICE=`, ...) instead of text on stderr.
//! Otherwise we log to stderr, as compact text or as one JSON object a line. The level comes
//! from `--log-level`/`RUST_LOG` style directives. Nothing here ever writes a log file.

use std::os::unix::fs::MetadataExt;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How to write logs to stderr when not under journald.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown log format {other:?}: use text or json")),
        }
    }
}

/// Whether stderr is connected to the journal (systemd sets `JOURNAL_STREAM=dev:inode`).
pub fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse::<u64>().ok() == Some(meta.dev()) && ino.parse::<u64>().ok() == Some(meta.ino())
}

/// Installs the global subscriber. `filter` is an `EnvFilter` directive such as `info` or
/// `gantry_agent=debug`; `RUST_LOG` wins when set. `syslog_identifier` names us in the journal.
pub fn init(filter: &str, format: LogFormat, syslog_identifier: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    if stderr_is_journal()
        && let Ok(journald) = tracing_journald::layer()
    {
        let layer = journald.with_syslog_identifier(syslog_identifier.to_owned());
        let _ = tracing_subscriber::registry()
            .with(layer.with_filter(filter))
            .try_init();
        return;
    }
    use std::io::IsTerminal;
    let base = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let layer = match format {
        LogFormat::Text => base.compact().with_target(false).boxed(),
        LogFormat::Json => base.json().flatten_event(true).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
}
