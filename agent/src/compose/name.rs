//! [`StackName`]: a stack's name, parsed once at the edge (command line, socket request,
//! configuration key) and passed down as a type, so nothing below re-validates a string.
//!
//! Design: a stack's name is its Compose project name, so it follows Compose's rule for
//! project names (`-p`, `name:`, `COMPOSE_PROJECT_NAME`): lowercase ASCII letters, digits, `-`
//! and `_`, starting with a letter or a digit. That also makes it a safe single path component
//! (no `/`, no `.`, never empty) for the ledger's `stacks/<name>/`.
//!
//! Limits: no length bound beyond what the filesystem and Docker (container names
//! `<project>-<service>-<n>`) impose.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// A valid stack (Compose project) name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct StackName(String);

/// Why a string is not a stack name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{name:?} is not a stack name (lowercase letters, digits, '-' and '_', starting with a letter or a digit, as a Compose project name)"
)]
pub struct BadStackName {
    pub name: String,
}

impl StackName {
    /// Parses `name` by Compose's project-name rule.
    pub fn parse(name: &str) -> Result<Self, BadStackName> {
        if is_valid(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(BadStackName {
                name: name.to_owned(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `^[a-z0-9][a-z0-9_-]*$`.
fn is_valid(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl FromStr for StackName {
    type Err = BadStackName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for StackName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for StackName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for StackName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for StackName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for StackName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Component, Path};

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn compose_project_rules() {
        for ok in ["web", "0day", "my-app_2", "a"] {
            assert_eq!(StackName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "", "Web", "-web", "_web", "web.1", "../etc", "a/b", "wéb", "a b",
        ] {
            let e = StackName::parse(bad).unwrap_err();
            assert_eq!(e.name, bad);
            assert!(e.to_string().contains("not a stack name"), "{e}");
        }
    }

    #[test]
    fn the_wire_form_is_the_string_and_a_bad_one_is_refused() {
        let n: StackName = serde_json::from_str(r#""web""#).unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), r#""web""#);
        assert!(serde_json::from_str::<StackName>(r#""../x""#).is_err());
    }

    /// The pattern the module header documents, as a regular expression.
    const PATTERN: &str = "^[a-z0-9][a-z0-9_-]*$";

    proptest! {
        /// Any text: refused, or accepted as itself, matching the documented pattern, and one
        /// plain path component (no `/`, not `.` or `..`).
        #[test]
        fn anything_accepted_matches_the_pattern_and_is_one_path_component(
            name in prop_oneof![any::<String>(), "[a-z0-9_./ -]{0,12}", "[a-zA-Z0-9_.-]{0,12}"],
        ) {
            let pattern = regex::Regex::new(PATTERN).unwrap();
            let Ok(parsed) = StackName::parse(&name) else {
                prop_assert!(!pattern.is_match(&name), "{name:?} matches {PATTERN} but is refused");
                return Ok(());
            };
            prop_assert_eq!(parsed.as_str(), name.as_str());
            prop_assert!(pattern.is_match(&name), "{name:?} accepted");
            prop_assert!(!name.contains('/') && name != "." && name != "..", "{name:?}");
            let components: Vec<_> = Path::new(&name).components().collect();
            prop_assert_eq!(components, vec![Component::Normal(name.as_ref())]);
        }

        /// Every name of the pattern is accepted, and reads back the same from its wire form
        /// and through `FromStr`.
        #[test]
        fn every_name_of_the_pattern_is_accepted_and_round_trips(
            name in "[a-z0-9][a-z0-9_-]{0,40}",
        ) {
            let parsed = StackName::parse(&name).unwrap();
            prop_assert_eq!(parsed.to_string(), name.clone());
            prop_assert_eq!(name.parse::<StackName>(), Ok(parsed.clone()));
            let wire = serde_json::to_string(&parsed).unwrap();
            prop_assert_eq!(serde_json::from_str::<StackName>(&wire).unwrap(), parsed);
        }
    }
}
