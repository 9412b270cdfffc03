//! Signal names as operators write them (`restart.signal`, `on_change.signal`, compose's
//! `stop_signal`): one parser for both programs.
//!
//! Accepted: `SIGTERM`, `TERM`, `sigterm`, `SigHup` (any case, with or without `SIG`), or the
//! number (`15`). Design: normalise to `SIGNAME` and let `nix` resolve it, so the set is the
//! platform's. Limits: real-time signals (`SIGRTMIN+3`) are not named here; give their number.

use std::str::FromStr;

use nix::sys::signal::Signal;

/// Why a text is not a signal. Names the text (signal names are never secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    #[error("{0} is not a signal number")]
    Number(i32),
    #[error("{0:?} is not a signal name (like SIGTERM or HUP)")]
    Name(String),
}

/// Parses a signal name or number by the rule in the module header.
pub fn parse(text: &str) -> Result<Signal, SignalError> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| SignalError::Number(n));
    }
    let upper = t.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| SignalError::Name(t.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling() {
        for s in ["SIGHUP", "HUP", "hup", "SigHup", " sighup ", "1"] {
            assert_eq!(parse(s), Ok(Signal::SIGHUP), "{s}");
        }
        assert_eq!(parse("usr1"), Ok(Signal::SIGUSR1));
        assert_eq!(parse("15"), Ok(Signal::SIGTERM));
    }

    #[test]
    fn refuses_unknown_names_and_numbers() {
        assert_eq!(parse("SIGNOPE"), Err(SignalError::Name("SIGNOPE".into())));
        assert_eq!(parse("999"), Err(SignalError::Number(999)));
        assert!(parse("").is_err());
        assert!(
            parse("bogus")
                .unwrap_err()
                .to_string()
                .contains("like SIGTERM")
        );
    }
}
