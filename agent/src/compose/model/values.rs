//! Value types of the model: the restart policy, Go-style durations, sizes in bytes, and the
//! serde helpers that print sizes and file modes the way compose does.
//!
//! Design: each type parses what compose accepts and prints what compose prints
//! (`1m30s`, `"67108864"`, `"0440"`), so the model round-trips through compose's JSON. A
//! parse error says what was expected, never the text: the caller knows whether the text was
//! interpolated (and may be a secret) and quotes it, or its text as written, itself.
//!
//! Limits: durations are non-negative (compose's are too, where Gantry uses them).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A service's `restart:` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    No,
    Always,
    /// `on-failure[:max-retries]`.
    OnFailure(Option<u32>),
    UnlessStopped,
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Restart::No => f.write_str("no"),
            Restart::Always => f.write_str("always"),
            Restart::OnFailure(None) => f.write_str("on-failure"),
            Restart::OnFailure(Some(n)) => write!(f, "on-failure:{n}"),
            Restart::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

impl FromStr for Restart {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "no" | "" => Ok(Restart::No),
            "always" => Ok(Restart::Always),
            "unless-stopped" => Ok(Restart::UnlessStopped),
            "on-failure" => Ok(Restart::OnFailure(None)),
            _ => match s.strip_prefix("on-failure:") {
                Some(n) => n
                    .parse()
                    .map(|n| Restart::OnFailure(Some(n)))
                    .map_err(|_| "the retry count of on-failure:N is not a number".to_owned()),
                None => Err("expected no, always, on-failure[:N], unless-stopped".to_owned()),
            },
        }
    }
}

impl Serialize for Restart {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Restart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e| serde::de::Error::custom(format!("invalid restart policy ({e})")))
    }
}

/// A duration as Compose writes it (`1m30s`, `500ms`, `1h`), printed the way Go prints a
/// `time.Duration` (`1m30s`, `1h0m0s`), which is what `docker compose config` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// The std duration.
    pub fn as_std(&self) -> std::time::Duration {
        self.0
    }

    /// Nanoseconds, saturating (what the Docker API takes for healthcheck intervals).
    pub fn as_nanos_i64(&self) -> i64 {
        i64::try_from(self.0.as_nanos()).unwrap_or(i64::MAX)
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration(d)
    }
}

impl fmt::Display for Duration {
    /// Go's `time.Duration.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        // Below one second: a single unit with a fraction.
        if nanos < 1_000_000_000 {
            let (unit, div) = if nanos < 1_000 {
                ("ns", 1u128)
            } else if nanos < 1_000_000 {
                ("µs", 1_000)
            } else {
                ("ms", 1_000_000)
            };
            return write!(f, "{}{}", frac(nanos, div), unit);
        }
        let total_secs = nanos / 1_000_000_000;
        let sub = nanos % 1_000_000_000;
        let h = total_secs / 3600;
        let m = (total_secs % 3600) / 60;
        let s = total_secs % 60;
        let secs = frac(s * 1_000_000_000 + sub, 1_000_000_000);
        if h > 0 {
            write!(f, "{h}h{m}m{secs}s")
        } else if m > 0 {
            write!(f, "{m}m{secs}s")
        } else {
            write!(f, "{secs}s")
        }
    }
}

/// `value / div` with the fraction's trailing zeros trimmed (Go style).
fn frac(value: u128, div: u128) -> String {
    let int = value / div;
    let rem = value % div;
    if rem == 0 {
        return int.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rem:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

impl FromStr for Duration {
    type Err = String;
    /// Go's `time.ParseDuration` syntax: a sequence of decimal numbers with units
    /// `ns us µs ms s m h`, e.g. `1m30s`, `1.5h`, `300ms`. A bare number is seconds? No:
    /// compose refuses bare numbers in strings; integers in YAML are handled by the caller.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_go_duration(s).map(Duration)
    }
}

/// Parses Go's duration syntax into a std duration.
pub(crate) fn parse_go_duration(input: &str) -> Result<std::time::Duration, String> {
    let bad = || "expected e.g. 30s, 1m30s, 500ms, 1h".to_owned();
    let mut s = input.trim();
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(bad());
    }
    if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let num: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let mult = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += num * mult;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_nanos(total.round() as u64))
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e| serde::de::Error::custom(format!("invalid duration ({e})")))
    }
}

/// Parses a byte size like compose (`64m`, `1g`, `1000`, `1.5kb`): units b, k/kb, m/mb, g/gb,
/// t/tb, p/pb, binary multiples (1k = 1024), case-insensitive.
pub fn parse_bytes(input: &str) -> Result<u64, String> {
    let bad = || "expected e.g. 1000, 64m, 1g".to_owned();
    let s = input.trim().to_ascii_lowercase();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024f64.powi(4),
        "p" | "pb" | "pib" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    let v = num * mult;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(v as u64)
}

/// Byte counts are printed as decimal strings by compose (`"67108864"`).
pub(super) mod opt_bytes_string {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Any count (signed ones too, see [`super::opt_signed_string`]) as its decimal string.
    pub fn serialize<T: std::fmt::Display, S: Serializer>(
        v: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.collect_str(n),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            N(u64),
            S(String),
        }
        match Option::<Either>::deserialize(d)? {
            None => Ok(None),
            Some(Either::N(n)) => Ok(Some(n)),
            Some(Either::S(s)) => super::parse_bytes(&s)
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("invalid size ({e})"))),
        }
    }
}

/// A byte count that is always there, printed as a decimal string (`blkio_config` rates).
pub(super) mod bytes_string {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        super::opt_bytes_string::deserialize(d)?
            .ok_or_else(|| serde::de::Error::custom("expected a size"))
    }
}

/// Signed byte counts (`memswap_limit`, where -1 means unlimited) are printed as decimal
/// strings by compose too (`"-1"`).
pub(super) mod opt_signed_string {
    use serde::{Deserialize, Deserializer};

    pub use super::opt_bytes_string::serialize;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            N(i64),
            S(String),
        }
        match Option::<Either>::deserialize(d)? {
            None => Ok(None),
            Some(Either::N(n)) => Ok(Some(n)),
            Some(Either::S(s)) if s.trim() == "-1" => Ok(Some(-1)),
            Some(Either::S(s)) => super::parse_bytes(&s)
                .map_err(|e| serde::de::Error::custom(format!("invalid size ({e})")))
                .and_then(|n| i64::try_from(n).map_err(serde::de::Error::custom))
                .map(Some),
        }
    }
}

/// File modes are printed in octal by compose, as Go's `"0%o"` (`"0440"`, `"00"`).
pub(super) mod opt_octal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.collect_str(&format_args!("0{n:o}")),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            N(u32),
            S(String),
        }
        match Option::<Either>::deserialize(d)? {
            None => Ok(None),
            Some(Either::N(n)) => Ok(Some(n)),
            Some(Either::S(s)) => u32::from_str_radix(&s, 8)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}
