//! The dotenv format as Docker Compose v2 reads it (compose-go's `dotenv` parser).
//!
//! Encoding (checked against the real `docker compose config` in the tests):
//! - single quotes when the value has no `'`, no newline or carriage return and does not end
//!   in a backslash: compose keeps the content literally (no `$` interpolation, no escapes;
//!   only `\'` would be special, and there is no `'`);
//! - otherwise double quotes, escaping `\` as `\\`, `"` as `\"`, newline as `\n`, carriage
//!   return as `\r` and `$` as `\$` (compose interpolates `$` in double quotes).
//!
//! [`decode`] reads that subset back (plus unquoted values and comments) the way compose does;
//! it exists for the round-trip tests and for `render --once` checks, not as a general parser.
//! Limits: it rejects unescaped `$` in double quotes (interpolation), which we never write.

use std::collections::BTreeMap;

use gantry_common::Secret;

/// `KEY='value'` lines, keys sorted (the map's order), ending with a newline.
/// Keys are assumed valid (see [`super::valid_name`]).
pub fn encode(values: &BTreeMap<String, Secret<String>>) -> String {
    let mut out = String::new();
    for (k, v) in values {
        out.push_str(k);
        out.push('=');
        out.push_str(&quote(v.expose()));
        out.push('\n');
    }
    out
}

/// The quoted form of one value.
pub fn quote(v: &str) -> String {
    let single_ok = !v.contains(['\'', '\n', '\r']) && !v.ends_with('\\');
    if single_ok {
        return format!("'{v}'");
    }
    let mut out = String::with_capacity(v.len() + 8);
    out.push('"');
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '$' => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Why [`decode`] gave up: the line and what was wrong (never the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DecodeError {
    pub line: usize,
    pub message: String,
}

/// Reads a dotenv file the way compose-go does, for the forms [`encode`] writes.
pub fn decode(text: &str) -> Result<BTreeMap<String, String>, DecodeError> {
    let mut out = BTreeMap::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut line = 1;
    let err = |line: usize, m: &str| DecodeError {
        line,
        message: m.to_owned(),
    };
    loop {
        // Skip blank space and comment lines.
        while i < chars.len() && chars[i].is_whitespace() {
            if chars[i] == '\n' {
                line += 1;
            }
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        if chars[i] == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        let rest: String = chars[i..].iter().take(7).collect();
        if rest.starts_with("export ") {
            i += 7;
            while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
                i += 1;
            }
        }
        let start = i;
        while i < chars.len() && chars[i] != '=' && chars[i] != '\n' {
            i += 1;
        }
        if i >= chars.len() || chars[i] != '=' {
            return Err(err(line, "expected KEY=VALUE"));
        }
        let key: String = chars[start..i].iter().collect::<String>().trim().to_owned();
        if !super::valid_name(&key) {
            return Err(err(line, "invalid variable name"));
        }
        i += 1;
        while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
            i += 1;
        }
        let mut value = String::new();
        match chars.get(i) {
            Some('\'') => {
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(line, "unterminated single-quoted value")),
                        Some('\\') if chars.get(i + 1) == Some(&'\'') => {
                            value.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            value.push(c);
                            i += 1;
                        }
                    }
                }
            }
            Some('"') => {
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(line, "unterminated double-quoted value")),
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some('n') => value.push('\n'),
                                Some('r') => value.push('\r'),
                                Some('t') => value.push('\t'),
                                Some(&c @ ('\\' | '"' | '$')) => value.push(c),
                                Some(&c) => {
                                    value.push('\\');
                                    value.push(c);
                                }
                                None => return Err(err(line, "unterminated double-quoted value")),
                            }
                            i += 2;
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('$') => return Err(err(line, "interpolation is not supported")),
                        Some(&c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            value.push(c);
                            i += 1;
                        }
                    }
                }
            }
            _ => {
                let s = i;
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                let raw: String = chars[s..i].iter().collect();
                let raw = match raw.find(" #") {
                    Some(p) => raw[..p].to_owned(),
                    None => raw,
                };
                if raw.contains('$') {
                    return Err(err(line, "interpolation is not supported"));
                }
                value = raw.trim_end().to_owned();
            }
        }
        // Only blanks or a comment may follow a quoted value on its line.
        while i < chars.len() && chars[i] != '\n' {
            if chars[i] == '#' {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                break;
            }
            if !chars[i].is_whitespace() {
                return Err(err(line, "unexpected text after the value"));
            }
            i += 1;
        }
        out.insert(key, value);
    }
    Ok(out)
}
