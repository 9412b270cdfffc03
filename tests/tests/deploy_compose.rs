//! `gantry deploy` against the real Docker daemon with the `compose/hello` example stack:
//! a web service (busybox httpd on a published 127.0.0.1 port), a worker, a one-shot migrate
//! job, a named volume, healthchecks and depends_on conditions.
//!
//! Every test deploys its own copy under a unique project name, port and state dir, and
//! removes its containers, network and volume when it ends (even when it fails).

use std::process::Command;

use gantry_tests::stack::Stack;
use gantry_tests::{docker, env, inspect};
use gantry_tests::{stderr, stdout};

#[test]
fn deploy_serves_the_page_and_a_noop_redeploy_touches_nothing() {
    let stack = Stack::hello();
    let out = stack.deploy(&[]);
    assert_eq!(out.status.code(), Some(0), "first deploy");
    let page = stack.page();
    assert!(page.contains("Hello from Gantry"), "{page}");
    assert!(
        page.contains("schema v1"),
        "the migrate job ran first: {page}"
    );

    let before = stack.containers();
    assert!(
        before.contains_key(&format!("{}-web-1", stack.name)),
        "{before:?}"
    );
    assert!(
        before.contains_key(&format!("{}-worker-1", stack.name)),
        "{before:?}"
    );
    assert_eq!(before.len(), 2, "the job container is gone: {before:?}");

    let out = stack.deploy(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "no-op deploy");
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["outcome"], "unchanged");
    assert_eq!(stack.containers(), before, "same ids, same StartedAt");

    // Docker Compose sees the stack as its own.
    let compose = env().get("COMPOSE_BIN");
    let ps = Command::new(compose)
        .args(["-p", &stack.name, "ps", "--format", "{{.Service}}"])
        .env("DOCKER_HOST", env().get("DOCKER_HOST"))
        .output()
        .unwrap();
    let services = stdout(&ps);
    assert!(
        services.contains("web") && services.contains("worker"),
        "{services}"
    );
}

#[test]
fn changing_one_service_recreates_only_it_and_the_volume_survives() {
    let stack = Stack::hello();
    assert_eq!(stack.deploy(&[]).status.code(), Some(0));
    stack.page();
    let worker = format!("{}-worker-1", stack.name);
    let web = format!("{}-web-1", stack.name);
    let marker = docker(&["exec", &worker, "sh", "-c", "echo kept > /data/marker"]);
    assert!(marker.status.success());
    let before = stack.containers();

    let out = stack.deploy(&["--var", "GREETING=Changed greeting"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("web: recreating (environment)"),
        "{}",
        stdout(&out)
    );
    let after = stack.containers();
    assert_eq!(after[&worker], before[&worker], "worker untouched");
    assert_ne!(after[&web].0, before[&web].0, "web recreated");
    assert!(stack.page().contains("Changed greeting"));

    let data = docker(&["exec", &web, "cat", "/data/marker"]);
    assert_eq!(stdout(&data).trim(), "kept", "named volume data survives");
}

#[test]
fn a_service_removed_from_the_file_loses_its_containers() {
    let stack = Stack::hello();
    assert_eq!(stack.deploy(&[]).status.code(), Some(0));
    let original = std::fs::read_to_string(stack.file()).unwrap();
    // A stack with only the web service left (no worker, no job).
    let web_only = original
        .replace(
            "    depends_on:\n      worker:\n        condition: service_healthy\n",
            "",
        )
        .replace(
            "    depends_on:\n      migrate:\n        condition: service_completed_successfully\n",
            "",
        );
    let start = web_only.find("  migrate:").unwrap();
    let end = web_only.find("  web:").unwrap();
    let web_only = format!("{}{}", &web_only[..start], &web_only[end..]);
    stack.write(&web_only.replace("schema: $$(cat /data/schema)", "schema: none"));

    let out = stack.deploy(&[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("worker: removing"),
        "{}",
        stdout(&out)
    );
    let names: Vec<String> = stack.containers().into_keys().collect();
    assert_eq!(names, vec![format!("{}-web-1", stack.name)]);
}

#[test]
fn a_replica_count_change_scales_without_touching_the_others() {
    let stack = Stack::with_file(
        "services:\n  worker:\n    image: ${IMAGE}\n    command: [\"sleep\", \"300\"]\n    init: true\n    deploy:\n      replicas: ${REPLICAS:-1}\n",
    );
    assert_eq!(stack.deploy(&[]).status.code(), Some(0));
    let one = stack.containers();
    assert_eq!(
        stack.deploy(&["--var", "REPLICAS=3"]).status.code(),
        Some(0)
    );
    let three = stack.containers();
    assert_eq!(three.len(), 3, "{three:?}");
    let first = format!("{}-worker-1", stack.name);
    assert_eq!(three[&first], one[&first], "replica 1 untouched");
    assert_eq!(
        stack.deploy(&["--var", "REPLICAS=2"]).status.code(),
        Some(0)
    );
    let two = stack.containers();
    assert!(two.contains_key(&format!("{}-worker-2", stack.name)));
    assert!(!two.contains_key(&format!("{}-worker-3", stack.name)));
}

#[test]
fn the_legacy_resource_keys_and_uts_reach_the_container_and_a_change_recreates_it() {
    let stack = Stack::with_file(
        "services:\n  worker:\n    image: ${IMAGE}\n    command: [\"sleep\", \"300\"]\n    init: true\n    mem_limit: ${MEM:-64m}\n    mem_reservation: 32m\n    cpus: 0.5\n    cpu_shares: 512\n    cpuset: \"0\"\n    pids_limit: 50\n    oom_score_adj: 300\n    uts: host\n    attach: false\n",
    );
    assert_eq!(stack.deploy(&[]).status.code(), Some(0));
    let worker = format!("{}-worker-1", stack.name);
    let fields = "{{.HostConfig.Memory}} {{.HostConfig.MemoryReservation}} {{.HostConfig.NanoCpus}} \
                  {{.HostConfig.CpuShares}} {{.HostConfig.CpusetCpus}} {{.HostConfig.PidsLimit}} \
                  {{.HostConfig.OomScoreAdj}} {{.HostConfig.UTSMode}}";
    assert_eq!(
        inspect(&worker, fields),
        format!("{} {} 500000000 512 0 50 300 host", 64 << 20, 32 << 20)
    );
    let before = stack.containers();
    let out = stack.deploy(&["--var", "MEM=96m"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_ne!(
        stack.containers()[&worker].0,
        before[&worker].0,
        "recreated"
    );
    assert!(inspect(&worker, fields).starts_with(&format!("{} ", 96 << 20)));
}

/// `extra_hosts` reach the container's /etc/hosts: Docker takes `HOST:IP` (it refuses the
/// `HOST=IP` compose prints), `host-gateway` becomes the host's address.
#[test]
fn extra_hosts_reach_the_containers_etc_hosts() {
    let stack = Stack::with_file(
        "services:\n  app:\n    image: ${IMAGE}\n    command: [\"sleep\", \"300\"]\n    init: true\n    extra_hosts: [\"myhost:127.0.0.9\", \"host.docker.internal:host-gateway\"]\n",
    );
    let out = stack.deploy(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let hosts = docker(&[
        "exec",
        &format!("{}-app-1", stack.name),
        "cat",
        "/etc/hosts",
    ]);
    let hosts = String::from_utf8_lossy(&hosts.stdout).into_owned();
    let entry = |name: &str| {
        hosts
            .lines()
            .find(|l| l.split_whitespace().skip(1).any(|n| n == name))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_owned)
    };
    assert_eq!(entry("myhost").as_deref(), Some("127.0.0.9"), "{hosts}");
    let gateway = entry("host.docker.internal").unwrap_or_else(|| panic!("{hosts}"));
    assert!(
        gateway.parse::<std::net::IpAddr>().is_ok(),
        "host-gateway is resolved to an address: {hosts}"
    );
}

/// The everyday deploy of a stack with a database, a migration and an app: only the app's
/// version changes, so the migration (a new version too) waits on a database that needs no
/// change. It used to fail at once ("migrate waits for db, which has no running container").
#[test]
fn a_migration_waiting_on_an_unchanged_database_runs_and_the_app_follows() {
    let stack = Stack::with_file(
        "services:\n  db:\n    image: ${IMAGE}\n    command: [\"sleep\", \"300\"]\n    init: true\n  migrate:\n    image: ${IMAGE}\n    command: [\"true\"]\n    environment: {RELEASE: \"${RELEASE}\"}\n    depends_on: {db: {condition: service_started}}\n    x-gantry: {job: {timeout: 1m}}\n  app:\n    image: ${IMAGE}\n    command: [\"sleep\", \"300\"]\n    init: true\n    environment: {RELEASE: \"${RELEASE}\"}\n    depends_on: {migrate: {condition: service_completed_successfully}}\n",
    );
    assert_eq!(stack.deploy(&["--var", "RELEASE=1"]).status.code(), Some(0));
    let before = stack.containers();
    assert_eq!(stack.deploy(&["--var", "RELEASE=2"]).status.code(), Some(0));
    let after = stack.containers();
    let (db, app) = (
        format!("{}-db-1", stack.name),
        format!("{}-app-1", stack.name),
    );
    assert_eq!(after[&db], before[&db], "the database was left alone");
    assert_ne!(after[&app], before[&app], "the app was replaced");
}

/// A top-level `name:` of a network or volume is not part of the service's own keys, but its
/// containers must move (as Compose recreates them): the next deploy recreates only the
/// service that uses it, attached to the renamed network and mounting the renamed volume.
#[test]
fn renaming_a_network_or_volume_recreates_the_services_that_use_it() {
    let stack = Stack::with_file("");
    let text = |suffix: &str| {
        let name = &stack.name;
        format!(
            "services:\n  app:\n    image: ${{IMAGE}}\n    command: [\"sleep\", \"300\"]\n    init: true\n    networks: [front]\n    volumes: [data:/data]\n  other:\n    image: ${{IMAGE}}\n    command: [\"sleep\", \"300\"]\n    init: true\nnetworks:\n  front: {{name: {name}-front{suffix}}}\nvolumes:\n  data: {{name: {name}-data{suffix}}}\n"
        )
    };
    stack.write(&text(""));
    assert_eq!(stack.deploy(&[]).status.code(), Some(0));
    let before = stack.containers();
    let app = format!("{}-app-1", stack.name);
    let other = format!("{}-other-1", stack.name);

    stack.write(&text("2"));
    let file = stack.file().display().to_string();
    let out = stack.gantry(&["plan", &stack.name, "-f", &file]);
    let plan = stdout(&out);
    assert!(
        plan.contains(&format!("network {}-front2 not attached", stack.name))
            && plan.contains(&format!("volume {}-data2 not mounted", stack.name)),
        "{plan}{}",
        stderr(&out)
    );
    assert_eq!(stack.deploy(&[]).status.code(), Some(0));
    let after = stack.containers();
    assert_ne!(after[&app], before[&app], "app was recreated");
    assert_eq!(after[&other], before[&other], "other was left alone");
    let networks = inspect(
        &app,
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
    );
    assert_eq!(networks.trim(), format!("{}-front2", stack.name));
    let mounts = inspect(&app, "{{range .Mounts}}{{.Name}} {{end}}");
    assert_eq!(mounts.trim(), format!("{}-data2", stack.name));
    // And it holds: the next deploy changes nothing.
    let out = stack.deploy(&["--output", "json"]);
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["outcome"], "unchanged", "{report}");
    for name in ["front", "front2"] {
        docker(&["network", "rm", &format!("{}-{name}", stack.name)]);
    }
    for name in ["data", "data2"] {
        docker(&["volume", "rm", "-f", &format!("{}-{name}", stack.name)]);
    }
}

/// `healthcheck.start_interval` reaches the container where this Docker's API takes it (1.44,
/// Docker 25.0); an older Docker would ignore it without a word, so the deploy says so.
#[test]
fn healthcheck_start_interval_reaches_docker_or_names_the_api_it_needs() {
    let stack = Stack::with_file(
        "services:\n  app:\n    image: ${IMAGE}\n    command: [\"sleep\", \"300\"]\n    init: true\n    healthcheck: {test: [\"CMD\", \"true\"], interval: 30s, start_period: 20s, start_interval: 1s}\n",
    );
    let api = stdout(&docker(&["version", "--format", "{{.Server.APIVersion}}"]));
    let (major, minor) = api.trim().split_once('.').expect("an API version");
    let api = (major.parse::<u32>().unwrap(), minor.parse::<u32>().unwrap());
    let out = stack.deploy(&[]);
    let text = stdout(&out) + &stderr(&out);
    let app = format!("{}-app-1", stack.name);
    if api >= (1, 44) {
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert_eq!(
            inspect(&app, "{{.Config.Healthcheck.StartInterval}}").trim(),
            "1000000000"
        );
    } else {
        assert_ne!(out.status.code(), Some(0), "{text}");
        assert!(
            text.contains("healthcheck.start_interval needs Docker API 1.44 (Docker 25.0)")
                && text.contains("app"),
            "{text}"
        );
        assert!(stack.containers().is_empty(), "refused before a create");
    }
}

/// A bind mount's relabel and propagation reach Docker (they were dropped), a long-form bind
/// with options creates no missing host path (as in compose: `create_host_path: true` asks for
/// it), and a volume's `subpath` needs an API that carries it.
#[test]
fn mount_options_reach_docker_and_create_host_path_false_creates_nothing() {
    let stack = Stack::with_file(
        "services:\n  app:\n    image: ${IMAGE}\n    command: [\"sleep\", \"300\"]\n    init: true\n    volumes:\n      - ./a:/a:ro,z,private\n      - {type: bind, source: ./b, target: /b, bind: {propagation: private}}\n",
    );
    std::fs::create_dir(stack.dir.path().join("b")).unwrap();
    let out = stack.deploy(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let app = format!("{}-app-1", stack.name);
    let mounts = inspect(
        &app,
        "{{range .Mounts}}{{.Destination}}:{{.Mode}}:{{.Propagation}}:{{.RW}} {{end}}",
    );
    let mut mounts: Vec<&str> = mounts.split_whitespace().collect();
    mounts.sort();
    assert_eq!(
        mounts,
        vec!["/a:ro,z,private:private:false", "/b::private:true"],
        "the short form's options in Docker's bind syntax, the long form's by the mount API"
    );

    // A missing source with bind options and no create_host_path: Docker refuses, nothing made.
    stack.write(
        &std::fs::read_to_string(stack.file())
            .unwrap()
            .replace("./b", "./missing"),
    );
    let out = stack.deploy(&[]);
    let text = stdout(&out) + &stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("app") && text.contains("missing"), "{text}");
    assert!(!stack.dir.path().join("missing").exists(), "{text}");

    stack.write(
        "services:\n  app:\n    image: ${IMAGE}\n    command: [\"sleep\", \"300\"]\n    init: true\n    volumes:\n      - {type: volume, source: data, target: /v, volume: {subpath: sub}}\nvolumes:\n  data: {}\n",
    );
    let api = stdout(&docker(&["version", "--format", "{{.Server.APIVersion}}"]));
    let (major, minor) = api.trim().split_once('.').expect("an API version");
    let api = (major.parse::<u32>().unwrap(), minor.parse::<u32>().unwrap());
    let out = stack.deploy(&[]);
    let text = stdout(&out) + &stderr(&out);
    if api < (1, 45) {
        assert_ne!(out.status.code(), Some(0), "{text}");
        assert!(
            text.contains("volume.subpath on /v needs Docker API 1.45 (Docker 26.0)"),
            "{text}"
        );
    } else {
        // Docker mounts a subpath that exists only: this one does not.
        assert!(!text.contains("needs Docker API"), "{text}");
    }
}

/// Keys `gantry config` always read but the deploy refused until now reach the container as
/// compose sets them: `runtime`, `userns_mode`, `cgroup_parent`, `platform` (the host's own,
/// the only one this host's image has), `volumes_from` (a service, read-only) and `links`
/// without an alias (a dependency; the name already resolves on the network).
#[test]
fn runtime_userns_cgroup_parent_platform_volumes_from_and_links_reach_the_container() {
    let driver =
        String::from_utf8_lossy(&docker(&["info", "--format", "{{.CgroupDriver}}"]).stdout)
            .trim()
            .to_owned();
    // The systemd driver takes only a slice as the parent.
    let parent = if driver == "systemd" {
        "gantry-test.slice"
    } else {
        "/gantry-test"
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let stack = Stack::with_file(&format!(
        "services:\n  data:\n    image: ${{IMAGE}}\n    command: [\"sleep\", \"300\"]\n    init: true\n    volumes: [\"shared:/shared\"]\n  app:\n    image: ${{IMAGE}}\n    command: [\"sleep\", \"300\"]\n    init: true\n    runtime: runc\n    userns_mode: host\n    cgroup_parent: {parent}\n    platform: linux/{arch}\n    volumes_from: [\"data:ro\"]\n    links: [data]\nvolumes:\n  shared: {{}}\n"
    ));
    let out = stack.deploy(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let app = format!("{}-app-1", stack.name);
    let fields = "{{.HostConfig.Runtime}} {{.HostConfig.UsernsMode}} {{.HostConfig.CgroupParent}} \
                  {{.HostConfig.VolumesFrom}} {{.Platform}} \
                  {{range .Mounts}}{{.Destination}}:{{.RW}}{{end}}";
    assert_eq!(
        inspect(&app, fields).trim(),
        format!(
            "runc host {parent} [{}-data-1:ro] linux /shared:false",
            stack.name
        )
    );
    let plan = stack.gantry(&["plan", &stack.name, "-f", stack.file().to_str().unwrap()]);
    assert!(
        stdout(&plan).contains("0 to create, 0 to recreate, 0 to remove, 2 unchanged"),
        "a second look changes nothing: {}",
        stdout(&plan)
    );

    stack.write(
        &std::fs::read_to_string(stack.file())
            .unwrap()
            .replace("links: [data]", "links: [\"data:db\"]"),
    );
    let out = stack.deploy(&[]);
    assert_eq!(out.status.code(), Some(65), "{}", stdout(&out));
    let text = stdout(&out) + &stderr(&out);
    assert!(
        text.contains("service app: links: \"data:db\" gives the linked service another name"),
        "{text}"
    );
}

/// The cgroup namespace, device cgroup rules and block I/O throttles reach the container
/// (weights need an I/O scheduler this host may not have, so they are checked against compose
/// only); storage options reach Docker, which refuses them here (overlay2 on a filesystem
/// without project quotas), naming the service.
#[test]
fn cgroup_device_rules_and_blkio_reach_the_container_and_storage_opt_reaches_docker() {
    let block = [
        "/dev/vda",
        "/dev/sda",
        "/dev/nvme0n1",
        "/dev/xvda",
        "/dev/loop0",
    ]
    .into_iter()
    .find(|d| std::path::Path::new(d).exists())
    .expect("a block device to throttle (none of /dev/vda, sda, nvme0n1, xvda, loop0)");
    let stack = Stack::with_file(&format!(
        "services:\n  app:\n    image: ${{IMAGE}}\n    command: [\"sleep\", \"300\"]\n    init: true\n    cgroup: private\n    device_cgroup_rules: [\"c 1:3 mr\"]\n    blkio_config:\n      device_read_bps: [{{path: {block}, rate: 12mb}}]\n      device_write_iops: [{{path: {block}, rate: 300}}]\n"
    ));
    let out = stack.deploy(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let app = format!("{}-app-1", stack.name);
    let fields = "{{.HostConfig.CgroupnsMode}} {{.HostConfig.DeviceCgroupRules}} \
                  {{range .HostConfig.BlkioDeviceReadBps}}{{.Path}}={{.Rate}}{{end}} \
                  {{range .HostConfig.BlkioDeviceWriteIOps}}{{.Path}}={{.Rate}}{{end}}";
    assert_eq!(
        inspect(&app, fields).trim(),
        format!("private [c 1:3 mr] {block}=12582912 {block}=300")
    );

    stack.write(&std::fs::read_to_string(stack.file()).unwrap().replace(
        "    cgroup: private\n",
        "    cgroup: private\n    storage_opt: {size: 1G}\n",
    ));
    let out = stack.deploy(&[]);
    let text = stdout(&out) + &stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("service app: container ") && text.contains("storage-opt"),
        "Docker's refusal of the storage option, naming the service: {text}"
    );
}

/// Lifecycle hooks on a real container: `post_start` runs once the new container started
/// (with its own environment and user), `pre_stop` in the old one before it stops; a
/// `post_start` that fails fails the deploy naming the hook and its output, and the container
/// that served keeps serving.
#[test]
fn post_start_and_pre_stop_hooks_run_in_the_containers_and_a_failing_post_start_fails_the_deploy() {
    let template = "services:\n  worker:\n    image: ${IMAGE}\n    command: [\"sleep\", \"300\"]\n    init: true\n    environment: {VERSION: \"${V:-1}\"}\n    volumes: [\"./out:/out\"]\n    post_start:\n      - command: [\"sh\", \"-c\", \"echo post_start $$VERSION $$HOOK_VAR $$(id -u) >> log\"]\n        environment: {HOOK_VAR: from-hook}\n        user: \"65534\"\n        working_dir: /out\n    pre_stop:\n      - command: [\"sh\", \"-c\", \"echo pre_stop $$VERSION >> /out/log\"]\n";
    let stack = Stack::with_file(template);
    let out_dir = stack.dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    // The post_start hook runs as nobody (65534).
    std::fs::set_permissions(
        &out_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let log = || std::fs::read_to_string(out_dir.join("log")).unwrap_or_default();

    assert_eq!(stack.deploy(&[]).status.code(), Some(0));
    assert_eq!(log(), "post_start 1 from-hook 65534\n");

    let out = stack.deploy(&["--var", "V=2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        log(),
        "post_start 1 from-hook 65534\npost_start 2 from-hook 65534\npre_stop 1\n",
        "start-first: the new container's post_start, then the old one's pre_stop"
    );
    let worker = format!("{}-worker-1", stack.name);
    let serving = stack.containers()[&worker].0.clone();

    stack.write(&template.replace(
        "echo post_start $$VERSION $$HOOK_VAR $$(id -u) >> log",
        "echo schema is behind >&2; exit 3",
    ));
    let out = stack.deploy(&["--var", "V=3"]);
    let text = stdout(&out) + &stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("service worker: container ")
            && text.contains(
                "post_start hook `sh -c echo schema is behind >&2; exit 3` exited with status 3"
            )
            && text.contains("--- its last output ---\nschema is behind"),
        "{text}"
    );
    assert_eq!(
        stack.containers()[&worker].0,
        serving,
        "the container that served still serves"
    );
    assert!(
        inspect(&worker, "{{.State.Running}}").trim() == "true",
        "still running"
    );
}

/// The per-network keys reach the container's endpoints (they were read and dropped); a MAC
/// address goes where this Docker's API takes one, or the deploy says which Docker it needs.
#[test]
fn network_keys_reach_the_endpoints_and_a_mac_address_needs_an_api_that_carries_it() {
    let stack = Stack::with_file(
        "services:\n  app:\n    image: ${IMAGE}\n    command: [\"sleep\", \"300\"]\n    init: true\n    networks:\n      default:\n        driver_opts: {com.example.front: \"1\"}\n      back:\n        link_local_ips: [169.254.10.10]\n        driver_opts: {com.example.back: \"2\"}\nnetworks:\n  back: {}\n",
    );
    let out = stack.deploy(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        stdout(&out) + &stderr(&out)
    );
    let app = format!("{}-app-1", stack.name);
    let endpoint = |network: &str, field: &str| {
        inspect(
            &app,
            &format!(
                "{{{{json (index .NetworkSettings.Networks \"{}_{network}\").{field}}}}}",
                stack.name
            ),
        )
        .trim()
        .to_owned()
    };
    assert_eq!(
        endpoint("default", "DriverOpts"),
        r#"{"com.example.front":"1"}"#
    );
    assert_eq!(
        endpoint("back", "DriverOpts"),
        r#"{"com.example.back":"2"}"#
    );
    assert_eq!(
        endpoint("back", "IPAMConfig"),
        r#"{"LinkLocalIPs":["169.254.10.10"]}"#
    );
    let again = stack.deploy(&["--output", "json"]);
    let report: serde_json::Value = serde_json::from_str(stdout(&again).trim()).unwrap();
    assert_eq!(
        report["outcome"], "unchanged",
        "the keys hash as they apply"
    );

    stack.write(&std::fs::read_to_string(stack.file()).unwrap().replace(
        "    init: true\n",
        "    init: true\n    mac_address: 02:42:ac:11:00:99\n",
    ));
    let api = stdout(&docker(&["version", "--format", "{{.Server.APIVersion}}"]));
    let (major, minor) = api.trim().split_once('.').expect("an API version");
    let api = (major.parse::<u32>().unwrap(), minor.parse::<u32>().unwrap());
    let out = stack.deploy(&[]);
    let text = stdout(&out) + &stderr(&out);
    if api >= (1, 44) {
        assert_eq!(out.status.code(), Some(0), "{text}");
        // The first network by priority, then name, as compose picks it.
        assert_eq!(endpoint("back", "MacAddress"), r#""02:42:ac:11:00:99""#);
    } else {
        // Docker before 1.44 takes the address on the container only, a field Gantry's
        // Docker client does not have: refused, never dropped, and the old container serves.
        assert_ne!(out.status.code(), Some(0), "{text}");
        assert!(
            text.contains(&format!(
                "mac_address on network {}_back needs Docker API 1.44 (Docker 25.0)",
                stack.name
            )) && text.contains("app"),
            "{text}"
        );
        assert!(
            inspect(&app, "{{.State.Running}}").trim() == "true",
            "{text}"
        );
    }
}

/// A service with a fixed address is replaced stop-first: a new container beside the old one
/// could not take the address (start-first made every change of it fail and roll back).
#[test]
fn a_service_with_a_fixed_address_is_replaced_stop_first_and_keeps_its_address() {
    let file = |v: u8| {
        format!(
            "services:\n  app:\n    image: ${{IMAGE}}\n    command: [\"sleep\", \"300\"]\n    init: true\n    environment: {{V: \"{v}\"}}\n    networks:\n      fixed: {{ipv4_address: 10.213.47.10}}\nnetworks:\n  fixed:\n    ipam: {{config: [{{subnet: 10.213.47.0/24}}]}}\n"
        )
    };
    let stack = Stack::with_file(&file(1));
    let out = stack.deploy(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        stdout(&out) + &stderr(&out)
    );
    let app = format!("{}-app-1", stack.name);
    let address = || {
        inspect(
            &app,
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        )
        .trim()
        .to_owned()
    };
    assert_eq!(address(), "10.213.47.10");
    let before = stack.containers()[&app].0.clone();

    stack.write(&file(2));
    let file = stack.file();
    let plan = stack.gantry(&[
        "plan",
        &stack.name,
        "-f",
        file.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(
        stdout(&plan).contains("sets a fixed address (networks.fixed.ipv4_address)"),
        "{}",
        stdout(&plan)
    );
    let out = stack.deploy(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        stdout(&out) + &stderr(&out)
    );
    assert_ne!(stack.containers()[&app].0, before, "replaced");
    assert_eq!(address(), "10.213.47.10");
}

/// This host has no GPU and Docker here no NVIDIA runtime, so a GPU cannot be handed out: what
/// is checked is that the device requests reach Docker as compose sends them (Docker names the
/// driver and the capabilities it was asked for: `gpu` added to a `gpus:` entry), that the
/// failure names the service, and that the rest of the stack is left as it was.
#[test]
fn gpu_requests_reach_docker_and_a_host_without_the_driver_fails_naming_the_service() {
    let stack = Stack::with_file(
        "services:\n  worker:\n    image: ${IMAGE}\n    command: [\"sleep\", \"300\"]\n    init: true\n",
    );
    assert_eq!(stack.deploy(&[]).status.code(), Some(0));
    let before = stack.containers();
    stack.write(
        "services:\n  worker:\n    image: ${IMAGE}\n    command: [\"sleep\", \"300\"]\n    init: true\n  ml:\n    image: ${IMAGE}\n    command: [\"sleep\", \"300\"]\n    gpus:\n      - driver: nvidia\n        count: 1\n        capabilities: [utility]\n",
    );
    let out = stack.deploy(&[]);
    let text = stdout(&out) + &stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            r#"could not select device driver "nvidia" with capabilities: [[utility gpu]]"#
        ),
        "Docker was asked for the GPU as compose asks: {text}"
    );
    assert!(
        text.contains("error: service ml: container "),
        "the failure names the service: {text}"
    );
    let worker = format!("{}-worker-1", stack.name);
    assert_eq!(
        stack.containers()[&worker].0,
        before[&worker].0,
        "the worker was not touched"
    );
}

#[test]
fn invalid_files_exit_65_naming_the_file_and_key() {
    let stack =
        Stack::with_file("services:\n  web:\n    image: busybox\n    use_api_socket: true\n");
    let out = stack.deploy(&[]);
    assert_eq!(out.status.code(), Some(65));
    let err = stderr(&out) + &stdout(&out);
    assert!(
        err.contains("use_api_socket") && err.contains("web"),
        "{err}"
    );
    assert!(err.contains("compose.yaml"), "{err}");

    stack.write("services:\n  web:\n    image: [unclosed\n");
    let out = stack.deploy(&[]);
    assert_eq!(out.status.code(), Some(65));
    let err = stderr(&out) + &stdout(&out);
    assert!(
        err.contains("compose.yaml:4:1: invalid YAML"),
        "file:line:column: {err}"
    );

    stack.write(
        "services:\n  web:\n    image: ${REQUIRED_TAG:?set REQUIRED_TAG to the image tag}\n",
    );
    let out = stack.deploy(&[]);
    assert_eq!(out.status.code(), Some(65));
    let err = stderr(&out) + &stdout(&out);
    assert!(err.contains("set REQUIRED_TAG to the image tag"), "{err}");
    assert!(stack.containers().is_empty(), "nothing was created");
}

#[test]
fn a_service_that_never_turns_healthy_is_rolled_back() {
    let stack = Stack::hello();
    assert_eq!(stack.deploy(&[]).status.code(), Some(0));
    let override_file = stack.dir.path().join("broken.yaml");
    std::fs::write(
        &override_file,
        // Stop-first (web is start-first otherwise: its failure would leave v1 serving
        // untouched, exit 1): the old container is gone when the new one fails, so the deploy
        // rolls back to r1.
        "services:\n  web:\n    environment:\n      GREETING: broken\n    healthcheck:\n      test: [\"CMD\", \"false\"]\n      retries: 2\n    deploy:\n      update_config: {order: stop-first}\n",
    )
    .unwrap();
    let file = stack.file();
    let out = stack.gantry(&[
        "deploy",
        &stack.name,
        "-f",
        file.to_str().unwrap(),
        "-f",
        override_file.to_str().unwrap(),
        "--output",
        "json",
        "--ready-timeout",
        "30s",
    ]);
    assert_eq!(out.status.code(), Some(2), "rolled back");
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["outcome"], "rolled_back");
    assert_eq!(report["rolled_back_to"], "r1");
    assert!(report["error"].as_str().unwrap().contains("unhealthy"));
    let page = stack.page();
    assert!(
        page.contains("Hello from Gantry"),
        "v1 serves again: {page}"
    );
}

#[test]
fn a_failing_job_aborts_before_anything_running_changes() {
    let stack = Stack::hello();
    assert_eq!(stack.deploy(&[]).status.code(), Some(0));
    let before = stack.containers();
    let text = std::fs::read_to_string(stack.file()).unwrap().replace(
        "&& echo migrated",
        "&& echo 'migration 2 failed: column exists' && exit 1",
    );
    stack.write(&text);
    let out = stack.deploy(&["--var", "SCHEMA_VERSION=2", "--var", "GREETING=v2"]);
    assert_eq!(out.status.code(), Some(1), "failed before anything changed");
    let all = stdout(&out);
    assert!(all.contains("job migrate exited with code 1"), "{all}");
    assert!(
        all.contains("migration 2 failed: column exists"),
        "job log carried: {all}"
    );
    assert_eq!(stack.containers(), before, "nothing replaced");
    assert!(stack.page().contains("Hello from Gantry"));
}

#[test]
fn a_replacement_keeps_its_anonymous_volumes_as_compose_does() {
    // A database image run without a named volume keeps its data in its image's VOLUME; a
    // `- /path` entry makes another anonymous one. Compose gives the replacement both; so must
    // Gantry, or a changed environment deploys an empty database, gated green.
    let base = env().get("GANTRY_TEST_IMAGE");
    let image = "gantry-test/busybox-volume:latest";
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {base}\nVOLUME /var/lib/db\n"),
    )
    .unwrap();
    let built = docker(&["build", "-q", "-t", image, ctx.path().to_str().unwrap()]);
    assert!(built.status.success(), "{}", stderr(&built));
    let stack = Stack::with_file(&format!(
        "services:
  db:
    image: {image}
    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while sleep 1; do :; done\"]
    environment: {{V: \"${{V:-1}}\"}}
    volumes: [/scratch]
    x-gantry: {{min_ready: 1s}}
"
    ));
    assert_eq!(stack.deploy(&[]).status.code(), Some(0));
    let db = format!("{}-db-1", stack.name);
    let wrote = docker(&[
        "exec",
        &db,
        "sh",
        "-c",
        "echo kept > /var/lib/db/m && echo kept > /scratch/m",
    ]);
    assert!(wrote.status.success(), "{}", stderr(&wrote));
    let before = inspect(&db, "{{.Id}}");

    let out = stack.deploy(&["--var", "V=2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_ne!(inspect(&db, "{{.Id}}"), before, "db recreated");
    assert!(
        stdout(&out)
            .contains("keeps its anonymous volumes (/scratch, /var/lib/db): replaced stop-first"),
        "{}",
        stdout(&out)
    );
    let read = docker(&["exec", &db, "cat", "/var/lib/db/m", "/scratch/m"]);
    assert_eq!(stdout(&read), "kept\nkept\n", "{}", stderr(&read));
}
