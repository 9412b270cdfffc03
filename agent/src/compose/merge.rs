//! Merging compose documents and services by the Compose Specification's rules.
//!
//! Rules (on canonical JSON, see [`super::canonical`]):
//! - mappings merge key by key, recursively (`environment`, `labels`, `depends_on`, `networks`,
//!   `deploy`, `healthcheck`, `build`, top-level `networks`/`volumes`...);
//! - `command`, `entrypoint`, `healthcheck.test` and each `ulimits.<name>` are replaced;
//! - `logging` is replaced when the drivers differ, merged otherwise;
//! - sequences are appended, then de-duplicated where compose does: `ports` by
//!   `ip:published:target/protocol`, `volumes` and `devices` by target, `secrets`/`configs` by
//!   target (or source), `env_file` by path, `tmpfs` by what precedes its first `=` (compose's
//!   key), other string lists (`dns`, `expose`, `cap_add`, `extra_hosts`...) by value; a later
//!   duplicate replaces the earlier one in place;
//! - `networks.<n>.ipam.config` pools merge by `subnet`, exactly as compose 2.40.3
//!   (compose-go 2.9) does it, quirks included ([`merge_ipam_pools`]);
//! - scalars are replaced;
//! - under `x-gantry` (a service's and the top-level one), lists are replaced, not appended
//!   (`canary.steps` of an override file is the one used), mappings merge key by key;
//! - a null service (`web:` alone) over a defined one keeps the definition;
//! - `!reset` removes the key from what was merged so far, `!override` replaces it instead of
//!   merging; in a service reached through `extends`, they apply to its base
//!   ([`merge_extended`]).
//!
//! Design: one recursive function driven by the key path, so the same code merges files and
//! `extends` (which uses the service-level rules).

use serde_json::{Map, Value as Json};
use serde_yaml::Value;

/// Key paths carrying `!reset` / `!override` tags in one document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags {
    pub resets: Vec<Vec<String>>,
    pub overrides: Vec<Vec<String>>,
}

/// Removes `!reset` / `!override` tags from a YAML document, recording where they were.
/// Errors carry (key path, message).
pub fn strip_tags(v: Value) -> Result<(Value, Tags), (String, String)> {
    let mut tags = Tags::default();
    let mut path = Vec::new();
    let v = strip(v, &mut path, &mut tags)?;
    Ok((v, tags))
}

fn strip(v: Value, path: &mut Vec<String>, tags: &mut Tags) -> Result<Value, (String, String)> {
    match v {
        Value::Mapping(m) => {
            let mut out = serde_yaml::Mapping::new();
            for (k, val) in m {
                let key = match &k {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => String::from("?"),
                };
                path.push(key);
                let keep = match val {
                    Value::Tagged(t) => {
                        let tag = t.tag.to_string();
                        match tag.trim_start_matches('!') {
                            "reset" => {
                                tags.resets.push(path.clone());
                                None
                            }
                            "override" => {
                                tags.overrides.push(path.clone());
                                Some(strip(t.value, path, tags)?)
                            }
                            other => {
                                return Err((
                                    path.join("."),
                                    format!(
                                        "unknown YAML tag !{other} (Gantry knows !reset and !override)"
                                    ),
                                ));
                            }
                        }
                    }
                    other => Some(strip(other, path, tags)?),
                };
                path.pop();
                if let Some(val) = keep {
                    out.insert(k, val);
                }
            }
            Ok(Value::Mapping(out))
        }
        Value::Sequence(seq) => seq
            .into_iter()
            .map(|item| match item {
                Value::Tagged(t) => strip(t.value, path, tags),
                other => strip(other, path, tags),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Sequence),
        Value::Tagged(t) => Err((path.join("."), format!("unexpected YAML tag {}", t.tag))),
        other => Ok(other),
    }
}

/// Gantry's own extension, whose lists a later file replaces.
const X_GANTRY: &str = "x-gantry";

/// How a key path merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Replace,
    /// Mappings merge key by key; a list (or any other value) replaces the earlier one.
    ReplaceLists,
    Logging,
    IpamPools,
    Append(Dedup),
    Default,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dedup {
    Value,
    Port,
    Target,
    Mount,
    Path,
    /// What comes before the first `=` (compose's key for `tmpfs`: `/run:size=64m` and
    /// `/run:size=128m` are one entry, `/run` and `/run:mode=1777` two).
    KeyValue,
}

/// The rule for a path relative to a service (`["ports"]`, `["healthcheck", "test"]`).
fn service_rule(rel: &[String]) -> Rule {
    let r: Vec<&str> = rel.iter().map(String::as_str).collect();
    match r.as_slice() {
        ["command"] | ["entrypoint"] | ["healthcheck", "test"] | ["ulimits", _] => Rule::Replace,
        ["logging"] => Rule::Logging,
        ["ports"] => Rule::Append(Dedup::Port),
        ["volumes"] | ["devices"] => Rule::Append(Dedup::Target),
        ["secrets"] | ["configs"] => Rule::Append(Dedup::Mount),
        ["env_file"] => Rule::Append(Dedup::Path),
        ["tmpfs"] => Rule::Append(Dedup::KeyValue),
        ["dns"]
        | ["dns_opt"]
        | ["dns_search"]
        | ["expose"]
        | ["cap_add"]
        | ["cap_drop"]
        | ["extra_hosts"]
        | ["security_opt"]
        | ["profiles"]
        | ["links"]
        | ["group_add"]
        | ["volumes_from"]
        | ["networks", _, "aliases"]
        | ["networks", _, "link_local_ips"] => Rule::Append(Dedup::Value),
        _ => Rule::Default,
    }
}

fn rule(path: &[String]) -> Rule {
    match path {
        [x, _, ..] if x == X_GANTRY => Rule::ReplaceLists,
        [s, _, x, _, ..] if s == "services" && x == X_GANTRY => Rule::ReplaceLists,
        [s, _, rest @ ..] if s == "services" && !rest.is_empty() => service_rule(rest),
        [n, _, i, c] if n == "networks" && i == "ipam" && c == "config" => Rule::IpamPools,
        _ => Rule::Default,
    }
}

/// Merges `overlay` into `base` at `path` (absolute key path in a document).
pub fn merge_at(base: Json, overlay: Json, path: &mut Vec<String>) -> Json {
    match rule(path) {
        Rule::Replace => overlay,
        Rule::Logging => {
            let bd = base.get("driver").cloned();
            let od = overlay.get("driver").cloned();
            match (bd, od) {
                (Some(b), Some(o)) if b != o => overlay,
                _ => merge_maps(base, overlay, path),
            }
        }
        Rule::IpamPools => match (base, overlay) {
            (Json::Array(b), Json::Array(o)) => Json::Array(merge_ipam_pools(b, o, path)),
            (_, o) => o,
        },
        Rule::Append(d) => match (base, overlay) {
            (Json::Array(mut a), Json::Array(b)) => {
                a.extend(b);
                Json::Array(dedup(a, d))
            }
            (_, o) => o,
        },
        Rule::ReplaceLists => match (base, overlay) {
            (b @ Json::Object(_), o @ Json::Object(_)) => merge_maps(b, o, path),
            (_, o) => o,
        },
        Rule::Default => match (base, overlay) {
            (b @ Json::Object(_), o @ Json::Object(_)) => merge_maps(b, o, path),
            (Json::Array(mut a), Json::Array(b)) => {
                a.extend(b);
                Json::Array(a)
            }
            // `networks: {front: }` over `{front: {aliases: [...]}}` keeps the options.
            (b @ Json::Object(_), Json::Null) if path.len() == 4 && path[2] == "networks" => b,
            // `web:` (null) over a `web` an earlier file defines keeps it, as compose does.
            (b @ Json::Object(_), Json::Null) if path.len() == 2 && path[0] == "services" => b,
            (_, o) => o,
        },
    }
}

fn merge_maps(base: Json, overlay: Json, path: &mut Vec<String>) -> Json {
    let (Json::Object(mut b), Json::Object(o)) = (base, overlay) else {
        return Json::Null;
    };
    for (k, v) in o {
        path.push(k.clone());
        let merged = match b.remove(&k) {
            Some(existing) => merge_at(existing, v, path),
            None => v,
        };
        path.pop();
        b.insert(k, merged);
    }
    Json::Object(b)
}

/// `networks.<n>.ipam.config` of a later file over an earlier one, pool by pool, giving what
/// compose 2.40.3 gives (checked with `docker compose -f a -f b config`). For each earlier
/// pool, in order, each later pool is taken in order:
/// - when its `subnet` differs from the earlier pool's and no pool in the result so far has
///   its subnet, it is added to the result as it is;
/// - otherwise it is merged into the earlier pool, which compose modifies in place (so its
///   `subnet` can change to the later pool's), and the earlier pool then takes the place of
///   the first pool in the result with its (new) subnet, or is added.
///
/// So a pool with the same subnet on both sides is merged (`gateway` over `gateway`,
/// `aux_addresses` key by key), an earlier pool no later pool names is dropped, and mixed
/// lists give compose's odd results (the same pool twice). An empty list on either side
/// gives an empty list. Only compose's aliasing of nested maps is not reproduced: a merged
/// pool's `aux_addresses` never changes a later pool printed on its own.
fn merge_ipam_pools(mut earlier: Vec<Json>, later: Vec<Json>, path: &mut Vec<String>) -> Vec<Json> {
    /// A result entry: an earlier pool (as modified so far) or a later pool.
    #[derive(Clone, Copy)]
    enum Pool {
        Earlier(usize),
        Later(usize),
    }
    fn subnet(v: &Json) -> Option<&Json> {
        v.get("subnet")
    }
    let mut result: Vec<Pool> = Vec::new();
    for e in 0..earlier.len() {
        for (l, pool) in later.iter().enumerate() {
            let in_result = |earlier: &[Json], s: Option<&Json>| {
                result.iter().position(|r| {
                    let v = match *r {
                        Pool::Earlier(i) => &earlier[i],
                        Pool::Later(i) => &later[i],
                    };
                    subnet(v) == s
                })
            };
            if subnet(pool) != subnet(&earlier[e]) && in_result(&earlier, subnet(pool)).is_none() {
                result.push(Pool::Later(l));
                continue;
            }
            let merged = merge_maps(std::mem::take(&mut earlier[e]), pool.clone(), path);
            earlier[e] = merged;
            match in_result(&earlier, subnet(&earlier[e])) {
                Some(at) => result[at] = Pool::Earlier(e),
                None => result.push(Pool::Earlier(e)),
            }
        }
    }
    result
        .into_iter()
        .map(|r| match r {
            Pool::Earlier(i) => earlier[i].clone(),
            Pool::Later(i) => later[i].clone(),
        })
        .collect()
}

fn dedup_key(v: &Json, d: Dedup) -> Option<String> {
    let s = |k: &str| v.get(k).and_then(Json::as_str).map(str::to_string);
    match d {
        Dedup::Value => Some(v.to_string()),
        Dedup::Port => Some(format!(
            "{}:{}:{}/{}",
            s("host_ip").unwrap_or_else(|| "0.0.0.0".into()),
            s("published").unwrap_or_default(),
            v.get("target").map(Json::to_string).unwrap_or_default(),
            s("protocol").unwrap_or_else(|| "tcp".into()),
        )),
        Dedup::Target => s("target"),
        Dedup::Mount => s("target").or_else(|| s("source")),
        Dedup::Path => s("path"),
        Dedup::KeyValue => v
            .as_str()
            .map(|t| t.split('=').next().unwrap_or(t).to_owned()),
    }
}

/// Removes duplicates: a later entry with the same key replaces the earlier one in place.
fn dedup(items: Vec<Json>, d: Dedup) -> Vec<Json> {
    let mut out: Vec<Json> = Vec::with_capacity(items.len());
    let mut seen: Vec<(String, usize)> = Vec::new();
    for item in items {
        match dedup_key(&item, d) {
            Some(k) => {
                if let Some(&(_, idx)) = seen.iter().find(|(s, _)| *s == k) {
                    out[idx] = item;
                } else {
                    seen.push((k, out.len()));
                    out.push(item);
                }
            }
            None => out.push(item),
        }
    }
    out
}

/// De-duplicates every sequence of a service that compose de-duplicates (also within one file).
pub fn enforce_unicity(service: &mut Json) {
    let Some(obj) = service.as_object_mut() else {
        return;
    };
    for (k, v) in obj.iter_mut() {
        let rel = vec![k.clone()];
        if let (Rule::Append(d), Json::Array(items)) = (service_rule(&rel), &mut *v) {
            *items = dedup(std::mem::take(items), d);
        }
    }
}

fn remove_path(doc: &mut Json, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = doc;
    for p in parents {
        match cur.get_mut(p) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(obj) = cur.as_object_mut() {
        obj.remove(last);
    }
}

fn get_path<'a>(doc: &'a Json, path: &[String]) -> Option<&'a Json> {
    let mut cur = doc;
    for p in path {
        cur = cur.get(p)?;
    }
    Some(cur)
}

fn set_path(doc: &mut Json, path: &[String], value: Json) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = doc;
    for p in parents {
        let Some(obj) = cur.as_object_mut() else {
            return;
        };
        cur = obj
            .entry(p.clone())
            .or_insert_with(|| Json::Object(Map::new()));
    }
    if let Some(obj) = cur.as_object_mut() {
        obj.insert(last.clone(), value);
    }
}

/// Merges document `overlay` (with its tags) into `base`.
pub fn merge_documents(mut base: Json, overlay: Json, tags: &Tags) -> Json {
    for p in &tags.resets {
        remove_path(&mut base, p);
    }
    let mut path = Vec::new();
    let mut merged = merge_at(base, overlay.clone(), &mut path);
    for p in &tags.overrides {
        if let Some(v) = get_path(&overlay, p) {
            set_path(&mut merged, p, v.clone());
        }
    }
    merged
}

/// Merges service `overlay` over service `base` (for `extends`).
pub fn merge_services(base: Json, overlay: Json) -> Json {
    let mut path = vec!["services".to_string(), "_".to_string()];
    merge_at(base, overlay, &mut path)
}

/// Merges service `overlay`, named `name` in a document carrying `tags`, over the service it
/// `extends`: the `!reset` / `!override` tags under `services.<name>` apply to the base as
/// they would to an earlier file's service.
pub fn merge_extended(base: Json, overlay: Json, name: &str, tags: &Tags) -> Json {
    let rel = |p: &[String]| -> Option<Vec<String>> {
        match p {
            [s, n, rest @ ..] if s == "services" && n == name && !rest.is_empty() => {
                Some(rest.to_vec())
            }
            _ => None,
        }
    };
    let mut base = base;
    for p in tags.resets.iter().filter_map(|p| rel(p)) {
        remove_path(&mut base, &p);
    }
    let mut merged = merge_services(base, overlay.clone());
    for p in tags.overrides.iter().filter_map(|p| rel(p)) {
        if let Some(v) = get_path(&overlay, &p) {
            set_path(&mut merged, &p, v.clone());
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(services: Json) -> Json {
        json!({"services": services})
    }

    #[test]
    fn service_merge_rules() {
        let base = doc(json!({"web": {
            "image": "a:1",
            "command": ["a", "b"],
            "environment": {"A": "1", "B": "1"},
            "labels": {"x": "1"},
            "ports": [{"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"}],
            "volumes": [{"type": "volume", "source": "v", "target": "/data"}],
            "dns": ["1.1.1.1"],
            "healthcheck": {"test": ["CMD", "a"], "interval": "10s"},
            "ulimits": {"nofile": {"soft": 1, "hard": 2}},
            "logging": {"driver": "json-file", "options": {"max-size": "1m"}},
            "networks": {"front": {"aliases": ["w"]}},
        }}));
        let over = doc(json!({"web": {
            "image": "a:2",
            "command": ["c"],
            "environment": {"B": "2", "C": "3"},
            "ports": [
                {"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"},
                {"mode": "ingress", "target": 443, "published": "8443", "protocol": "tcp"}
            ],
            "volumes": [{"type": "bind", "source": "/host", "target": "/data"}],
            "dns": ["1.1.1.1", "8.8.8.8"],
            "healthcheck": {"test": ["CMD", "b", "c"]},
            "ulimits": {"nofile": 5},
            "logging": {"driver": "syslog"},
            "networks": {"front": null, "back": null},
        }}));
        let m = merge_documents(base, over, &Tags::default());
        let w = &m["services"]["web"];
        assert_eq!(w["image"], json!("a:2"));
        assert_eq!(w["command"], json!(["c"]));
        assert_eq!(w["environment"], json!({"A": "1", "B": "2", "C": "3"}));
        assert_eq!(w["labels"], json!({"x": "1"}));
        assert_eq!(w["ports"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            w["volumes"],
            json!([{"type": "bind", "source": "/host", "target": "/data"}])
        );
        assert_eq!(w["dns"], json!(["1.1.1.1", "8.8.8.8"]));
        assert_eq!(
            w["healthcheck"],
            json!({"test": ["CMD", "b", "c"], "interval": "10s"})
        );
        assert_eq!(w["ulimits"], json!({"nofile": 5}));
        assert_eq!(w["logging"], json!({"driver": "syslog"}));
        assert_eq!(
            w["networks"],
            json!({"front": {"aliases": ["w"]}, "back": null})
        );
    }

    #[test]
    fn logging_same_driver_merges_options() {
        let base = doc(json!({"s": {"logging": {"driver": "json-file", "options": {"a": "1"}}}}));
        let over = doc(json!({"s": {"logging": {"options": {"b": "2"}}}}));
        let m = merge_documents(base, over, &Tags::default());
        assert_eq!(
            m["services"]["s"]["logging"],
            json!({"driver": "json-file", "options": {"a": "1", "b": "2"}})
        );
    }

    #[test]
    fn reset_and_override_tags() {
        let y: Value = serde_yaml::from_str(
            "services:\n  web:\n    ports: !reset []\n    environment: !override {ONLY: x}\n",
        )
        .unwrap();
        let (stripped, tags) = strip_tags(y).unwrap();
        assert_eq!(
            tags.resets,
            vec![vec!["services".to_string(), "web".into(), "ports".into()]]
        );
        assert!(stripped["services"]["web"].get("ports").is_none());
        let base = doc(
            json!({"web": {"ports": [{"target": 1}], "environment": {"A": "1"}, "image": "x"}}),
        );
        let over = doc(json!({"web": {"environment": {"ONLY": "x"}}}));
        let m = merge_documents(base, over, &tags);
        assert!(m["services"]["web"].get("ports").is_none());
        assert_eq!(m["services"]["web"]["environment"], json!({"ONLY": "x"}));
        assert_eq!(m["services"]["web"]["image"], json!("x"));
    }

    #[test]
    fn unknown_tag_is_an_error() {
        let y: Value = serde_yaml::from_str("a: !weird 1\n").unwrap();
        assert_eq!(strip_tags(y).unwrap_err().0, "a");
    }

    /// `networks.n.ipam.config` of two files merged; the expected results are what
    /// `docker compose -f a.yaml -f b.yaml config` (2.40.3) prints for the same lists.
    fn ipam_merged(earlier: Json, later: Json) -> Json {
        let net = |pools: Json| json!({"networks": {"n": {"ipam": {"config": pools}}}});
        let m = merge_documents(net(earlier), net(later), &Tags::default());
        m["networks"]["n"]["ipam"]["config"].clone()
    }

    #[test]
    fn ipam_pools_merge_by_subnet_as_compose_does() {
        // The same subnet: one pool, merged key by key.
        assert_eq!(
            ipam_merged(
                json!([{"subnet": "10.1.0.0/16", "gateway": "10.1.0.1", "aux_addresses": {"a": "10.1.0.2"}}]),
                json!([{"subnet": "10.1.0.0/16", "ip_range": "10.1.1.0/24", "aux_addresses": {"b": "10.1.0.3"}}]),
            ),
            json!([{"subnet": "10.1.0.0/16", "gateway": "10.1.0.1", "ip_range": "10.1.1.0/24",
                    "aux_addresses": {"a": "10.1.0.2", "b": "10.1.0.3"}}])
        );
        // Another subnet: the later pool replaces the earlier one.
        assert_eq!(
            ipam_merged(
                json!([{"subnet": "10.1.0.0/16"}]),
                json!([{"subnet": "10.2.0.0/16"}])
            ),
            json!([{"subnet": "10.2.0.0/16"}])
        );
        // An earlier pool no later pool names is merged into one that is (compose's quirk).
        assert_eq!(
            ipam_merged(
                json!([{"subnet": "10.1.0.0/16", "gateway": "10.1.0.1"},
                       {"subnet": "10.2.0.0/16", "gateway": "10.2.0.1"}]),
                json!([{"subnet": "10.1.0.0/16", "ip_range": "10.1.1.0/24"}]),
            ),
            json!([{"subnet": "10.1.0.0/16", "gateway": "10.2.0.1", "ip_range": "10.1.1.0/24"}])
        );
        assert_eq!(
            ipam_merged(
                json!([{"subnet": "10.1.0.0/16"}, {"subnet": "10.2.0.0/16"}]),
                json!([{"subnet": "10.2.0.0/16", "gateway": "10.2.0.1"}, {"subnet": "10.3.0.0/16"}]),
            ),
            json!([{"subnet": "10.3.0.0/16", "gateway": "10.2.0.1"}, {"subnet": "10.3.0.0/16"}])
        );
        // Pools without a subnet, and one pool given twice, as compose prints them.
        let twice = json!({"subnet": "10.3.0.0/16", "gateway": "10.8.0.1", "aux_addresses": {"b": "10.1.0.6"}});
        assert_eq!(
            ipam_merged(
                json!([
                    {"subnet": "10.1.0.0/16", "gateway": "10.1.0.1", "ip_range": "10.1.1.0/24",
                     "aux_addresses": {"a": "10.1.0.5"}},
                    {"subnet": "10.2.0.0/16"},
                    {"gateway": "10.9.0.1"}
                ]),
                json!([
                    {"subnet": "10.2.0.0/16", "gateway": "10.2.0.1"},
                    {"subnet": "10.1.0.0/16", "gateway": "10.1.0.254", "aux_addresses": {"b": "10.1.0.6"}},
                    {"subnet": "10.3.0.0/16"},
                    {"gateway": "10.8.0.1"}
                ]),
            ),
            json!([twice, twice, {"subnet": "10.3.0.0/16"}, {"gateway": "10.8.0.1"},
                   {"subnet": "10.2.0.0/16", "gateway": "10.2.0.1"}])
        );
        // An empty list on either side leaves none.
        assert_eq!(
            ipam_merged(json!([]), json!([{"subnet": "10.2.0.0/16"}])),
            json!([])
        );
        assert_eq!(
            ipam_merged(json!([{"subnet": "10.2.0.0/16"}]), json!([])),
            json!([])
        );
    }

    #[test]
    fn x_gantry_lists_are_replaced_its_mappings_merged() {
        let base = json!({"x-gantry": {"a": {"l": [1, 2], "k": 1}},
            "services": {"s": {"x-gantry": {"canary": {"steps": [10, 100], "pause": 1}}}}});
        let over = json!({"x-gantry": {"a": {"l": [3]}},
            "services": {"s": {"x-gantry": {"canary": {"steps": [50, 100]}}}}});
        let m = merge_documents(base, over, &Tags::default());
        assert_eq!(m["x-gantry"], json!({"a": {"l": [3], "k": 1}}));
        assert_eq!(
            m["services"]["s"]["x-gantry"],
            json!({"canary": {"steps": [50, 100], "pause": 1}})
        );
    }

    #[test]
    fn unicity_within_one_file() {
        let mut s = json!({"ports": [
            {"target": 80, "published": "80", "protocol": "tcp"},
            {"target": 80, "published": "80", "protocol": "tcp"}
        ], "expose": ["1", "1"]});
        enforce_unicity(&mut s);
        assert_eq!(s["ports"].as_array().map(Vec::len), Some(1));
        assert_eq!(s["expose"], json!(["1"]));
    }
}
