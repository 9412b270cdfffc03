//! Output in the shape of `docker compose config`.
//!
//! JSON: the model's serde form, with every `$` doubled (compose escapes dollars in its output
//! so the result can be fed back to compose unchanged). YAML: the same document plus the
//! services' `x-*` keys, which compose prints in YAML but not in JSON.

use super::model::Project;

/// `docker compose config --format json`.
pub fn to_compose_json(project: &Project) -> serde_json::Value {
    escape_dollars(serde_json::to_value(project).unwrap_or(serde_json::Value::Null))
}

/// `docker compose config` (YAML).
pub fn to_yaml(project: &Project) -> String {
    let mut v = to_compose_json(project);
    if let Some(services) = v.get_mut("services").and_then(|s| s.as_object_mut()) {
        for (name, svc) in &project.services {
            let Some(obj) = services.get_mut(name).and_then(|s| s.as_object_mut()) else {
                continue;
            };
            for (k, ext) in &svc.extensions {
                obj.insert(k.clone(), escape_dollars(ext.clone()));
            }
            if let Some(xg) = &svc.x_gantry {
                obj.insert("x-gantry".into(), escape_dollars(xg.clone()));
            }
        }
    }
    serde_yaml::to_string(&v).unwrap_or_default()
}

fn escape_dollars(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(s.replace('$', "$$")),
        Value::Array(a) => Value::Array(a.into_iter().map(escape_dollars).collect()),
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k.replace('$', "$$"), escape_dollars(v)))
                .collect(),
        ),
        other => other,
    }
}
