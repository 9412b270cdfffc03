//! YAML parsing with located errors (`gantry_common::yaml`, shared with the sidecar), and `<<`
//! merge-key resolution.
//!
//! serde_yaml 0.9 resolves anchors and aliases but leaves `<<` as an ordinary key, so
//! [`resolve_merge_keys`] applies the YAML merge-key rules itself: keys written in the mapping
//! win over merged ones, and with `<<: [*a, *b]` earlier mappings win over later ones. It runs
//! bottom-up so merged mappings have their own merge keys resolved first.
//!
//! Tags (`!reset`, `!override`) survive as `Value::Tagged` for [`super::merge`].
//!
//! [`place`] finds where a character of a scalar is in the file as written (for an error about
//! it): a second parse that stops at the scalar and takes serde_yaml's location of it.

use std::path::Path;

use serde::Deserialize as _;
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

/// Where a character of a scalar is in the file as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The character's line and its character in that line (from 1, a tab is one).
    At { line: usize, column: usize },
    /// The line the scalar starts on: the character is not on it as written, or escapes or
    /// line folding before it make its column in the file differ from its place in the value
    /// (a block scalar, a value folded over lines, the `$` itself written `\x24`).
    Scalar { line: usize },
}

/// Where, in `text`, the `at`-th character (from 1) of the string scalar at `path` is, the
/// scalar's own text (as YAML gave it, before interpolation) being `value`. `path` is as the
/// loader names it (`services.web.ports[0]`), `<<` merge keys see-through; the first such
/// scalar in the file wins. `None` when there is none (it cannot be placed).
pub fn place(text: &str, path: &str, value: &str, at: usize) -> Option<Place> {
    let seed = Find {
        path: String::new(),
        target: path,
        value,
        merged: false,
    };
    let e = serde::de::DeserializeSeed::deserialize(seed, serde_yaml::Deserializer::from_str(text))
        .err()
        .filter(|e| e.to_string().contains(FOUND))?;
    let loc = e.location()?;
    let line = loc.line();
    let column = text
        .get(loc.index()..)
        .and_then(|from| column_in(from, loc.column(), value, at));
    Some(match column {
        Some(column) => Place::At { line, column },
        None => Place::Scalar { line },
    })
}

/// The message of the error that stops [`place`]'s parse at the scalar it looks for.
const FOUND: &str = "gantry: the scalar looked for";

/// The column of `value`'s `at`-th character, `from` being the file from where its node starts
/// (at `column`): its anchor and tag, then the scalar. `None` unless it is on the node's first
/// line with only characters that are the value's own (or escapes standing each for one) before
/// it.
fn column_in(from: &str, mut column: usize, value: &str, at: usize) -> Option<usize> {
    let is_break = |c: char| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}');
    let mut src = from.chars().peekable();
    // Node properties: `&anchor`, `!tag`, each followed by blanks.
    while src.next_if(|c| matches!(c, '&' | '!')).is_some() {
        column += 1;
        while src.next_if(|c| !c.is_whitespace()).is_some() {
            column += 1;
        }
        while src.next_if(|c| matches!(c, ' ' | '\t')).is_some() {
            column += 1;
        }
    }
    let quote = match src.peek()? {
        '"' | '\'' => src.next(),
        '|' | '>' => return None,
        _ => None,
    };
    if quote.is_some() {
        column += 1;
    }
    let want: Vec<char> = value.chars().collect();
    for &w in want.get(..at.checked_sub(1)?)? {
        let c = src.next()?;
        match (quote, c) {
            (Some('"'), '\\') => {
                let skip = match src.next()? {
                    'x' => 2,
                    'u' => 4,
                    'U' => 8,
                    e if is_break(e) => return None,
                    _ => 0,
                };
                for _ in 0..skip {
                    src.next()?;
                }
                column += 2 + skip;
            }
            (Some('\''), '\'') => {
                src.next().filter(|c| *c == '\'')?;
                column += 2;
            }
            _ if c == w && !is_break(c) => column += 1,
            _ => return None,
        }
    }
    (src.next()? == '$' && want.get(at - 1) == Some(&'$')).then_some(column)
}

/// Walks a document to the string scalar at `target` holding `value`, and stops there with
/// the [`FOUND`] error, which serde_yaml gives the scalar's location.
struct Find<'a> {
    /// Where this node is, as the loader names it.
    path: String,
    target: &'a str,
    value: &'a str,
    /// The value of a `<<` key: a list there is of mappings merged at `path`.
    merged: bool,
}

impl Find<'_> {
    fn at(&self, path: String, merged: bool) -> Self {
        Find {
            path,
            target: self.target,
            value: self.value,
            merged,
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Find<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Find<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<(), E> {
        if self.path == self.target && s == self.value {
            Err(E::custom(FOUND))
        } else {
            Ok(())
        }
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_i128<E>(self, _: i128) -> Result<(), E> {
        Ok(())
    }

    fn visit_u128<E>(self, _: u128) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let path = if self.merged {
                self.path.clone()
            } else {
                format!("{}[{i}]", self.path)
            };
            if seq.next_element_seed(self.at(path, false))?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(Key)? {
            let child = if key == "<<" {
                self.at(self.path.clone(), true)
            } else {
                self.at(join(&self.path, &key), false)
            };
            map.next_value_seed(child)?;
        }
        Ok(())
    }

    /// A tagged node (`!override`): its value, at the same path.
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        let (serde::de::IgnoredAny, variant) = data.variant()?;
        serde::de::VariantAccess::newtype_variant_seed(variant, self)
    }
}

/// A mapping key as the loader names it in a path.
struct Key;

impl<'de> serde::de::DeserializeSeed<'de> for Key {
    type Value = String;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let value = Value::deserialize(d)?;
        Ok(match value {
            Value::String(s) => s,
            other => serde_yaml::to_string(&other)
                .unwrap_or_default()
                .trim()
                .to_string(),
        })
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

    /// A character of a scalar is placed where it is in the file: its line and its character
    /// in that line when what comes before it in the value is written as it is (quotes, anchors,
    /// tags and one-line escapes counted as written), else the line the scalar starts on.
    #[test]
    fn a_character_of_a_scalar_is_placed_as_written() {
        let at = |line, column| Some(Place::At { line, column });
        let scalar = |line| Some(Place::Scalar { line });
        // (the value's YAML on line 3, its text, the `$`'s place in it, where it is)
        let cases: &[(&str, &str, usize, Option<Place>)] = &[
            ("PW: Ab${9", "Ab${9", 3, at(3, 11)),
            ("PW: \"Ab${9\"", "Ab${9", 3, at(3, 12)),
            ("PW: 'Ab${9'", "Ab${9", 3, at(3, 12)),
            // Escapes before it: each is one character of the value, more of the file.
            ("PW: \"A\\tb${9\"", "A\tb${9", 4, at(3, 14)),
            (
                "PW: \"\\x41\\u00e9\\U0001F600${9\"",
                "Aé😀${9",
                4,
                at(3, 30),
            ),
            ("PW: 'it''s ${9'", "it's ${9", 6, at(3, 16)),
            ("PW: \"é ${9\"", "é ${9", 3, at(3, 12)),
            // A tab is one character, as in the value.
            ("PW: \"a\tb${9\"", "a\tb${9", 4, at(3, 13)),
            // An anchor and a tag before the scalar.
            ("PW: &pw !override \"Ab${9\"", "Ab${9", 3, at(3, 26)),
            // In a flow mapping, through a merge key.
            ("<<: {PW: \"Ab${9\"}", "Ab${9", 3, at(3, 17)),
            ("<<: [{Q: x}, {PW: 'Ab${9'}]", "Ab${9", 3, at(3, 26)),
            ("<<: {É: é, PW: 'Ab${9'}", "Ab${9", 3, at(3, 23)),
            // The `$` itself escaped: its place in the file is not the value's.
            ("PW: \"\\x24{9\"", "${9", 1, scalar(3)),
            // Line folding or a block scalar before it: the scalar's line.
            ("PW: \"a\n      b${9\"", "a b${9", 4, scalar(3)),
            ("PW: a\n      b${9", "a b${9", 4, scalar(3)),
            ("PW: |\n      a${9\n", "a${9\n", 2, scalar(3)),
            ("PW: >-\n      a${9\n", "a${9", 2, scalar(3)),
            // On the first line but after an escaped line break.
            ("PW: \"a\\\n      ${9\"", "a${9", 2, scalar(3)),
        ];
        for (yaml, value, at_char, want) in cases {
            for (bom, eol) in [("", "\n"), ("\u{feff}", "\r\n")] {
                let text = format!("{bom}services:\n  s:\n    {yaml}\n").replace('\n', eol);
                let got = place(&text, "services.s.PW", value, *at_char);
                assert_eq!(got, *want, "{yaml:?} {eol:?}");
            }
        }
        // A key path that is not in the file, or a value that is not the one there.
        let text = "services:\n  s:\n    PW: Ab${9\n";
        assert_eq!(place(text, "services.t.PW", "Ab${9", 3), None);
        assert_eq!(place(text, "services.s.PW", "Ab${8", 3), None);
        // In a list, the first of two equal values at other paths.
        let text = "a: ['${', x]\nb:\n  - x\n  - '${'\n";
        assert_eq!(place(text, "b[1]", "${", 1), at(4, 6));
        assert_eq!(place(text, "a[0]", "${", 1), at(1, 6));
    }

    #[test]
    fn empty_file_is_empty_mapping() {
        assert!(parse(Path::new("e.yaml"), "").unwrap().is_mapping());
    }
}
