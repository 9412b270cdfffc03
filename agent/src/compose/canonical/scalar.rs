//! Scalar readers shared by the canonicaliser: a YAML value read as a string, a boolean, an
//! integer, a duration, a size, a list or a key/value map, with errors naming the key path
//! and the type found; plus the raw YAML → JSON conversion kept for `x-*` keys.
//!
//! Design: small pure functions over `serde_yaml::Value`, each taking the [`Ctx`] for the file
//! name in errors. They accept what compose accepts (YAML 1.1 booleans, numbers as strings
//! where a string is expected).
//!
//! Limits: no knowledge of which key holds what: that is [`super::schema`].

use serde_json::{Map, Value as Json, json};
use serde_yaml::Value;

use super::{Ctx, R, join};
use crate::compose::model::{Duration, parse_bytes};

pub(super) fn key_str(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        _ => "<complex key>".into(),
    }
}

pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

pub(super) fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn entries<'v>(ctx: &Ctx<'_>, path: &str, v: &'v Value) -> R<Vec<(String, &'v Value)>> {
    match v {
        Value::Mapping(m) => Ok(m.iter().map(|(k, v)| (key_str(k), v)).collect()),
        Value::Null => Ok(Vec::new()),
        other => Err(ctx.invalid(
            path,
            format!("expected a mapping, found {}", type_name(other)),
        )),
    }
}

pub(super) fn string(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<String> {
    scalar_string(v)
        .ok_or_else(|| ctx.invalid(path, format!("expected a string, found {}", type_name(v))))
}

pub(super) fn boolean(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" | "1" => Ok(true),
            "false" | "no" | "n" | "off" | "0" | "" => Ok(false),
            _ => Err(ctx.invalid(
                path,
                format!("expected true or false, found {}", ctx.quote(path, s)),
            )),
        },
        other => Err(ctx.invalid(
            path,
            format!("expected true or false, found {}", type_name(other)),
        )),
    }
}

pub(super) fn integer(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| ctx.invalid(path, format!("expected an integer, found {n}"))),
        Value::String(s) => s.trim().parse().map_err(|_| {
            ctx.invalid(
                path,
                format!("expected an integer, found {}", ctx.quote(path, s)),
            )
        }),
        other => Err(ctx.invalid(
            path,
            format!("expected an integer, found {}", type_name(other)),
        )),
    }
}

pub(super) fn unsigned(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<u64> {
    let n = integer(ctx, path, v)?;
    u64::try_from(n).map_err(|_| {
        ctx.invalid(
            path,
            format!(
                "expected a non-negative integer, found {}",
                ctx.number(path, n)
            ),
        )
    })
}

pub(super) fn float(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<f64> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| ctx.invalid(path, "expected a number")),
        Value::String(s) => s.trim().parse().map_err(|_| {
            ctx.invalid(
                path,
                format!("expected a number, found {}", ctx.quote(path, s)),
            )
        }),
        other => Err(ctx.invalid(
            path,
            format!("expected a number, found {}", type_name(other)),
        )),
    }
}

pub(super) fn duration(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    // Like compose, a bare number is refused: its unit would be a guess.
    let d = match v {
        Value::String(s) => s.parse::<Duration>().map_err(|e| {
            ctx.invalid(
                path,
                format!("invalid duration {} ({e})", ctx.quote(path, s)),
            )
        })?,
        other => {
            return Err(ctx.invalid(
                path,
                format!(
                    "expected a duration with a unit like 30s or 1m30s, found {}",
                    type_name(other)
                ),
            ));
        }
    };
    Ok(Json::String(d.to_string()))
}

pub(super) fn bytes(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let n = match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| ctx.invalid(path, format!("invalid size {n}")))?,
        Value::String(s) => parse_bytes(s)
            .map_err(|e| ctx.invalid(path, format!("invalid size {} ({e})", ctx.quote(path, s))))?,
        other => {
            return Err(ctx.invalid(
                path,
                format!("expected a size like 64m, found {}", type_name(other)),
            ));
        }
    };
    Ok(Json::String(n.to_string()))
}

pub(super) fn string_list(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Vec<String>> {
    match v {
        Value::Sequence(seq) => seq
            .iter()
            .enumerate()
            .map(|(i, item)| string(ctx, &format!("{path}[{i}]"), item))
            .collect(),
        other => Err(ctx.invalid(
            path,
            format!("expected a list of strings, found {}", type_name(other)),
        )),
    }
}

pub(super) fn string_or_list(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Vec<String>> {
    match v {
        Value::Sequence(_) => string_list(ctx, path, v),
        Value::Null => Ok(Vec::new()),
        other => Ok(vec![string(ctx, path, other)?]),
    }
}

/// [`string_or_list`], each string with the key path it was read at (`path[i]` in a list).
pub(super) fn strings_at(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Vec<(String, String)>> {
    match v {
        Value::Sequence(seq) => seq
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let p = format!("{path}[{i}]");
                let s = string(ctx, &p, item)?;
                Ok((p, s))
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        other => Ok(vec![(path.to_owned(), string(ctx, path, other)?)]),
    }
}

/// A `KEY=VALUE` list or a mapping, as a map; `missing` decides what a `KEY` alone becomes.
pub(super) fn key_value_map(
    ctx: &Ctx<'_>,
    path: &str,
    v: &Value,
    missing: &dyn Fn(&str) -> Json,
) -> R<Map<String, Json>> {
    let mut out = Map::new();
    match v {
        Value::Null => {}
        Value::Sequence(seq) => {
            for (i, item) in seq.iter().enumerate() {
                let s = string(ctx, &format!("{path}[{i}]"), item)?;
                match s.split_once('=') {
                    Some((k, val)) => out.insert(k.to_string(), Json::String(val.to_string())),
                    None => out.insert(s.clone(), missing(&s)),
                };
            }
        }
        Value::Mapping(m) => {
            for (k, val) in m {
                let key = key_str(k);
                let j = match val {
                    Value::Null => missing(&key),
                    other => Json::String(string(ctx, &join(path, &key), other)?),
                };
                out.insert(key, j);
            }
        }
        other => {
            return Err(ctx.invalid(
                path,
                format!(
                    "expected a list of KEY=VALUE or a mapping, found {}",
                    type_name(other)
                ),
            ));
        }
    }
    Ok(out)
}

pub(super) fn string_map(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    let mut out = Map::new();
    for (k, val) in entries(ctx, path, v)? {
        let s = match val {
            Value::Null => String::new(),
            other => string(ctx, &join(path, &k), other)?,
        };
        out.insert(k, Json::String(s));
    }
    Ok(Json::Object(out))
}

pub(super) fn labels(ctx: &Ctx<'_>, path: &str, v: &Value) -> R<Json> {
    key_value_map(ctx, path, v, &|_| Json::String(String::new())).map(Json::Object)
}

/// Raw YAML to JSON (for `x-*` and loosely typed keys). Non-string keys become strings.
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Json::Null, Json::Number)
            }
        }
        Value::String(s) => Json::String(s.clone()),
        Value::Sequence(seq) => Json::Array(seq.iter().map(to_json).collect()),
        Value::Mapping(m) => {
            Json::Object(m.iter().map(|(k, v)| (key_str(k), to_json(v))).collect())
        }
        Value::Tagged(t) => to_json(&t.value),
    }
}

/// The known key within edit distance 2 of `key` (case-insensitive), if any.
pub(in crate::compose) fn closest<'k>(
    key: &str,
    known: impl Iterator<Item = &'k &'k str>,
) -> Option<String> {
    let key = key.to_ascii_lowercase();
    known
        .map(|k| (edit_distance(&key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k.to_string())
}

/// Levenshtein distance over chars.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
