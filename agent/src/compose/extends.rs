//! `extends`: a service built on another service, from the same file or another one.
//!
//! Design: works on canonical services (see [`super::canonical`]). The base service is
//! canonicalised in its own file's context, so its relative paths resolve against that file's
//! directory; then the extending service is merged over it with the service merge rules of
//! [`super::merge`], its `!reset` / `!override` tags applied to the base as compose does.
//! Chains are followed; a cycle is an error naming the file and service. A base service or
//! file that interpolation named is named as written in errors ([`WrittenNames`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};

use super::error::ComposeError;
use super::merge::{Tags, merge_extended};
use super::written::{NameKind, WrittenNames};

/// A file's canonical services and the `!reset` / `!override` tags found in it.
pub type FileServices = (Map<String, Json>, Tags);

/// Loads another file's canonical services (by absolute path).
pub type FileLoader<'a> = dyn FnMut(&Path) -> Result<FileServices, ComposeError> + 'a;

type Cache = BTreeMap<PathBuf, FileServices>;

/// What a resolution follows: the names of the files and services on the way, each with the
/// service's name for messages.
type Stack = Vec<(PathBuf, String, String)>;

/// Resolves `extends` in every service of `services` (defined in `file`, whose tags are
/// `tags`). `names`: the base services and files interpolation named, which errors name as
/// written.
pub fn resolve_all(
    file: &Path,
    services: &Map<String, Json>,
    tags: &Tags,
    names: &WrittenNames,
    load_file: &mut FileLoader<'_>,
) -> Result<Map<String, Json>, ComposeError> {
    let mut cache: Cache = BTreeMap::new();
    cache.insert(file.to_path_buf(), (services.clone(), tags.clone()));
    let mut out = Map::new();
    for name in services.keys() {
        let mut stack = Vec::new();
        let svc = resolve(file, (name, name), &mut cache, names, load_file, &mut stack)?;
        out.insert(name.clone(), svc);
    }
    Ok(out)
}

/// The service `name` of `file`, its `extends` applied. `shown`: its name for messages (as
/// written, when an `extends` a variable filled named it).
fn resolve(
    file: &Path,
    (name, shown): (&str, &str),
    cache: &mut Cache,
    names: &WrittenNames,
    load_file: &mut FileLoader<'_>,
    stack: &mut Stack,
) -> Result<Json, ComposeError> {
    let err = |message: String| ComposeError::Extends {
        file: names.path(file),
        service: shown.to_string(),
        message,
    };
    if !cache.contains_key(file) {
        let loaded = load_file(file)?;
        cache.insert(file.to_path_buf(), loaded);
    }
    let Some(mut svc) = cache.get(file).and_then(|(m, _)| m.get(name)).cloned() else {
        return Err(err(format!(
            "no service {shown:?} in {}",
            names.path(file).display()
        )));
    };
    let Some(ext) = svc.as_object_mut().and_then(|o| o.remove("extends")) else {
        return Ok(svc);
    };
    if stack.iter().any(|(f, n, _)| f == file && n == name) {
        let chain: Vec<&str> = stack.iter().map(|(_, _, s)| s.as_str()).collect();
        return Err(err(format!(
            "extends cycle: {} -> {shown}",
            chain.join(" -> ")
        )));
    }
    let base_name = ext
        .get("service")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string();
    let base_file = ext
        .get("file")
        .and_then(Json::as_str)
        .map(PathBuf::from)
        .unwrap_or_else(|| file.to_path_buf());
    let base_shown = names.path(&base_file);
    if !cache.contains_key(&base_file) {
        let loaded = load_file(&base_file)
            .map_err(|e| err(format!("cannot load {}: {e}", base_shown.display())))?;
        cache.insert(base_file.clone(), loaded);
    }
    if !cache
        .get(&base_file)
        .is_some_and(|(m, _)| m.contains_key(&base_name))
    {
        return Err(err(format!(
            "service {} not found in {}",
            names.quote(NameKind::Service, &base_name),
            base_shown.display()
        )));
    }
    stack.push((file.to_path_buf(), name.to_owned(), shown.to_owned()));
    let base_as = names.raw(NameKind::Service, &base_name);
    let base = resolve(
        &base_file,
        (&base_name, &base_as),
        cache,
        names,
        load_file,
        stack,
    )?;
    stack.pop();
    let tags = cache.get(file).map(|(_, t)| t.clone()).unwrap_or_default();
    Ok(merge_extended(base, svc, name, &tags))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_file_chain_and_cycle() {
        let services: Map<String, Json> = serde_json::from_value(json!({
            "base": {"image": "x", "environment": {"A": "1"}, "ports": [{"target": 80}]},
            "mid": {"extends": {"service": "base"}, "environment": {"B": "2"}},
            "web": {"extends": {"service": "mid"}, "image": "y", "command": ["run"]},
        }))
        .unwrap();
        let mut loader = |p: &Path| -> Result<FileServices, ComposeError> {
            Err(ComposeError::project(format!(
                "unexpected load of {}",
                p.display()
            )))
        };
        let out = resolve_all(
            Path::new("/c.yaml"),
            &services,
            &Tags::default(),
            &WrittenNames::default(),
            &mut loader,
        )
        .unwrap();
        assert_eq!(out["web"]["image"], json!("y"));
        assert_eq!(out["web"]["environment"], json!({"A": "1", "B": "2"}));
        assert_eq!(out["web"]["ports"], json!([{"target": 80}]));
        assert!(out["web"].get("extends").is_none());

        let cyclic: Map<String, Json> = serde_json::from_value(json!({
            "a": {"extends": {"service": "b"}},
            "b": {"extends": {"service": "a"}},
        }))
        .unwrap();
        let e = resolve_all(
            Path::new("/c.yaml"),
            &cyclic,
            &Tags::default(),
            &WrittenNames::default(),
            &mut loader,
        )
        .unwrap_err();
        assert!(e.to_string().contains("extends cycle"), "{e}");
        let missing: Map<String, Json> =
            serde_json::from_value(json!({"a": {"extends": {"service": "nope"}}})).unwrap();
        let e = resolve_all(
            Path::new("/c.yaml"),
            &missing,
            &Tags::default(),
            &WrittenNames::default(),
            &mut loader,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/c.yaml: services.a.extends: service \"nope\" not found in /c.yaml"
        );
    }

    #[test]
    fn other_file() {
        let services: Map<String, Json> = serde_json::from_value(json!({
            "web": {"extends": {"service": "common", "file": "/other/base.yaml"}, "image": "y"},
        }))
        .unwrap();
        let mut loader = |p: &Path| -> Result<FileServices, ComposeError> {
            assert_eq!(p, Path::new("/other/base.yaml"));
            Ok((serde_json::from_value(json!({"common": {"image": "x", "volumes": [{"type": "bind", "source": "/other/data", "target": "/d"}]}}))
                .unwrap(), Tags::default()))
        };
        let out = resolve_all(
            Path::new("/c.yaml"),
            &services,
            &Tags::default(),
            &WrittenNames::default(),
            &mut loader,
        )
        .unwrap();
        assert_eq!(out["web"]["image"], json!("y"));
        assert_eq!(out["web"]["volumes"][0]["source"], json!("/other/data"));
    }
}
