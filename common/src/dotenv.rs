//! The dotenv format, as Docker Compose v2 reads `.env`, `--env-file` and `env_file:` files:
//! one codec for the sidecar (which writes these files) and the agent (which reads them).
//!
//! Reading ([`parse`]): one `KEY=VALUE` per line; an `export ` prefix is allowed; `KEY: VALUE`
//! is accepted too; blank lines and `#` comments are ignored. Values:
//! - unquoted: trimmed, a ` #` starts a comment, then interpolated;
//! - `'single'`: literal (no interpolation, no escapes);
//! - `"double"`: escapes (`\n`, `\t`, `\r`, `\\`, `\"`, `\$`) then interpolation; may span lines.
//!
//! A line with only `KEY` takes the value from `lookup` (the process environment) when set.
//! Compose's `format: raw` keeps everything after the first `=` verbatim. Interpolation is the
//! caller's ([`Interpolate`]): the agent passes Compose's `${...}` rules, the sidecar's own
//! reader ([`decode`]) passes [`literal`], which refuses interpolation. `\$` reaches the
//! interpolator as `$$`, which both turn into a literal `$`.
//!
//! Writing ([`encode`], [`quote`]): keys sorted, each value quoted so that the reader above
//! (and the real `docker compose`, checked in the sidecar's tests) reads back exactly the
//! value: single quotes when the value has no `'`, no newline or carriage return and does not
//! end in a backslash; otherwise double quotes with `\\`, `\"`, `\n`, `\r` and `\$` escaped. A
//! property test checks `parse(encode(v)) == v` for any value.
//!
//! Errors name the line and the key, never a value or the text of the line.
//!
//! Limits: keys the writer is given must satisfy [`valid_name`] (the caller checks and names the
//! source of a bad key); the reader accepts Compose's wider key set (`.` and `-` too).

use std::collections::BTreeMap;

use crate::Secret;

/// Why a dotenv text cannot be read: the 1-based line and what is wrong (never the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Interpolates one value: `(value, keys defined earlier in the file) -> value or reason`.
pub type Interpolate<'a> = dyn Fn(&str, &BTreeMap<String, String>) -> Result<String, String> + 'a;

/// `[A-Za-z_][A-Za-z0-9_]*`: a name every shell and Compose accept as a variable.
pub fn valid_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// `KEY='value'` lines, keys sorted (the map's order), ending with a newline.
/// Keys are assumed valid (see [`valid_name`]).
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

/// The quoted form of one value (see the module header).
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

/// The interpolator of a reader that does not interpolate: `$$` is a literal `$`, any other
/// `$` is refused (the sidecar never writes one).
pub fn literal(value: &str, _defined: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' {
            if chars.peek() == Some(&'$') {
                chars.next();
            } else {
                return Err("interpolation is not supported".to_owned());
            }
        }
        out.push(c);
    }
    Ok(out)
}

/// Reads what [`encode`] writes (and any dotenv text without interpolation).
pub fn decode(text: &str) -> Result<BTreeMap<String, String>, ParseError> {
    parse(text, false, &|_| None, &literal)
}

/// Parses a dotenv text by Compose's rules (module header). `lookup` gives the value of a line
/// holding only `KEY`; `interpolate` expands unquoted and double-quoted values.
pub fn parse(
    text: &str,
    raw: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
    interpolate: &Interpolate<'_>,
) -> Result<BTreeMap<String, String>, ParseError> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    let err = |line: usize, message: String| ParseError { line, message };
    while i < lines.len() {
        let lineno = i + 1;
        let line = lines[i].trim_start_matches('\u{feff}').trim();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let (key, rest) = match line.find(['=', ':']) {
            Some(p) if line[..p].trim().chars().all(key_char) => {
                (line[..p].trim(), Some(&line[p + 1..]))
            }
            _ => (line, None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(err(
                lineno,
                "not a KEY=VALUE line (a key is letters, digits, `_`, `.` or `-`)".to_owned(),
            ));
        }
        let Some(rest) = rest else {
            if let Some(v) = lookup(key) {
                out.insert(key.to_string(), v);
            }
            continue;
        };
        if raw {
            out.insert(key.to_string(), rest.to_string());
            continue;
        }
        let rest = rest.trim_start();
        let value = if let Some(body) = rest.strip_prefix('\'') {
            match body.find('\'') {
                Some(end) => body[..end].to_string(),
                None => return Err(err(lineno, format!("{key}: unterminated single quote"))),
            }
        } else if let Some(body) = rest.strip_prefix('"') {
            // May span lines: collect until an unescaped closing quote.
            let mut acc = String::new();
            let mut current = body.to_string();
            let closed = loop {
                if let Some(end) = closing_double_quote(&current) {
                    acc.push_str(&current[..end]);
                    break true;
                }
                acc.push_str(&current);
                if i >= lines.len() {
                    break false;
                }
                acc.push('\n');
                current = lines[i].to_string();
                i += 1;
            };
            if !closed {
                return Err(err(lineno, format!("{key}: unterminated double quote")));
            }
            interpolate(&unescape_double(&acc), &out)
                .map_err(|m| err(lineno, format!("{key}: {m}")))?
        } else {
            let v = match rest.find(" #") {
                Some(p) => &rest[..p],
                None => rest,
            };
            interpolate(v.trim(), &out).map_err(|m| err(lineno, format!("{key}: {m}")))?
        };
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

fn key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.-".contains(c)
}

fn closing_double_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn unescape_double(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            // `\$` keeps the dollar literal through interpolation.
            Some('$') => out.push_str("$$"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests;
