//! Unit tests of the network and volume configuration comparison.

use super::*;
use crate::engine::{IpamPool, IpamSpec};

fn net() -> NetworkSpec {
    NetworkSpec {
        name: "p_back".into(),
        options: [(
            "com.docker.network.bridge.name".to_owned(),
            "br0".to_owned(),
        )]
        .into(),
        ..Default::default()
    }
}

/// What Docker reports for `spec` created without asking for an address pool.
fn as_docker_has_it(spec: &NetworkSpec) -> String {
    let mut found = NetworkSpec {
        driver: Some(spec.driver.clone().unwrap_or_else(|| "bridge".into())),
        ..spec.clone()
    };
    let mut ipam = spec.ipam.clone().unwrap_or_default();
    ipam.driver.get_or_insert_with(|| "default".into());
    if ipam.config.is_empty() {
        ipam.config.push(IpamPool {
            subnet: Some("172.20.0.0/16".into()),
            gateway: Some("172.20.0.1".into()),
            ..Default::default()
        });
    }
    found.ipam = Some(ipam);
    found.config_label()
}

#[test]
fn the_same_network_as_docker_reports_it_differs_in_nothing() {
    let spec = net();
    assert_eq!(
        network_differences(&spec, &as_docker_has_it(&spec), "on the network"),
        Vec::<String>::new()
    );
    assert_eq!(
        network_differences(&spec, &spec.config_label(), "on the network"),
        Vec::<String>::new()
    );
    assert!(network_differences(&spec, "not json", "on the network").is_empty());
}

#[test]
fn internal_options_and_pools_the_files_change_are_named() {
    let before = net();
    let found = as_docker_has_it(&before);
    let after = NetworkSpec {
        internal: true,
        options: [(
            "com.docker.network.bridge.name".to_owned(),
            "br1".to_owned(),
        )]
        .into(),
        ipam: Some(IpamSpec {
            config: vec![IpamPool {
                subnet: Some("10.9.0.0/24".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..before
    };
    assert_eq!(
        network_differences(&after, &found, "on the network"),
        [
            "driver_opts.com.docker.network.bridge.name: one value in the files, another on the network (driver option values are not shown)",
            "internal: true in the files, false on the network",
            "ipam.config[0].subnet: \"10.9.0.0/24\" in the files, no such pool on the network (it has \"172.20.0.0/16\")",
        ]
    );
}

#[test]
fn a_volumes_driver_options_are_compared_with_local_as_the_default() {
    let wanted = VolumeSpec {
        name: "p_data".into(),
        options: [("type".to_owned(), "tmpfs".to_owned())].into(),
        ..Default::default()
    };
    let found = VolumeSpec {
        driver: Some("local".into()),
        ..wanted.clone()
    };
    assert!(volume_differences(&wanted, &found.config_label(), "on the volume").is_empty());
    let plain = VolumeSpec {
        driver: Some("local".into()),
        ..Default::default()
    };
    assert_eq!(
        volume_differences(&wanted, &plain.config_label(), "on the volume"),
        [
            "driver_opts.type: set in the files, unset on the volume (driver option values are not shown)"
        ]
    );
}

#[test]
fn a_driver_options_values_are_never_shown() {
    // A CIFS volume's options carry its password: a rotation must not print old and new.
    let with = |password: &str| VolumeSpec {
        name: "p_share".into(),
        driver: Some("local".into()),
        options: [("o".to_owned(), format!("username=svc,password={password}"))].into(),
        ..Default::default()
    };
    let differs = volume_differences(
        &with("n3wS3cret"),
        &with("0ldS3cret").config_label(),
        "on the volume",
    );
    assert_eq!(differs.len(), 1, "{differs:?}");
    assert!(
        !differs[0].contains("S3cret") && differs[0].starts_with("driver_opts.o: "),
        "{differs:?}"
    );
}
