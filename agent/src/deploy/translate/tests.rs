//! Unit tests of the translation from the Compose model to engine specs.

use super::*;
use crate::compose::{Device, DeviceRequest, LoadOptions, Resource};
use crate::engine::MountKind;

/// The spec of the first replica of service `name` in the compose text `yaml`.
fn spec_of(yaml: &str, name: &str) -> Result<ContainerSpec, DeployError> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(&file, yaml).unwrap();
    let project = compose::load(&LoadOptions {
        files: vec![file],
        project_name: Some("p".into()),
        ..LoadOptions::default()
    })
    .unwrap();
    let service = project.service(name).unwrap();
    container_spec(&project, service, "img", Some(1), "hash")
}

#[test]
fn extra_hosts_reach_docker_as_host_colon_ip() {
    let spec = spec_of(
        "services:\n  a:\n    image: x\n    extra_hosts: [\"myhost=127.0.0.9\", \"host.docker.internal:host-gateway\", \"v6=[::1]\", \"v6b:::2\"]\n",
        "a",
    )
    .unwrap();
    assert_eq!(
        spec.extra_hosts,
        vec![
            "host.docker.internal:host-gateway".to_owned(),
            "myhost:127.0.0.9".to_owned(),
            "v6:::1".to_owned(),
            "v6b:::2".to_owned(),
        ]
    );
}

#[test]
fn device_requests_come_in_compose_order_with_gpu_added_to_gpus() {
    let service = Service {
        gpus: vec![DeviceRequest {
            driver: Some("nvidia".into()),
            count: Some(2),
            capabilities: vec!["utility".into()],
            ..DeviceRequest::default()
        }],
        devices: vec![
            Device {
                source: "nvidia.com/gpu=all".into(),
                target: "nvidia.com/gpu=all".into(),
                permissions: Some("rwm".into()),
            },
            Device {
                source: "/dev/fuse".into(),
                target: "/dev/fuse".into(),
                permissions: None,
            },
        ],
        ..Service::default()
    };
    let reservations = Resource {
        devices: vec![DeviceRequest {
            capabilities: vec!["gpu".into()],
            device_ids: vec!["1".into()],
            options: [("mig".to_owned(), "1".to_owned())].into(),
            ..DeviceRequest::default()
        }],
        ..Resource::default()
    };
    let got = device_requests(&service, Some(&reservations));
    assert_eq!(
        got,
        vec![
            engine::DeviceRequest {
                driver: String::new(),
                count: 0,
                device_ids: vec!["1".into()],
                capabilities: vec![vec!["gpu".into()]],
                options: [("mig".to_owned(), "1".to_owned())].into(),
            },
            engine::DeviceRequest {
                driver: "cdi".into(),
                device_ids: vec!["nvidia.com/gpu=all".into()],
                ..Default::default()
            },
            engine::DeviceRequest {
                driver: "nvidia".into(),
                count: 2,
                capabilities: vec![vec!["utility".into(), "gpu".into()]],
                ..Default::default()
            },
        ]
    );
    // The CDI name is asked of the driver, not mapped as a host path.
    assert!(is_cdi_device(&service.devices[0]));
    assert!(!is_cdi_device(&service.devices[1]));
    assert!(device_requests(&Service::default(), None).is_empty());
}

#[test]
fn cdi_names_are_vendor_class_equals_name() {
    for yes in [
        "nvidia.com/gpu=all",
        "vendor.example/class_1=dev-0",
        "a/b=0:1",
    ] {
        assert!(is_cdi_name(yes), "{yes}");
    }
    for no in [
        "/dev/nvidia0",
        "nvidia.com/gpu",
        "nvidia.com=gpu",
        "1vendor/gpu=all",
        "nvidia.com/gpu=",
        "nvidia.com/gpu=-x",
        "nvidia.com-/gpu=all",
        "nv idia/gpu=all",
    ] {
        assert!(!is_cdi_name(no), "{no}");
    }
}

#[test]
fn mac_addresses() {
    for yes in ["02:42:ac:11:00:02", "02-42-AC-11-00-02"] {
        assert!(is_mac(yes), "{yes}");
    }
    for no in [
        "",
        "02:42:ac:11:00",
        "02:42:ac:11:00:0g",
        "0242ac110002",
        "02:42-ac:11:00:02",
    ] {
        assert!(!is_mac(no), "{no}");
    }
}

#[test]
fn deploy_restart_policy_replaces_restart_as_in_compose() {
    let restart = |service: &str| -> Result<RestartPolicy, String> {
        let yaml = format!("services:\n  a:\n    image: x\n{service}");
        spec_of(&yaml, "a")
            .map(|s| s.restart)
            .map_err(|e| e.to_string())
    };
    let policy = |p: &str| format!("    restart: always\n    deploy: {{restart_policy: {p}}}\n");
    assert_eq!(restart("    restart: always\n"), Ok(RestartPolicy::Always));
    assert_eq!(restart(&policy("{condition: none}")), Ok(RestartPolicy::No));
    assert_eq!(
        restart(&policy("{condition: any, delay: 5s, window: 1m}")),
        Ok(RestartPolicy::Always),
        "delay and window are swarm's"
    );
    assert_eq!(
        restart(&policy("{condition: on-failure, max_attempts: 3}")),
        Ok(RestartPolicy::OnFailure {
            max_retries: Some(3)
        })
    );
    assert_eq!(
        restart(&policy("{condition: on-failure}")),
        Ok(RestartPolicy::OnFailure { max_retries: None })
    );
    assert_eq!(
        restart("    deploy: {restart_policy: {condition: any, max_attempts: 0}}\n"),
        Ok(RestartPolicy::Always)
    );
    assert_eq!(
        restart("    deploy: {restart_policy: {delay: 5s}}\n"),
        Ok(RestartPolicy::No),
        "compose sends an empty policy: Docker's default"
    );

    // What compose sends and Docker refuses, or silently turns into no policy.
    let refused = restart(&policy("{condition: any, max_attempts: 3}")).unwrap_err();
    assert!(
        refused.contains(
            "service a: deploy.restart_policy.max_attempts 3 needs condition: on-failure"
        ),
        "{refused}"
    );
    let refused = restart(&policy("{condition: sometimes}")).unwrap_err();
    assert!(
        refused.contains("condition \"sometimes\" is not a restart condition"),
        "{refused}"
    );
    let refused = restart(&policy("{max_attempts: 3}")).unwrap_err();
    assert!(
        refused.contains("without condition replaces `restart: always` with no restart policy"),
        "{refused}"
    );
}

#[test]
fn logging_options_without_a_driver_go_to_the_daemons_default_driver() {
    let spec = spec_of(
        "services:\n  a:\n    image: x\n    logging: {options: {max-size: 1m, max-file: '3'}}\n",
        "a",
    )
    .unwrap();
    assert_eq!(
        spec.logging,
        Some(LoggingSpec {
            driver: None,
            options: [
                ("max-file".to_owned(), "3".to_owned()),
                ("max-size".to_owned(), "1m".to_owned())
            ]
            .into(),
        })
    );
}

#[test]
fn healthcheck_start_interval_reaches_the_spec() {
    let spec = spec_of(
        "services:\n  a:\n    image: x\n    healthcheck: {test: 'true', start_period: 30s, start_interval: 2s}\n",
        "a",
    )
    .unwrap();
    let health = spec.healthcheck.unwrap();
    assert_eq!(health.start_interval, Some(Duration::from_secs(2)));
    assert_eq!(health.start_period, Some(Duration::from_secs(30)));
}

#[test]
fn mount_options_reach_the_spec() {
    let spec = spec_of(
        "services:\n  a:\n    image: x\n    volumes:\n      - /srv/a:/a:ro,z,rslave\n      - {type: bind, source: /srv/b, target: /b, bind: {create_host_path: false, propagation: shared}}\n      - {type: bind, source: /srv/c, target: /c, read_only: true, bind: {recursive: readonly}}\n      - {type: bind, source: /srv/d, target: /d}\n      - {type: volume, source: data, target: /e, volume: {subpath: sub, nocopy: true, labels: {k: v}}}\nvolumes:\n  data: {}\n",
        "a",
    )
    .unwrap();
    let kinds: Vec<&MountKind> = spec.mounts.iter().map(|m| &m.kind).collect();
    let bind = |create_host_path, propagation: Option<&str>, selinux: Option<&str>, recursive| {
        MountKind::Bind {
            create_host_path,
            propagation: propagation.map(str::to_owned),
            selinux: selinux.map(str::to_owned),
            recursive,
        }
    };
    assert_eq!(
        kinds,
        vec![
            &bind(true, Some("rslave"), Some("z"), None),
            &bind(false, Some("shared"), None, None),
            // Options without create_host_path: true do not create, as in compose.
            &bind(false, None, None, Some(engine::BindRecursive::ReadOnly)),
            &bind(true, None, None, None),
            &MountKind::Volume {
                nocopy: true,
                subpath: Some("sub".into()),
                labels: [("k".to_owned(), "v".to_owned())].into(),
            },
        ]
    );
    assert_eq!(spec.mounts[4].source, "p_data");
}

#[test]
fn mount_options_that_cannot_apply_are_refused_naming_the_mount() {
    let refused = |volume: &str| {
        spec_of(
            &format!("services:\n  a:\n    image: x\n    volumes:\n      - {volume}\n"),
            "a",
        )
        .unwrap_err()
        .to_string()
    };
    let text =
        refused("{type: bind, source: /srv, target: /s, bind: {selinux: Z, propagation: rslave}}");
    assert!(
        text.contains(
            "service a: volumes[0] (/s): bind.selinux \"Z\" without bind.create_host_path: true"
        ) && text.contains("set bind.create_host_path: true"),
        "{text}"
    );
    let text = refused(
        "{type: bind, source: /srv, target: /s, bind: {selinux: z, create_host_path: true, recursive: disabled}}",
    );
    assert!(
        text.contains("bind.selinux \"z\" with bind.recursive"),
        "{text}"
    );
    let text = refused("{type: bind, source: /srv, target: /s, bind: {propagation: slaves}}");
    assert!(
        text.contains("bind.propagation \"slaves\" is not a propagation mode"),
        "{text}"
    );
    let text = refused("{type: bind, source: /srv, target: /s, bind: {selinux: x}}");
    assert!(
        text.contains("bind.selinux \"x\" is not a relabel option"),
        "{text}"
    );
    let text = refused("{type: tmpfs, target: /t, volume: {nocopy: true}}");
    assert!(
        text.contains("volumes[0] (/t): `volume:` options on a mount of type tmpfs"),
        "{text}"
    );
}

#[test]
fn ipc_and_pid_of_a_service_join_its_first_container() {
    let yaml = "services:\n  vpn:\n    image: x\n  app:\n    image: x\n    ipc: service:vpn\n    pid: service:vpn\n  host:\n    image: x\n    ipc: shareable\n    pid: host\n";
    let spec = spec_of(yaml, "app").unwrap();
    assert_eq!(spec.ipc.as_deref(), Some("container:p-vpn-1"));
    assert_eq!(spec.pid.as_deref(), Some("container:p-vpn-1"));
    let spec = spec_of(yaml, "host").unwrap();
    assert_eq!(spec.ipc.as_deref(), Some("shareable"));
    assert_eq!(spec.pid.as_deref(), Some("host"));
}

#[test]
fn expose_ranges_are_expanded_and_protocols_kept() {
    let spec = spec_of(
        "services:\n  a:\n    image: x\n    expose: [\"3000-3002\", \"80/sctp\", \"90/udp\", 7]\n",
        "a",
    )
    .unwrap();
    assert_eq!(
        spec.expose,
        vec![
            (3000, Protocol::Tcp),
            (3001, Protocol::Tcp),
            (3002, Protocol::Tcp),
            (80, Protocol::Sctp),
            (90, Protocol::Udp),
            (7, Protocol::Tcp),
        ]
    );
}

#[test]
fn mem_swappiness_zero_is_no_setting_as_in_compose() {
    // compose sends no MemorySwappiness for 0 (docker inspect shows null), 10 as 10.
    let spec = spec_of(
        "services:\n  a:\n    image: x\n    mem_swappiness: 0\n",
        "a",
    )
    .unwrap();
    assert_eq!(spec.resources.memory_swappiness, None);
    let spec = spec_of(
        "services:\n  a:\n    image: x\n    mem_swappiness: \"${S:-0}\"\n",
        "a",
    )
    .unwrap();
    assert_eq!(spec.resources.memory_swappiness, None);
    let spec = spec_of(
        "services:\n  a:\n    image: x\n    mem_swappiness: 10\n",
        "a",
    )
    .unwrap();
    assert_eq!(spec.resources.memory_swappiness, Some(10));
}

#[test]
fn a_networks_enable_ipv4_reaches_its_spec() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(
        &file,
        "services:\n  a:\n    image: x\nnetworks:\n  default:\n    enable_ipv4: false\n    enable_ipv6: true\n",
    )
    .unwrap();
    let project = compose::load(&LoadOptions {
        files: vec![file],
        project_name: Some("p".into()),
        ..LoadOptions::default()
    })
    .unwrap();
    let specs = network_specs(&project);
    let (_, spec, _) = specs.iter().find(|(k, _, _)| k == "default").unwrap();
    assert_eq!(spec.enable_ipv4, Some(false));
    assert!(spec.enable_ipv6);
}

#[test]
fn what_docker_refuses_in_another_containers_network_namespace_is_refused_first() {
    let yaml = |key: &str| {
        format!(
            "services:\n  vpn:\n    image: x\n  app:\n    image: x\n    network_mode: service:vpn\n    {key}\n"
        )
    };
    for (key, line) in [
        ("expose", "expose: [80]"),
        ("ports", "ports: [\"8080:80\"]"),
        ("hostname", "hostname: app"),
        ("dns", "dns: [1.1.1.1]"),
        ("extra_hosts", "extra_hosts: [\"a=127.0.0.2\"]"),
    ] {
        let err = spec_of(&yaml(line), "app").unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "{key} with network_mode \"service:vpn\": Docker refuses it"
            )),
            "{err}"
        );
    }
    assert!(spec_of(&yaml("user: \"1\""), "app").is_ok());
}

#[test]
fn a_seccomp_profile_file_is_sent_as_its_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sec")).unwrap();
    std::fs::write(
        dir.path().join("sec/profile.json"),
        "{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  \"syscalls\": []\n}\n",
    )
    .unwrap();
    let file = dir.path().join("compose.yaml");
    let load = |opts: &str| {
        std::fs::write(
            &file,
            format!("services:\n  web:\n    image: x\n    security_opt: {opts}\n"),
        )
        .unwrap();
        compose::load(&LoadOptions {
            files: vec![file.clone()],
            project_name: Some("p".into()),
            ..LoadOptions::default()
        })
        .unwrap()
    };
    let project = load(
        "[\"seccomp=./sec/profile.json\", \"seccomp=unconfined\", \"no-new-privileges:true\"]",
    );
    let web = project.service("web").unwrap();
    let spec = container_spec(&project, web, "img", Some(1), "hash").unwrap();
    assert_eq!(
        spec.security_opt,
        [
            "seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[]}",
            "seccomp=unconfined",
            "no-new-privileges:true",
        ]
    );

    let project = load("[\"no-new-privileges:true\", \"seccomp=./sec/missing.json\"]");
    let web = project.service("web").unwrap();
    let err = container_spec(&project, web, "img", Some(1), "hash")
        .unwrap_err()
        .to_string();
    let missing = dir.path().join("sec/missing.json");
    assert!(
        err.contains(&format!(
            "service web: security_opt[1]: seccomp profile {}: cannot read it",
            missing.display()
        )),
        "{err}"
    );
}
