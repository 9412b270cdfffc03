//! Durations as operators write them in Gantry's files, flags and environment: one rule for
//! both programs.
//!
//! The rule: one or more `<integer><unit>` parts, optionally separated by blanks (`500ms`,
//! `30s`, `1m30s`, `1h 5m`), or a bare integer, which is seconds (`60`). Units: `ns`, `us`/`µs`,
//! `ms`, `s`/`sec`/`secs`/`second`/`seconds`, `m`/`min`/`mins`/`minute`/`minutes`,
//! `h`/`hr`/`hour`/`hours`, `d`/`day`/`days`, `w`/`week`/`weeks`. Values above [`MAX`] (100 years) saturate at it instead of failing or
//! panicking: "wait forever" written with too many digits still means "practically never", and
//! the result can be added to an `Instant` or multiplied by a small factor without overflow
//! ([`Duration::MAX`] would make `Instant::now() + d` panic).
//!
//! Design: a hand-written scanner with checked arithmetic (humantime's parser reports an
//! overflow as an error and accepts months and years of approximate length).
//!
//! Limits: no fractions (`1.5s`: write `1500ms`), no negative values, no months or years.
//! Compose's own duration fields (Go syntax, in the agent's canonical model) keep their rule.

use std::time::Duration;

/// The ceiling every parsed duration saturates at: 100 years of 365.25 days.
pub const MAX: Duration = Duration::from_secs(3_155_760_000);

/// Why a text is not a duration. Names the text (durations are never secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration: {reason} (write it like 60s, 1m30s or 500ms)")]
pub struct DurationError {
    pub text: String,
    pub reason: String,
}

/// Parses a duration by the rule in the module header.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let fail = |reason: &str| DurationError {
        text: text.to_owned(),
        reason: reason.to_owned(),
    };
    let t = text.trim();
    if t.is_empty() {
        return Err(fail("it is empty"));
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Duration::from_secs(saturating_u64(t)).min(MAX));
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(fail("expected a number before each unit"));
        }
        let n = saturating_u64(&rest[..digits]);
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| !c.is_alphabetic())
            .map_or(rest.len(), |(i, _)| i);
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let part = match unit {
            "" => return Err(fail("a number without a unit inside a duration")),
            "ns" | "nsec" => Duration::from_nanos(n),
            "us" | "µs" | "usec" => Duration::from_micros(n),
            "ms" | "msec" => Duration::from_millis(n),
            "s" | "sec" | "secs" | "second" | "seconds" => Duration::from_secs(n),
            "m" | "min" | "mins" | "minute" | "minutes" => secs_times(n, 60),
            "h" | "hr" | "hour" | "hours" => secs_times(n, 3600),
            "d" | "day" | "days" => secs_times(n, 86_400),
            "w" | "week" | "weeks" => secs_times(n, 604_800),
            _ => return Err(fail(&format!("unknown unit {unit:?}"))),
        };
        total = total.saturating_add(part);
    }
    Ok(total.min(MAX))
}

fn saturating_u64(digits: &str) -> u64 {
    digits.parse().unwrap_or(u64::MAX)
}

fn secs_times(n: u64, unit: u64) -> Duration {
    Duration::from_secs(n.saturating_mul(unit))
}

/// `clap` value parser spelling of [`parse`].
pub fn parse_arg(text: &str) -> Result<Duration, String> {
    parse(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn every_documented_form() {
        let s = Duration::from_secs;
        assert_eq!(parse("60").unwrap(), s(60));
        assert_eq!(parse(" 30s ").unwrap(), s(30));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("1m30s").unwrap(), s(90));
        assert_eq!(parse("1h 5m").unwrap(), s(3900));
        assert_eq!(parse("2d").unwrap(), s(172_800));
        assert_eq!(parse("1w").unwrap(), s(604_800));
        assert_eq!(parse("10 minutes").unwrap(), s(600));
        assert_eq!(parse("7us").unwrap(), Duration::from_micros(7));
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn refuses_what_it_cannot_read_and_says_how_to_write_it() {
        for bad in ["", "  ", "s", "1.5s", "-1s", "10 parsecs", "1m30", "fast"] {
            let e = parse(bad).unwrap_err();
            assert!(e.to_string().contains("like 60s, 1m30s"), "{bad}: {e}");
        }
    }

    #[test]
    fn huge_values_saturate_instead_of_failing_or_panicking() {
        assert_eq!(parse("99999999999999999999999").unwrap(), MAX);
        assert_eq!(parse("99999999999999999999h").unwrap(), MAX);
        assert_eq!(parse(&format!("{}w", u64::MAX)).unwrap(), MAX);
        assert_eq!(parse(&format!("{}s {}s", u64::MAX, u64::MAX)).unwrap(), MAX);
        assert_eq!(
            parse("36500d").unwrap(),
            Duration::from_secs(36500 * 86_400)
        );
        // What callers do with it does not overflow.
        let d = parse("9999999999999w").unwrap();
        let _ = std::time::Instant::now() + d * 3;
    }

    /// Every unit the parser accepts, with its length in nanoseconds.
    const UNITS: &[(&str, u128)] = &[
        ("ns", 1),
        ("nsec", 1),
        ("us", 1_000),
        ("µs", 1_000),
        ("usec", 1_000),
        ("ms", 1_000_000),
        ("msec", 1_000_000),
        ("s", S),
        ("sec", S),
        ("secs", S),
        ("second", S),
        ("seconds", S),
        ("m", 60 * S),
        ("min", 60 * S),
        ("mins", 60 * S),
        ("minute", 60 * S),
        ("minutes", 60 * S),
        ("h", 3600 * S),
        ("hr", 3600 * S),
        ("hour", 3600 * S),
        ("hours", 3600 * S),
        ("d", 86_400 * S),
        ("day", 86_400 * S),
        ("days", 86_400 * S),
        ("w", 604_800 * S),
        ("week", 604_800 * S),
        ("weeks", 604_800 * S),
    ];
    /// A second in nanoseconds.
    const S: u128 = 1_000_000_000;

    /// `ns` nanoseconds (exact, never overflowing in u128), saturating at [`MAX`].
    fn saturated(ns: u128) -> Duration {
        let ns = ns.min(MAX.as_nanos());
        let secs = u64::try_from(ns / S).unwrap();
        Duration::new(secs, u32::try_from(ns % S).unwrap())
    }

    /// Numbers across the whole range: small ones, any, and those around the ceiling.
    fn number() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..1000,
            any::<u64>(),
            Just(u64::MAX),
            (MAX.as_secs() - 2)..(MAX.as_secs() + 2),
        ]
    }

    proptest! {
        /// Any text: read or refused, never a panic, never above the ceiling.
        #[test]
        fn any_text_is_read_or_refused_never_above_max(text in any::<String>()) {
            if let Ok(d) = parse(&text) {
                prop_assert!(d <= MAX, "{text:?}: {d:?}");
            }
        }

        /// Text close to a duration (digits, blanks, letters, `µ`, huge numbers) likewise.
        #[test]
        fn duration_like_text_is_read_or_refused_never_above_max(
            text in "[0-9 ]{0,25}[a-zµ]{0,8}([0-9]{0,25} ?[a-zµ]{0,8}){0,3}",
        ) {
            if let Ok(d) = parse(&text) {
                prop_assert!(d <= MAX, "{text:?}: {d:?}");
            }
        }

        #[test]
        fn n_units_are_n_times_the_unit_saturating_at_max(
            n in number(),
            (unit, unit_ns) in prop::sample::select(UNITS),
            blank in prop_oneof!["", " "],
        ) {
            let text = format!("{n}{blank}{unit}");
            prop_assert_eq!(parse(&text), Ok(saturated(u128::from(n) * unit_ns)), "{}", text);
        }

        #[test]
        fn a_bare_number_is_seconds_saturating_at_max(n in number()) {
            prop_assert_eq!(parse(&n.to_string()), Ok(saturated(u128::from(n) * S)));
        }

        #[test]
        fn parts_add_up_saturating_at_max(
            parts in prop::collection::vec((number(), prop::sample::select(UNITS)), 1..4),
        ) {
            let text: String = parts.iter().map(|(n, (unit, _))| format!("{n}{unit} ")).collect();
            let ns = parts.iter().map(|(n, (_, unit_ns))| u128::from(*n) * unit_ns).sum();
            prop_assert_eq!(parse(&text), Ok(saturated(ns)), "{}", text);
        }
    }
}
