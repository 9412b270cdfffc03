//! A network's or volume's configuration as one flat map, to say what differs between the
//! files and what Docker has: Docker cannot change a network or a volume in place.
//!
//! What: [`NetworkSpec::config`] / [`VolumeSpec::config`] give `key → value` for what is set
//! (`internal`, `driver_opts.com.docker.network.bridge.name`, `ipam.config[0].subnet`...).
//! Gantry labels the networks and volumes it creates with that map ([`NETWORK_CONFIG`],
//! [`VOLUME_CONFIG`], like compose's `com.docker.compose.config-hash`, but readable); the Docker
//! engine reports, under the same key of [`super::Ensured::labels`], the map of what Docker
//! actually has, so networks made before the label, or by compose, are compared too.
//! [`network_differences`] and [`volume_differences`] name each key that differs, with Docker's
//! defaults applied (`driver` `bridge`/`local`, `ipam.driver` `default`, IPv4 on; pools,
//! gateways and ranges the files leave to Docker are not compared).

use std::collections::BTreeMap;

use super::{NetworkSpec, VolumeSpec};

/// The label holding a network's configuration (see [`NetworkSpec::config`]).
pub const NETWORK_CONFIG: &str = "io.gantry.network.config";
/// The label holding a volume's configuration (see [`VolumeSpec::config`]).
pub const VOLUME_CONFIG: &str = "io.gantry.volume.config";

type Flat = BTreeMap<String, String>;

impl NetworkSpec {
    /// What is set, flat: labels and the name left out.
    pub fn config(&self) -> Flat {
        let mut out = Flat::new();
        if let Some(d) = &self.driver {
            out.insert("driver".into(), d.clone());
        }
        for (k, v) in &self.options {
            out.insert(format!("driver_opts.{k}"), v.clone());
        }
        for (key, on) in [
            ("internal", self.internal),
            ("attachable", self.attachable),
            ("enable_ipv6", self.enable_ipv6),
        ] {
            if on {
                out.insert(key.into(), "true".into());
            }
        }
        if let Some(v4) = self.enable_ipv4 {
            out.insert("enable_ipv4".into(), v4.to_string());
        }
        if let Some(ipam) = &self.ipam {
            if let Some(d) = &ipam.driver {
                out.insert("ipam.driver".into(), d.clone());
            }
            for (i, pool) in ipam.config.iter().enumerate() {
                for (key, value) in [
                    ("subnet", &pool.subnet),
                    ("ip_range", &pool.ip_range),
                    ("gateway", &pool.gateway),
                ] {
                    if let Some(v) = value {
                        out.insert(format!("ipam.config[{i}].{key}"), v.clone());
                    }
                }
                for (k, v) in &pool.aux_addresses {
                    out.insert(format!("ipam.config[{i}].aux_addresses.{k}"), v.clone());
                }
            }
        }
        out
    }

    /// [`Self::config`] as the [`NETWORK_CONFIG`] label's value (JSON).
    pub fn config_label(&self) -> String {
        serde_json::to_string(&self.config()).unwrap_or_default()
    }
}

impl VolumeSpec {
    /// What is set, flat: labels and the name left out.
    pub fn config(&self) -> Flat {
        let mut out = Flat::new();
        if let Some(d) = &self.driver {
            out.insert("driver".into(), d.clone());
        }
        for (k, v) in &self.options {
            out.insert(format!("driver_opts.{k}"), v.clone());
        }
        out
    }

    /// [`Self::config`] as the [`VOLUME_CONFIG`] label's value (JSON).
    pub fn config_label(&self) -> String {
        serde_json::to_string(&self.config()).unwrap_or_default()
    }
}

/// One key that differs: `internal: true in the files, false on the network` (`found_in`:
/// where the other value is, `on the network`).
/// A driver option's values are never shown: they may hold a secret (a CIFS volume's
/// `o: username=...,password=...`), and this text reaches the deploy's output and logs.
fn differs(key: &str, wanted: Option<&String>, found: Option<&String>, found_in: &str) -> String {
    if key.starts_with("driver_opts.") {
        let state = match (wanted, found) {
            (Some(_), None) => "set in the files, unset",
            (None, Some(_)) => "unset in the files, set",
            _ => "one value in the files, another",
        };
        return format!("{key}: {state} {found_in} (driver option values are not shown)");
    }
    let show = |v: Option<&String>| match v.map(String::as_str) {
        None => "unset".to_owned(),
        Some(b @ ("true" | "false")) => b.to_owned(),
        Some(v) => format!("{v:?}"),
    };
    format!(
        "{key}: {} in the files, {} {found_in}",
        show(wanted),
        show(found)
    )
}

/// Compares what the files ask for with `found` (a [`NETWORK_CONFIG`] label's value, ours or
/// the engine's report of Docker's state): each key that differs, the other value said to be
/// `found_in` (`on the network`). Nothing when `found` does not parse (a label someone else
/// wrote).
pub fn network_differences(wanted: &NetworkSpec, found: &str, found_in: &str) -> Vec<String> {
    let Ok(mut found) = serde_json::from_str::<Flat>(found) else {
        return Vec::new();
    };
    let mut wanted = wanted.config();
    for (key, default) in [
        ("driver", "bridge"),
        ("ipam.driver", "default"),
        ("internal", "false"),
        ("attachable", "false"),
        ("enable_ipv6", "false"),
    ] {
        for side in [&mut wanted, &mut found] {
            side.entry(key.into()).or_insert_with(|| default.into());
        }
    }
    // An older Docker does not report IPv4 (always on): compared only when both say.
    if !(wanted.contains_key("enable_ipv4") && found.contains_key("enable_ipv4")) {
        wanted.remove("enable_ipv4");
        found.remove("enable_ipv4");
    }
    let mut out = Vec::new();
    let plain = |k: &String| !k.starts_with("ipam.config[");
    let keys: std::collections::BTreeSet<&String> = wanted
        .keys()
        .chain(found.keys())
        .filter(|k| plain(k))
        .collect();
    for key in keys {
        if wanted.get(key) != found.get(key) {
            out.push(differs(key, wanted.get(key), found.get(key), found_in));
        }
    }
    out.extend(pool_differences(&wanted, &found, found_in));
    out
}

/// The address pools the files give, each looked for by subnet among Docker's; what a pool
/// sets beside its subnet is compared with the pool found. Pools Docker chose itself (the
/// files give none) are not a difference.
fn pool_differences(wanted: &Flat, found: &Flat, found_in: &str) -> Vec<String> {
    let pools = |side: &Flat| {
        let mut pools: BTreeMap<usize, Flat> = BTreeMap::new();
        for (k, v) in side {
            let Some(rest) = k.strip_prefix("ipam.config[") else {
                continue;
            };
            let Some((i, key)) = rest.split_once("].") else {
                continue;
            };
            if let Ok(i) = i.parse::<usize>() {
                pools
                    .entry(i)
                    .or_default()
                    .insert(key.to_owned(), v.clone());
            }
        }
        pools.into_values().collect::<Vec<_>>()
    };
    let (wanted, found) = (pools(wanted), pools(found));
    let mut out = Vec::new();
    for (i, pool) in wanted.iter().enumerate() {
        let subnet = pool.get("subnet");
        let Some(there) = found.iter().find(|f| f.get("subnet") == subnet) else {
            out.push(format!(
                "ipam.config[{i}].subnet: {} in the files, no such pool {found_in} (it has {})",
                subnet.map_or_else(|| "unset".to_owned(), |s| format!("{s:?}")),
                if found.is_empty() {
                    "none".to_owned()
                } else {
                    found
                        .iter()
                        .filter_map(|f| f.get("subnet"))
                        .map(|s| format!("{s:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
            continue;
        };
        for (key, value) in pool.iter().filter(|(k, _)| *k != "subnet") {
            if there.get(key) != Some(value) {
                out.push(differs(
                    &format!("ipam.config[{i}].{key}"),
                    Some(value),
                    there.get(key),
                    found_in,
                ));
            }
        }
    }
    out
}

/// As [`network_differences`], for a volume (`driver` defaults to `local`).
pub fn volume_differences(wanted: &VolumeSpec, found: &str, found_in: &str) -> Vec<String> {
    let Ok(mut found) = serde_json::from_str::<Flat>(found) else {
        return Vec::new();
    };
    let mut wanted = wanted.config();
    for side in [&mut wanted, &mut found] {
        side.entry("driver".into())
            .or_insert_with(|| "local".into());
    }
    let keys: std::collections::BTreeSet<&String> = wanted.keys().chain(found.keys()).collect();
    keys.into_iter()
        .filter(|k| wanted.get(*k) != found.get(*k))
        .map(|k| differs(k, wanted.get(k), found.get(k), found_in))
        .collect()
}

#[cfg(test)]
mod tests;
