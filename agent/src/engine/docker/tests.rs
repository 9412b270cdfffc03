//! Unit tests of the translations: status texts, signals, pull failures, container specs.

use super::*;
use crate::engine::{self, MountSpec};

#[test]
fn status_text_parses() {
    assert_eq!(
        health_from_status_text("Up 3 minutes (healthy)"),
        Some(HealthStatus::Healthy)
    );
    assert_eq!(
        health_from_status_text("Up 2 seconds (health: starting)"),
        Some(HealthStatus::Starting)
    );
    assert_eq!(health_from_status_text("Up 2 seconds"), None);
    assert_eq!(
        exit_code_from_status_text("Exited (3) 2 minutes ago"),
        Some(3)
    );
    assert_eq!(exit_code_from_status_text("Up 1 second"), None);
}

#[test]
fn pull_failures_are_classified() {
    assert_eq!(
        classify_pull(
            500,
            "Head \"https://r/v2/a/manifests/1\": no basic auth credentials"
        ),
        PullFailure::Unauthorized
    );
    assert_eq!(
        classify_pull(404, "manifest for r/a:1 not found: manifest unknown"),
        PullFailure::NotFound
    );
    assert_eq!(
        classify_pull(500, "dial tcp 127.0.0.1:1: connect: connection refused"),
        PullFailure::Unreachable
    );
}

/// An ECR host holds the account id, and an id may contain "401": the status decides.
#[test]
fn pull_failures_go_by_status_before_the_message() {
    let ecr = "340140112233.dkr.ecr.eu-west-1.amazonaws.com";
    let missing =
        format!("manifest for {ecr}/app:v1 not found: manifest unknown: Requested image not found");
    assert_eq!(classify_pull(404, &missing), PullFailure::NotFound);
    // The same text in the stream (no status) reads as not found too.
    assert_eq!(classify_pull(0, &missing), PullFailure::NotFound);
    let no_repo = format!(
        "repository {ecr}/gone not found: name unknown: The repository with name 'gone' does \
         not exist in the registry with id '340140112233'"
    );
    assert_eq!(classify_pull(404, &no_repo), PullFailure::NotFound);
    // An expired ECR token: dockerd answers 404 for the registry's `denied`.
    let expired = format!(
        "pull access denied for {ecr}/app, repository does not exist or may require 'docker \
         login': denied: Your authorization token has expired. Reauthenticate and try again."
    );
    assert_eq!(classify_pull(404, &expired), PullFailure::Unauthorized);
    assert_eq!(classify_pull(401, "anything"), PullFailure::Unauthorized);
    assert_eq!(
        classify_pull(
            500,
            &format!(
                "Head \"https://{ecr}/v2/app/manifests/v1\": unauthorized: authentication required"
            )
        ),
        PullFailure::Unauthorized
    );
    // Neither an account id nor an image named after a word is a phrase.
    assert_eq!(
        classify_pull(500, &format!("Get \"https://{ecr}/v2/\": EOF")),
        PullFailure::Other
    );
    assert_eq!(
        classify_pull(
            404,
            "manifest for r/unauthorized-app:1 not found: manifest unknown"
        ),
        PullFailure::NotFound
    );
}

#[test]
fn spec_translates_ports_mounts_and_networks() {
    let spec = ContainerSpec {
        name: "p-web-1".into(),
        image: "img".into(),
        ports: vec![PublishedPort {
            target: 80,
            host_ip: Some("127.0.0.1".into()),
            host_port: Some(8080),
            ..Default::default()
        }],
        expose: vec![(9000, Protocol::Udp)],
        mounts: vec![
            MountSpec {
                kind: MountKind::Bind {
                    create_host_path: true,
                    propagation: None,
                    selinux: None,
                    recursive: None,
                },
                source: "/srv".into(),
                target: "/srv".into(),
                read_only: true,
            },
            MountSpec {
                kind: MountKind::Volume {
                    nocopy: false,
                    subpath: None,
                    labels: Default::default(),
                },
                source: "p_data".into(),
                target: "/data".into(),
                read_only: false,
            },
        ],
        networks: vec![
            NetworkAttachment {
                network: "p_default".into(),
                aliases: vec!["web".into()],
                ..Default::default()
            },
            NetworkAttachment {
                network: "p_back".into(),
                ..Default::default()
            },
        ],
        stop_timeout: Some(Duration::from_millis(1500)),
        ..Default::default()
    };
    let body = create_body(&spec, (1, 41)).unwrap();
    let host = body.host_config.unwrap();
    assert_eq!(host.network_mode.as_deref(), Some("p_default"));
    assert_eq!(host.binds.unwrap(), vec!["/srv:/srv:ro".to_owned()]);
    assert_eq!(host.mounts.unwrap().len(), 1);
    let binding = &host.port_bindings.unwrap()["80/tcp"];
    assert_eq!(
        binding.as_ref().unwrap()[0].host_port.as_deref(),
        Some("8080")
    );
    let mut exposed = body.exposed_ports.unwrap();
    exposed.sort();
    assert_eq!(exposed, vec!["80/tcp".to_owned(), "9000/udp".to_owned()]);
    let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
    assert_eq!(
        endpoints.len(),
        1,
        "the other networks are connected after create"
    );
    assert_eq!(
        endpoints["p_default"].aliases.as_deref(),
        Some(&["web".to_owned()][..])
    );
    assert_eq!(body.stop_timeout, Some(2));

    let bad = ContainerSpec {
        network_mode: Some("host".into()),
        ..spec
    };
    assert!(matches!(
        create_body(&bad, (1, 41)),
        Err(EngineError::InvalidSpec { .. })
    ));
}

#[test]
fn device_requests_reach_the_host_config_as_docker_reads_them() {
    let spec = ContainerSpec {
        name: "p-ml-1".into(),
        image: "img".into(),
        resources: engine::Resources {
            device_requests: vec![
                engine::DeviceRequest {
                    count: -1,
                    capabilities: vec![vec!["gpu".into()]],
                    ..Default::default()
                },
                engine::DeviceRequest {
                    driver: "nvidia".into(),
                    device_ids: vec!["0".into(), "GPU-4c2f".into()],
                    capabilities: vec![vec!["utility".into(), "gpu".into()]],
                    options: [("mig".to_owned(), "1".to_owned())].into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        },
        ..Default::default()
    };
    let host = create_body(&spec, (1, 41)).unwrap().host_config.unwrap();
    let json = serde_json::to_value(host.device_requests.unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"Count": -1, "Capabilities": [["gpu"]]},
            {"Driver": "nvidia", "Count": 0, "DeviceIDs": ["0", "GPU-4c2f"],
             "Capabilities": [["utility", "gpu"]], "Options": {"mig": "1"}},
        ])
    );
    let none = create_body(&ContainerSpec::default(), (1, 41))
        .unwrap()
        .host_config
        .unwrap();
    assert!(none.device_requests.is_none());
}

#[test]
fn endpoint_settings_carry_every_network_key_the_api_can() {
    let attachment = NetworkAttachment {
        network: "p_back".into(),
        aliases: vec!["db".into()],
        link_local_ips: vec!["169.254.10.10".into()],
        driver_opts: [("com.example.opt".to_owned(), "1".to_owned())].into(),
        gw_priority: Some(0),
        ..Default::default()
    };
    let old = endpoint(&attachment, (1, 41)).unwrap();
    assert_eq!(
        old.ipam_config.unwrap().link_local_ips.unwrap(),
        vec!["169.254.10.10".to_owned()]
    );
    assert_eq!(old.driver_opts.unwrap()["com.example.opt"], "1");
    assert_eq!(old.gw_priority, None, "0 is Docker's default: not sent");

    // A MAC address on the endpoint exists from API 1.44; before, Docker ignores it there.
    let mac = NetworkAttachment {
        mac_address: Some("02:42:ac:11:00:99".into()),
        ..attachment.clone()
    };
    let refused = endpoint(&mac, (1, 41)).unwrap_err();
    assert!(
        refused.contains("mac_address on network p_back needs Docker API 1.44 (Docker 25.0)")
            && refused.contains("speaks 1.41"),
        "{refused}"
    );
    let spec = ContainerSpec {
        name: "p-db-1".into(),
        image: "img".into(),
        networks: vec![mac.clone()],
        ..Default::default()
    };
    assert!(matches!(
        create_body(&spec, (1, 41)),
        Err(EngineError::InvalidSpec { .. })
    ));
    let second = ContainerSpec {
        networks: vec![NetworkAttachment::default(), mac.clone()],
        ..spec.clone()
    };
    assert!(
        matches!(
            create_body(&second, (1, 41)),
            Err(EngineError::InvalidSpec { .. })
        ),
        "a network connected after the create is checked before it"
    );
    let body = create_body(&spec, (1, 44)).unwrap();
    let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
    assert_eq!(
        endpoints["p_back"].mac_address.as_deref(),
        Some("02:42:ac:11:00:99")
    );

    let priority = NetworkAttachment {
        gw_priority: Some(10),
        ..attachment
    };
    assert!(
        endpoint(&priority, (1, 47))
            .unwrap_err()
            .contains("gw_priority on network p_back needs Docker API 1.48 (Docker 28.0)")
    );
    assert_eq!(endpoint(&priority, (1, 48)).unwrap().gw_priority, Some(10));
}

#[test]
fn log_options_without_a_driver_leave_the_type_to_the_daemon() {
    let spec = ContainerSpec {
        logging: Some(engine::LoggingSpec {
            driver: None,
            options: [("max-size".to_owned(), "1m".to_owned())].into(),
        }),
        ..Default::default()
    };
    let host = create_body(&spec, (1, 41)).unwrap().host_config.unwrap();
    assert_eq!(
        serde_json::to_value(host.log_config.unwrap()).unwrap(),
        serde_json::json!({"Config": {"max-size": "1m"}})
    );
}

#[test]
fn healthcheck_start_interval_needs_an_api_that_carries_it() {
    let check = |start_interval| ContainerSpec {
        name: "p-web-1".into(),
        healthcheck: Some(engine::HealthcheckSpec {
            test: vec!["CMD".into(), "true".into()],
            start_period: Some(Duration::from_secs(30)),
            start_interval,
            ..Default::default()
        }),
        ..Default::default()
    };
    let spec = check(Some(Duration::from_secs(2)));
    let health = create_body(&spec, (1, 44)).unwrap().healthcheck.unwrap();
    assert_eq!(health.start_interval, Some(2_000_000_000));
    assert_eq!(health.start_period, Some(30_000_000_000));
    match create_body(&spec, (1, 43)) {
        Err(EngineError::InvalidSpec { reason, .. }) => assert!(
            reason.contains("healthcheck.start_interval needs Docker API 1.44 (Docker 25.0)")
                && reason.contains("speaks 1.43"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    // Unset or 0 (Docker's default) is not sent, and fine on any API.
    for unset in [None, Some(Duration::ZERO)] {
        let health = create_body(&check(unset), (1, 41))
            .unwrap()
            .healthcheck
            .unwrap();
        assert_eq!(health.start_interval, None);
    }
}

#[test]
fn mount_options_reach_docker_or_name_the_api_they_need() {
    let bind = |create_host_path, selinux: Option<&str>, recursive| MountSpec {
        kind: MountKind::Bind {
            create_host_path,
            propagation: Some("rslave".into()),
            selinux: selinux.map(str::to_owned),
            recursive,
        },
        source: "/srv".into(),
        target: "/srv".into(),
        read_only: true,
    };
    let volume = MountSpec {
        kind: MountKind::Volume {
            nocopy: true,
            subpath: Some("sub/dir".into()),
            labels: [("a".to_owned(), "b".to_owned())].into(),
        },
        source: "p_data".into(),
        target: "/data".into(),
        read_only: false,
    };
    let spec = |mounts| ContainerSpec {
        name: "p-web-1".into(),
        mounts,
        ..Default::default()
    };
    let host = |mounts, api| {
        create_body(&spec(mounts), api)
            .map(|b| b.host_config.unwrap())
            .map_err(|e| e.to_string())
    };

    // Docker's bind syntax carries the read-only flag, the relabel and the propagation.
    let h = host(vec![bind(true, Some("Z"), None)], (1, 41)).unwrap();
    assert_eq!(h.binds.unwrap(), vec!["/srv:/srv:ro,Z,rslave".to_owned()]);
    assert!(h.mounts.is_none());

    // The mount API for the rest: propagation, no creation, recursion; the volume's options.
    let h = host(
        vec![
            bind(false, None, None),
            bind(true, None, Some(engine::BindRecursive::ReadOnly)),
            volume.clone(),
        ],
        (1, 45),
    )
    .unwrap();
    assert!(h.binds.is_none());
    assert_eq!(
        serde_json::to_value(h.mounts.unwrap()).unwrap(),
        serde_json::json!([
            {"Type": "bind", "Source": "/srv", "Target": "/srv", "ReadOnly": true,
             "BindOptions": {"Propagation": "rslave"}},
            {"Type": "bind", "Source": "/srv", "Target": "/srv", "ReadOnly": true,
             "BindOptions": {"Propagation": "rslave", "CreateMountpoint": true,
                             "ReadOnlyForceRecursive": true}},
            {"Type": "volume", "Source": "p_data", "Target": "/data", "ReadOnly": false,
             "VolumeOptions": {"NoCopy": true, "Labels": {"a": "b"}, "Subpath": "sub/dir"}},
        ])
    );
    let h = host(
        vec![bind(false, None, Some(engine::BindRecursive::Disabled))],
        (1, 41),
    )
    .unwrap();
    assert_eq!(
        h.mounts.unwrap()[0]
            .bind_options
            .as_ref()
            .unwrap()
            .non_recursive,
        Some(true)
    );

    // What this Docker would ignore is refused, naming the mount and the API it needs.
    let refused = host(vec![volume], (1, 44)).unwrap_err();
    assert!(
        refused.contains("volume.subpath on /data needs Docker API 1.45 (Docker 26.0)")
            && refused.contains("speaks 1.44"),
        "{refused}"
    );
    let refused = host(
        vec![bind(true, None, Some(engine::BindRecursive::Writable))],
        (1, 43),
    )
    .unwrap_err();
    assert!(
        refused.contains("bind.recursive on /srv needs Docker API 1.44 (Docker 25.0)"),
        "{refused}"
    );
    // The mount API has no relabel.
    let refused = host(vec![bind(false, Some("z"), None)], (1, 45)).unwrap_err();
    assert!(refused.contains("SELinux relabel \"z\""), "{refused}");
}

#[test]
fn enable_ipv4_is_sent_where_docker_knows_it_and_false_is_refused_where_it_does_not() {
    let spec = NetworkSpec {
        name: "p_v6only".into(),
        enable_ipv4: Some(false),
        enable_ipv6: true,
        ..Default::default()
    };
    let body = network_request(&spec, (1, 48)).unwrap();
    assert_eq!(body.enable_ipv4, Some(false));
    assert_eq!(body.enable_ipv6, Some(true));
    let refused = network_request(&spec, (1, 47)).unwrap_err();
    assert!(
        refused
            .contains("enable_ipv4: false on network p_v6only needs Docker API 1.48 (Docker 28.0)")
            && refused.contains("speaks 1.47"),
        "{refused}"
    );
    // true is every Docker's default: fine anywhere, sent where it is understood.
    let on = NetworkSpec {
        enable_ipv4: Some(true),
        ..spec
    };
    assert_eq!(network_request(&on, (1, 41)).unwrap().enable_ipv4, None);
    assert_eq!(
        network_request(&on, (1, 48)).unwrap().enable_ipv4,
        Some(true)
    );
}

#[test]
fn a_network_as_docker_reports_it_compares_equal_to_the_files_that_made_it() {
    use bollard::models::Network;
    let files = NetworkSpec {
        name: "p_back".into(),
        options: [(
            "com.docker.network.bridge.name".to_owned(),
            "br0".to_owned(),
        )]
        .into(),
        ..Default::default()
    };
    // Docker 20.10's answer for it: driver and IPAM filled in, no EnableIPv4.
    let docker = Network {
        name: Some("p_back".into()),
        driver: Some("bridge".into()),
        internal: Some(false),
        attachable: Some(false),
        enable_ipv6: Some(false),
        options: Some(
            [(
                "com.docker.network.bridge.name".to_owned(),
                "br0".to_owned(),
            )]
            .into(),
        ),
        ipam: Some(Ipam {
            driver: Some("default".into()),
            config: Some(vec![IpamConfig {
                subnet: Some("172.29.0.0/16".into()),
                gateway: Some("172.29.0.1".into()),
                ..Default::default()
            }]),
            options: None,
        }),
        ..Default::default()
    };
    let found = observed_network(&docker).config_label();
    assert!(engine::network_differences(&files, &found, "on the network").is_empty());
    let internal = NetworkSpec {
        internal: true,
        ..files
    };
    assert_eq!(
        engine::network_differences(&internal, &found, "on the network"),
        ["internal: true in the files, false on the network"]
    );
}

#[test]
fn systempaths_unconfined_is_sent_as_no_masked_and_no_read_only_paths() {
    let spec = ContainerSpec {
        name: "p-web-1".into(),
        image: "img".into(),
        security_opt: vec![
            "systempaths=unconfined".into(),
            "no-new-privileges:true".into(),
        ],
        ..Default::default()
    };
    let host = create_body(&spec, (1, 41)).unwrap().host_config.unwrap();
    assert_eq!(
        host.security_opt,
        Some(vec!["no-new-privileges:true".to_owned()])
    );
    assert_eq!(host.masked_paths, Some(vec![]));
    assert_eq!(host.readonly_paths, Some(vec![]));
    let plain = ContainerSpec {
        security_opt: vec![],
        ..spec
    };
    let host = create_body(&plain, (1, 41)).unwrap().host_config.unwrap();
    assert_eq!((host.masked_paths, host.readonly_paths), (None, None));
}

/// A connection cut once Docker accepted the pull names the image and registry (exit 1); the
/// same failure before is the daemon unreachable (exit 69).
#[test]
fn a_pull_stream_cut_after_docker_accepted_it_is_a_pull_error() {
    let host = "unix:///var/run/docker.sock";
    let image = ImageRef::from("registry.example:5000/shop/web:1");
    let cut = || BollardError::IOError {
        err: std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset"),
    };
    match pull::stream_error(host, &image, true, cut()) {
        e @ EngineError::Pull { .. } => {
            assert_eq!(e.exit_code(), crate::exit::ExitCode::Failed);
            let EngineError::Pull {
                image: i,
                registry,
                kind,
                reason,
            } = e
            else {
                unreachable!()
            };
            assert_eq!(i, image.to_string());
            assert_eq!(registry, "registry.example:5000");
            assert_eq!(kind, PullFailure::Interrupted);
            assert!(
                reason.contains(host) && reason.contains("hint:"),
                "{reason}"
            );
        }
        other => panic!("expected a pull error, got {other:?}"),
    }
    assert!(pull::stream_error(host, &image, false, cut()).is_unreachable());
    // Docker's own refusal and an error in the stream are classified either way.
    let refused = BollardError::DockerResponseServerError {
        status_code: 404,
        message: "manifest for registry.example:5000/shop/web:1 not found: manifest unknown".into(),
    };
    assert!(matches!(
        pull::stream_error(host, &image, false, refused),
        EngineError::Pull {
            kind: PullFailure::NotFound,
            ..
        }
    ));
    let in_stream = BollardError::DockerStreamError {
        error: "dial tcp: lookup registry.example: no such host".into(),
    };
    assert!(matches!(
        pull::stream_error(host, &image, true, in_stream),
        EngineError::Pull {
            kind: PullFailure::Unreachable,
            ..
        }
    ));
}

/// Docker answers 404 at create for a missing image and for a missing object the spec names:
/// the error names what is missing.
#[test]
fn a_404_at_create_names_what_is_missing() {
    let host = "unix:///var/run/docker.sock";
    let create = |message: &str| {
        let e = BollardError::DockerResponseServerError {
            status_code: 404,
            message: message.to_owned(),
        };
        create_error(host, "shop-web-1", "shop/web:1", e)
    };
    let missing = |message: &str| match create(message) {
        EngineError::NotFound { object } => object,
        other => panic!("{message}: expected not found, got {other:?}"),
    };
    assert_eq!(
        missing("No such image: shop/web:1"),
        Object::Image("shop/web:1".into())
    );
    assert_eq!(
        missing("No such container: shop-data-1"),
        Object::Container("shop-data-1".into())
    );
    assert_eq!(
        missing("network shop_back not found"),
        Object::Network("shop_back".into())
    );
    assert_eq!(
        missing("No such volume: shop_cache"),
        Object::Volume("shop_cache".into())
    );
    // A 404 whose message names nothing known keeps Docker's words, on the container.
    match create("page not found") {
        EngineError::Api {
            object,
            status: 404,
            message,
        } => {
            assert_eq!(object, Object::Container("shop-web-1".into()));
            assert_eq!(message, "page not found");
        }
        other => panic!("expected Docker's words, got {other:?}"),
    }
    // Other refusals are as for any call.
    let taken = BollardError::DockerResponseServerError {
        status_code: 409,
        message: "name in use".into(),
    };
    assert!(matches!(
        create_error(host, "shop-web-1", "shop/web:1", taken),
        EngineError::Conflict { object: Object::Container(n), .. } if n == "shop-web-1"
    ));
}
