//! Tracing set-up shared by both binaries, and the cap that keeps third-party crates from
//! logging request and response data.
//!
//! Under systemd (`JOURNAL_STREAM` names the device and inode of our stderr) we log to journald
//! natively, with structured fields (`STACK=`, `SERVICE=`, ...) instead of text on stderr.
//! Otherwise we log to stderr, as compact text or as one JSON object a line. The level comes
//! from `--log-level`/`RUST_LOG` style directives. Nothing here ever writes a log file.
//!
//! The filter is parsed strictly ([`parse_filter`]): `RUST_LOG` wins when set, else the flag;
//! a directive that does not parse, or a bare word that is not a level (`warning`, which
//! `EnvFilter` would take for a target, silencing every other line), is refused with an error
//! naming the flag or `RUST_LOG`, and [`init`] exits 64 (a bad command line) before logging.
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

/// A log filter that cannot be used; names where it came from (`--log-level` or `RUST_LOG`).
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// A bare word that is not a level: `EnvFilter` would take it for a target and show only
    /// that target's events, silencing every other line (fatal errors included).
    #[error("{origin}: {word:?} is not a log level (hint: {hint})")]
    NotALevel {
        origin: &'static str,
        word: String,
        hint: String,
    },
    #[error(
        "{origin}: {filter:?} is not a log filter: {message} (hint: use error, warn, info, debug, trace or off, and TARGET=LEVEL for one target)"
    )]
    Invalid {
        origin: &'static str,
        filter: String,
        message: String,
    },
}

/// The levels a bare word may name (what `LevelFilter` reads, case aside).
const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// Parses a log filter strictly: comma-separated directives (spaces around them are ignored),
/// each a level (`warn`) or `TARGET=LEVEL` (any `EnvFilter` directive with `=` or a span
/// filter). Unlike `EnvFilter::new`, a directive that does not parse is an error, not dropped,
/// and a bare word that is not a level (`warning`) is refused instead of becoming a target.
/// `origin` names the filter's source in the error.
pub fn parse_filter(filter: &str, origin: &'static str) -> Result<EnvFilter, FilterError> {
    let words: Vec<&str> = filter.split(',').map(str::trim).collect();
    for &word in &words {
        let bare = !word.is_empty() && !word.contains(['=', '[', '{', ']', '}']);
        if bare && word.parse::<LevelFilter>().is_err() {
            let lower = word.to_ascii_lowercase();
            let near = LEVELS
                .iter()
                .find(|l| lower.len() >= 3 && (lower.starts_with(**l) || l.starts_with(&lower)));
            let hint = match near {
                Some(level) => format!("did you mean {level}?"),
                None => format!(
                    "use error, warn, info, debug, trace or off; for one target write {word}=LEVEL"
                ),
            };
            return Err(FilterError::NotALevel {
                origin,
                word: word.to_owned(),
                hint,
            });
        }
    }
    EnvFilter::builder()
        .parse(words.join(","))
        .map_err(|e| FilterError::Invalid {
            origin,
            filter: filter.to_owned(),
            message: e.to_string(),
        })
}

/// The filter in effect: `rust_log` (the `RUST_LOG` variable) when set, else `flag` (the
/// `--log-level` flag or its variable). Whichever it is must parse ([`parse_filter`]).
pub fn effective_filter(flag: &str, rust_log: Option<&str>) -> Result<EnvFilter, FilterError> {
    match rust_log {
        Some(env) => parse_filter(env, "RUST_LOG"),
        None => parse_filter(flag, "--log-level"),
    }
}

/// Installs the global subscriber. `filter` is a level (`info`) or directives such as
/// `warn,gantry_agent=debug`; `RUST_LOG` wins when set (see [`effective_filter`]).
/// `syslog_identifier` names us in the journal. Whatever the filter, third-party crates are
/// capped ([`ThirdPartyCap`]). A filter that does not parse is refused before anything is
/// installed.
pub fn try_init(
    filter: &str,
    format: LogFormat,
    syslog_identifier: &str,
) -> Result<(), FilterError> {
    let filter = effective_filter(filter, std::env::var("RUST_LOG").ok().as_deref())?;
    install(filter, format, syslog_identifier);
    Ok(())
}

/// [`try_init`] for a program's `main`: a filter that does not parse is a bad command line,
/// reported on stderr (`<syslog_identifier>: <error>`) with exit code 64 (EX_USAGE), as both
/// programs report their other usage errors.
pub fn init(filter: &str, format: LogFormat, syslog_identifier: &str) {
    if let Err(e) = try_init(filter, format, syslog_identifier) {
        eprintln!("{syslog_identifier}: {e}");
        std::process::exit(crate::exit::ExitCode::Usage.as_i32());
    }
}

fn install(filter: EnvFilter, format: LogFormat, syslog_identifier: &str) {
    use tracing_subscriber::filter::FilterExt;
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
            .with_filter(parse_filter(directives, "test").unwrap().and(ThirdPartyCap));
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

    /// Review item: `EnvFilter::new("warning")` makes `warning` a target, so a mistyped level
    /// silenced every line, fatal errors included. Such a word is now refused.
    #[test]
    fn a_word_that_is_not_a_level_is_refused_not_taken_for_a_target() {
        // What EnvFilter alone does with it: the error below would never be seen.
        let silenced = {
            use tracing_subscriber::filter::FilterExt;
            let buf = Buf::default();
            let out = buf.clone();
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(move || out.clone())
                .with_filter(EnvFilter::new("warning").and(ThirdPartyCap));
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::with_default(subscriber, || {
                tracing::error!(target: "gantry_agent::deploy", "fatal");
            });
            buf.0.lock().unwrap().is_empty()
        };
        assert!(silenced);

        for (filter, word, hint) in [
            ("warning", "warning", "did you mean warn?"),
            ("info,Warning", "Warning", "did you mean warn?"),
            ("err", "err", "did you mean error?"),
            ("gantry_agent", "gantry_agent", "gantry_agent=LEVEL"),
            (
                "verbose",
                "verbose",
                "use error, warn, info, debug, trace or off",
            ),
        ] {
            let e = parse_filter(filter, "--log-level").unwrap_err();
            assert!(
                matches!(&e, FilterError::NotALevel { word: w, .. } if w == word),
                "{filter}: {e:?}"
            );
            let e = e.to_string();
            assert!(
                e.starts_with("--log-level: ") && e.contains(word) && e.contains(hint),
                "{filter}: {e}"
            );
        }
        // A directive that does not parse is an error too (EnvFilter::new drops it).
        let e = parse_filter("info,gantry_agent=loud", "--log-level").unwrap_err();
        assert!(matches!(e, FilterError::Invalid { .. }), "{e:?}");
        assert!(e.to_string().contains("gantry_agent=loud"), "{e}");

        for ok in [
            "info",
            "WARN",
            "off",
            "3",
            "warn,gantry_agent=debug",
            " info , gantry_sidecar=trace ",
            "info,bollard[{x}]=trace",
            "[conn]=debug",
            "",
        ] {
            parse_filter(ok, "--log-level").unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
    }

    #[test]
    fn rust_log_wins_and_is_checked_the_same_way() {
        let e = effective_filter("info", Some("warning"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("RUST_LOG: ") && e.contains("warn?"), "{e}");
        // The filter in effect is RUST_LOG's: debug lines show although the flag says warn.
        let f = effective_filter("warn", Some("debug")).unwrap();
        assert_eq!(f.max_level_hint(), Some(LevelFilter::DEBUG));
        let f = effective_filter("warn", None).unwrap();
        assert_eq!(f.max_level_hint(), Some(LevelFilter::WARN));
        let e = effective_filter("warning", None).unwrap_err().to_string();
        assert!(e.starts_with("--log-level: "), "{e}");
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
