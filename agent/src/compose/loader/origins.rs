//! Which compose file wrote each key of a service (and of the top-level `x-gantry`), so that
//! an error about a key after the files are merged names that file rather than the first one.
//!
//! Design: each file's services (after its `extends` and `include`s are applied) and its
//! top-level `x-gantry` are kept in load order. An error's key below a service
//! (`deploy.resources.limits.cpus`, `x-gantry.health.timeout`) is traced to the file that
//! wrote the deepest part of its path (`deploy.resources.limits.cpus`, else
//! `deploy.resources.limits`, ... else `deploy`); of two files that wrote as deep, the later
//! one, whose value the merge kept. A key no file wrote (not even its first part) is traced to
//! none: the caller names the first file. A null counts as not written.
//!
//! Limits: a key whose own name holds a dot is traced only as deep as the part before the
//! dot. A list item (`volumes[1]`, one missing `env_file` of several) is traced as its list,
//! to the later file that wrote the list: the merged list's index is not the one in any file.
//! A service that `extends` or `include` brought in is named by the file that extends or
//! includes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};

const X_GANTRY: &str = "x-gantry";

/// What each file wrote, in load order.
#[derive(Debug, Default)]
pub(super) struct Origins {
    /// Each file's top-level `x-gantry`, as `{"x-gantry": ...}`.
    stack: Vec<(PathBuf, Json)>,
    /// Each file's mapping of a service, by the service's name.
    services: BTreeMap<String, Vec<(PathBuf, Json)>>,
}

impl Origins {
    /// Records the services and the top-level `x-gantry` of `doc`, the document `file` (as
    /// errors show it) adds to the merge.
    pub(super) fn record(&mut self, file: &Path, doc: &Map<String, Json>) {
        if let Some(x) = doc.get(X_GANTRY).filter(|x| !x.is_null()) {
            let wrapped = Map::from_iter([(X_GANTRY.to_owned(), x.clone())]);
            self.stack.push((file.to_path_buf(), Json::Object(wrapped)));
        }
        let services = doc.get("services").and_then(Json::as_object);
        for (name, service) in services.into_iter().flatten() {
            if service.is_object() {
                let writes = self.services.entry(name.clone()).or_default();
                writes.push((file.to_path_buf(), service.clone()));
            }
        }
    }

    /// The file that wrote `key` (`x-gantry.min_ready`) of the top-level `x-gantry`.
    pub(super) fn stack_file(&self, key: &str) -> Option<&Path> {
        file_of(&self.stack, key)
    }

    /// The file that wrote `key` (`env_file`, `deploy.replicas`, `x-gantry.health.port`),
    /// a path below `service`.
    pub(super) fn service_file(&self, service: &str, key: &str) -> Option<&Path> {
        file_of(self.services.get(service)?, key)
    }
}

/// Of `writes`, the file that holds the deepest part of `key`'s path (at least its first
/// part); the last such file when several hold as much.
fn file_of<'w>(writes: &'w [(PathBuf, Json)], key: &str) -> Option<&'w Path> {
    // `tmpfs[1]` is traced as `tmpfs`.
    let segments: Vec<&str> = key
        .split('.')
        .map(|s| s.split('[').next().unwrap_or(s))
        .filter(|s| !s.is_empty())
        .collect();
    writes
        .iter()
        .map(|(file, written)| (depth(written, &segments), file))
        .filter(|(depth, _)| *depth > 0)
        .max_by_key(|(depth, _)| *depth)
        .map(|(_, file)| file.as_path())
}

/// How many of `segments`, from the first, lead into `written` through its mappings to a
/// value other than null.
fn depth(written: &Json, segments: &[&str]) -> usize {
    let mut at = written;
    for (n, segment) in segments.iter().enumerate() {
        match at.get(*segment) {
            Some(next) if !next.is_null() => at = next,
            _ => return n,
        }
    }
    segments.len()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_deepest_then_the_latest_writer_is_named() {
        let mut o = Origins::default();
        let doc = |x: Json| {
            json!({"x-gantry": x.clone(), "services": {"web": {"x-gantry": x}}})
                .as_object()
                .cloned()
                .unwrap()
        };
        o.record(Path::new("a.yaml"), &doc(json!({"health": {"port": 1}})));
        o.record(Path::new("b.yaml"), &doc(json!({"health": {"tcp": 1}})));
        o.record(
            Path::new("c.yaml"),
            &json!({"services": {"db": {}}})
                .as_object()
                .cloned()
                .unwrap(),
        );
        for (key, want) in [
            ("x-gantry.health.port", "a.yaml"),
            ("x-gantry.health.tcp", "b.yaml"),
            ("x-gantry.health", "b.yaml"),
            ("x-gantry.health.startup.deadline", "b.yaml"),
            ("x-gantry.job", "b.yaml"),
            ("x-gantry", "b.yaml"),
        ] {
            assert_eq!(o.service_file("web", key), Some(Path::new(want)), "{key}");
            assert_eq!(o.stack_file(key), Some(Path::new(want)), "{key}");
        }
        assert_eq!(o.service_file("db", "x-gantry.job"), None);
    }

    #[test]
    fn any_key_of_a_service_is_traced_to_its_writer() {
        let mut o = Origins::default();
        let doc = |web: Json| {
            json!({"services": {"web": web}})
                .as_object()
                .cloned()
                .unwrap()
        };
        o.record(
            Path::new("a.yaml"),
            &doc(json!({"image": "x", "scale": 2, "tmpfs": ["/t"], "deploy": {"replicas": 2}})),
        );
        o.record(
            Path::new("b.yaml"),
            &doc(json!({"cpus": 1, "deploy": {"resources": {"limits": {"cpus": 2}}}})),
        );
        o.record(Path::new("c.yaml"), &doc(json!({"scale": null})));
        for (key, want) in [
            ("scale", Some("a.yaml")),
            ("tmpfs[1]", Some("a.yaml")),
            ("deploy.replicas", Some("a.yaml")),
            ("cpus", Some("b.yaml")),
            ("deploy.resources.limits.cpus", Some("b.yaml")),
            ("deploy.restart_policy", Some("b.yaml")),
            ("env_file", None),
        ] {
            assert_eq!(o.service_file("web", key), want.map(Path::new), "{key}");
        }
    }
}
