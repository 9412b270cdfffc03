//! `.env` / `--env-file` / `env_file:` parsing, as docker compose v2 reads these files.
//!
//! Format: one `KEY=VALUE` per line; `export ` prefix allowed; `KEY: VALUE` accepted too;
//! blank lines and `#` comments ignored. Values:
//! - unquoted: trimmed, a ` #` starts a comment, `${...}` interpolated;
//! - `'single'`: literal (no interpolation, no escapes);
//! - `"double"`: escapes (`\n`, `\t`, `\\`, `\"`, `\$`) and interpolation, may span lines.
//!
//! A line with only `KEY` takes the value from the lookup (the process environment) if set.
//! Interpolation sees the lookup (the process environment) first, then the keys defined
//! earlier in the same file, as compose does.
//!
//! Design: a line-oriented scanner; `raw` format (compose's `format: raw`) keeps everything after
//! the first `=` verbatim. Errors name the file and the line.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::ComposeError;
use super::interpolate::interpolate;

/// Parses an env file's text. `lookup` resolves variables not defined in the file.
pub fn parse(
    file: &Path,
    text: &str,
    raw: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, ComposeError> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    let err = |line: usize, message: String| ComposeError::EnvFile {
        file: file.to_path_buf(),
        line,
        message,
    };
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
        let sep = line.find(['=', ':']);
        let (key, rest) = match sep {
            Some(p)
                if line[..p]
                    .trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) =>
            {
                (line[..p].trim(), Some(&line[p + 1..]))
            }
            Some(_) => (line, None),
            None => (line, None),
        };
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(err(
                lineno,
                format!("invalid line {line:?} (expected KEY=VALUE)"),
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
            let unescaped = unescape_double(&acc);
            expand(&unescaped, &out, lookup).map_err(|m| err(lineno, format!("{key}: {m}")))?
        } else {
            let v = match rest.find(" #") {
                Some(p) => &rest[..p],
                None => rest,
            };
            expand(v.trim(), &out, lookup).map_err(|m| err(lineno, format!("{key}: {m}")))?
        };
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

fn expand(
    value: &str,
    so_far: &BTreeMap<String, String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let l = |k: &str| lookup(k).or_else(|| so_far.get(k).cloned());
    interpolate(value, &l)
        .map(|r| r.value)
        .map_err(|e| e.to_string())
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

/// Reads and parses an env file.
pub fn read(
    file: &Path,
    raw: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, ComposeError> {
    let text = std::fs::read_to_string(file).map_err(|source| ComposeError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    parse(file, &text, raw, lookup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> BTreeMap<String, String> {
        let lookup = |k: &str| (k == "FROM_ENV").then(|| "env".to_string());
        parse(Path::new(".env"), text, false, &lookup).unwrap()
    }

    #[test]
    fn formats() {
        let m = p(concat!(
            "# comment\n",
            "\n",
            "A=1\n",
            "export B=two words # trailing comment\n",
            "C='single $A # kept'\n",
            "D=\"double $A\\n\"\n",
            "E=\"multi\n",
            "line\"\n",
            "F=${A}-${UNSET:-def}\n",
            "G=\n",
            "FROM_ENV\n",
            "NOT_SET\n",
            "H: yaml style\n",
            "I=a#b\n",
            "J=\"esc \\\" \\$A\"\n",
        ));
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "two words");
        assert_eq!(m["C"], "single $A # kept");
        assert_eq!(m["D"], "double 1\n");
        assert_eq!(m["E"], "multi\nline");
        assert_eq!(m["F"], "1-def");
        assert_eq!(m["G"], "");
        assert_eq!(m["FROM_ENV"], "env");
        assert!(!m.contains_key("NOT_SET"));
        assert_eq!(m["H"], "yaml style");
        assert_eq!(m["I"], "a#b");
        assert_eq!(m["J"], "esc \" $A");
    }

    #[test]
    fn errors_name_the_line() {
        let lookup = |_: &str| None;
        let e = parse(Path::new("x.env"), "A=1\nB=\"open\n", false, &lookup).unwrap_err();
        assert_eq!(e.to_string(), "x.env:2: B: unterminated double quote");
        let e = parse(Path::new("x.env"), "A=${B:?need B}\n", false, &lookup).unwrap_err();
        assert!(
            e.to_string().starts_with("x.env:1: A: required variable B"),
            "{e}"
        );
    }

    #[test]
    fn raw_format_keeps_text() {
        let lookup = |_: &str| None;
        let m = parse(Path::new("r.env"), "A='x' $B\n", true, &lookup).unwrap();
        assert_eq!(m["A"], "'x' $B");
    }
}
