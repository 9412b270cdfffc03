//! End-to-end tests of [`super::load`] on files in temporary directories, and property tests
//! that no input makes the loader panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::json;

use super::*;

mod origins;
mod review;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

fn opts(files: Vec<PathBuf>) -> LoadOptions {
    LoadOptions {
        files,
        environment: [("HOME".to_string(), "/home/u".to_string())]
            .into_iter()
            .collect(),
        ..LoadOptions::default()
    }
}

fn project_dir(name: &str) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join(name);
    std::fs::create_dir_all(&d).unwrap();
    (t, d)
}

#[test]
fn multi_file_merge_extends_and_paths() {
    let (_t, d) = project_dir("My.Project");
    let main = write(
        &d,
        "compose.yaml",
        "services:\n  web:\n    image: nginx\n    environment: {A: '1'}\n    ports: ['8080:80']\n    volumes: ['./html:/usr/share/nginx/html:ro']\n  db:\n    extends: {service: base, file: common/base.yaml}\n    environment: [C=3]\n",
    );
    write(
        &d,
        "common/base.yaml",
        "services:\n  base:\n    image: postgres\n    volumes: ['./pg:/pg']\n",
    );
    let over = write(
        &d,
        "compose.override.yaml",
        "services:\n  web:\n    image: nginx:2\n    environment: [B=2]\n    ports: ['8080:80', '9090:90']\n",
    );
    let p = load(&opts(vec![main, over])).unwrap();
    assert_eq!(p.name(), "myproject");
    let web = p.service("web").unwrap();
    assert_eq!(web.image.as_deref(), Some("nginx:2"));
    assert_eq!(web.environment.get("A"), Some(&Some("1".to_string())));
    assert_eq!(web.environment.get("B"), Some(&Some("2".to_string())));
    assert_eq!(web.ports.len(), 2);
    assert_eq!(
        web.volumes[0].source.as_deref(),
        Some(d.join("html").to_str().unwrap())
    );
    assert!(web.volumes[0].read_only);
    let db = p.service("db").unwrap();
    assert_eq!(db.image.as_deref(), Some("postgres"));
    assert_eq!(
        db.volumes[0].source.as_deref(),
        Some(d.join("common/pg").to_str().unwrap())
    );
    assert_eq!(p.networks["default"].name, "myproject_default");
}

#[test]
fn include_loads_a_sub_project() {
    let (_t, d) = project_dir("inc");
    let main = write(
        &d,
        "compose.yaml",
        "include:\n  - lib/db.yaml\n  - path: lib/cache.yaml\n    env_file: lib/cache.env\nservices:\n  web: {image: nginx, depends_on: [db]}\n",
    );
    write(
        &d,
        "lib/db.yaml",
        "services:\n  db:\n    image: postgres:${PGV:-16}\n    volumes: ['./data:/data', 'dbvol:/x']\nvolumes: {dbvol: {}}\n",
    );
    write(
        &d,
        "lib/cache.yaml",
        "services: {cache: {image: 'redis:${RV}'}}\n",
    );
    write(&d, "lib/cache.env", "RV=7\n");
    let p = load(&opts(vec![main.clone()])).unwrap();
    assert_eq!(
        p.service("db").unwrap().image.as_deref(),
        Some("postgres:16")
    );
    assert_eq!(
        p.service("db").unwrap().volumes[0].source.as_deref(),
        Some(d.join("lib/data").to_str().unwrap())
    );
    assert_eq!(
        p.service("cache").unwrap().image.as_deref(),
        Some("redis:7")
    );
    assert_eq!(p.volumes["dbvol"].name, "inc_dbvol");
    // The including project's variables win over the included env file.
    let mut o = opts(vec![main]);
    o.environment.insert("RV".into(), "8".into());
    assert_eq!(
        load(&o).unwrap().service("cache").unwrap().image.as_deref(),
        Some("redis:8")
    );
    // Redefining an included service is a conflict; an include cycle is an error.
    let c = write(
        &d,
        "c2.yaml",
        "include: [lib/db.yaml]\nservices: {db: {image: mine}}\n",
    );
    let e = load(&opts(vec![c])).unwrap_err().to_string();
    assert!(e.contains("services.db: conflicts"), "{e}");
    let c = write(&d, "c3.yaml", "include: [c3.yaml]\n");
    let e = load(&opts(vec![c])).unwrap_err().to_string();
    assert!(e.contains("include cycle"), "{e}");
}

#[test]
fn env_precedence_dotenv_and_env_files() {
    let (_t, d) = project_dir("proj");
    write(&d, ".env", "TAG=fromdotenv\nONLY_DOT=dot\nREF=${TAG}-x\n");
    let f = write(
        &d,
        "compose.yaml",
        "services:\n  app:\n    image: busybox:${TAG}\n    environment:\n      DOT: ${ONLY_DOT}\n      REF: $REF\n      FROM_ENV:\n",
    );
    let mut o = opts(vec![f.clone()]);
    let p = load(&o).unwrap();
    assert_eq!(
        p.service("app").unwrap().image.as_deref(),
        Some("busybox:fromdotenv")
    );
    // Process environment (and --var) wins over .env, also inside .env references.
    o.environment.insert("TAG".into(), "fromenv".into());
    o.environment.insert("FROM_ENV".into(), "yes".into());
    let p = load(&o).unwrap();
    let app = p.service("app").unwrap();
    assert_eq!(app.image.as_deref(), Some("busybox:fromenv"));
    assert_eq!(app.environment["REF"].as_deref(), Some("fromenv-x"));
    assert_eq!(app.environment["FROM_ENV"].as_deref(), Some("yes"));
    // --env-file replaces .env.
    let alt = write(&d, "alt.env", "TAG=alt\n");
    let mut o2 = opts(vec![f]);
    o2.env_files = vec![alt];
    let p = load(&o2).unwrap();
    let app = p.service("app").unwrap();
    assert_eq!(app.image.as_deref(), Some("busybox:alt"));
    assert_eq!(app.environment["DOT"].as_deref(), Some(""));
    assert!(p.warnings.iter().any(|w| w.contains("ONLY_DOT")));
}

/// Several `--env-file`s, checked against `docker compose --env-file a.env --env-file b.env
/// config` (2.40.3): a later file wins over an earlier one, the process environment over both;
/// inside a file, `${A}` sees the process environment, then the file's own earlier keys, then
/// the earlier files.
#[test]
fn several_env_files_layer_under_the_process_environment() {
    let (_t, d) = project_dir("envs");
    let a = write(&d, "a.env", "A=from_a\nX=a_x\n");
    let b = write(&d, "b.env", "B=${A}\nA=from_b\nC=${A}\nD=${X}\nX=b_x\n");
    let f = write(
        &d,
        "compose.yaml",
        "services:\n  s:\n    image: x\n    environment: {A: $A, B: $B, C: $C, D: $D, X: $X}\n",
    );
    let env_of = |process: &[(&str, &str)]| {
        let mut o = opts(vec![f.clone()]);
        o.env_files = vec![a.clone(), b.clone()];
        for (k, v) in process {
            o.environment.insert(k.to_string(), v.to_string());
        }
        let p = load(&o).unwrap();
        p.service("s")
            .unwrap()
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(env_of(&[]), "A=from_b B=from_a C=from_b D=a_x X=b_x");
    assert_eq!(env_of(&[("A", "proc")]), "A=proc B=proc C=proc D=a_x X=b_x");
    assert_eq!(
        env_of(&[("X", "procx")]),
        "A=from_b B=from_a C=from_b D=procx X=procx"
    );
}

#[test]
fn service_env_file_long_form() {
    let (_t, d) = project_dir("p");
    write(&d, "a.env", "A=1\nB=from_file\n");
    let f = write(
        &d,
        "compose.yaml",
        "services:\n  s:\n    image: x\n    env_file: [a.env, {path: missing.env, required: false}]\n    environment: {B: explicit}\n",
    );
    let p = load(&opts(vec![f])).unwrap();
    let s = p.service("s").unwrap();
    assert_eq!(s.environment["A"].as_deref(), Some("1"));
    assert_eq!(s.environment["B"].as_deref(), Some("explicit"));
    assert_eq!(s.env_file.len(), 2);
    assert!(!s.env_file[1].required);
}

/// A value that cannot be read names its file, line and key, never the value: an env file
/// holds secrets, and a command holds what was interpolated into it.
#[test]
fn errors_about_values_never_quote_them() {
    let (_t, d) = project_dir("p");
    for (line, name, column) in [
        ("DB_PASSWORD=Ab${9secret", "unquoted", 15),
        ("DB_PASSWORD=\"Ab${9secret\"", "double-quoted", 16),
        ("DB_PASSWORD=x${A:-${9secret}}", "nested", 14),
    ] {
        write(&d, "app.env", &format!("OK=1\n{line}\n"));
        let f = write(
            &d,
            "compose.yaml",
            "services:\n  s:\n    image: x\n    env_file: [app.env]\n",
        );
        // The random temp dir's name may hold "Ab" itself: the path is left out of the check.
        let e = load(&opts(vec![f]))
            .unwrap_err()
            .to_string()
            .replace(&d.display().to_string(), "DIR");
        assert!(
            e.contains("app.env") && e.contains(":2") && e.contains("DB_PASSWORD"),
            "{name}: {e}"
        );
        assert!(
            e.contains(&format!("at character {column} of the line")),
            "{name}: {e}"
        );
        assert!(!e.contains("9secret") && !e.contains("Ab"), "{name}: {e}");
    }
    // A secret interpolated into a command that cannot be split.
    for pw in ["S3cr(et", "S3cr)et", "S3cr\"et"] {
        write(&d, ".env", &format!("PW='{pw}'\n"));
        let f = write(
            &d,
            "compose.yaml",
            "services:\n  s:\n    image: x\n    command: app --db postgres://u:${PW}@db\n",
        );
        let e = load(&opts(vec![f])).unwrap_err().to_string();
        assert!(e.contains("services.s.command"), "{e}");
        assert!(!e.contains("S3cr") && !e.contains("postgres://"), "{e}");
    }
}

/// A malformed `${` in a compose file is placed where it is written: the file's line and the
/// character in that line (quotes and escapes before it counted as written), or, when escapes
/// or line folding leave no such character, the line its value starts on; never its place in
/// the value once YAML unescaped it, and never the value.
#[test]
fn a_malformed_interpolation_in_a_compose_file_is_placed_as_written() {
    let (_t, d) = project_dir("p");
    let key = "services.s.environment.PW";
    for (value, says) in [
        (
            "Ab${9secret",
            format!(
                "compose.yaml:5: {key}: invalid interpolation format at character 13 of the line (escape a literal $ as $$)"
            ),
        ),
        (
            "\"A\\tb${9secret\"",
            format!(
                "compose.yaml:5: {key}: invalid interpolation format at character 16 of the line"
            ),
        ),
        (
            "'A''b${9secret'",
            format!(
                "compose.yaml:5: {key}: invalid interpolation format at character 16 of the line"
            ),
        ),
        (
            "x${A:-${9secret}}",
            format!(
                "compose.yaml:5: {key}: invalid interpolation format at character 12 of the line"
            ),
        ),
        (
            "|\n        Ab\n        ${9secret",
            format!(
                "compose.yaml:5: {key}: invalid interpolation format in the value that starts on this line (escape a literal $ as $$)"
            ),
        ),
        (
            "\"\\x24{9secret\"",
            format!(
                "compose.yaml:5: {key}: invalid interpolation format in the value that starts on this line"
            ),
        ),
    ] {
        let f = write(
            &d,
            "compose.yaml",
            &format!("services:\n  s:\n    image: x\n    environment:\n      PW: {value}\n"),
        );
        let e = load(&opts(vec![f])).unwrap_err();
        assert!(
            matches!(e, ComposeError::Interpolation { line: Some(5), .. }),
            "{value}: {e:?}"
        );
        // The random temp dir's name may hold "Ab" itself: the path is left out of the check.
        let e = e.to_string().replace(&d.display().to_string(), "DIR");
        assert!(e.contains(&says), "{value}: {e}");
        assert!(!e.contains("9secret") && !e.contains("Ab"), "{value}: {e}");
    }
    // Through an anchor and a merge key, in a file named with a path.
    let f = write(
        &d,
        "sub/c.yaml",
        "x-env: &env {PW: \"${9secret\"}\nservices:\n  s:\n    image: x\n    environment: {<<: *env}\n",
    );
    let e = load(&opts(vec![f])).unwrap_err().to_string();
    assert!(
        e.ends_with("c.yaml:1: x-env.PW: invalid interpolation format at character 19 of the line (escape a literal $ as $$)"),
        "{e}"
    );
}

/// `${X:?message}` with X unset prints the message as written: a variable in it is not
/// expanded (compose expands it, and so would print a password), in a compose file as in an
/// env file. The error still names the file, the key (or line) and what to set.
#[test]
fn a_required_variable_s_message_is_printed_as_written_not_expanded() {
    let (_t, d) = project_dir("p");
    write(&d, ".env", "DB_PASSWORD=hunter2\n");
    let f = write(
        &d,
        "compose.yaml",
        "services:\n  s:\n    image: ${IMAGE:?set IMAGE (not ${DB_PASSWORD})}\n",
    );
    let e = load(&opts(vec![f])).unwrap_err().to_string();
    assert!(!e.contains("hunter2"), "{e}");
    assert!(
        e.contains("compose.yaml: services.s.image: required variable IMAGE is missing a value: set IMAGE (not ${DB_PASSWORD})"),
        "{e}"
    );
    // In an env file.
    write(
        &d,
        "app.env",
        "DB_PASSWORD=hunter2\nURL=${DB_HOST:?set DB_HOST, password $DB_PASSWORD}\n",
    );
    let f = write(
        &d,
        "compose.yaml",
        "services:\n  s:\n    image: x\n    env_file: [app.env]\n",
    );
    let e = load(&opts(vec![f])).unwrap_err().to_string();
    assert!(!e.contains("hunter2"), "{e}");
    assert!(
        e.contains("app.env:2: URL: required variable DB_HOST is missing a value: set DB_HOST, password $DB_PASSWORD"),
        "{e}"
    );
}

/// A value that does not convert to its key's type (boolean, integer, number, port, duration,
/// size, mount, device, mode, one of a list...) is quoted in the error as written in the file
/// when interpolation made it (`"${SECRET}"`), never as the value a variable gave: that may
/// be a password. The error still names the file, the key and what is expected. In
/// `x-gantry` (read once the files are merged) a string is never quoted.
#[test]
fn a_value_that_does_not_convert_is_quoted_as_written_not_as_interpolated() {
    let (_t, d) = project_dir("p");
    write(
        &d,
        ".env",
        "SECRET=hunter2\nNEG=-31337\nBIG=131337\nMODE=\"ro,hunter2\"\n",
    );
    // (what the service says, the key, what the error says after the key)
    let cases: &[(&str, &str, &str)] = &[
        (
            "privileged: ${SECRET}",
            "services.s.privileged",
            r#"expected true or false, found "${SECRET}""#,
        ),
        (
            "read_only: x${SECRET}",
            "services.s.read_only",
            r#"expected true or false, found "x${SECRET}""#,
        ),
        (
            "cpu_shares: $SECRET",
            "services.s.cpu_shares",
            r#"expected an integer, found "$SECRET""#,
        ),
        (
            "deploy: {replicas: '${NEG}'}",
            "services.s.deploy.replicas",
            r#"expected a non-negative integer, found "${NEG}""#,
        ),
        (
            "cpus: ${SECRET:-1}",
            "services.s.cpus",
            r#"expected a number, found "${SECRET:-1}""#,
        ),
        (
            "cpus: ${NEG}",
            "services.s.cpus",
            r#"cpus must be 0 or more, found "${NEG}""#,
        ),
        (
            "stop_grace_period: ${SECRET}",
            "services.s.stop_grace_period",
            r#"invalid duration "${SECRET}" (expected e.g. 30s"#,
        ),
        (
            "healthcheck: {test: [CMD, x], interval: '${SECRET}'}",
            "services.s.healthcheck.interval",
            r#"invalid duration "${SECRET}""#,
        ),
        (
            "shm_size: ${SECRET}",
            "services.s.shm_size",
            r#"invalid size "${SECRET}" (expected e.g. 1000, 64m, 1g)"#,
        ),
        (
            "ports: ['${SECRET}:80']",
            "services.s.ports[0]",
            r#"invalid port "${SECRET}:80" (expected [IP:][HOST:]CONTAINER[/PROTOCOL])"#,
        ),
        (
            "ports: [{target: '${BIG}'}]",
            "services.s.ports[0].target",
            r#"port "${BIG}" out of range"#,
        ),
        (
            "ports: [{target: 80, mode: '${SECRET}'}]",
            "services.s.ports[0].mode",
            r#"invalid mode "${SECRET}" (ingress or host)"#,
        ),
        (
            "volumes: ['./d:/d:${MODE}']",
            "services.s.volumes[0]",
            r#"invalid volume "./d:/d:${MODE}" (unknown option: ro, rw"#,
        ),
        (
            "volumes: ['${SECRET}::']",
            "services.s.volumes[0]",
            r#"invalid volume "${SECRET}::" (empty target)"#,
        ),
        (
            "volumes: [{type: '${SECRET}', target: /x}]",
            "services.s.volumes[0].type",
            r#"invalid mount type "${SECRET}" (bind, volume, tmpfs)"#,
        ),
        (
            "volumes: [{type: tmpfs, target: /t, tmpfs: {mode: '${SECRET}'}}]",
            "services.s.volumes[0].tmpfs.mode",
            r#"invalid mode "${SECRET}" (a number"#,
        ),
        (
            "volumes: [{type: bind, source: /a, target: /t, bind: {create_host_path: '${SECRET}'}}]",
            "services.s.volumes[0].bind.create_host_path",
            r#"found "${SECRET}""#,
        ),
        (
            "restart: ${SECRET}",
            "services.s.restart",
            r#"invalid restart policy "${SECRET}" (expected no, always"#,
        ),
        (
            "restart: on-failure:${SECRET}",
            "services.s.restart",
            r#"invalid restart policy "on-failure:${SECRET}" (the retry count"#,
        ),
        (
            "pull_policy: ${SECRET}",
            "services.s.pull_policy",
            r#"invalid pull_policy "${SECRET}" (always"#,
        ),
        (
            "container_name: ${SECRET}!",
            "services.s.container_name",
            r#"invalid container name "${SECRET}!" (at least 2"#,
        ),
        (
            "cgroup: ${SECRET}",
            "services.s.cgroup",
            r#"invalid cgroup "${SECRET}" (host, private)"#,
        ),
        (
            "extra_hosts: ['${SECRET}']",
            "services.s.extra_hosts[0]",
            r#"expected HOST=IP, found "${SECRET}""#,
        ),
        (
            "devices: ['${SECRET}:a:b:c']",
            "services.s.devices[0]",
            r#"invalid device "${SECRET}:a:b:c" (HOST"#,
        ),
        (
            "mem_swappiness: ${BIG}",
            "services.s.mem_swappiness",
            r#"mem_swappiness is 0 to 100, found "${BIG}""#,
        ),
        (
            "oom_score_adj: ${BIG}",
            "services.s.oom_score_adj",
            r#"oom_score_adj is -1000 to 1000, found "${BIG}""#,
        ),
        (
            "blkio_config: {weight: '${BIG}'}",
            "services.s.blkio_config.weight",
            r#"a block I/O weight is 10 to 1000, found "${BIG}""#,
        ),
        (
            "ulimits: {nofile: '${SECRET}'}",
            "services.s.ulimits.nofile",
            r#"expected an integer, found "${SECRET}""#,
        ),
        (
            "deploy: {resources: {reservations: {devices: [{count: '${SECRET}', capabilities: [gpu]}]}}}",
            "services.s.deploy.resources.reservations.devices[0].count",
            r#"invalid count "${SECRET}": `all` or a whole number"#,
        ),
        (
            "secrets: [{source: k, mode: '${SECRET}'}]",
            "services.s.secrets[0].mode",
            r#"invalid mode "${SECRET}" (octal digits, 0644)"#,
        ),
        (
            "x-gantry: {edge: '${SECRET}'}",
            "services.s.x-gantry.edge",
            "a string that is not true or false",
        ),
        (
            "x-gantry: {job: {timeout: '${SECRET}'}}",
            "services.s.x-gantry.job.timeout",
            "a string that is not a duration (write it like 60s",
        ),
        (
            "x-gantry: {health: {tcp: '${SECRET}'}}",
            "services.s.x-gantry.health.tcp",
            "a string that is not a port number (write a number from 1 to 65535)",
        ),
        (
            "x-gantry: {health: {tcp: '${BIG}'}}",
            "services.s.x-gantry.health.tcp",
            "a string that is not a port number (write a number from 1 to 65535)",
        ),
        (
            "x-gantry: {health: {tcp: 80, failures: '${NEG}'}}",
            "services.s.x-gantry.health.failures",
            "a string that is not a count (write a whole number, 1 or more, like 3)",
        ),
        (
            "x-gantry: {health: {http: '${SECRET}'}}",
            "services.s.x-gantry.health.http",
            "http is neither a /path nor an http:// URL",
        ),
        (
            "x-gantry: {health: {http: 'http://h:${SECRET}/'}}",
            "services.s.x-gantry.health.http",
            "the URL's port is not a port number",
        ),
        (
            "x-gantry: {health: {tcp: 80, status: '${SECRET}'}}",
            "services.s.x-gantry.health.status",
            "a string is not a range like 200-399",
        ),
        (
            "x-gantry: {health: {http: /, port: 80, json: {pointer: '${SECRET}', equals: x}}}",
            "services.s.x-gantry.health.json.pointer",
            "not a JSON pointer: it starts with /",
        ),
        (
            "x-gantry: {canary: {steps: ['${SECRET}']}}",
            "services.s.x-gantry.canary.steps",
            "a string that is not a percentage",
        ),
        (
            "x-gantry: {canary: {steps: [10, '${BIG}']}}",
            "services.s.x-gantry.canary.steps",
            "a string that is not a percentage from 1 to 100",
        ),
        (
            "x-gantry: {min_ready: '${SECRET}'}",
            "services.s.x-gantry.min_ready",
            "a string that is not a duration",
        ),
    ];
    for (yaml, key, says) in cases {
        let f = write(
            &d,
            "compose.yaml",
            &format!("services:\n  s:\n    image: x\n    {yaml}\nsecrets: {{k: {{file: ./k}}}}\n"),
        );
        let e = load(&opts(vec![f])).unwrap_err().to_string();
        assert!(
            !e.contains("hunter2") && !e.contains("31337"),
            "{yaml}: the value is shown: {e}"
        );
        assert!(
            e.starts_with(&format!("compose.yaml: {key}: "))
                || e.contains(&format!("/compose.yaml: {key}: ")),
            "{yaml}: file and key: {e}"
        );
        assert!(e.contains(says), "{yaml}: what to do: {e}");
    }
    // A top-level key too.
    let f = write(
        &d,
        "compose.yaml",
        "services:\n  s:\n    image: x\nnetworks:\n  n:\n    external: ${SECRET}\n",
    );
    let e = load(&opts(vec![f])).unwrap_err().to_string();
    assert!(
        e.ends_with(
            r#"compose.yaml: networks.n.external: expected true or false, found "${SECRET}""#
        ),
        "{e}"
    );
    // Written literally, the value itself is quoted: it is in the file for anyone to read.
    for (yaml, says) in [
        (
            "privileged: maybe",
            r#"expected true or false, found "maybe""#,
        ),
        ("ports: ['80:abc']", r#"invalid port "80:abc""#),
        (
            "volumes: ['./d:/d:ro,bogus']",
            r#"unknown option "bogus": ro, rw"#,
        ),
        (
            "mem_swappiness: 101",
            "mem_swappiness is 0 to 100, found 101",
        ),
        (
            "deploy: {replicas: -2}",
            "expected a non-negative integer, found -2",
        ),
    ] {
        let f = write(
            &d,
            "compose.yaml",
            &format!("services:\n  s:\n    image: x\n    {yaml}\n"),
        );
        let e = load(&opts(vec![f])).unwrap_err().to_string();
        assert!(e.contains(says), "{yaml}: {e}");
    }
}

/// A name or a path that a variable gave, checked only once the files are merged (a network,
/// volume, secret, config or service a service refers to, a service or file `extends` names,
/// an env or label file, a file `include` reaches, the project name), is quoted in the error as
/// written in the file (`"${NET}"`), never as what the variable holds; the error still says
/// which service or key and what to do. Written literally, the name itself is quoted.
#[test]
fn names_a_variable_gave_are_quoted_as_written_after_merging() {
    let (_t, d) = project_dir("p");
    write(
        &d,
        ".env",
        "SECRET=hunter2\nSVC=hunter2svc\nINC=hunter2/inc.yaml\nDIR=hunter2\nBAD_NAME='#%&*!'\n",
    );
    write(&d, "hunter2.d/.keep", "");
    write(&d, "hunter2-bad.env", "K=${\n");
    write(
        &d,
        "base.yaml",
        "services:\n  hunter2svc:\n    image: x\n    extends: nope\n",
    );
    write(
        &d,
        "hunter2/inc.yaml",
        "services:\n  i:\n    image: x\n    imgae: y\n",
    );
    write(
        &d,
        "hunter2/missing-env.yaml",
        "services:\n  i:\n    image: x\n    env_file: ./app.env\n",
    );
    // (what the service says, what the error says)
    let cases: &[(&str, &str)] = &[
        (
            "networks: ['${SECRET}']",
            r#"service "s" refers to undefined network "${SECRET}" (add it under the top-level networks:)"#,
        ),
        (
            "volumes: ['${SECRET}:/data']",
            r#"service "s" refers to undefined volume named in "${SECRET}:/data" (add it under the top-level volumes:)"#,
        ),
        (
            "volumes: [{type: volume, source: '${SECRET}', target: /data}]",
            r#"refers to undefined volume "${SECRET}" (add it"#,
        ),
        (
            "secrets: ['${SECRET}']",
            r#"refers to undefined secret "${SECRET}" (add it under the top-level secrets:)"#,
        ),
        (
            "secrets: [{source: '${SECRET}', target: /s}]",
            r#"refers to undefined secret "${SECRET}""#,
        ),
        (
            "configs: ['${SECRET}']",
            r#"refers to undefined config "${SECRET}" (add it under the top-level configs:)"#,
        ),
        (
            "depends_on: ['${SVC}']",
            r#"service "s" depends on undefined service "${SVC}""#,
        ),
        (
            "links: ['${SVC}:db']",
            r#"depends on undefined service named in "${SVC}:db""#,
        ),
        (
            "network_mode: service:${SVC}",
            r#"depends on undefined service named in "service:${SVC}""#,
        ),
        (
            "volumes_from: ['${SVC}:ro']",
            r#"depends on undefined service named in "${SVC}:ro""#,
        ),
        (
            "env_file: ${SECRET}.env",
            "compose.yaml: services.s.env_file: env file ${SECRET}.env not found (create it",
        ),
        (
            "env_file: [{path: './${SECRET}/app.env'}]",
            "services.s.env_file: env file ./${SECRET}/app.env not found",
        ),
        (
            "env_file: ${SECRET}.d",
            "${SECRET}.d: cannot read: a directory",
        ),
        (
            "env_file: ${SECRET}-bad.env",
            "${SECRET}-bad.env:1: K: invalid interpolation format",
        ),
        (
            "label_file: ${SECRET}.labels",
            "services.s.label_file: label file ${SECRET}.labels not found",
        ),
        (
            "extends: ${SVC}",
            r#"compose.yaml: services.s.extends: service "${SVC}" not found in"#,
        ),
        (
            "extends: {service: base, file: '${SECRET}.yaml'}",
            "services.s.extends: cannot load ${SECRET}.yaml: ${SECRET}.yaml: cannot read",
        ),
        (
            "extends: {service: '${SVC}', file: base.yaml}",
            r#"base.yaml: services.${SVC}.extends: service "nope" not found in"#,
        ),
    ];
    for (yaml, says) in cases {
        let f = write(
            &d,
            "compose.yaml",
            &format!("services:\n  s:\n    image: x\n    {yaml}\n"),
        );
        let e = load(&opts(vec![f])).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{yaml}: the value is shown: {e}");
        assert!(e.contains(says), "{yaml}: got {e:?}, want {says:?}");
    }
    // A file `include` reaches through a variable is named as written, in its own errors too;
    // and so is a path joined to its directory.
    for (yaml, says) in [
        (
            "include: ['${INC}']",
            "${INC}: services.i.imgae: unknown key",
        ),
        (
            "include: [{path: '${DIR}/inc.yaml'}]",
            "${DIR}/inc.yaml: services.i.imgae: unknown key",
        ),
        (
            "include: ['${DIR}/missing-env.yaml']",
            "services.i.env_file: env file ${DIR}/app.env not found",
        ),
        (
            "include: ['${INC}/../missing-env.yaml']",
            "env file ${INC}/../app.env not found",
        ),
    ] {
        let f = write(
            &d,
            "compose.yaml",
            &format!("{yaml}\nservices:\n  s:\n    image: x\n"),
        );
        let e = load(&opts(vec![f])).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{yaml}: the value is shown: {e}");
        assert!(e.contains(says), "{yaml}: got {e:?}, want {says:?}");
    }
    // The project's name.
    let f = write(
        &d,
        "compose.yaml",
        "name: ${BAD_NAME}\nservices:\n  s:\n    image: x\n",
    );
    let e = load(&opts(vec![f])).unwrap_err().to_string();
    assert!(!e.contains("#%&*!"), "the value is shown: {e}");
    assert!(
        e.contains(r#"invalid project name "${BAD_NAME}" in name: (use lowercase letters"#),
        "{e}"
    );
    // Written literally, the name itself is quoted, as it is in the file.
    for (yaml, says) in [
        (
            "networks: [front]",
            r#"refers to undefined network "front" (add it"#,
        ),
        ("volumes: ['data:/data']", r#"undefined volume "data""#),
        (
            "secrets: [db_password]",
            r#"undefined secret "db_password""#,
        ),
        ("links: ['db:database']", r#"undefined service "db""#),
        // A name written literally next to a variable.
        ("volumes: ['data:/${SECRET}']", r#"undefined volume "data""#),
        ("links: ['db:${SECRET}']", r#"undefined service "db""#),
        ("extends: base", r#"service "base" not found in"#),
        ("env_file: ./nope.env", "/p/nope.env not found"),
    ] {
        let f = write(
            &d,
            "compose.yaml",
            &format!("services:\n  s:\n    image: x\n    {yaml}\n"),
        );
        let e = load(&opts(vec![f])).unwrap_err().to_string();
        assert!(e.contains(says), "{yaml}: got {e:?}, want {says:?}");
    }
    let f = write(
        &d,
        "compose.yaml",
        "name: '#%&*!'\nservices:\n  s:\n    image: x\n",
    );
    let e = load(&opts(vec![f])).unwrap_err().to_string();
    assert!(e.contains(r##"invalid project name "#%&*!""##), "{e}");
}

#[test]
fn project_name_rules() {
    let (_t, d) = project_dir("Dir_Name");
    let f = write(&d, "compose.yaml", "services: {s: {image: x}}\n");
    assert_eq!(load(&opts(vec![f.clone()])).unwrap().name, "dir_name");
    // name: in the file is normalised; COMPOSE_PROJECT_NAME wins over it and is validated.
    let g = write(
        &d,
        "named.yaml",
        "name: In File!\nservices: {s: {image: x}}\n",
    );
    let mut o = opts(vec![g]);
    assert_eq!(load(&o).unwrap().name, "infile");
    o.environment
        .insert("COMPOSE_PROJECT_NAME".into(), "fromenv".into());
    assert_eq!(load(&o).unwrap().name, "fromenv");
    o.environment
        .insert("COMPOSE_PROJECT_NAME".into(), "Bad".into());
    assert!(load(&o).is_err());
    o.project_name = Some("flag".into());
    assert_eq!(load(&o).unwrap().name, "flag");
    o.project_name = Some("Bad Name".into());
    assert!(
        load(&o)
            .unwrap_err()
            .to_string()
            .contains("invalid project name")
    );
}

#[test]
fn profiles_and_dependency_order() {
    let (_t, d) = project_dir("p");
    let f = write(
        &d,
        "compose.yaml",
        "services:\n  web: {image: x, depends_on: {api: {condition: service_healthy}}}\n  api: {image: x, depends_on: [db]}\n  db: {image: x}\n  debug: {image: x, profiles: [dev]}\n",
    );
    let p = load(&opts(vec![f.clone()])).unwrap();
    assert!(p.service("debug").is_none());
    assert!(p.disabled_services.contains_key("debug"));
    let order: Vec<&str> = p
        .services_in_dependency_order()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(order, vec!["db", "api", "web"]);
    let mut o = opts(vec![f]);
    o.profiles = vec!["dev".into()];
    assert!(load(&o).unwrap().service("debug").is_some());
}

#[test]
fn extensions_version_and_hash() {
    let (_t, d) = project_dir("p");
    let f = write(
        &d,
        "compose.yaml",
        "version: '3.8'\nx-top: {a: 1}\nservices:\n  s:\n    image: x\n    x-gantry: {health: {http: 'http://127.0.0.1/'}}\n    x-other: 1\n",
    );
    let p = load(&opts(vec![f])).unwrap();
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("`version` is obsolete"))
    );
    let j = p.to_compose_json();
    assert_eq!(j["x-top"], json!({"a": 1}));
    assert!(j["services"]["s"].get("x-gantry").is_none());
    let s = p.service("s").unwrap();
    assert_eq!(
        s.x_gantry,
        Some(json!({"health": {"http": "http://127.0.0.1/"}}))
    );
    assert!(p.to_yaml().contains("x-gantry"));
    assert_eq!(s.config_hash().len(), 64);
}

#[test]
fn the_stacks_own_x_gantry_gives_every_service_its_min_ready() {
    let (_t, d) = project_dir("p");
    let f = write(
        &d,
        "compose.yaml",
        "x-gantry: {min_ready: \"${MIN_READY:-0s}\"}\nservices:\n  a:\n    image: x\n  \
         b:\n    image: x\n    x-gantry: {min_ready: 5s}\n  c:\n    image: x\n    \
         x-gantry: {job: true}\n",
    );
    let p = load(&opts(vec![f.clone()])).unwrap();
    let min_ready = |s: &str| p.service(s).unwrap().gantry.min_ready;
    assert_eq!(min_ready("a"), Some(std::time::Duration::ZERO));
    assert_eq!(
        min_ready("b"),
        Some(std::time::Duration::from_secs(5)),
        "its own wins"
    );
    assert_eq!(min_ready("c"), Some(std::time::Duration::ZERO));
    // Carried in the service's own x-gantry, which is what a release records.
    assert_eq!(
        p.service("a").unwrap().x_gantry,
        Some(json!({"min_ready": "0s"}))
    );
    assert_eq!(
        p.service("c").unwrap().x_gantry,
        Some(json!({"job": true, "min_ready": "0s"}))
    );
    // The stack's x-gantry is printed as written, like any top-level extension.
    assert_eq!(p.to_compose_json()["x-gantry"], json!({"min_ready": "0s"}));
    // Not part of the service's hash: a new default recreates nothing.
    let before = p.service("a").unwrap().config_hash();
    let mut o = opts(vec![f.clone()]);
    o.environment.insert("MIN_READY".into(), "3s".into());
    let p3 = load(&o).unwrap();
    assert_eq!(
        p3.service("a").unwrap().gantry.min_ready,
        Some(std::time::Duration::from_secs(3))
    );
    assert_eq!(p3.service("a").unwrap().config_hash(), before);

    for (top, key, says) in [
        ("{min_ready: soon}", "x-gantry.min_ready", "not a duration"),
        (
            "{health: {http: /}}",
            "x-gantry.health",
            "services.<name>.x-gantry.health",
        ),
        ("{min_redy: 1s}", "x-gantry.min_redy", "unknown key"),
        ("[1]", "x-gantry", "mapping"),
    ] {
        let f = write(
            &d,
            "bad.yaml",
            &format!("x-gantry: {top}\nservices:\n  a:\n    image: x\n"),
        );
        let e = load(&opts(vec![f])).unwrap_err();
        assert!(matches!(e, ComposeError::Invalid { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("bad.yaml") && text.contains(key) && text.contains(says),
            "{top}: {text}"
        );
    }
}

#[test]
fn hash_ignores_replicas_but_not_environment() {
    let (_t, d) = project_dir("p");
    let a = write(
        &d,
        "a.yaml",
        "services: {s: {image: x, deploy: {replicas: 1}, environment: {A: '1'}}}\n",
    );
    let b = write(
        &d,
        "b.yaml",
        "services: {s: {image: x, deploy: {replicas: 3}, environment: {A: '1'}}}\n",
    );
    let c = write(
        &d,
        "c.yaml",
        "services: {s: {image: x, deploy: {replicas: 1}, environment: {A: '2'}}}\n",
    );
    assert_eq!(
        load(&opts(vec![b.clone()])).unwrap().services["s"].replicas(),
        3
    );
    let h = |f: PathBuf| load(&opts(vec![f])).unwrap().services["s"].config_hash();
    assert_eq!(h(a.clone()), h(b));
    assert_ne!(h(a), h(c));
}

#[test]
fn errors_name_file_and_key() {
    let (_t, d) = project_dir("p");
    let cases: &[(&str, &str)] = &[
        (
            "services: {web: {image: x, credential_spec: {}}}",
            "compose.yaml: services.web.credential_spec: not supported by Gantry",
        ),
        (
            "services: {web: {image: x, imgae: y}}",
            "compose.yaml: services.web.imgae: unknown key",
        ),
        (
            "services:\n  web:\n    image: ${NEED:?set it}\n",
            "compose.yaml: services.web.image: required variable NEED is missing a value: set it",
        ),
        (
            &format!(
                "services:\n  web:\n    image: x\n    environment: {{A: \"{}x{}\"}}\n",
                "${U:-".repeat(40),
                "}".repeat(40)
            ),
            "compose.yaml: services.web.environment.A: interpolation nests ${...} more than 32 deep",
        ),
        (
            "services:\n  web:\n    image: x\n   bad: [\n",
            "compose.yaml:4:",
        ),
        (
            "services: {web: {image: x, networks: [nope]}}",
            "refers to undefined network \"nope\"",
        ),
        (
            "services: {web: {image: x, depends_on: [db]}}",
            "depends on undefined service \"db\"",
        ),
        (
            "services: {a: {image: x, depends_on: [b]}, b: {image: x, depends_on: [a]}}",
            "dependency cycle",
        ),
        (
            "services: {web: {image: x, healthcheck: {interval: 5s}}}\nfoo: 1",
            "compose.yaml: foo: unknown key",
        ),
        (
            "services: {web: {image: x, healthcheck: {interval: 5}}}",
            "services.web.healthcheck.interval: expected a duration with a unit",
        ),
        (
            "services: {web: {image: x, restart: sometimes}}",
            "services.web.restart: invalid restart policy",
        ),
        (
            "services: {web: {image: x, env_file: nope.env}}",
            "services.web.env_file: env file",
        ),
        ("models: {}", "models: not supported by Gantry"),
        (
            "services: {'web app': {image: x}}",
            "compose.yaml: services.web app: invalid service name",
        ),
    ];
    for (text, want) in cases {
        let f = write(&d, "compose.yaml", text);
        let e = load(&opts(vec![f])).unwrap_err().to_string();
        assert!(e.contains(want), "{text:?}: got {e:?}, want {want:?}");
    }
}

// Issue 11 item 11: what Docker Compose's loader refuses or keeps, checked against
// `docker compose config` v2.40.3 on the same files.

#[test]
fn empty_compose_file_is_refused() {
    let (_t, d) = project_dir("p");
    for text in ["", "# only a comment\n", "{}\n"] {
        let f = write(&d, "compose.yaml", text);
        let e = load(&opts(vec![f.clone()])).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: empty compose file (define at least one service under services:)",
                f.display()
            ),
            "{text:?}"
        );
    }
    // Two empty files: both named.
    let a = write(&d, "a.yaml", "");
    let b = write(&d, "b.yaml", "");
    let e = load(&opts(vec![a.clone(), b.clone()]))
        .unwrap_err()
        .to_string();
    let both = format!("{}, {}: empty compose file", a.display(), b.display());
    assert!(e.starts_with(&both), "{e}");
    // Compose keeps these: an empty override over a real file, a file with only `name:` or
    // an empty `services:` mapping.
    let main = write(&d, "compose.yaml", "services: {web: {image: x}}\n");
    let empty = write(&d, "empty.yaml", "");
    let p = load(&opts(vec![main, empty])).unwrap();
    assert_eq!(p.service("web").unwrap().image.as_deref(), Some("x"));
    for text in ["name: only\n", "services: {}\n"] {
        let f = write(&d, "compose.yaml", text);
        assert_eq!(load(&opts(vec![f])).unwrap().services.len(), 0, "{text:?}");
    }
}

#[test]
fn null_service_is_refused_unless_an_earlier_file_defines_it() {
    let (_t, d) = project_dir("p");
    let f = write(
        &d,
        "compose.yaml",
        "services:\n  web:\n    image: x\n  db:\n",
    );
    let e = load(&opts(vec![f.clone()])).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: services.db: a service is a mapping, found null (give it at least an image)",
            f.display()
        )
    );
    // A null service in an override names the override, unless an earlier file defines it:
    // then the earlier definition is kept.
    let main = write(&d, "compose.yaml", "services:\n  web:\n    image: x\n");
    let over = write(&d, "over.yaml", "services:\n  web:\n  db:\n");
    let e = load(&opts(vec![main.clone(), over]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("over.yaml: services.db: a service is a mapping"),
        "{e}"
    );
    let over = write(&d, "over.yaml", "services:\n  web:\n");
    let p = load(&opts(vec![main, over])).unwrap();
    assert_eq!(p.service("web").unwrap().image.as_deref(), Some("x"));
    // A file reached through `extends` is not checked (compose does not check it either),
    // and extending a null service there merges over nothing.
    write(
        &d,
        "base.yaml",
        "services:\n  base:\n    image: b\n  other:\n",
    );
    let f = write(
        &d,
        "compose.yaml",
        "services:\n  web:\n    extends: {file: base.yaml, service: base}\n  api:\n    extends: {file: base.yaml, service: other}\n    image: a\n",
    );
    let p = load(&opts(vec![f])).unwrap();
    assert_eq!(p.service("web").unwrap().image.as_deref(), Some("b"));
    assert_eq!(p.service("api").unwrap().image.as_deref(), Some("a"));
    // In the file itself, a null base is refused like any null service.
    let f = write(
        &d,
        "compose.yaml",
        "services:\n  base:\n  web:\n    extends: base\n    image: w\n",
    );
    let e = load(&opts(vec![f])).unwrap_err().to_string();
    assert!(
        e.contains("compose.yaml: services.base: a service is a mapping"),
        "{e}"
    );
}

#[test]
fn reset_inside_an_extended_service_is_applied() {
    let (_t, d) = project_dir("p");
    write(
        &d,
        "base.yaml",
        "services:\n  base:\n    image: x\n    ports: ['8080:80']\n    environment: {A: '1', B: '2'}\n    command: [a]\n",
    );
    let f = write(
        &d,
        "compose.yaml",
        "services:\n  local:\n    image: l\n    ports: ['9090:90']\n    labels: {keep: '1', drop: '1'}\n  web:\n    extends: {file: base.yaml, service: base}\n    ports: !reset []\n    environment:\n      B: !reset\n      C: '3'\n    command: !reset null\n  api:\n    extends: local\n    ports: !reset []\n    labels: !override {only: '1'}\n",
    );
    let p = load(&opts(vec![f])).unwrap();
    let web = p.service("web").unwrap();
    assert_eq!(web.image.as_deref(), Some("x"));
    assert!(web.ports.is_empty(), "{:?}", web.ports);
    assert_eq!(
        web.environment.keys().collect::<Vec<_>>(),
        vec!["A", "C"],
        "B is reset"
    );
    assert_eq!(web.command, None);
    let api = p.service("api").unwrap();
    assert_eq!(api.image.as_deref(), Some("l"));
    assert!(api.ports.is_empty(), "{:?}", api.ports);
    assert_eq!(api.labels.keys().collect::<Vec<_>>(), vec!["only"]);
    // The base itself keeps everything.
    assert_eq!(p.service("local").unwrap().ports.len(), 1);
}

#[test]
fn windows_absolute_bind_source_is_kept_as_written() {
    let (_t, d) = project_dir("p");
    let f = write(
        &d,
        "compose.yaml",
        "services:\n  web:\n    image: x\n    volumes:\n      - 'C:\\data:/data:ro'\n      - 'c:/fwd:/fwd'\n      - '\\\\server\\share:/s'\n      - {type: bind, source: 'D:\\x\\..\\y', target: /y}\n      - 'C:rel:/r'\n",
    );
    let p = load(&opts(vec![f])).unwrap();
    let vols = &p.service("web").unwrap().volumes;
    let sources: Vec<&str> = vols.iter().map(|m| m.source.as_deref().unwrap()).collect();
    let rel = d.join("C:rel");
    assert_eq!(
        sources,
        vec![
            "C:\\data",
            "c:/fwd",
            "\\\\server\\share",
            "D:\\x\\..\\y",
            rel.to_str().unwrap()
        ]
    );
    assert!(vols.iter().all(|m| m.kind == MountKind::Bind));
    assert_eq!(vols[0].target, "/data");
    assert!(vols[0].read_only);
    // A backslash elsewhere does not make a host path (compose: a volume name).
    let f = write(
        &d,
        "compose.yaml",
        "services:\n  web:\n    image: x\n    volumes: ['ab\\c:/e']\n",
    );
    let e = load(&opts(vec![f])).unwrap_err().to_string();
    assert!(e.contains("undefined volume \"ab\\\\c\""), "{e}");
}

#[test]
fn default_file_lookup() {
    let (_t, d) = project_dir("p");
    write(&d, "docker-compose.yml", "services: {s: {image: x}}\n");
    let mut o = opts(Vec::new());
    o.project_dir = Some(d.clone());
    assert!(load(&o).unwrap().service("s").is_some());
    let other = write(&d, "other.yaml", "services: {o: {image: x}}\n");
    let mut o2 = opts(Vec::new());
    o2.environment.insert(
        "COMPOSE_FILE".into(),
        format!(
            "{}:{}",
            d.join("docker-compose.yml").display(),
            other.display()
        ),
    );
    let p2 = load(&o2).unwrap();
    assert!(p2.service("s").is_some() && p2.service("o").is_some());
    let (_t2, empty) = project_dir("q");
    o.project_dir = Some(empty);
    assert!(matches!(load(&o), Err(ComposeError::NoComposeFile { .. })));
}

/// A secret's or config's `mode` in each spelling prints what `docker compose config`
/// (2.40.3) prints for it, in JSON and in YAML (where compose quotes it).
#[test]
fn file_mounts_modes_print_as_compose_prints_them() {
    let (_t, d) = project_dir("modes");
    write(&d, "k", "x\n");
    let spellings = [
        ("0o644", "0644"),
        ("0644", "0644"),
        ("420", "0644"),
        ("'644'", "0644"),
        ("0x1a4", "0644"),
        ("0o755", "0755"),
        ("644", "01204"),
        ("0", "00"),
    ];
    let mut yaml = String::from("services:\n  s:\n    image: x\n    secrets:\n");
    for (i, (mode, _)) in spellings.iter().enumerate() {
        yaml.push_str(&format!(
            "      - {{source: k, target: /s{i}, mode: {mode}}}\n"
        ));
    }
    yaml.push_str("    configs:\n");
    for (i, (mode, _)) in spellings.iter().enumerate() {
        yaml.push_str(&format!(
            "      - {{source: k, target: /c{i}, mode: {mode}}}\n"
        ));
    }
    yaml.push_str("secrets: {k: {file: ./k}}\nconfigs: {k: {file: ./k}}\n");
    let f = write(&d, "compose.yaml", &yaml);
    let p = load(&opts(vec![f])).unwrap();
    let s = p.service("s").unwrap();
    assert_eq!(s.secrets[0].mode, Some(0o644));
    assert_eq!(s.configs[2].mode, Some(0o644));
    let json = p.to_compose_json();
    let printed = p.to_yaml();
    for kind in ["secrets", "configs"] {
        let mounts = &json["services"]["s"][kind];
        for (i, (mode, want)) in spellings.iter().enumerate() {
            assert_eq!(mounts[i]["mode"], json!(want), "{kind} mode: {mode}");
        }
    }
    for (mode, want) in spellings {
        let quoted = [format!("mode: '{want}'\n"), format!("mode: \"{want}\"\n")];
        assert!(
            quoted.iter().any(|q| printed.contains(q.as_str())),
            "mode: {mode} printed as {want:?}:\n{printed}"
        );
    }
}

#[test]
fn model_round_trips_through_json() {
    let (_t, d) = project_dir("p");
    let f = write(
        &d,
        "compose.yaml",
        "services:\n  s:\n    image: x\n    healthcheck: {test: [CMD, 'true'], interval: 1m30s}\n    stop_grace_period: 20s\n    shm_size: 64m\n    restart: on-failure:3\n    secrets: [{source: k, mode: 0440}]\n    deploy: {resources: {limits: {memory: 1g, cpus: 1.5}}, update_config: {order: start-first}}\nsecrets: {k: {file: ./k}}\n",
    );
    let p = load(&opts(vec![f])).unwrap();
    let s = p.service("s").unwrap();
    assert_eq!(s.restart, Some(Restart::OnFailure(Some(3))));
    assert_eq!(
        s.healthcheck
            .as_ref()
            .and_then(|h| h.interval)
            .map(|d| d.as_std()),
        Some(std::time::Duration::from_secs(90))
    );
    assert_eq!(s.secrets[0].mode, Some(0o440));
    assert_eq!(
        s.deploy
            .as_ref()
            .and_then(|d| d.update_config.as_ref())
            .and_then(|u| u.order),
        Some(UpdateOrder::StartFirst)
    );
    let back: Project = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
    let mut s2 = back.services["s"].clone();
    s2.name = "s".into();
    s2.env_file = s.env_file.clone();
    assert_eq!(&s2, s);
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES raises it for a longer fuzzing run.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    /// Arbitrary interpolation strings never panic.
    #[test]
    fn interpolation_never_panics(s in "[-$a-zA-Z0-9{}:?+_ é\\\\]{0,40}") {
        let lookup = |k: &str| k.len().is_multiple_of(2).then(|| k.to_string());
        let _ = interpolate::interpolate(&s, &lookup);
    }

    /// `${...}` nested to any depth ends in a value or, past the bound, a clear error: never
    /// a stack overflow (each level is a recursion).
    #[test]
    fn nested_interpolation_is_bounded(
        levels in 0usize..5000,
        op in prop::sample::select(vec![":-", "-", ":+", "+", ":?", "?"]),
        set in any::<bool>(),
    ) {
        let s = format!("{}x{}", format!("${{V{op}").repeat(levels), "}".repeat(levels));
        let lookup = |_: &str| set.then(|| "v".to_owned());
        let got = interpolate::interpolate(&s, &lookup);
        if levels > interpolate::MAX_NESTING {
            prop_assert_eq!(got, Err(interpolate::InterpolationError::TooDeep));
        }
    }

    /// Arbitrary YAML-ish documents never make the loader panic.
    #[test]
    fn loader_never_panics(body in yamlish()) {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "compose.yaml", &body);
        let _ = load(&opts(vec![f]));
    }

    /// Arbitrary bytes as a compose file never make the loader panic.
    #[test]
    fn loader_never_panics_on_noise(body in "\\PC{0,200}") {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "compose.yaml", &body);
        let _ = load(&opts(vec![f]));
    }

    /// Arbitrary short port and volume specs never panic.
    #[test]
    fn short_syntax_never_panics(s in "[\\[\\]0-9a-z.:/\\-~,]{0,30}") {
        let _ = canonical::short_port(&s);
        let lookup = |_: &str| None;
        let ctx = canonical::Ctx { file: Path::new("/c.yaml"), written: &Default::default(), names: &Default::default(), base_dir: Path::new("/"), base_written: None, lookup: &lookup, home: None };
        let _ = canonical::short_volume(&ctx, "v", &s);
        let _ = canonical::shell_split(&s);
        let _ = s.parse::<Duration>();
        let _ = parse_bytes(&s);
    }
}

/// Documents built from compose-like keys and values, to get past the YAML parser often.
fn yamlish() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "image",
        "command",
        "entrypoint",
        "environment",
        "ports",
        "volumes",
        "networks",
        "depends_on",
        "healthcheck",
        "restart",
        "labels",
        "user",
        "deploy",
        "ulimits",
        "extends",
        "env_file",
        "profiles",
        "x-gantry",
        "secrets",
        "tmpfs",
        "extra_hosts",
        "devices",
        "logging",
        "build",
        "stop_grace_period",
        "shm_size",
        "cpus",
        "mem_limit",
        "mem_reservation",
        "memswap_limit",
        "mem_swappiness",
        "pids_limit",
        "oom_score_adj",
        "scale",
        "uts",
        "attach",
        "develop",
        "gpus",
        "post_start",
        "pre_stop",
        "blkio_config",
        "cgroup",
        "device_cgroup_rules",
        "storage_opt",
        "<<",
        "bogus",
    ]);
    let scalar = prop::sample::select(vec![
        "x",
        "1",
        "-1",
        "99999999999999999999",
        "1e300",
        "{min_ready: 1e300}",
        "{health: {tcp: 80, deadline: 1e300, startup: {deadline: 1e300}}}",
        "true",
        "null",
        "''",
        "'${A:-b}'",
        "'$${X'",
        "'8080:80'",
        "'1-3:1-2/udp'",
        "'./a:/b:ro'",
        "'a:b:c:d'",
        "[]",
        "{}",
        "[a, 1]",
        "{a: 1}",
        "1m30s",
        "'~'",
        "[CMD, x]",
        "{condition: service_healthy}",
        "{soft: 1}",
        "*a",
        "&a 1",
        "!reset []",
        "!override x",
        "{service: web}",
        "{file: other.yaml, service: x}",
        "'${'",
        "0440",
        "0",
        "0.5",
        "512m",
        "{replicas: 2}",
        "{resources: {limits: {memory: 1g, cpus: 0.5}}}",
        "{watch: [{path: ., action: sync, target: /a}]}",
        "{watch: [{action: x}]}",
        "all",
        "[{count: all, capabilities: [gpu]}]",
        "[{count: 1, device_ids: ['0']}]",
        "[{driver: nvidia, options: {a: 1}}]",
        "{resources: {reservations: {devices: [{capabilities: [gpu]}]}}}",
        "{resources: {reservations: {devices: [{count: 2}]}}}",
        "{resources: {limits: {devices: []}}}",
        "['nvidia.com/gpu=all']",
        "[{command: x}]",
        "[{command: 'a && b', user: '', environment: [A]}]",
        "[{user: root}]",
        "'a $(b) `c` 2>&1'",
        "{weight: 300, device_read_bps: [{path: /dev/sda, rate: 1mb}]}",
        "{weight_device: [{path: /dev/sda}]}",
        "host",
        "{size: 1G}",
    ]);
    let entry = (key, scalar).prop_map(|(k, v)| format!("    {k}: {v}\n"));
    let service = prop::collection::vec(entry, 0..6).prop_map(|es| es.concat());
    let top = prop::sample::select(vec![
        "services", "networks", "volumes", "secrets", "configs", "x-a", "name", "version",
    ]);
    (top, prop::collection::vec(("[a-z]{1,3}", service), 0..3)).prop_map(|(top, svcs)| {
        let mut s = String::new();
        s.push_str(top);
        s.push_str(":\n");
        for (name, body) in svcs {
            s.push_str(&format!("  {name}:\n{body}"));
        }
        s
    })
}

/// The public environment type is stable: `BTreeMap<String, Option<String>>` (checked when the
/// tests compile; there is nothing to run).
const _: fn(&Service) -> &BTreeMap<String, Option<String>> = |s| &s.environment;

#[test]
fn oversized_or_fifo_compose_and_env_files_are_refused_as_invalid_input_naming_the_file() {
    let (_t, d) = project_dir("bounded");
    // A FIFO as env_file: refused at once (a plain read would wait for a writer forever).
    let fifo = d.join("app.env");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let f = write(
        &d,
        "compose.yaml",
        "services:\n  a:\n    image: x\n    env_file: app.env\n",
    );
    let e = load(&opts(vec![f.clone()])).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("app.env") && msg.contains("a FIFO"), "{msg}");
    let code = crate::deploy::DeployError::from(e).exit_code();
    assert_eq!(code, crate::ExitCode::InvalidInput);

    // A compose file over the cap.
    let mut big = String::from("services:\n  a:\n    image: x\n");
    while (big.len() as u64) <= gantry_common::fsx::MAX_COMPOSE_FILE {
        big.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    let f = write(&d, "big.yaml", &big);
    let msg = load(&opts(vec![f])).unwrap_err().to_string();
    assert!(
        msg.contains("big.yaml") && msg.contains("8192 KiB cap"),
        "{msg}"
    );
}

#[test]
fn discovery_takes_compose_s_default_file_then_its_first_override() {
    let (_t, d) = project_dir("disc");
    let mut warnings = Vec::new();
    assert!(discover(&d, &mut warnings).is_empty(), "no default file");
    let yaml = write(&d, "docker-compose.yaml", "services: {}\n");
    assert_eq!(discover(&d, &mut warnings), vec![yaml.clone()]);
    // compose prefers docker-compose.yml over .yaml, and says which it ignored.
    let yml = write(&d, "docker-compose.yml", "services: {}\n");
    assert_eq!(discover(&d, &mut warnings), vec![yml.clone()]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("ignoring") && warnings[0].contains("docker-compose.yaml"));
    warnings.clear();
    let over = write(&d, "docker-compose.override.yml", "services: {}\n");
    assert_eq!(discover(&d, &mut warnings), vec![yml.clone(), over.clone()]);
    assert!(warnings.len() == 1, "only the two defaults: {warnings:?}");
    let main = write(&d, "compose.yaml", "services: {}\n");
    let first_over = write(&d, "compose.override.yml", "services: {}\n");
    warnings.clear();
    assert_eq!(discover(&d, &mut warnings), vec![main, first_over]);
    assert_eq!(
        warnings.len(),
        2,
        "three defaults, two overrides: {warnings:?}"
    );
    assert!(
        warnings[1].contains("override") && warnings[1].contains("docker-compose.override.yml")
    );
}

/// A default file that is there but cannot be read is taken (not skipped for another default
/// file), and the load refuses it with one error naming it and saying what to do, whether the
/// load finds it itself or is given what `discover` found (a stack's directory). Compose 2.40.3
/// fails on a directory (`read compose.yaml: is a directory`) and on a file it may not read too.
#[test]
fn an_unreadable_default_file_is_an_error_naming_it_not_skipped() {
    let (_t, d) = project_dir("unreadable");
    write(&d, "docker-compose.yml", "services: {a: {image: x}}\n");
    let main = d.join("compose.yaml");
    let refused = |what: &str| {
        let mut warnings = Vec::new();
        let found = discover(&d, &mut warnings);
        assert_eq!(found, vec![main.clone()], "{what}");
        // The one warning: docker-compose.yml is ignored, as compose says.
        assert_eq!(warnings.len(), 1, "{what}: {warnings:?}");
        let mut o = opts(Vec::new());
        o.project_dir = Some(d.clone());
        for o in [o, opts(found)] {
            match load(&o) {
                Err(ComposeError::UnreadableComposeFile(e)) => {
                    assert_eq!(e.file, main, "{what}");
                    let msg = e.to_string();
                    assert!(
                        msg.starts_with(&format!(
                            "{}: cannot read this compose file: ",
                            main.display()
                        )) && msg.ends_with(
                            "(make it a readable file, remove it to use the next default \
                             file, or pass -f FILE)"
                        ),
                        "{what}: {msg}"
                    );
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    };
    // A directory (compose fails on it too).
    std::fs::create_dir(&main).unwrap();
    refused("a directory");
    std::fs::remove_dir(&main).unwrap();
    // A symlink loop, and a symlink to nothing (compose skips those).
    std::os::unix::fs::symlink("loop.yaml", &main).unwrap();
    std::os::unix::fs::symlink("compose.yaml", d.join("loop.yaml")).unwrap();
    refused("a symlink loop");
    std::fs::remove_file(d.join("loop.yaml")).unwrap();
    refused("a symlink to nothing");
    std::fs::remove_file(&main).unwrap();
    // A file without read permission (readable anyway when the tests run as root).
    write(&d, "compose.yaml", "services: {b: {image: x}}\n");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&main, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&main).is_err() {
        refused("mode 000");
    }
    std::fs::set_permissions(&main, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut warnings = Vec::new();
    assert_eq!(discover(&d, &mut warnings), vec![main.clone()]);
    // An override file is held to the same rule.
    let over = d.join("compose.override.yml");
    std::fs::create_dir(&over).unwrap();
    let found = discover(&d, &mut warnings);
    assert_eq!(found, vec![main.clone(), over.clone()]);
    match load(&opts(found)) {
        Err(ComposeError::UnreadableComposeFile(e)) => assert_eq!(e.file, over),
        other => panic!("{other:?}"),
    }
    // A file named with -f that cannot be read: the same error, its own hint.
    let other = d.join("app.yaml");
    std::fs::create_dir(&other).unwrap();
    let e = load(&opts(vec![other.clone()])).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: cannot read this compose file: a directory, not a file (make it a readable \
             file, or pass -f with another file)",
            other.display()
        )
    );
}

#[test]
fn a_project_directory_s_override_is_merged_without_naming_it() {
    let (_t, d) = project_dir("withover");
    write(&d, "compose.yaml", "services:\n  web:\n    image: nginx\n");
    write(
        &d,
        "compose.override.yaml",
        "services:\n  web:\n    image: nginx:2\n  extra:\n    image: busybox\n",
    );
    let mut o = opts(Vec::new());
    o.project_dir = Some(d.clone());
    let p = load(&o).unwrap();
    assert_eq!(p.service("web").unwrap().image.as_deref(), Some("nginx:2"));
    assert!(p.service("extra").is_some());
    assert_eq!(p.config_files.len(), 2, "{:?}", p.config_files);
}

#[test]
fn scale_is_the_replica_count_when_deploy_replicas_is_unset() {
    let (_t, d) = project_dir("scaled");
    let f = write(
        &d,
        "compose.yaml",
        "services:\n  a:\n    image: x\n    scale: 3\n  b:\n    image: x\n    scale: 2\n    deploy: {replicas: 2}\n  c:\n    image: x\n    scale: 0\n  d:\n    image: x\n",
    );
    let p = load(&opts(vec![f])).unwrap();
    let n = |s: &str| p.service(s).unwrap().replicas();
    assert_eq!((n("a"), n("b"), n("c"), n("d")), (3, 2, 0, 1));
    // Scaling is not a new container: the hash leaves it out.
    let mut a = p.service("a").unwrap().clone();
    let before = a.config_hash();
    a.scale = Some(5);
    assert_eq!(a.config_hash(), before);
}

/// Interpolation in a service's env file sees the project's variables, then the service's
/// `environment`, then the file's earlier keys and the earlier env files' values, as compose
/// does (`docker compose config` gives the same environment).
#[test]
fn env_files_see_the_service_environment_and_earlier_env_files() {
    let (_t, d) = project_dir("p");
    write(&d, ".env", "PROJ=proj\n");
    write(&d, "a.env", "A=1\nS=from-a\n");
    write(
        &d,
        "b.env",
        "B=${A}-x\nD=${C}\nE=${S}\nS=from-b\nF=${S}\nP=${PROJ}\nG=${LATER:-none}\n",
    );
    write(&d, "c.env", "LATER=late\n");
    let main = write(
        &d,
        "compose.yaml",
        "services:\n  s:\n    image: x\n    env_file: [a.env, b.env, c.env]\n    environment: {C: c, S: from-svc}\n",
    );
    let p = load(&opts(vec![main])).unwrap();
    let env: BTreeMap<&str, &str> = p
        .service("s")
        .unwrap()
        .environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref().unwrap_or("<unset>")))
        .collect();
    assert_eq!(
        env,
        BTreeMap::from([
            ("A", "1"),
            ("B", "1-x"),
            ("C", "c"),
            ("D", "c"),
            ("E", "from-svc"),
            ("F", "from-svc"),
            ("G", "none"),
            ("LATER", "late"),
            ("P", "proj"),
            ("S", "from-svc"),
        ])
    );
}

/// `x-gantry`'s numbers and booleans can come from variables, like compose's own typed keys
/// (`deploy.replicas: ${N}`): the string interpolation makes is read with the range the key
/// has; a stack default too.
#[test]
fn x_gantry_numbers_and_booleans_are_filled_from_variables() {
    let (_t, d) = project_dir("p");
    write(
        &d,
        ".env",
        "PASSES=2\nFAILS=5\nPORT=8080\nEDGE=false\nSTEP=25\nREADY=0.5\nN=3\n",
    );
    let f = write(
        &d,
        "compose.yaml",
        "x-gantry: {min_ready: '${READY}'}\n\
         services:\n  s:\n    image: x\n    deploy: {replicas: '${N}'}\n    x-gantry:\n      \
         health: {http: /, port: '${PORT}', passes: '${PASSES}', failures: $FAILS}\n      \
         edge: ${EDGE}\n      canary: {steps: ['${STEP}', 100], abort: {restarts: '${N}'}}\n",
    );
    let p = load(&opts(vec![f])).unwrap();
    let s = p.service("s").unwrap();
    assert_eq!(s.replicas(), 3);
    let g = &s.gantry;
    let h = g.health.as_ref().unwrap();
    assert_eq!((h.passes, h.failures), (2, 5));
    assert!(
        matches!(h.target, xgantry::Target::Http { port: 8080, .. }),
        "{:?}",
        h.target
    );
    assert_eq!(g.edge, Some(false));
    assert_eq!(g.min_ready, Some(std::time::Duration::from_millis(500)));
    let c = g.canary.as_ref().unwrap();
    assert_eq!((c.steps.as_slice(), c.restarts), (&[25, 100][..], 3));
}
