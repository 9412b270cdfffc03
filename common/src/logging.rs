//! Tracing set-up shared by both binaries, and the cap that keeps third-party crates from
//! logging request and response data.
//!
//! Under systemd (`JOURNAL_STREAM` names the device and inode of our stderr) we log to journald
//! natively, with structured fields (`STACK=`, `SERVICE=`, ...) instead of text on stderr.
//! Otherwise we log to stderr, as compact text or as one JSON object a line. The level comes
//! from `--log-level`/`RUST_LOG` style directives. Nothing here ever writes a log file.
//!
//! Design: every output goes through two filters, both of which must pass. The user's filter
//! (`--log-level`, `GANTRY_LOG`, `RUST_LOG`, any `EnvFilter` directive) decides what the user
//! wants to see. The [`ThirdPartyCap`] decides what may be seen at all: Gantry's own targets
//! (`gantry`, `gantryd`, `gantry_*`) pass at any level; every other target is capped at
//! [`DEFAULT_CAP`] (INFO), and the crates listed in [`CAPS`] lower, because their debug and
//! trace events carry HTTP request/response bodies or headers (Docker's container create and
//! inspect carry `Env`; Vault's carry tokens and secret data; Secrets Manager's carry
//! `SecretString`). The cap is a separate filter, not extra directives, so no directive the
//! user writes (`bollard=trace`, `bollard::docker[{x}]=trace`, `trace`) can lift it. Records of
//! crates that use the `log` crate (bollard, rustls, reqwest) come through `tracing-log` under
//! their own target and are capped the same way; a record whose target we cannot see (`log`)
//! is treated as third-party.
//! docs/security.md states the rule and the per-crate reasons.
//!
//! Limits: a Gantry event that puts a secret in a field is not caught here (that is what
//! `Secret` is for); a third-party crate that logs a secret at INFO or above would not be
//! caught either (none of the crates in the tree does, see docs/security.md).

use std::os::unix::fs::MetadataExt;

use tracing::level_filters::LevelFilter;
use tracing::{Level, Metadata};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
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

/// The most verbose level any third-party target may log at.
pub const DEFAULT_CAP: Level = Level::INFO;

/// Crates capped below [`DEFAULT_CAP`] (matched on the first path segment of the target, `-`
/// and `_` alike). Why each one is here is in docs/security.md.
pub const CAPS: &[(&str, Level)] = &[
    // debug: every request body (container create: `Env`) and every decoded response body
    // (inspect: `Env`), request URIs; trace: raw request bytes, query pairs; info: a build
    // container's stdout, verbatim.
    ("bollard", Level::WARN),
    // debug/trace: frames and header blocks (`X-Registry-Auth`, `X-Vault-Token`).
    ("h2", Level::WARN),
    ("hyper", Level::WARN),
    ("hyper_util", Level::WARN),
    ("hyperlocal", Level::WARN),
    ("hyper_rustls", Level::WARN),
    // trace `reqwest::connect::verbose`: every byte read and written, headers included.
    ("reqwest", Level::WARN),
    // debug/trace: handshake details.
    ("rustls", Level::WARN),
    ("tokio_rustls", Level::WARN),
    ("tower", Level::WARN),
    ("tower_http", Level::WARN),
];

/// The cap of a target's crate: `None` for Gantry's own targets (no cap).
pub fn cap_for(target: &str) -> Option<Level> {
    let krate = target.split("::").next().unwrap_or(target);
    if matches!(krate, "gantry" | "gantryd")
        || krate.starts_with("gantry_")
        || krate.starts_with("gantry-")
    {
        return None;
    }
    let krate = krate.replace('-', "_");
    let cap = CAPS
        .iter()
        .find(|(name, _)| *name == krate)
        .map_or(DEFAULT_CAP, |(_, level)| *level);
    Some(cap)
}

/// Whether an event or span of `target` at `level` may be logged at all.
pub fn allowed(target: &str, level: &Level) -> bool {
    cap_for(target).is_none_or(|cap| *level <= cap)
}

/// The per-output filter that applies [`CAPS`] and [`DEFAULT_CAP`] whatever the user's filter
/// says.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThirdPartyCap;

impl<S> Filter<S> for ThirdPartyCap {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        allowed(meta.target(), meta.level())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        if allowed(meta.target(), meta.level()) {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
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
/// Whatever the filter, third-party crates are capped ([`ThirdPartyCap`]).
pub fn init(filter: &str, format: LogFormat, syslog_identifier: &str) {
    use tracing_subscriber::filter::FilterExt;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let filter = filter.and(ThirdPartyCap);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs `f` under the same filters as [`init`] with `directives` as the user's filter,
    /// returns what was printed.
    fn capture(directives: &str, f: impl FnOnce()) -> String {
        use tracing_subscriber::filter::FilterExt;
        let buf = Buf::default();
        let out = buf.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .with_filter(EnvFilter::new(directives).and(ThirdPartyCap));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn third_party_bodies_are_dropped_whatever_the_directives() {
        for directives in [
            "trace",
            "warn,bollard=trace,h2=trace,hyper=trace,reqwest=trace,aws_smithy_runtime=trace",
            "warn,bollard::docker=trace,aws_smithy_runtime::client=trace",
            "info,bollard[{x}]=trace",
        ] {
            let text = capture(directives, || {
                tracing::debug!(target: "bollard::docker", "request body SECRET-1");
                tracing::trace!(target: "bollard::read", "response SECRET-2");
                tracing::info!(target: "bollard::grpc", "container stdout SECRET-3");
                tracing::trace!(target: "h2::codec", "frame SECRET-4");
                tracing::trace!(target: "reqwest::connect::verbose", "write SECRET-5");
                tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", "body SECRET-6");
                tracing::debug!(target: "some_new_crate", "SECRET-7");
                tracing::debug!(target: "log", "SECRET-8");
                let span = tracing::trace_span!(target: "hyper::proto", "conn", hdr = "SECRET-9");
                let _g = span.enter();
                tracing::warn!(target: "gantry_agent::engine", "own event inside a capped span");
            });
            assert!(!text.contains("SECRET"), "{directives}: {text}");
            assert!(text.contains("own event"), "{directives}: {text}");
        }
    }

    #[test]
    fn gantry_targets_follow_the_user_and_third_party_keeps_its_warnings() {
        let text = capture("trace", || {
            tracing::trace!(target: "gantry_agent::deploy", "agent trace");
            tracing::trace!(target: "gantry_sidecar::source", "sidecar trace");
            tracing::trace!(target: "gantryd", "binary trace");
            tracing::warn!(target: "bollard::docker", "bollard warning");
            tracing::info!(target: "aws_config::profile", "aws info");
            tracing::info!(target: "hyper_util::client", "hyper info");
        });
        for want in [
            "agent trace",
            "sidecar trace",
            "binary trace",
            "bollard warning",
            "aws info",
        ] {
            assert!(text.contains(want), "{want} missing: {text}");
        }
        assert!(!text.contains("hyper info"), "{text}");
        // The user's filter still narrows: third-party info is not shown at warn.
        let text = capture("warn", || {
            tracing::info!(target: "aws_config::profile", "aws info");
            tracing::trace!(target: "gantry_agent::deploy", "agent trace");
        });
        assert_eq!(text, "");
    }

    #[test]
    fn caps_by_crate() {
        assert_eq!(cap_for("gantry_agent::engine::docker"), None);
        assert_eq!(cap_for("gantry-secrets"), None);
        assert_eq!(cap_for("bollard"), Some(Level::WARN));
        assert_eq!(cap_for("hyper-util"), Some(Level::WARN));
        assert_eq!(cap_for("aws_sigv4::http_request"), Some(Level::INFO));
        assert_eq!(cap_for("gantryish"), Some(Level::INFO));
        assert!(allowed("tokio::task", &Level::INFO));
        assert!(!allowed("tokio::task", &Level::DEBUG));
    }
}
