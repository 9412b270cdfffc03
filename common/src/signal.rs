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
    use proptest::prelude::*;

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

    fn signal() -> impl Strategy<Value = Signal> {
        prop::sample::select(Signal::iterator().collect::<Vec<_>>())
    }

    /// A signal's name as an operator might write it: any case, with or without `SIG`, with
    /// blanks around it.
    fn spelling() -> impl Strategy<Value = (Signal, String)> {
        (
            signal(),
            any::<bool>(),
            prop::collection::vec(any::<bool>(), 12),
            "[ \t]{0,2}",
            "[ \t\n]{0,2}",
        )
            .prop_map(|(sig, with_sig, upper, before, after)| {
                let name = if with_sig {
                    sig.as_str()
                } else {
                    &sig.as_str()[3..]
                };
                let name: String = name
                    .chars()
                    .zip(upper.iter().cycle())
                    .map(|(c, &up)| if up { c } else { c.to_ascii_lowercase() })
                    .collect();
                (sig, format!("{before}{name}{after}"))
            })
    }

    proptest! {
        /// Whatever is accepted is what the text names: its number, or its name in any case
        /// with or without `SIG`.
        #[test]
        fn anything_accepted_is_the_signal_the_text_names(
            text in prop_oneof![
                any::<String>(),
                "[ +-]?[0-9]{1,3}",
                "[sSiIgG]{0,3}[a-zA-Z0-9]{1,8}",
            ],
        ) {
            if let Ok(sig) = parse(&text) {
                let t = text.trim();
                let upper = t.to_ascii_uppercase();
                prop_assert!(
                    t.parse::<i32>() == Ok(sig as i32)
                        || upper == sig.as_str()
                        || upper == sig.as_str()[3..],
                    "{text:?} read as {sig}"
                );
            }
        }

        #[test]
        fn every_spelling_of_a_name_reads_as_its_signal((sig, text) in spelling()) {
            prop_assert_eq!(parse(&text), Ok(sig), "{:?}", text);
        }

        /// A signal's name and its number read back as it.
        #[test]
        fn names_and_numbers_round_trip(sig in signal()) {
            prop_assert_eq!(parse(sig.as_str()), Ok(sig));
            prop_assert_eq!(parse(&(sig as i32).to_string()), Ok(sig));
        }
    }
}
