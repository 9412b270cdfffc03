//! YAML parsing with located errors (`gantry_common::yaml`, shared with the sidecar), and `<<`
//! merge-key resolution.
//!
//! serde_yaml 0.9 resolves anchors and aliases but leaves `<<` as an ordinary key, so
//! [`resolve_merge_keys`] applies the YAML merge-key rules itself: keys written in the mapping
//! win over merged ones, and with `<<: [*a, *b]` earlier mappings win over later ones. It runs
//! bottom-up so merged mappings have their own merge keys resolved first.
//!
//! Tags (`!reset`, `!override`) survive as `Value::Tagged` for [`super::merge`].

use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::error::ComposeError;

/// Parses a compose file's text; an empty file is an empty mapping.
pub fn parse(file: &Path, text: &str) -> Result<Value, ComposeError> {
    let value: Value = gantry_common::yaml::from_str(text).map_err(|e| ComposeError::Yaml {
        file: file.to_path_buf(),
        line: e.line,
        column: e.column,
        message: e.message,
    })?;
    let value = match value {
        Value::Null => Value::Mapping(Mapping::new()),
        v => v,
    };
    resolve_merge_keys(value).map_err(|(path, message)| ComposeError::Invalid {
        file: file.to_path_buf(),
        path,
        message,
    })
}

/// Applies `<<` merge keys everywhere in `value`. Errors carry (key path, message).
pub fn resolve_merge_keys(value: Value) -> Result<Value, (String, String)> {
    resolve(value, "")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        _ => "?".into(),
    }
}

fn resolve(value: Value, path: &str) -> Result<Value, (String, String)> {
    match value {
        Value::Mapping(map) => {
            let mut own = Mapping::new();
            let mut merged: Vec<Mapping> = Vec::new();
            for (k, v) in map {
                if k.as_str() == Some("<<") {
                    let here = join(path, "<<");
                    match resolve(v, &here)? {
                        Value::Mapping(m) => merged.push(m),
                        Value::Sequence(seq) => {
                            for item in seq {
                                match item {
                                    Value::Mapping(m) => merged.push(m),
                                    _ => {
                                        return Err((
                                            here,
                                            "a merge key (<<) takes a mapping or a list of mappings".into(),
                                        ));
                                    }
                                }
                            }
                        }
                        _ => {
                            return Err((
                                here,
                                "a merge key (<<) takes a mapping or a list of mappings".into(),
                            ));
                        }
                    }
                } else {
                    let child = join(path, &key_text(&k));
                    own.insert(k, resolve(v, &child)?);
                }
            }
            for m in merged {
                for (k, v) in m {
                    if !own.contains_key(&k) {
                        own.insert(k, v);
                    }
                }
            }
            Ok(Value::Mapping(own))
        }
        Value::Sequence(seq) => seq
            .into_iter()
            .enumerate()
            .map(|(i, v)| resolve(v, &format!("{path}[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Sequence),
        Value::Tagged(mut t) => {
            let inner = std::mem::replace(&mut t.value, Value::Null);
            t.value = resolve(inner, path)?;
            Ok(Value::Tagged(t))
        }
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keys_follow_yaml_rules() {
        let text = "x-a: &a {restart: always, image: a, labels: {k: a}}\n\
                    x-b: &b {image: b, user: bob}\n\
                    s1: {<<: *a, image: own}\n\
                    s2: {<<: [*b, *a]}\n";
        let v = parse(Path::new("c.yaml"), text).unwrap();
        assert_eq!(v["s1"]["image"].as_str(), Some("own"));
        assert_eq!(v["s1"]["restart"].as_str(), Some("always"));
        assert_eq!(v["s2"]["image"].as_str(), Some("b"));
        assert_eq!(v["s2"]["user"].as_str(), Some("bob"));
        assert_eq!(v["s2"]["labels"]["k"].as_str(), Some("a"));
        assert!(v["s1"].get("<<").is_none());
    }

    #[test]
    fn yaml_errors_have_line_and_column() {
        let e = parse(Path::new("bad.yaml"), "services:\n  web:\n    image: [a\n").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("bad.yaml:"), "{s}");
        match e {
            ComposeError::Yaml { line, column, .. } => {
                assert!(line >= 3, "line {line}");
                assert!(column > 0);
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn bad_merge_value_is_an_error() {
        let e = parse(Path::new("c.yaml"), "a: {<<: 3}\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.yaml: a.<<: a merge key (<<) takes a mapping or a list of mappings"
        );
    }

    #[test]
    fn empty_file_is_empty_mapping() {
        assert!(parse(Path::new("e.yaml"), "").unwrap().is_mapping());
    }
}
