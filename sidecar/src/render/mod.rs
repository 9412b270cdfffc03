//! Turning snapshots into outputs: the merged variable set of an output or of the child's
//! environment, and the file formats (dotenv, json, raw), written atomically.
//!
//! Design: [`select`] picks an output's values from the latest snapshot of each source and
//! returns `None` while one of its sources has none yet, so a partial file is never written.
//! The encoders return [`Secret`] bytes (wiped on drop). Files go through
//! `gantry_common::fsx::write_atomic_if_changed`, so a file is replaced only when its content,
//! mode or owner differ, and never exists with looser permissions than configured.
//!
//! The dotenv codec is `gantry_common::dotenv` (the agent reads env files with the same one);
//! its encoding is the one Docker Compose v2 (compose-go's `dotenv` parser) reads back exactly,
//! checked against the real binary in the tests:
//! - a value without `'`, `\n`, `\r` and not ending in `\` goes in single quotes, which compose
//!   takes literally (no `$` interpolation, backslashes kept);
//! - any other value goes in double quotes with `\\`, `\"`, `\n`, `\r` and `\$` escaped.
//!
//! In an environment (the child's, a dotenv output) keys must be variable names
//! (`[A-Za-z_][A-Za-z0-9_]*`) and values must not hold a NUL byte: an error names the key and
//! the source, never the value.

use std::collections::BTreeMap;

use gantry_common::Secret;
use gantry_common::fsx::{Owner, WriteError, write_atomic_if_changed};

use crate::config::{Format, Output};
use crate::source::Snapshot;

pub use gantry_common::dotenv::{
    decode as decode_dotenv, encode as encode_dotenv, quote as dotenv_quote, valid_name,
};

/// Why an output (or the child's environment) cannot be made from the values.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(
        "{target}: key {key:?} from {source_id} is not a valid variable name (hint: use [A-Za-z_][A-Za-z0-9_]* keys, or pick keys with `keys:`)"
    )]
    InvalidKey {
        target: String,
        key: String,
        source_id: String,
    },
    #[error(
        "{target}: key {key:?} is given by both {first} and {second} (hint: pick keys with `keys:` or split the output)"
    )]
    Collision {
        target: String,
        key: String,
        first: String,
        second: String,
    },
    #[error(
        "{target}: the value of key {key:?} from {source_id} holds a NUL byte, which an environment variable cannot (hint: fix the secret; the value is not shown)"
    )]
    NulInValue {
        target: String,
        key: String,
        source_id: String,
    },
    #[error("{target}: key {key:?} listed in `keys:` is in none of its sources")]
    MissingKey { target: String, key: String },
    #[error(
        "{target}: source {source_id:?} listed in `sources:` does not exist (hint: known sources: {known})"
    )]
    UnknownSource {
        target: String,
        source_id: String,
        known: String,
    },
    #[error(
        "{target}: a raw output needs exactly one value or one binary secret, its sources give {count} (hint: pick one with `keys: [NAME]`)"
    )]
    RawAmbiguous { target: String, count: usize },
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// The values of several sources merged into one environment: keys must be variable names and
/// values must not hold a NUL byte (an environment cannot: `execve` would refuse it).
/// `sources` are `(id, snapshot)` pairs; `keys` keeps only those keys (all must exist).
pub fn merge(
    target: &str,
    sources: &[(&str, &Snapshot)],
    keys: Option<&[String]>,
) -> Result<BTreeMap<String, Secret<String>>, RenderError> {
    merge_with(target, sources, keys, true)
}

fn merge_with(
    target: &str,
    sources: &[(&str, &Snapshot)],
    keys: Option<&[String]>,
    environment: bool,
) -> Result<BTreeMap<String, Secret<String>>, RenderError> {
    let mut out: BTreeMap<String, Secret<String>> = BTreeMap::new();
    let mut from: BTreeMap<&str, &str> = BTreeMap::new();
    for (id, snap) in sources {
        for (k, v) in &snap.values {
            if keys.is_some_and(|keys| !keys.iter().any(|w| w == k)) {
                continue;
            }
            if environment && !valid_name(k) {
                return Err(RenderError::InvalidKey {
                    target: target.to_owned(),
                    key: k.clone(),
                    source_id: (*id).to_owned(),
                });
            }
            if environment && v.expose().contains('\0') {
                return Err(RenderError::NulInValue {
                    target: target.to_owned(),
                    key: k.clone(),
                    source_id: (*id).to_owned(),
                });
            }
            if let Some(first) = from.insert(k, id) {
                return Err(RenderError::Collision {
                    target: target.to_owned(),
                    key: k.clone(),
                    first: first.to_owned(),
                    second: (*id).to_owned(),
                });
            }
            out.insert(k.clone(), v.clone());
        }
    }
    if let Some(keys) = keys
        && let Some(missing) = keys.iter().find(|k| !out.contains_key(*k))
    {
        return Err(RenderError::MissingKey {
            target: target.to_owned(),
            key: missing.clone(),
        });
    }
    Ok(out)
}

/// Checks that every source an output names exists.
pub fn check_sources(outputs: &[Output], ids: &[String]) -> Result<(), RenderError> {
    for o in outputs {
        for s in o.sources.iter().flatten() {
            if !ids.contains(s) {
                return Err(RenderError::UnknownSource {
                    target: o.path.display().to_string(),
                    source_id: s.clone(),
                    known: ids.join(", "),
                });
            }
        }
    }
    Ok(())
}

/// The content of `output` from the latest snapshots (`(id, snapshot or None)` for every
/// source). `Ok(None)` while one of the output's sources has no values yet.
pub fn render(
    output: &Output,
    snapshots: &[(&str, Option<&Snapshot>)],
) -> Result<Option<Secret<Vec<u8>>>, RenderError> {
    let target = output.path.display().to_string();
    let mut picked: Vec<(&str, &Snapshot)> = Vec::new();
    for (id, snap) in snapshots {
        if output
            .sources
            .as_ref()
            .is_some_and(|s| !s.iter().any(|s| s == id))
        {
            continue;
        }
        match snap {
            Some(snap) => picked.push((id, snap)),
            None => return Ok(None),
        }
    }
    let bytes = match output.format {
        Format::Dotenv => {
            encode_dotenv(&merge(&target, &picked, output.keys.as_deref())?).into_bytes()
        }
        Format::Json => encode_json(&merge_any(&target, &picked, output.keys.as_deref())?),
        Format::Raw => {
            let values = merge_any(&target, &picked, output.keys.as_deref())?;
            let binaries: Vec<&Secret<Vec<u8>>> = picked
                .iter()
                .filter_map(|(_, s)| s.binary.as_ref())
                .collect();
            if output.keys.is_none() && binaries.len() == 1 && values.is_empty() {
                binaries[0].expose().clone()
            } else if values.len() == 1 && (output.keys.is_some() || binaries.is_empty()) {
                values
                    .values()
                    .next()
                    .map(|v| v.expose().as_bytes().to_vec())
                    .unwrap_or_default()
            } else {
                return Err(RenderError::RawAmbiguous {
                    target,
                    count: values.len() + binaries.len(),
                });
            }
        }
    };
    Ok(Some(Secret::new(bytes)))
}

/// Like [`merge`] but any key is accepted (json and raw outputs are not environments).
fn merge_any(
    target: &str,
    sources: &[(&str, &Snapshot)],
    keys: Option<&[String]>,
) -> Result<BTreeMap<String, Secret<String>>, RenderError> {
    merge_with(target, sources, keys, false)
}

/// One JSON object, key → string, keys sorted, ending with a newline.
pub fn encode_json(values: &BTreeMap<String, Secret<String>>) -> Vec<u8> {
    let map: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.expose().clone())))
        .collect();
    let mut out = serde_json::to_vec_pretty(&serde_json::Value::Object(map)).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Writes `contents` to the output's path if it differs; returns whether it wrote.
pub fn write(output: &Output, contents: &Secret<Vec<u8>>) -> Result<bool, RenderError> {
    Ok(write_atomic_if_changed(
        &output.path,
        contents.expose(),
        output.mode,
        Owner {
            uid: output.uid,
            gid: output.gid,
        },
    )?)
}

#[cfg(test)]
mod tests;
