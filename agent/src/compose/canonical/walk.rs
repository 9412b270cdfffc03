//! The one walker over the Compose schema: checks a mapping's keys against a table
//! ([`Schema`]) and converts each value by its [`Kind`].
//!
//! Design: every mapping of the Compose Specification whose keys differ only in type is a
//! table in [`super::schema`]; [`walk`] reads it. Keys are checked first (an unknown key is
//! an error naming its path, with the closest known key as a hint), then values are converted
//! in document order, so the output keeps the file's key order. `x-*` keys are allowed in every
//! mapping and kept as raw JSON, as compose does. A key whose value needs more than its type
//! (a short syntax to expand, a cross-key rule) is a [`Kind::Special`]: a small function.
//!
//! Limits: one level at a time; a [`Kind::Map`] recurses with its own table.

use serde_json::{Map, Value as Json};
use serde_yaml::Value;

use super::scalar::{
    boolean, bytes, duration, entries, float, integer, labels, string, string_list, string_map,
    string_or_list, to_json, unsigned,
};
use super::{Ctx, R, join};
use crate::compose::error::ComposeError;

/// Converts one value that needs more than a type; gets the key path for errors.
pub(super) type Special = fn(&Ctx<'_>, &str, &Value) -> R<Json>;

/// A mapping's keys and what each holds.
pub(super) type Schema = &'static [(&'static str, Kind)];

/// What a key holds, and so how its value is read and written.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    /// A string (numbers and booleans read as their text).
    Str,
    /// A host path: a string made absolute against the file's base directory.
    Path,
    /// `true` / `false` (YAML 1.1 spellings too).
    Bool,
    /// A boolean written only when true (compose omits it when false).
    TrueOnly,
    /// A signed integer.
    Int,
    /// A non-negative integer.
    UInt,
    /// A number.
    Float,
    /// A Go duration with a unit (`1m30s`), normalised.
    Duration,
    /// A size (`64m`), written in bytes as a string.
    Bytes,
    /// A list of strings.
    StrList,
    /// A string or a list of strings, written as a list.
    StrOrList,
    /// A mapping of strings (`driver_opts`).
    StrMap,
    /// A `KEY=VALUE` list or a mapping, written as a mapping (`labels`).
    Labels,
    /// One of `values`; otherwise `invalid <key> "<value>" (<hint>)`.
    OneOf(&'static [&'static str], &'static str),
    /// A nested mapping with its own table.
    Map(Schema),
    /// `external: true`, or the legacy `external: {name: x}` (which names the parent).
    External,
    /// Defined by the Compose Specification, refused by Gantry.
    Unsupported,
    /// Anything else.
    Special(Special),
}

fn lookup(schema: Schema, key: &str) -> Option<Kind> {
    schema
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, kind)| *kind)
}

/// A mapping's entries, every key checked against `schema` (`x-*` always allowed).
pub(super) fn check_keys<'v>(
    ctx: &Ctx<'_>,
    path: &str,
    v: &'v Value,
    schema: Schema,
) -> R<Vec<(String, &'v Value)>> {
    let es = entries(ctx, path, v)?;
    for (k, _) in &es {
        if !k.starts_with("x-") && lookup(schema, k).is_none() {
            let known: Vec<&str> = schema.iter().map(|(k, _)| *k).collect();
            return Err(ctx.unknown(path, k, &known, &[]));
        }
    }
    Ok(es)
}

/// Checks and converts a mapping by its table.
pub(super) fn walk(ctx: &Ctx<'_>, path: &str, v: &Value, schema: Schema) -> R<Map<String, Json>> {
    let mut out = Map::new();
    for (k, val) in check_keys(ctx, path, v, schema)? {
        let p = join(path, &k);
        let Some(kind) = lookup(schema, &k) else {
            out.insert(k, to_json(val));
            continue;
        };
        match kind {
            Kind::TrueOnly => {
                if boolean(ctx, &p, val)? {
                    out.insert(k, Json::Bool(true));
                }
            }
            Kind::External => {
                let (external, name) = external(ctx, &p, val)?;
                if let Some(name) = name {
                    out.insert("name".into(), Json::String(name));
                }
                out.insert(k, Json::Bool(external));
            }
            kind => {
                let j = convert(ctx, &p, &k, kind, val)?;
                out.insert(k, j);
            }
        }
    }
    Ok(out)
}

/// Converts one value by its kind (`key`: the last path element, for messages).
fn convert(ctx: &Ctx<'_>, p: &str, key: &str, kind: Kind, val: &Value) -> R<Json> {
    Ok(match kind {
        Kind::Str => Json::String(string(ctx, p, val)?),
        Kind::Path => Json::String(ctx.abs_path_at(p, &string(ctx, p, val)?)),
        Kind::Bool | Kind::TrueOnly => Json::Bool(boolean(ctx, p, val)?),
        Kind::Int => Json::from(integer(ctx, p, val)?),
        Kind::UInt => Json::from(unsigned(ctx, p, val)?),
        Kind::Float => Json::from(float(ctx, p, val)?),
        Kind::Duration => duration(ctx, p, val)?,
        Kind::Bytes => bytes(ctx, p, val)?,
        Kind::StrList => Json::from(string_list(ctx, p, val)?),
        Kind::StrOrList => Json::from(string_or_list(ctx, p, val)?),
        Kind::StrMap => string_map(ctx, p, val)?,
        Kind::Labels => labels(ctx, p, val)?,
        Kind::OneOf(values, hint) => {
            let s = string(ctx, p, val)?;
            if !values.contains(&s.as_str()) {
                return Err(ctx.invalid(p, format!("invalid {key} {} ({hint})", ctx.quote(p, &s))));
            }
            Json::String(s)
        }
        Kind::Map(schema) => Json::Object(walk(ctx, p, val, schema)?),
        Kind::External => Json::Bool(external(ctx, p, val)?.0),
        Kind::Unsupported => {
            return Err(ComposeError::Unsupported {
                file: ctx.file.to_path_buf(),
                path: p.to_string(),
            });
        }
        Kind::Special(f) => f(ctx, p, val)?,
    })
}

/// `external: true`, or the legacy `external: {name: x}` (true, and the name).
fn external(ctx: &Ctx<'_>, p: &str, val: &Value) -> R<(bool, Option<String>)> {
    if let Value::Mapping(_) = val {
        let mut name = None;
        for (k, v) in check_keys(ctx, p, val, &[("name", Kind::Str)])? {
            if k == "name" {
                name = Some(string(ctx, &join(p, "name"), v)?);
            }
        }
        return Ok((true, name));
    }
    Ok((boolean(ctx, p, val)?, None))
}
