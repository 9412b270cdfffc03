//! Unit tests of `x-gantry` parsing.
use serde_json::json;

use super::*;

fn parse(v: Value) -> Result<XGantry, XGantryError> {
    XGantry::parse(Some(&v))
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
        (json!({"edge": "no"}), "x-gantry.edge", "true or false"),
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
        assert!(x.is_ok(), "{equals}: {x:?}");
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
        (http(json!({"failures": "3"})), "x-gantry.health.failures"),
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
