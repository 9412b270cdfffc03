//! Which compose file wrote each part of the `x-gantry` settings, so that an error about one
//! names that file rather than the first one.
//!
//! Design: each file's `x-gantry` mappings (the top-level one and each service's, after its
//! `extends` and `include`s are applied) are kept in load order. An error's key
//! (`x-gantry.health.timeout`) is traced to the file that wrote the deepest part of its path
//! (`health.timeout`, else `health`, else any `x-gantry`); of two files that wrote as deep,
//! the later one, whose value the merge kept.
//!
//! Limits: a key whose own name holds a dot is traced only as deep as the part before the
//! dot. A service's `x-gantry` that `extends` or `include` brought in is named by the file
//! that extends or includes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value as Json};

const X_GANTRY: &str = "x-gantry";

/// The `x-gantry` mappings each file wrote, in load order.
#[derive(Debug, Default)]
pub(super) struct Origins {
    stack: Vec<(PathBuf, Json)>,
    services: BTreeMap<String, Vec<(PathBuf, Json)>>,
}

impl Origins {
    /// Records the `x-gantry` mappings of `doc`, the document `file` (as errors show it) adds
    /// to the merge.
    pub(super) fn record(&mut self, file: &Path, doc: &Map<String, Json>) {
        let written = |v: Option<&Json>| v.filter(|x| !x.is_null()).cloned();
        if let Some(x) = written(doc.get(X_GANTRY)) {
            self.stack.push((file.to_path_buf(), x));
        }
        let services = doc.get("services").and_then(Json::as_object);
        for (name, service) in services.into_iter().flatten() {
            if let Some(x) = written(service.get(X_GANTRY)) {
                let writes = self.services.entry(name.clone()).or_default();
                writes.push((file.to_path_buf(), x));
            }
        }
    }

    /// The file that wrote `key` (`x-gantry.min_ready`) of the top-level `x-gantry`.
    pub(super) fn stack_file(&self, key: &str) -> Option<&Path> {
        file_of(&self.stack, key)
    }

    /// The file that wrote `key` (`x-gantry.health.port`) of `service`'s `x-gantry`.
    pub(super) fn service_file(&self, service: &str, key: &str) -> Option<&Path> {
        file_of(self.services.get(service)?, key)
    }
}

/// Of `writes`, the file whose `x-gantry` holds the deepest part of `key`'s path; the last
/// such file when several hold as much.
fn file_of<'w>(writes: &'w [(PathBuf, Json)], key: &str) -> Option<&'w Path> {
    let rest = key.strip_prefix(X_GANTRY).unwrap_or(key);
    let segments: Vec<&str> = rest.split('.').filter(|s| !s.is_empty()).collect();
    writes
        .iter()
        .max_by_key(|(_, x)| depth(x, &segments))
        .map(|(file, _)| file.as_path())
}

/// How many of `segments`, from the first, lead into `x` through its mappings.
fn depth(x: &Json, segments: &[&str]) -> usize {
    let mut at = x;
    for (n, segment) in segments.iter().enumerate() {
        match at.get(*segment) {
            Some(next) => at = next,
            None => return n,
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
}
