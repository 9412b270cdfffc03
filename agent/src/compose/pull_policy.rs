//! `pull_policy` as a type: when a deploy pulls a service's image.
//!
//! Design: on disk and in `gantry config` it stays the string the file holds (serde through
//! `String`), so releases recorded before it was typed read back unchanged. The loader's
//! canonical pass already refused anything else, so reading a model cannot meet an unknown
//! value except from a hand-edited release, which is then an error naming the value.
//!
//! Limits: `daily`, `weekly` and `every_<duration>` are accepted (compose accepts them) and
//! act as `missing`: Gantry keeps no record of when it last pulled.

use std::fmt;

/// When to pull a service's image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PullPolicy {
    /// Every deploy.
    Always,
    /// Never: the image must be present.
    Never,
    /// When not present locally (the default).
    Missing,
    /// Same as `missing`.
    IfNotPresent,
    /// Gantry does not build: same as `missing`.
    Build,
    /// `daily`, `weekly` or `every_<duration>`, as written: same as `missing`.
    Periodic(String),
}

impl PullPolicy {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Always => "always",
            Self::Never => "never",
            Self::Missing => "missing",
            Self::IfNotPresent => "if_not_present",
            Self::Build => "build",
            Self::Periodic(s) => s,
        }
    }
}

impl TryFrom<String> for PullPolicy {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            "always" => Self::Always,
            "never" => Self::Never,
            "missing" => Self::Missing,
            "if_not_present" => Self::IfNotPresent,
            "build" => Self::Build,
            "daily" | "weekly" => Self::Periodic(s),
            _ if s.starts_with("every_") => Self::Periodic(s),
            _ => {
                return Err(format!(
                    "invalid pull_policy {s:?} (always, never, missing, build)"
                ));
            }
        })
    }
}

impl From<PullPolicy> for String {
    fn from(p: PullPolicy) -> String {
        p.as_str().to_owned()
    }
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_the_strings_compose_uses() {
        for s in [
            "always",
            "never",
            "missing",
            "if_not_present",
            "build",
            "daily",
            "every_12h",
        ] {
            let p: PullPolicy = serde_json::from_value(serde_json::json!(s)).unwrap();
            assert_eq!(serde_json::to_value(&p).unwrap(), serde_json::json!(s));
        }
        assert_eq!(
            PullPolicy::try_from("always".to_owned()),
            Ok(PullPolicy::Always)
        );
        assert!(serde_json::from_value::<PullPolicy>(serde_json::json!("sometimes")).is_err());
    }
}
