//! Unit tests of `x-gantry` parsing.
use serde_json::json;

use super::*;

/// Reads `v` as a compose file's `x-gantry` (every check).
fn parse(v: Value) -> Result<XGantry, XGantryError> {
    XGantry::parse_file(Some(&v))
}

#[test]
fn every_documented_key_is_read() {
    let x = parse(json!({
        "health": {"http": "/healthz", "port": 8080, "status": "200-299", "passes": 2,
                   "interval": "500ms", "timeout": 3, "start_period": "1s", "deadline": "2m"},
        "min_ready": "5s",
        "job": {"timeout": "10m"},
    }))
    .unwrap();
    assert_eq!(
        x.health,
        Some(Probe {
            target: Target::Http {
                host: None,
                port: 8080,
                path: "/healthz".into(),
                status: (200, 299),
                body: BodyCheck::default(),
            },
            passes: 2,
            failures: 3,
            interval: Duration::from_millis(500),
            timeout: Duration::from_secs(3),
            start_period: Duration::from_secs(1),
            deadline: Some(Duration::from_secs(120)),
            startup: None,
        })
    );
    assert_eq!(x.min_ready, Some(Duration::from_secs(5)));
    assert_eq!(
        x.job,
        Some(Job {
            timeout: Some(Duration::from_secs(600))
        })
    );
    assert_eq!(
        parse(json!({"job": "pre-deploy"})).unwrap().job,
        Some(Job::default())
    );
    assert_eq!(parse(json!({"job": false})).unwrap().job, None);
    assert_eq!(XGantry::parse(None).unwrap(), XGantry::default());
    let tcp = parse(json!({"health": {"tcp": 5432}}))
        .unwrap()
        .health
        .unwrap();
    assert_eq!(tcp.target, Target::Tcp { port: 5432 });
    assert_eq!((tcp.passes, tcp.deadline), (3, None));
}

#[test]
fn canary_and_edge_are_read_and_checked() {
    let x = parse(json!({
        "edge": false,
        "canary": {"steps": [10, 50, 100], "pause": "5m",
                   "abort": {"probe_failures": 3, "restarts": 1}},
    }))
    .unwrap();
    assert_eq!(x.edge, Some(false));
    assert_eq!(
        x.canary,
        Some(Canary {
            steps: vec![10, 50, 100],
            pause: Duration::from_secs(300),
            probe_failures: 3,
            restarts: 1
        })
    );
    let bad = [
        (
            json!({"canary": {"steps": [50, 10, 100]}}),
            "x-gantry.canary.steps",
            "increase",
        ),
        (
            json!({"canary": {"steps": [10, 10, 100]}}),
            "x-gantry.canary.steps",
            "increase",
        ),
        (
            json!({"canary": {"steps": [10, 50]}}),
            "x-gantry.canary.steps",
            "end at 100",
        ),
        (
            json!({"canary": {"steps": [0, 100]}}),
            "x-gantry.canary.steps",
            "percentage",
        ),
        (
            json!({"canary": {"steps": [10, 101]}}),
            "x-gantry.canary.steps",
            "percentage",
        ),
        (
            json!({"canary": {"pause": "1m"}}),
            "x-gantry.canary",
            "needs steps",
        ),
        (
            json!({"canary": {"steps": [100], "stpes": 1}}),
            "x-gantry.canary.stpes",
            "unknown",
        ),
        (
            json!({"canary": {"steps": [100], "abort": {"probe_failure": 1}}}),
            "x-gantry.canary.abort.probe_failure",
            "unknown",
        ),
        (json!({"edge": "maybe"}), "x-gantry.edge", "true or false"),
    ];
    for (input, key, what) in bad {
        let e = parse(input.clone()).unwrap_err();
        assert_eq!(e.key, key, "{input}");
        assert!(e.message.contains(what), "{input}: {}", e.message);
    }
}

#[test]
fn a_huge_number_of_seconds_saturates_like_a_huge_string() {
    let max = gantry_common::duration::MAX;
    for v in [json!(1e300), json!("99999999999999999999s")] {
        let x = parse(json!({"min_ready": v.clone(), "health": {"tcp": 80, "deadline": v}}));
        let x = x.unwrap();
        assert_eq!(x.min_ready, Some(max));
        assert_eq!(x.health.unwrap().deadline, Some(max));
    }
}

#[test]
fn malformed_values_name_their_key() {
    let cases = [
        (json!({"job": {"timeout": "soon"}}), "x-gantry.job.timeout"),
        (json!({"job": "migrate"}), "x-gantry.job"),
        (json!({"job": {"timout": "1m"}}), "x-gantry.job.timout"),
        (json!({"min_ready": true}), "x-gantry.min_ready"),
        (json!({"min_ready": -1}), "x-gantry.min_ready"),
        (json!({"helth": {}}), "x-gantry.helth"),
        (json!({"health": {"http": "/healthz"}}), "x-gantry.health"),
        (
            json!({"health": {"tcp": 80, "status": "500-200"}}),
            "x-gantry.health.status",
        ),
        (json!({"health": {"tcp": 70000}}), "x-gantry.health.tcp"),
        (
            json!({"health": {"tcp": 80, "http": "/"}}),
            "x-gantry.health",
        ),
        (
            json!({"health": {"tcp": 80, "interval": "often"}}),
            "x-gantry.health.interval",
        ),
        (json!({"reconcile": false}), "x-gantry.reconcile"),
        (json!({"watch_compose": true}), "x-gantry.watch_compose"),
        (json!("yes"), "x-gantry"),
    ];
    for (value, key) in cases {
        let e = parse(value.clone()).unwrap_err();
        assert_eq!(e.key, key, "{value}: {e}");
    }
    let e = parse(json!({"reconcile": false})).unwrap_err();
    assert!(e.message.contains("gantry.yaml"), "{e}");
    let e = parse(json!({"health": {"http": "/healthz"}})).unwrap_err();
    assert!(e.message.contains("port"), "{e}");
}

#[test]
fn body_checks_startup_and_failures_are_read() {
    let p = parse(json!({"health": {
        "http": "/api/v1/health", "port": 8080, "body": "ok",
        "json": {"pointer": "/status", "equals": "ok"},
        "failures": 5, "startup": {"deadline": "2m"}}}))
    .unwrap()
    .health
    .unwrap();
    assert_eq!((p.failures, p.startup), (5, Some(Duration::from_secs(120))));
    let Target::Http { body, .. } = p.target else {
        panic!("{:?}", p.target)
    };
    assert_eq!(body.contains.as_deref(), Some("ok"));
    assert_eq!(
        body.json,
        Some(JsonCheck {
            pointer: "/status".into(),
            equals: json!("ok")
        })
    );
    for equals in [json!(1), json!(2.5), json!(true), json!("1")] {
        let x = parse(json!({"health": {"http": "/", "port": 80,
            "json": {"pointer": "/a~1b/0", "equals": equals}}}));
        let target = x.map(|g| g.health.map(|h| h.target));
        let Ok(Some(Target::Http { body, .. })) = target else {
            panic!("{equals}: {target:?}")
        };
        // Read as written: the pointer verbatim, the value with its JSON type ("1" stays a string).
        assert_eq!(
            body.json,
            Some(JsonCheck {
                pointer: "/a~1b/0".into(),
                equals: equals.clone()
            }),
            "{equals}"
        );
    }
    let defaults = parse(json!({"health": {"tcp": 80}}))
        .unwrap()
        .health
        .unwrap();
    assert_eq!((defaults.failures, defaults.startup), (3, None));
}

#[test]
fn bad_body_checks_name_their_key() {
    let http = |extra: Value| {
        let mut h = json!({"http": "/", "port": 80});
        for (k, v) in extra.as_object().unwrap() {
            h[k] = v.clone();
        }
        json!({ "health": h })
    };
    let cases = [
        (
            http(json!({"json": {"pointer": "status", "equals": "ok"}})),
            "x-gantry.health.json.pointer",
        ),
        (
            http(json!({"json": {"pointer": 3, "equals": "ok"}})),
            "x-gantry.health.json.pointer",
        ),
        (
            http(json!({"json": {"equals": "ok"}})),
            "x-gantry.health.json.pointer",
        ),
        (
            http(json!({"json": {"pointer": "/status"}})),
            "x-gantry.health.json.equals",
        ),
        (
            http(json!({"json": {"pointer": "/status", "equals": null}})),
            "x-gantry.health.json.equals",
        ),
        (
            http(json!({"json": {"pointer": "/s", "equals": ["ok"]}})),
            "x-gantry.health.json.equals",
        ),
        (
            http(json!({"json": {"pointer": "/s", "equal": "ok"}})),
            "x-gantry.health.json.equal",
        ),
        (http(json!({"json": "/status"})), "x-gantry.health.json"),
        (http(json!({"body": 200})), "x-gantry.health.body"),
        (http(json!({"body": ""})), "x-gantry.health.body"),
        (http(json!({"bdy": "ok"})), "x-gantry.health.bdy"),
        (http(json!({"failures": 0})), "x-gantry.health.failures"),
        (http(json!({"failures": "0"})), "x-gantry.health.failures"),
        (http(json!({"failures": "3x"})), "x-gantry.health.failures"),
        (http(json!({"startup": "2m"})), "x-gantry.health.startup"),
        (
            http(json!({"startup": {}})),
            "x-gantry.health.startup.deadline",
        ),
        (
            http(json!({"startup": {"deadline": "soon"}})),
            "x-gantry.health.startup.deadline",
        ),
        (
            http(json!({"startup": {"dedline": "2m"}})),
            "x-gantry.health.startup.dedline",
        ),
        (
            http(json!({"startup_deadline": "2m"})),
            "x-gantry.health.startup_deadline",
        ),
        (
            json!({"health": {"tcp": 80, "body": "ok"}}),
            "x-gantry.health.body",
        ),
        (
            json!({"health": {"tcp": 80, "json": {"pointer": "/s", "equals": 1}}}),
            "x-gantry.health.json",
        ),
    ];
    for (value, key) in cases {
        let e = parse(value.clone()).unwrap_err();
        assert_eq!(e.key, key, "{value}: {e}");
    }
}

proptest::proptest! {
    /// A pointer that does not start with `/` is refused, naming the key; one that does
    /// is taken as written.
    #[test]
    fn json_pointers_must_start_with_a_slash(p in "[a-z~/0-9]{0,12}") {
        let v = json!({"health": {"http": "/", "port": 80,
            "json": {"pointer": p.clone(), "equals": "ok"}}});
        match parse(v) {
            Ok(x) => {
                proptest::prop_assert!(p.is_empty() || p.starts_with('/'));
                let Some(Probe { target: Target::Http { body, .. }, .. }) = x.health else {
                    unreachable!()
                };
                proptest::prop_assert_eq!(body.json.unwrap().pointer, p);
            }
            Err(e) => {
                proptest::prop_assert!(!p.is_empty() && !p.starts_with('/'));
                proptest::prop_assert_eq!(e.key, "x-gantry.health.json.pointer");
            }
        }
    }
}

#[test]
fn loader_error_names_file_service_and_key() {
    let e = parse(json!({"job": {"timeout": "soon"}}))
        .unwrap_err()
        .in_service(Path::new("/srv/compose.yaml"), "migrate");
    let text = e.to_string();
    assert_eq!(
        text,
        "/srv/compose.yaml: services.migrate.x-gantry.job.timeout: a string that is not a \
         duration (write it like 60s, 1m30s or 500ms)"
    );
}

#[test]
fn stack_defaults_fill_what_a_service_leaves_unset() {
    let d = StackDefaults::parse(Some(&json!({"min_ready": 1}))).unwrap();
    for (service, want) in [
        (json!({"image": "x"}), json!({"min_ready": 1})),
        (
            json!({"image": "x", "x-gantry": null}),
            json!({"min_ready": 1}),
        ),
        (
            json!({"image": "x", "x-gantry": {"min_ready": "4s"}}),
            json!({"min_ready": "4s"}),
        ),
        // Not a mapping: left as it is, for the service's own parse to refuse.
        (json!({"image": "x", "x-gantry": 3}), json!(3)),
    ] {
        let mut s = service.clone();
        d.apply(&mut s);
        assert_eq!(s["x-gantry"], want, "{service}");
    }
    let mut s = json!({"image": "x"});
    StackDefaults::parse(None).unwrap().apply(&mut s);
    assert_eq!(s, json!({"image": "x"}), "no defaults, nothing added");
    let e = StackDefaults::parse(Some(&json!({"canary": {"steps": [100]}}))).unwrap_err();
    assert_eq!(e.key, "x-gantry.canary");
    assert!(e.message.contains("services.<name>.x-gantry.canary"), "{e}");
    let e = StackDefaults::parse(Some(&json!({"min_ready": -1}))).unwrap_err();
    assert_eq!(e.key, "x-gantry.min_ready");
}

proptest::proptest! {
    /// Whatever the stack's `x-gantry` holds, its parse does not panic, and a default it
    /// accepts is one every service that takes it accepts too (as its own `min_ready`).
    #[test]
    fn a_stack_default_it_accepts_every_service_accepts(
        key in proptest::sample::select(vec!["min_ready", "health", "min-ready", ""]),
        text in "[0-9a-z. -]{0,8}",
        number in proptest::num::f64::ANY,
        as_number in proptest::bool::ANY,
    ) {
        let value = if as_number { json!(number) } else { json!(text) };
        let top = json!({ key: value.clone() });
        match StackDefaults::parse(Some(&top)) {
            Ok(d) => {
                proptest::prop_assert_eq!(key, "min_ready");
                let mut service = json!({"image": "x"});
                d.apply(&mut service);
                let x = XGantry::parse(service.get("x-gantry"));
                proptest::prop_assert!(x.is_ok_and(|x| x.min_ready.is_some()), "{}", value);
            }
            Err(e) => proptest::prop_assert!(e.key.starts_with("x-gantry."), "{}", e),
        }
    }
}

/// Every whole-number, number-of-seconds and boolean key takes a string holding one, as
/// interpolation makes it (`passes: ${N}`), with the range it has as a number: compose reads
/// `replicas: ${N}` and `privileged: ${P}` the same way.
#[test]
fn numbers_and_booleans_may_be_strings_as_interpolation_makes_them() {
    let x = parse(json!({
        "health": {"http": "/", "port": "8080", "passes": "2", "failures": "+5",
                   "interval": "1.5", "timeout": "3", "deadline": "120",
                   "startup": {"deadline": "0.25"}},
        "min_ready": "0.5",
        "edge": "false",
        "canary": {"steps": ["10", 50, "100"], "pause": "30",
                   "abort": {"probe_failures": "4", "restarts": "02"}},
    }))
    .unwrap();
    let p = x.health.unwrap();
    assert_eq!(
        (
            p.passes, p.failures, p.interval, p.timeout, p.deadline, p.startup
        ),
        (
            2,
            5,
            Duration::from_millis(1500),
            Duration::from_secs(3),
            Some(Duration::from_secs(120)),
            Some(Duration::from_millis(250))
        )
    );
    assert!(
        matches!(p.target, Target::Http { port: 8080, .. }),
        "{:?}",
        p.target
    );
    assert_eq!(x.min_ready, Some(Duration::from_millis(500)));
    assert_eq!(x.edge, Some(false));
    assert_eq!(
        x.canary,
        Some(Canary {
            steps: vec![10, 50, 100],
            pause: Duration::from_secs(30),
            probe_failures: 4,
            restarts: 2
        })
    );
    let tcp = parse(json!({"health": {"tcp": "5432", "passes": "0"}}))
        .unwrap()
        .health
        .unwrap();
    assert_eq!((tcp.target, tcp.passes), (Target::Tcp { port: 5432 }, 1));
    // Booleans as compose reads an interpolated one, in any case.
    for (text, edge) in [
        ("true", true),
        ("TRUE", true),
        ("yes", true),
        ("on", true),
        ("y", true),
        ("False", false),
        ("no", false),
        ("off", false),
        ("n", false),
    ] {
        assert_eq!(
            parse(json!({ "edge": text })).unwrap().edge,
            Some(edge),
            "{text}"
        );
    }
    for (text, job) in [
        ("true", Some(Job::default())),
        ("false", None),
        ("pre-deploy", Some(Job::default())),
    ] {
        assert_eq!(parse(json!({ "job": text })).unwrap().job, job, "{text}");
    }
}

/// A string that does not hold what its key takes (not a number at all, or one out of range)
/// is refused naming the key and how to write it, without quoting it: it may come from a
/// variable holding a secret, digits included.
#[test]
fn a_string_that_is_not_a_number_or_boolean_is_refused_unquoted() {
    let http = |k: &str, v: &str| json!({"health": {"http": "/", "port": 80, k: v}});
    let cases = [
        (
            http("passes", "31337x"),
            "x-gantry.health.passes",
            "write a whole number, 1 or more",
        ),
        (
            http("passes", "-31337"),
            "x-gantry.health.passes",
            "write a whole number, 1 or more",
        ),
        (
            http("failures", "0"),
            "x-gantry.health.failures",
            "write a whole number, 1 or more",
        ),
        (
            http("failures", " 3"),
            "x-gantry.health.failures",
            "write a whole number, 1 or more",
        ),
        (
            http("failures", "3.0"),
            "x-gantry.health.failures",
            "write a whole number, 1 or more",
        ),
        (
            http("failures", "99999999999999999999999999999999999999999"),
            "x-gantry.health.failures",
            "1 or more",
        ),
        (
            http("port", "131337"),
            "x-gantry.health.port",
            "write a number from 1 to 65535",
        ),
        (
            json!({"health": {"tcp": "0x50"}}),
            "x-gantry.health.tcp",
            "from 1 to 65535",
        ),
        (
            http("interval", "-1.5"),
            "x-gantry.health.interval",
            "write it like 60s",
        ),
        (
            http("interval", "1."),
            "x-gantry.health.interval",
            "write it like 60s",
        ),
        (
            json!({"min_ready": "NaN"}),
            "x-gantry.min_ready",
            "write it like 60s",
        ),
        (
            json!({"edge": "1"}),
            "x-gantry.edge",
            "is not true or false",
        ),
        (
            json!({"edge": " true"}),
            "x-gantry.edge",
            "is not true or false",
        ),
        (
            json!({"job": "0"}),
            "x-gantry.job",
            "write pre-deploy, true, false",
        ),
        (
            json!({"canary": {"steps": ["131"]}}),
            "x-gantry.canary.steps",
            "from 1 to 100",
        ),
        (
            json!({"canary": {"steps": [100], "abort": {"restarts": "0"}}}),
            "x-gantry.canary.abort.restarts",
            "1 or more",
        ),
        (
            json!({"canary": {"steps": [100], "abort": {"probe_failures": "many"}}}),
            "x-gantry.canary.abort.probe_failures",
            "1 or more",
        ),
    ];
    for (value, key, says) in cases {
        let e = parse(value.clone()).unwrap_err();
        assert_eq!(e.key, key, "{value}: {e}");
        assert!(e.message.contains(says), "{value}: {e}");
        assert!(
            e.message.starts_with("a string that is not"),
            "{value}: {e}"
        );
        for secret in ["31337", "131", "0x50", "NaN", "999"] {
            assert!(!e.message.contains(secret), "{value}: quoted: {e}");
        }
    }
    // Written as numbers, they are shown: YAML wrote them.
    let e = parse(json!({"health": {"tcp": 70000}})).unwrap_err();
    assert_eq!(
        e.message,
        "70000 is not a port number (write a number from 1 to 65535)"
    );
    // Steps read from strings are named by position, not by value.
    let e = parse(json!({"canary": {"steps": ["50", "41", "100"]}})).unwrap_err();
    assert_eq!(
        e.message,
        "must increase step by step (like [10, 50, 100]): step 2 is not above step 1"
    );
    let e = parse(json!({"canary": {"steps": ["41", 50]}})).unwrap_err();
    assert_eq!(
        e.message,
        "the steps must end at 100 (the new version takes every connection)"
    );
    let e = parse(json!({"canary": {"steps": [41, 50]}})).unwrap_err();
    assert!(e.message.starts_with("[41, 50] must end at 100"), "{e}");
}

/// Loads the compose files `files` (name, text), written in a new directory, in order.
fn load_files(files: &[(&str, &str)]) -> Result<crate::compose::Project, ComposeError> {
    let dir = tempfile::tempdir().unwrap();
    let paths = files
        .iter()
        .map(|(name, text)| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        })
        .collect();
    crate::compose::load(&crate::compose::LoadOptions {
        files: paths,
        ..Default::default()
    })
}

/// A list under `x-gantry` in an override file replaces the earlier file's (compose appends
/// lists: `[10, 50, 100]` then `[25, 100]` made `[10, 50, 100, 25, 100]`, refused).
#[test]
fn an_override_file_replaces_x_gantry_lists() {
    let p = load_files(&[
        (
            "compose.yaml",
            "x-gantry: {min_ready: 1s}\nservices:\n  web:\n    image: x\n    x-gantry:\n      \
             canary: {steps: [10, 50, 100], pause: 1m}\n      health: {tcp: 80}\n",
        ),
        (
            "override.yaml",
            "services:\n  web:\n    x-gantry:\n      canary: {steps: [25, 100]}\n",
        ),
    ])
    .unwrap();
    let web = p.service("web").unwrap();
    let canary = web.gantry.canary.as_ref().unwrap();
    assert_eq!(canary.steps, [25, 100]);
    // Mappings still merge key by key.
    assert_eq!(canary.pause, Duration::from_secs(60));
    assert!(web.gantry.health.is_some());
    assert_eq!(
        web.x_gantry.as_ref().unwrap()["canary"]["steps"],
        json!([25, 100])
    );
}

/// An error about an `x-gantry` key names the file that wrote the key, not the first file:
/// the one with the deepest part of the key's path, the later one when two write as deep.
#[test]
fn an_x_gantry_error_names_the_file_that_set_the_key() {
    let base = "x-gantry: {min_ready: 1s}\nservices:\n  web:\n    image: x\n    x-gantry:\n      \
                health: {tcp: 80, interval: 1s}\n";
    for (over, base_text, file, key) in [
        // An unknown key only in the override.
        (
            "services:\n  web:\n    x-gantry: {helth: {tcp: 80}}\n",
            base,
            "override.yaml",
            "services.web.x-gantry.helth",
        ),
        (
            "services:\n  web:\n    x-gantry: {health: {timeout: soon}}\n",
            base,
            "override.yaml",
            "services.web.x-gantry.health.timeout",
        ),
        // A bad key in the first file, another key in the override: the first file.
        (
            "services:\n  web:\n    x-gantry: {health: {timeout: 3s}}\n",
            "services:\n  web:\n    image: x\n    x-gantry: {health: {tcp: 80, interval: often}}\n",
            "compose.yaml",
            "services.web.x-gantry.health.interval",
        ),
        // The stack's own x-gantry.
        (
            "x-gantry: {min_redy: 1s}\nservices:\n  web:\n    image: y\n",
            base,
            "override.yaml",
            "x-gantry.min_redy",
        ),
        (
            "x-gantry: {}\nservices:\n  web:\n    image: y\n",
            "x-gantry: {min_ready: soon}\nservices:\n  web:\n    image: x\n",
            "compose.yaml",
            "x-gantry.min_ready",
        ),
    ] {
        let e = load_files(&[("compose.yaml", base_text), ("override.yaml", over)]).unwrap_err();
        let ComposeError::Invalid { file: f, path, .. } = &e else {
            panic!("{over}: {e}");
        };
        assert_eq!(
            (f.file_name().and_then(|n| n.to_str()), path.as_str()),
            (Some(file), key),
            "{over}: {e}"
        );
    }
}

/// A probe's `interval` and `timeout` of 0 are refused (a probe that never waits), each
/// naming its key; other durations may be 0.
#[test]
fn a_probe_interval_or_timeout_of_zero_is_refused() {
    for (key, zero) in [
        ("interval", json!(0)),
        ("interval", json!("0s")),
        ("timeout", json!(0)),
        ("timeout", json!("0")),
        ("timeout", json!(0.0)),
    ] {
        let e = parse(json!({"health": {"tcp": 80, key: zero.clone()}})).unwrap_err();
        assert_eq!(e.key, format!("x-gantry.health.{key}"), "{zero}");
        assert!(e.message.contains("more than 0"), "{zero}: {e}");
    }
    let p = parse(
        json!({"health": {"tcp": 80, "interval": "100ms", "timeout": 0.5,
        "start_period": 0}}),
    )
    .unwrap();
    assert_eq!(p.health.unwrap().interval, Duration::from_millis(100));
}

/// A key the chosen probe kind would ignore is refused naming it, not dropped.
#[test]
fn a_probe_key_without_effect_for_its_kind_is_refused() {
    for (health, key, says) in [
        (json!({"tcp": 80, "port": 8080}), "port", "tcp"),
        (json!({"tcp": 80, "status": "200-299"}), "status", "tcp"),
        (json!({"tcp": 80, "body": "ok"}), "body", "tcp"),
        (
            json!({"tcp": 80, "json": {"pointer": "/a", "equals": 1}}),
            "json",
            "tcp",
        ),
        (
            json!({"http": "http://127.0.0.1:8080/", "port": 8080}),
            "port",
            "URL",
        ),
        (json!({"http": "http://db/", "port": 80}), "port", "URL"),
    ] {
        let e = parse(json!({ "health": health.clone() })).unwrap_err();
        assert_eq!(e.key, format!("x-gantry.health.{key}"), "{health}");
        assert!(e.message.contains(says), "{health}: {e}");
    }
    // Those keys where they do something.
    for health in [
        json!({"http": "/", "port": 8080, "status": 200, "body": "ok"}),
        json!({"http": "http://db:8080/", "status": "200-204"}),
    ] {
        assert!(
            parse(json!({ "health": health.clone() })).is_ok(),
            "{health}"
        );
    }
}

/// An `http` target that cannot be sent as written is refused naming `http`, never quoting it:
/// whitespace or a control character anywhere in it, a URL's port 0.
#[test]
fn an_http_target_with_spaces_control_characters_or_port_zero_is_refused() {
    for (http, port) in [
        ("/health z", Some(80)),
        ("/health\t", Some(80)),
        ("/health\r\nX-Injected: 1", Some(80)),
        ("/he\u{7f}alth", Some(80)),
        ("/health\u{a0}", Some(80)),
        ("http://db :8080/", None),
        ("http://db:8080/a b", None),
        ("http://db:0/health", None),
        ("http://db:00/", None),
    ] {
        let mut health = json!({ "http": http });
        if let Some(p) = port {
            health["port"] = json!(p);
        }
        let e = parse(json!({ "health": health })).unwrap_err();
        assert_eq!(e.key, "x-gantry.health.http", "{http:?}: {e}");
        assert!(!e.message.contains(http), "{http:?}: {e}");
    }
    let ok = parse(json!({"health": {"http": "http://db:8080/a%20b?x=1"}}))
        .unwrap()
        .health
        .unwrap();
    assert!(
        matches!(ok.target, Target::Http { port: 8080, ref path, .. } if path == "/a%20b?x=1"),
        "{ok:?}"
    );
}

/// An IPv6 literal in an `http://` URL, with or without a port, is a host (its colons are not
/// the port's); a URL with no host or an unclosed bracket is refused naming the key.
#[test]
fn an_http_url_with_an_ipv6_host_parses_and_one_without_a_host_is_refused() {
    for (http, host, port) in [
        ("http://[::1]/health", "[::1]", 80),
        ("http://[::1]:8080/health", "[::1]", 8080),
        ("http://db/health", "db", 80),
    ] {
        let ok = parse(json!({"health": {"http": http}}))
            .unwrap()
            .health
            .unwrap();
        assert!(
            matches!(&ok.target, Target::Http { host: Some(h), port: p, .. } if h == host && *p == port),
            "{http}: {ok:?}"
        );
    }
    for http in ["http://:8080/", "http://[::1/health", "http:///health"] {
        let e = parse(json!({"health": {"http": http}})).unwrap_err();
        assert_eq!(e.key, "x-gantry.health.http", "{http:?}: {e}");
    }
}

/// What a release recorded before the probe checks were added stays readable, with the
/// meaning it had (a rollback or reconcile to it must not fail): the checks are the loader's.
#[test]
fn a_recorded_probe_is_read_without_the_checks_a_compose_file_gets() {
    for health in [
        json!({"tcp": 80, "port": 8080, "status": 200, "interval": 0}),
        json!({"http": "http://db:0/a b", "port": 8080, "timeout": "0s"}),
        json!({"http": "/he alth", "port": 8080}),
    ] {
        let x = json!({ "health": health.clone() });
        assert!(XGantry::parse_file(Some(&x)).is_err(), "{health}");
        assert!(XGantry::parse(Some(&x)).is_ok(), "{health}");
    }
    let recorded = XGantry::parse(Some(&json!({"health": {"tcp": 80, "port": 8080}})));
    assert_eq!(
        recorded.unwrap().health.unwrap().target,
        Target::Tcp { port: 80 }
    );
    // A body check with tcp was always refused.
    let x = json!({"health": {"tcp": 80, "body": "ok"}});
    assert_eq!(
        XGantry::parse(Some(&x)).unwrap_err().key,
        "x-gantry.health.body"
    );
}
/// A service or top-level key that is almost `x-gantry` is refused naming the file and the
/// key and suggesting `x-gantry` (it was kept as an unknown extension: the settings in it
/// silently did nothing); other extensions are kept.
#[test]
fn a_near_miss_of_x_gantry_is_refused() {
    for (key, says) in [
        ("x-gantri", "did you mean \"x-gantry\""),
        ("x-Gantry", "did you mean \"x-gantry\""),
        ("X-GANTRY", "did you mean \"x-gantry\""),
        ("x-gnatry", "did you mean \"x-gantry\""),
        ("x-gantry.health", "x-gantry: {health:"),
    ] {
        for (text, path) in [
            (
                format!("services:\n  web:\n    image: x\n    {key}: {{health: {{tcp: 80}}}}\n"),
                format!("services.web.{key}"),
            ),
            (
                format!("{key}: {{min_ready: 1s}}\nservices:\n  web:\n    image: x\n"),
                key.to_owned(),
            ),
        ] {
            let e = load_files(&[
                ("compose.yaml", "services: {web: {image: x}}\n"),
                ("o.yaml", &text),
            ])
            .unwrap_err();
            let ComposeError::Invalid {
                file,
                path: p,
                message,
            } = &e
            else {
                panic!("{text}: {e}");
            };
            assert!(file.ends_with("o.yaml"), "{text}: {e}");
            assert_eq!(p, &path, "{text}: {e}");
            assert!(message.contains(says), "{text}: {e}");
        }
    }
    for key in ["x-gantry", "x-common", "x-logging", "x-g"] {
        let text = format!("{key}: {{}}\nservices:\n  web:\n    image: x\n    {key}: {{}}\n");
        assert!(load_files(&[("compose.yaml", &text)]).is_ok(), "{key}");
    }
}
