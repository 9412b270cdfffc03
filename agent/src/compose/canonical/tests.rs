//! Unit tests of the canonicaliser: each short and long syntax, and the errors it gives.

use std::path::PathBuf;

use serde_json::{Value as Json, json};
use serde_yaml::Value;

use super::{Ctx, R, service, shell_split};
use crate::compose::error::ComposeError;
fn ctx_test() -> (PathBuf, PathBuf) {
    (PathBuf::from("/p/compose.yaml"), PathBuf::from("/p"))
}

fn svc(yaml: &str) -> R<Json> {
    let (file, base) = ctx_test();
    let lookup = |k: &str| (k == "FROM_ENV").then(|| "e".to_string());
    let ctx = Ctx {
        file: &file,
        written: &Default::default(),
        names: &Default::default(),
        base_dir: &base,
        base_written: None,
        lookup: &lookup,
        home: Some("/home/u"),
    };
    let v: Value = serde_yaml::from_str(yaml).unwrap();
    service(&ctx, "services.web", &v)
}

#[test]
fn ports_short_and_long() {
    let j = svc(r#"ports: ["8080:80", "127.0.0.1:8081-8082:81-82/udp", 9000, "[::1]:90:90", "127.0.0.1::80", "8000-8010:80", {target: 443, published: 8443, mode: host}]"#).unwrap();
    assert_eq!(
        j["ports"],
        json!([
            {"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"},
            {"mode": "ingress", "host_ip": "127.0.0.1", "target": 81, "published": "8081", "protocol": "udp"},
            {"mode": "ingress", "host_ip": "127.0.0.1", "target": 82, "published": "8082", "protocol": "udp"},
            {"mode": "ingress", "target": 9000, "protocol": "tcp"},
            {"mode": "ingress", "host_ip": "::1", "target": 90, "published": "90", "protocol": "tcp"},
            {"mode": "ingress", "host_ip": "127.0.0.1", "target": 80, "protocol": "tcp"},
            {"mode": "ingress", "target": 80, "published": "8000-8010", "protocol": "tcp"},
            {"mode": "host", "target": 443, "published": "8443", "protocol": "tcp"},
        ])
    );
    let e = svc(r#"ports: ["80:abc"]"#).unwrap_err().to_string();
    assert_eq!(
        e,
        "/p/compose.yaml: services.web.ports[0]: invalid port \"80:abc\" (expected [IP:][HOST:]CONTAINER[/PROTOCOL])"
    );
    assert!(
        svc("ports: [{published: 80}]")
            .unwrap_err()
            .to_string()
            .contains("needs a target")
    );
}

#[test]
fn volumes_short_and_long() {
    let j = svc(r#"volumes: ["./data:/data:ro", "~/x:/x", "named:/n:nocopy", "/abs:/abs:rw,z", "/anon", {type: bind, source: ../rel, target: /r, read_only: true}, {type: tmpfs, target: /t, tmpfs: {size: 64m}}]"#).unwrap();
    assert_eq!(
        j["volumes"],
        json!([
            {"type": "bind", "source": "/p/data", "target": "/data", "read_only": true, "bind": {"create_host_path": true}},
            {"type": "bind", "source": "/home/u/x", "target": "/x", "bind": {"create_host_path": true}},
            {"type": "volume", "source": "named", "target": "/n", "volume": {"nocopy": true}},
            {"type": "bind", "source": "/abs", "target": "/abs", "bind": {"selinux": "z", "create_host_path": true}},
            {"type": "volume", "target": "/anon", "volume": {}},
            {"type": "bind", "source": "/rel", "target": "/r", "read_only": true},
            {"type": "tmpfs", "target": "/t", "tmpfs": {"size": "67108864"}},
        ])
    );
    assert!(
        svc("volumes: [{source: x, target: /y}]")
            .unwrap_err()
            .to_string()
            .contains("needs a type")
    );
    assert!(svc(r#"volumes: ["ab:cd:ef:gh"]"#).is_err());
    // A tmpfs mode with a leading zero is octal, as compose reads it; without, a plain number.
    let mode = |m: &str| {
        svc(&format!(
            "volumes: [{{type: tmpfs, target: /t, tmpfs: {{mode: {m}}}}}]"
        ))
        .map(|j| j["volumes"][0]["tmpfs"]["mode"].clone())
    };
    assert_eq!(mode("01777").unwrap(), json!(0o1777));
    assert_eq!(mode("0o755").unwrap(), json!(0o755));
    assert_eq!(mode("1777").unwrap(), json!(1777));
    assert!(mode("0999").is_err());
    // A single letter before a colon is a Windows drive, as in compose: two parts here.
    let j = svc(r#"volumes: ["a:b:c:d"]"#).unwrap();
    assert_eq!(j["volumes"][0]["source"], json!("/p/a:b"));
    assert_eq!(j["volumes"][0]["target"], json!("c:d"));
    assert!(
        svc(r#"volumes: ["ab:/b:bogus"]"#)
            .unwrap_err()
            .to_string()
            .contains("unknown option")
    );
    let j = svc("volumes: [{type: bind, source: /a, target: /a, bind: {recursive: readonly}}]")
        .unwrap();
    assert_eq!(j["volumes"][0]["bind"], json!({"recursive": "readonly"}));
    let bad = svc("volumes: [{type: bind, source: /a, target: /a, bind: {recursive: deep}}]")
        .unwrap_err()
        .to_string();
    assert!(
        bad.contains("volumes[0].bind.recursive")
            && bad.contains("enabled, disabled, writable or readonly"),
        "{bad}"
    );
}

#[test]
fn environment_labels_forms() {
    let j = svc("environment: [A=1, FROM_ENV, MISSING, 'B=x=y']\nlabels: [a=1, b]").unwrap();
    assert_eq!(
        j["environment"],
        json!({"A": "1", "FROM_ENV": "e", "MISSING": null, "B": "x=y"})
    );
    assert_eq!(j["labels"], json!({"a": "1", "b": ""}));
    let j = svc("environment: {A: 1, B: true, C: null, FROM_ENV: }\nlabels: {x: null}").unwrap();
    assert_eq!(
        j["environment"],
        json!({"A": "1", "B": "true", "C": null, "FROM_ENV": "e"})
    );
    assert_eq!(j["labels"], json!({"x": ""}));
}

#[test]
fn command_forms() {
    let j = svc(r#"command: echo "hi there" 'a b' c\ d"#).unwrap();
    assert_eq!(j["command"], json!(["echo", "hi there", "a b", "c d"]));
    let j = svc("command: [sh, -c, 1]\nentrypoint: ''").unwrap();
    assert_eq!(j["command"], json!(["sh", "-c", "1"]));
    assert_eq!(j["entrypoint"], json!([]));
    assert!(svc("command: 'echo \"open'").is_err());
}

#[test]
fn healthcheck_and_durations() {
    let j = svc("healthcheck: {test: curl -f x, interval: 1m30s, timeout: 10s, retries: 3, start_period: 90s}").unwrap();
    assert_eq!(
        j["healthcheck"],
        json!({"test": ["CMD-SHELL", "curl -f x"], "interval": "1m30s", "timeout": "10s", "retries": 3, "start_period": "1m30s"})
    );
    let j = svc("healthcheck: {test: [NONE]}\nstop_grace_period: 1m").unwrap();
    assert_eq!(j["healthcheck"]["test"], json!(["NONE"]));
    assert_eq!(j["stop_grace_period"], json!("1m0s"));
    let e = svc("healthcheck: {interval: soon}")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("services.web.healthcheck.interval: invalid duration"),
        "{e}"
    );
}

#[test]
fn depends_on_networks_forms() {
    let j = svc("depends_on: [db]\nnetworks: [a, b]").unwrap();
    assert_eq!(
        j["depends_on"],
        json!({"db": {"condition": "service_started", "required": true}})
    );
    assert_eq!(j["networks"], json!({"a": null, "b": null}));
    let j = svc("depends_on: {db: {condition: service_healthy, restart: true}, job: {condition: service_completed_successfully, required: false}}\nnetworks: {front: {aliases: [w], ipv4_address: 10.0.0.5, priority: 10}, back: }").unwrap();
    assert_eq!(
        j["depends_on"],
        json!({"db": {"condition": "service_healthy", "restart": true, "required": true}, "job": {"condition": "service_completed_successfully", "required": false}})
    );
    assert_eq!(
        j["networks"],
        json!({"front": {"aliases": ["w"], "ipv4_address": "10.0.0.5", "priority": 10}, "back": null})
    );
    assert!(
        svc("depends_on: {db: {condition: service_ready}}")
            .unwrap_err()
            .to_string()
            .contains("invalid condition")
    );
}

#[test]
fn misc_forms() {
    let j = svc("ulimits: {nproc: 65535, nofile: {soft: 1, hard: 2}}\nextra_hosts: ['a:1.2.3.4', 'b=::1']\ndevices: ['/dev/fuse:/dev/fuse:rwm', /dev/x]\nenv_file: [a.env, {path: b.env, required: false}]\ntmpfs: /run\ndns: 8.8.8.8\nsysctls: [a.b=1]\nshm_size: 64m\nlogging: {driver: json-file, options: {max-size: 10m, max-file: 3}}").unwrap();
    assert_eq!(
        j["ulimits"],
        json!({"nproc": 65535, "nofile": {"soft": 1, "hard": 2}})
    );
    assert_eq!(j["extra_hosts"], json!(["a=1.2.3.4", "b=::1"]));
    assert_eq!(
        j["devices"],
        json!([{"source": "/dev/fuse", "target": "/dev/fuse", "permissions": "rwm"}, {"source": "/dev/x", "target": "/dev/x", "permissions": "rwm"}])
    );
    assert_eq!(
        j["env_file"],
        json!([{"required": true, "path": "/p/a.env"}, {"required": false, "path": "/p/b.env"}])
    );
    assert_eq!(j["tmpfs"], json!(["/run"]));
    assert_eq!(j["dns"], json!(["8.8.8.8"]));
    assert_eq!(j["sysctls"], json!({"a.b": "1"}));
    assert_eq!(j["shm_size"], json!("67108864"));
    assert_eq!(j["logging"]["options"]["max-file"], json!("3"));
    let j = svc("extra_hosts: {h: [1.1.1.1, '::1']}").unwrap();
    assert_eq!(j["extra_hosts"], json!(["h=1.1.1.1", "h=::1"]));
}

#[test]
fn deploy_forms() {
    let j = svc("deploy: {replicas: 2, resources: {limits: {cpus: '0.5', memory: 50M}}, update_config: {order: start-first, failure_action: rollback, delay: 10s}}").unwrap();
    assert_eq!(
        j["deploy"]["resources"]["limits"],
        json!({"cpus": 0.5, "memory": "52428800"})
    );
    assert_eq!(
        j["deploy"]["update_config"],
        json!({"order": "start-first", "failure_action": "rollback", "delay": "10s"})
    );
    assert!(svc("deploy: {update_config: {order: random}}").is_err());
    let e = svc("deploy: {placement: {constraints: [a]}}")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "/p/compose.yaml: services.web.deploy.placement: not supported by Gantry (remove it, or open an issue)"
    );
}

/// A replica count is capped (a count near `u32::MAX` made the plan allocate gigabytes and
/// abort the daemon): `deploy.replicas` and `scale` above [`crate::compose::MAX_REPLICAS`] are
/// refused naming the key and the limit; the limit itself is accepted.
#[test]
fn replicas_and_scale_are_capped() {
    for (yaml, pointer) in [
        ("deploy: {replicas: 1000}", "/deploy/replicas"),
        ("scale: 1000", "/scale"),
        ("scale: '1000'", "/scale"),
    ] {
        let j = svc(yaml).unwrap();
        assert_eq!(j.pointer(pointer), Some(&json!(1000)), "{yaml}: {j}");
    }
    for (yaml, key) in [
        (
            "deploy: {replicas: 4294967295}",
            "services.web.deploy.replicas",
        ),
        ("deploy: {replicas: 1001}", "services.web.deploy.replicas"),
        ("scale: 4294967296", "services.web.scale"),
        ("scale: '99999'", "services.web.scale"),
    ] {
        let e = svc(yaml).unwrap_err();
        assert!(matches!(e, ComposeError::Invalid { .. }), "{yaml}: {e}");
        let e = e.to_string();
        assert!(
            e.starts_with(&format!("/p/compose.yaml: {key}: "))
                && e.contains("at most 1000 replicas"),
            "{yaml}: {e}"
        );
    }
}

#[test]
fn unknown_and_unsupported_keys() {
    let e = svc("credential_spec: {}").unwrap_err().to_string();
    assert_eq!(
        e,
        "/p/compose.yaml: services.web.credential_spec: not supported by Gantry (remove it, or open an issue)"
    );
    let e = svc("imagee: x").unwrap_err().to_string();
    assert!(
        e.ends_with("services.web.imagee: unknown key (did you mean \"image\"?)"),
        "{e}"
    );
    let e = svc("zzzzzz: x").unwrap_err().to_string();
    assert!(
        e.ends_with("check the spelling against the Compose Specification)"),
        "{e}"
    );
    let e = svc("healthcheck: {tset: x}").unwrap_err().to_string();
    assert!(
        e.contains("services.web.healthcheck.tset: unknown key"),
        "{e}"
    );
    assert!(svc("x-anything: {a: 1}").is_ok());
    assert!(svc("container_name: c").is_err());
    assert!(svc("container_name: my-db.1").is_ok());
    let e = svc("privileged: maybe").unwrap_err().to_string();
    assert!(
        e.contains("services.web.privileged: expected true or false"),
        "{e}"
    );
}

#[test]
fn shell_split_rules() {
    assert_eq!(shell_split("a  b\tc").unwrap(), vec!["a", "b", "c"]);
    assert_eq!(
        shell_split(r#"sh -c "echo \"x\" $$HOME""#).unwrap(),
        vec!["sh", "-c", "echo \"x\" $$HOME"]
    );
    assert_eq!(shell_split("''").unwrap(), vec![""]);
    assert!(shell_split("").unwrap().is_empty());
    // compose's rules: a backslash takes the next character in double quotes too; `$(...)`
    // and backticks stay whole.
    assert_eq!(
        shell_split(r#"a "x\y" x\y"#).unwrap(),
        vec!["a", "xy", "xy"]
    );
    assert_eq!(
        shell_split(r#"a $(x "y;" z)w `p q`"#).unwrap(),
        vec!["a", r#"$(x "y;" z)w"#, "`p q`"]
    );
}

#[test]
fn a_command_string_stops_at_a_shell_operator_as_in_compose() {
    let words = |s| super::shell_words(s).unwrap();
    assert_eq!(
        words("./migrate && ./serve"),
        (vec!["./migrate".to_owned()], Some("&& ./serve"))
    );
    // A word of digits before `>` is a file descriptor: dropped with the redirection.
    assert_eq!(
        words("serve --port 80 2>&1"),
        (
            vec!["serve".to_owned(), "--port".to_owned(), "80".to_owned()],
            Some(">&1")
        )
    );
    assert_eq!(words("a b2>c").0, vec!["a", "b2"]);
    assert_eq!(words("a 2<c").0, vec!["a", "2"]);
    assert_eq!(
        words("a 'x;y' \"p|q\" r\\;s").0,
        vec!["a", "x;y", "p|q", "r;s"]
    );
    assert_eq!(words("a b").1, None);
    for bad in ["a (b)", "a $(x", "a `x", "a b\\", "a $((1;2))", "a 'x"] {
        assert!(super::shell_words(bad).is_err(), "{bad}");
    }
}
