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
//! earlier in the same file, as compose does. A service's `env_file` entries
//! ([`read_env_files`]) also see what the earlier files gave, after this file's own keys.
//!
//! Design: the codec is `gantry_common::dotenv` (the sidecar writes env files with the same
//! one); this module gives it compose's `${...}` interpolation and names the file in errors.
//! `raw` format (compose's `format: raw`) keeps everything after the first `=` verbatim.
//! Errors name the file, the line and the key, never the value. A malformed `${` is placed in
//! the file as written (its line, and its character in that line), not in the value the
//! interpolator got, where quotes and escapes (`\n`, `\"`) are gone: [`as_written`].

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;

use gantry_common::dotenv;

use super::error::ComposeError;
use super::interpolate::{InterpolationError, interpolate};
use super::model::EnvFile;

/// Parses an env file's text. `lookup` resolves variables not defined in the file.
pub fn parse(
    file: &Path,
    text: &str,
    raw: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, ComposeError> {
    parse_after(file, text, raw, lookup, &BTreeMap::new())
}

/// [`parse`], with `earlier` the variables earlier files gave: interpolation sees the lookup
/// first, then the keys defined earlier in this file, then `earlier`, as compose does.
fn parse_after(
    file: &Path,
    text: &str,
    raw: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
    earlier: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ComposeError> {
    // Where the malformed `${` is in the value the interpolator got, when that is the error.
    let invalid_at = Cell::new(None);
    let expand = |value: &str, so_far: &BTreeMap<String, String>| {
        let l = |k: &str| lookup(k).or_else(|| so_far.get(k).or_else(|| earlier.get(k)).cloned());
        interpolate(value, &l).map(|r| r.value).map_err(|e| {
            if let InterpolationError::Invalid { at } = e {
                invalid_at.set(Some(at));
            }
            e.to_string()
        })
    };
    dotenv::parse(text, raw, lookup, &expand).map_err(|e| {
        let placed = invalid_at.get().and_then(|at| {
            // The codec's message is `KEY: <the interpolator's>`.
            let what = InterpolationError::Invalid { at }.to_string();
            let key = e.message.strip_suffix(&what)?.strip_suffix(": ")?;
            let (line, column) = as_written(text, e.line, at)?;
            Some(ComposeError::EnvFile {
                file: file.to_path_buf(),
                line,
                message: format!(
                    "{key}: invalid interpolation format at character {column} of the line \
                     (escape a literal $ as $$)"
                ),
            })
        });
        placed.unwrap_or_else(|| ComposeError::EnvFile {
            file: file.to_path_buf(),
            line: e.line,
            message: e.message,
        })
    })
}

/// Where the `at`-th character (from 1) of the value of the entry starting on `line` is in
/// the file as written: its line and its character in that line, both from 1. The value is
/// found as the codec ([`gantry_common::dotenv::parse`]) finds it: after the key and its `=`
/// or `:`, blanks skipped. Unquoted, it is the file's text itself; double-quoted, each escape
/// (`\n`, `\"`, `\\`) is one character of the value and two of the file (`\$` is two of
/// both: `$$`), and the value goes on over the next lines. `None` when `line` holds no value.
fn as_written(text: &str, line: usize, at: usize) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let first = *lines.get(line.checked_sub(1)?)?;
    let entry = first.trim_start_matches('\u{feff}').trim_start();
    let entry = entry.strip_prefix("export ").map_or(entry, str::trim_start);
    let value = entry[entry.find(['=', ':'])? + 1..].trim_start();
    // Each is a suffix of `first`: the value starts this many bytes in.
    let start = first.len() - value.len();
    let before = first[..start]
        .trim_start_matches('\u{feff}')
        .chars()
        .count();
    let Some(quoted) = value.strip_prefix('"') else {
        return Some((line, before + at));
    };
    // The file's characters from the one after the opening quote, each with its line and
    // column; the line breaks between them are the value's `\n`.
    let segments = std::iter::once((line, before + 2, quoted))
        .chain((line..lines.len()).map(|i| (i + 1, 1, lines[i])));
    let mut chars = segments.enumerate().flat_map(|(k, (ln, first_column, s))| {
        let newline = (k > 0).then_some(('\n', ln, 0));
        newline.into_iter().chain(
            s.chars()
                .enumerate()
                .map(move |(j, c)| (c, ln, first_column + j)),
        )
    });
    let mut seen = 0;
    while let Some((c, ln, column)) = chars.next() {
        seen += match c {
            '\\' => match chars.next() {
                Some((e, ..)) if "ntr\"\\".contains(e) => 1,
                // `\$` is `$$` for the interpolator; any other escape stays two characters.
                Some(_) => 2,
                None => 1,
            },
            _ => 1,
        };
        if seen >= at {
            return Some((ln, column));
        }
    }
    None
}

/// Reads and parses an env file.
pub fn read(
    file: &Path,
    raw: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, ComposeError> {
    read_after(file, raw, lookup, &BTreeMap::new())
}

/// [`read`] with the variables earlier files gave (see [`parse_after`]).
pub(crate) fn read_after(
    file: &Path,
    raw: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
    earlier: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ComposeError> {
    let text = gantry_common::fsx::read_bounded(file, gantry_common::fsx::MAX_SMALL_FILE).map_err(
        |source| ComposeError::Read {
            file: file.to_path_buf(),
            source,
        },
    )?;
    parse_after(file, &text, raw, lookup, earlier)
}

/// The variables a service's `env_file` entries give, a later file over an earlier one
/// (`format: raw` read verbatim). Interpolation in a file sees `lookup` (for a service: the
/// project's variables, then its `environment`), then the file's own earlier keys, then what
/// the earlier files gave, as compose reads them. A missing optional file is skipped; a
/// missing required one is the error `missing` builds for its path.
pub fn read_env_files(
    files: &[EnvFile],
    lookup: &dyn Fn(&str) -> Option<String>,
    missing: &dyn Fn(&Path) -> ComposeError,
) -> Result<BTreeMap<String, String>, ComposeError> {
    let mut out = BTreeMap::new();
    for ef in files {
        if !ef.path.exists() {
            if ef.required {
                return Err(missing(&ef.path));
            }
            continue;
        }
        let raw = ef.format.as_deref() == Some("raw");
        let vars = read_after(&ef.path, raw, lookup, &out)?;
        out.extend(vars);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
