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
//! Errors name the file, the line and the key, never the value.

use std::collections::BTreeMap;
use std::path::Path;

use gantry_common::dotenv;

use super::error::ComposeError;
use super::interpolate::interpolate;
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
    let expand = |value: &str, so_far: &BTreeMap<String, String>| {
        let l = |k: &str| lookup(k).or_else(|| so_far.get(k).or_else(|| earlier.get(k)).cloned());
        interpolate(value, &l)
            .map(|r| r.value)
            .map_err(|e| e.to_string())
    };
    dotenv::parse(text, raw, lookup, &expand).map_err(|e| ComposeError::EnvFile {
        file: file.to_path_buf(),
        line: e.line,
        message: e.message,
    })
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
