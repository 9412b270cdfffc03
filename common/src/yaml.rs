//! YAML loading with the line and column of the first error, for every file Gantry reads.
//!
//! Design: `serde_yaml` does the parsing; [`from_str`] moves its location out of the message
//! (serde_yaml appends " at line X column Y") into [`YamlError`]'s fields, so each caller can
//! say `file:line:column: message` in its own error type.
//!
//! Limits: the message is serde_yaml's; for a `deny_unknown_fields` struct it names the
//! unknown key and the expected ones. A scalar's value may appear in serde's messages ("invalid
//! type: string \"x\""), so files that may hold secrets must not be parsed into typed structs
//! whose errors are shown as they are.

use serde::de::DeserializeOwned;

/// A YAML document could not be read into the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} column {column}: {message}")]
pub struct YamlError {
    /// 1-based; 0 when serde_yaml gave no location.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses `text` into `T`; the error carries the location apart from the message.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let mut message = e.to_string();
        if let Some(p) = message.find(" at line ") {
            message.truncate(p);
        }
        YamlError {
            line,
            column,
            message,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Small {
        name: String,
    }

    #[test]
    fn location_is_split_from_the_message() {
        let e = from_str::<Small>("name: a\nnmae: b\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 1), "{e:?}");
        assert!(e.message.starts_with("unknown field `nmae`"), "{e:?}");
        assert!(!e.message.contains(" at line "), "{e:?}");
        let e = from_str::<serde_yaml::Value>("a: [1, 2\n").unwrap_err();
        assert!(e.line >= 1, "{e:?}");
        assert!(e.to_string().starts_with("line "), "{e}");
    }

    #[test]
    fn good_text_reads() {
        let s: Small = from_str("name: x\n").unwrap();
        assert_eq!(s.name, "x");
    }
}
