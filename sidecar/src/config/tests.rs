//! Config tests: the full file, defaults, layering file < env < flags, the env-only form, and
//! errors that name the file (or variable, or flag) and the key.

use nix::sys::signal::Signal;

use super::validate::parse_mode;
use super::*;

/// The environment plus a Vault token (token auth needs one; tokens only come from the env).
fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    [("VAULT_TOKEN", "s.test")]
        .iter()
        .chain(pairs.iter())
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

const FULL: &str = r#"
sources:
  - vault: { path: kv/secrets/app }
  - aws: { id: prod/db }
vault:
  addr: http://127.0.0.1:8200
refresh: 30s
grace: 5m
on_change:
  signal: SIGHUP
  systemd_unit: app.service
restart:
  signal: SIGINT
  timeout: 20s
  debounce: 1s
  min_interval: 30s
  exit_on_change: true
listen: 127.0.0.1:9464
outputs:
  - path: /run/gantry-secrets/app.env
  - path: /run/gantry-secrets/app.json
    format: json
    mode: "0640"
    owner: "0"
    group: "0"
    sources: [vault:kv/secrets/app]
  - path: /run/gantry-secrets/tls.key
    format: raw
    keys: [TLS_KEY]
    on_change:
      command: [/usr/bin/systemctl, reload, nginx]
      timeout: 5s
"#;

#[test]
fn parses_a_full_file() {
    let (_d, path) = write(FULL);
    let c = load(Some(&path), &env(&[]), &Overrides::default()).unwrap();
    assert_eq!(c.refresh, Duration::from_secs(30));
    assert_eq!(c.sources.refresh, Duration::from_secs(30));
    assert_eq!(c.sources.sources.len(), 2);
    assert_eq!(c.grace(), Duration::from_secs(300));
    assert_eq!(
        c.on_change,
        Action::SignalUnit {
            signal: Signal::SIGHUP,
            unit: "app.service".into()
        }
    );
    assert_eq!(c.restart.signal, Signal::SIGINT);
    assert_eq!(c.restart.timeout, Duration::from_secs(20));
    assert_eq!(c.restart.debounce, Duration::from_secs(1));
    assert_eq!(c.restart.min_interval, Duration::from_secs(30));
    assert!(c.restart.exit_on_change);
    assert_eq!(c.listen, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(c.outputs.len(), 3);
    assert_eq!(c.outputs[0].format, Format::Dotenv);
    assert_eq!(c.outputs[0].mode, 0o600);
    assert_eq!(c.outputs[1].mode, 0o640);
    assert_eq!((c.outputs[1].uid, c.outputs[1].gid), (Some(0), Some(0)));
    assert_eq!(
        c.outputs[2].on_change,
        Some(Action::Command {
            argv: vec!["/usr/bin/systemctl".into(), "reload".into(), "nginx".into()],
            timeout: Duration::from_secs(5)
        })
    );
}

#[test]
fn defaults() {
    let c = load(
        None,
        &env(&[
            ("VAULT_ADDR", "http://127.0.0.1:8200"),
            ("VAULT_SECRET_PATH", "kv/app"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.refresh, DEFAULT_REFRESH);
    assert_eq!(c.restart, RestartPolicy::default());
    assert_eq!(c.restart.signal, Signal::SIGTERM);
    assert_eq!(c.restart.timeout, Duration::from_secs(10));
    assert!(
        c.restart.stop_timeout < Duration::from_secs(30),
        "below ECS's stopTimeout"
    );
    assert_eq!(c.on_change, Action::None);
    assert!(c.outputs.is_empty());
    assert!(c.listen.is_none());
}

#[test]
fn layering_file_then_env_then_flags() {
    let (_d, path) = write(
        "sources: [{vault: {path: kv/app}}]\nvault: {addr: 'http://127.0.0.1:8200'}\nrefresh: 30s\nrestart: {signal: HUP, timeout: 3s}\n",
    );
    let e = env(&[
        ("GANTRY_SECRETS_REFRESH", "20s"),
        ("GANTRY_SECRETS_RESTART_SIGNAL", "SIGUSR1"),
        ("GANTRY_SECRETS_EXIT_ON_CHANGE", "true"),
        ("GANTRY_SECRETS_LISTEN", "127.0.0.1:9000"),
    ]);
    let c = load(Some(&path), &e, &Overrides::default()).unwrap();
    assert_eq!(c.refresh, Duration::from_secs(20));
    assert_eq!(c.restart.signal, Signal::SIGUSR1);
    assert_eq!(c.restart.timeout, Duration::from_secs(3), "file value kept");
    assert!(c.restart.exit_on_change);
    let flags = Overrides {
        refresh: Some("5s".into()),
        listen: Some("[::1]:9001".into()),
        ..Overrides::default()
    };
    let c = load(Some(&path), &e, &flags).unwrap();
    assert_eq!(c.refresh, Duration::from_secs(5));
    assert_eq!(c.sources.refresh, Duration::from_secs(5));
    assert_eq!(c.listen, Some("[::1]:9001".parse().unwrap()));
}

#[test]
fn env_only_form() {
    let e = env(&[
        ("VAULT_ADDR", "http://127.0.0.1:8200"),
        ("VAULT_TOKEN", "s.x"),
        ("VAULT_SECRET_PATH", "kv/data/app,kv/other"),
        ("GANTRY_SECRETS_REFRESH", "2s"),
        ("GANTRY_SECRETS_RESTART_TIMEOUT", "7s"),
    ]);
    let c = load(None, &e, &Overrides::default()).unwrap();
    assert_eq!(c.sources.sources.len(), 2);
    assert_eq!(c.refresh, Duration::from_secs(2));
    assert_eq!(c.restart.timeout, Duration::from_secs(7));
}

fn err(text: &str) -> String {
    let (_d, path) = write(text);
    let e = load(Some(&path), &env(&[]), &Overrides::default()).unwrap_err();
    e.to_string()
}

#[test]
fn errors_name_the_file_and_the_key() {
    let m = err(
        "sources: [{vault: {path: kv/app}}]\noutputs:\n  - path: /tmp/x.env\n    fomat: json\n",
    );
    assert!(m.contains("secrets.yaml") && m.contains("fomat"), "{m}");
    let m = err("sources: [{vault: {path: kv/app}}]\nrefresh: soon\n");
    assert!(
        m.contains("secrets.yaml") && m.contains("refresh") && m.contains("soon"),
        "{m}"
    );
    let m = err("sources: [{vault: {path: kv/app}}]\nlisten: 0.0.0.0:9464\n");
    assert!(m.contains("listen") && m.contains("loopback"), "{m}");
    let m = err("sources: [{vault: {path: kv/app}}]\noutputs: [{path: /tmp/a, mode: '0666'}]\n");
    assert!(m.contains("outputs[0].mode"), "{m}");
    let m = err("sources: [{vault: {path: kv/app}}]\noutputs: [{path: relative.env}]\n");
    assert!(
        m.contains("outputs[0].path") && m.contains("absolute"),
        "{m}"
    );
    let m = err(
        "sources: [{vault: {path: kv/app}}]\noutputs: [{path: /tmp/a, owner: no-such-user-gantry}]\n",
    );
    assert!(
        m.contains("outputs[0].owner") && m.contains("no-such-user-gantry"),
        "{m}"
    );
    let m = err("sources: [{vault: {path: kv/app}}]\non_change: {signal: HUP}\n");
    assert!(m.contains("on_change") && m.contains("pid_file"), "{m}");
    let m = err("sources: [{vault: {path: kv/app}}]\nrestart: {signal: SIGNOPE}\n");
    assert!(m.contains("restart.signal"), "{m}");
    let m =
        err("sources: [{vault: {path: kv/app}}]\noutputs: [{path: /tmp/a, keys: [bad-name]}]\n");
    assert!(
        m.contains("outputs[0].keys") && m.contains("bad-name"),
        "{m}"
    );
    let m = err("sources: [{vault: {}}]\n");
    assert!(
        m.contains("secrets.yaml") && m.contains("sources[0]"),
        "{m}"
    );
    let (_d, path) = write("refresh: 10s\n");
    let m = load(Some(&path), &BTreeMap::new(), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("secrets.yaml") && m.contains("no secret source"),
        "{m}"
    );
    let m = err("outputs: [\n");
    assert!(m.contains("secrets.yaml"), "{m}");
}

#[test]
fn env_and_flag_errors_name_the_variable_or_flag() {
    let base = [
        ("VAULT_ADDR", "http://127.0.0.1:8200"),
        ("VAULT_SECRET_PATH", "kv/app"),
    ];
    let mut e = env(&base);
    e.insert("GANTRY_SECRETS_RESTART_SIGNAL".into(), "LOUDLY".into());
    let m = load(None, &e, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(m.contains("GANTRY_SECRETS_RESTART_SIGNAL"), "{m}");
    let flags = Overrides {
        restart_timeout: Some("forever".into()),
        ..Overrides::default()
    };
    let m = load(None, &env(&base), &flags).unwrap_err().to_string();
    assert!(m.contains("--restart-timeout"), "{m}");
    let m = load(
        Some(Path::new("/nonexistent/gantry.yaml")),
        &env(&base),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(m.contains("/nonexistent/gantry.yaml"), "{m}");
}

#[test]
fn modes_signals_and_listen_forms() {
    let yaml = |s: &str| serde_yaml::from_str::<serde_yaml::Value>(s).unwrap();
    assert_eq!(parse_mode(&yaml("'0600'")), Ok(0o600));
    assert_eq!(parse_mode(&yaml("640")), Ok(0o640));
    assert_eq!(parse_mode(&yaml("0640")), Ok(0o640));
    assert_eq!(parse_mode(&yaml("'0o640'")), Ok(0o640));
    assert!(
        parse_mode(&yaml("'0400'")).is_err(),
        "owner must be able to write"
    );
    assert!(parse_mode(&yaml("'0602'")).is_err(), "world-writable");
    assert_eq!(parse_signal("term"), Ok(Signal::SIGTERM));
    assert_eq!(parse_signal("SIGHUP"), Ok(Signal::SIGHUP));
    assert_eq!(parse_signal("10"), Ok(Signal::SIGUSR1));
    assert!(parse_listen("localhost:80").is_ok());
    assert!(parse_listen("10.0.0.1:80").is_err());
}

#[test]
fn every_problem_is_reported_at_once() {
    let (_d, path) = write(
        "sources: [{vault: {path: kv/app}}]\nvault: {addr: 'http://127.0.0.1:8200'}\nrefresh: soon\nlisten: 0.0.0.0:1\noutputs: [{path: rel.env}, {path: /tmp/a, mode: '0666'}]\n",
    );
    let mut e = env(&[]);
    e.insert("GANTRY_SECRETS_RESTART_SIGNAL".into(), "LOUDLY".into());
    let flags = Overrides {
        stop_timeout: Some("forever".into()),
        ..Overrides::default()
    };
    let m = load(Some(&path), &e, &flags).unwrap_err().to_string();
    assert!(m.starts_with("6 problems:"), "{m}");
    for key in [
        "refresh",
        "listen",
        "outputs[0].path",
        "outputs[1].mode",
        "GANTRY_SECRETS_RESTART_SIGNAL",
        "--stop-timeout",
    ] {
        assert!(m.contains(key), "{key} missing from: {m}");
    }
}

/// Issue 11 item 8: an unquoted `mode:` is read digit by digit as octal, and one that is not a
/// valid octal permission is refused (`mode: 500` became 0764 before).
#[test]
fn unquoted_mode_that_is_not_a_valid_octal_permission_is_refused() {
    let yaml = |s: &str| serde_yaml::from_str::<serde_yaml::Value>(s).unwrap();
    let e = parse_mode(&yaml("500")).unwrap_err();
    assert!(e.contains("0500") && e.contains("owner"), "{e}");
    assert!(parse_mode(&yaml("680")).unwrap_err().contains("digits 0-7"));
    assert!(
        parse_mode(&yaml("0o640")).is_err(),
        "read by YAML as 416: must be quoted"
    );
    assert!(parse_mode(&yaml("1777")).is_err());
    assert_eq!(parse_mode(&yaml("600")), Ok(0o600));
    assert_eq!(parse_mode(&yaml("0644")), Ok(0o644));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.yaml");
    std::fs::write(
        &file,
        "outputs:\n  - path: /run/app/app.env\n    mode: 500\n",
    )
    .unwrap();
    let e = load(
        Some(&file),
        &env(&[
            ("VAULT_ADDR", "http://127.0.0.1:8200"),
            ("VAULT_SECRET_PATH", "kv/app"),
        ]),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("outputs[0].mode"), "{e}");
}

/// Audit: a user name or password in the Vault address (`VAULT_ADDR` or `vault.addr`) would be
/// in every log line and error naming the session (`vault:<addr>`): the configuration is refused
/// (exit 78), naming the key and never quoting the password, and an address that is not a URL
/// is not quoted either.
#[test]
fn a_password_in_the_vault_address_is_refused_and_never_quoted() {
    let refused = |m: &str| {
        assert!(
            m.contains("vault.addr") && m.contains("user name or password"),
            "{m}"
        );
        assert!(m.contains("VAULT_ADDR"), "the hint names the variable: {m}");
    };
    let quiet = |m: &str| {
        for s in ["hunter2pw", "alice-admin", "%40"] {
            assert!(!m.contains(s), "{s} is quoted: {m}");
        }
    };
    let source = [("VAULT_SECRET_PATH", "kv/app")];
    for addr in [
        "https://alice-admin:hunter2pw@vault.example:8200",
        "https://:hunter2pw@vault.example:8200",
        "https://alice-admin@vault.example:8200",
        "http://alice-admin:hunter2pw@127.0.0.1:8200/",
        "https://alice-admin:hunter2pw%40@vault.example:8200",
    ] {
        // From the environment.
        let mut e = env(&source);
        e.insert("VAULT_ADDR".into(), addr.into());
        let err = load(None, &e, &Overrides::default()).unwrap_err();
        let m = err.to_string();
        refused(&m);
        quiet(&m);
        quiet(&format!("{err:?}"));
        assert!(m.starts_with("environment: vault.addr:"), "{m}");
        assert!(matches!(err, ConfigError::Invalid { .. }), "{err:?}");
        // From the file, and from the file under an environment that sets other Vault keys.
        let (_d, path) = write(&format!(
            "sources: [{{vault: {{path: kv/app}}}}]\nvault: {{addr: '{addr}'}}\n"
        ));
        for e in [env(&[]), env(&[("VAULT_NAMESPACE", "team")])] {
            let err = load(Some(&path), &e, &Overrides::default()).unwrap_err();
            let m = err.to_string();
            refused(&m);
            quiet(&m);
            quiet(&format!("{err:?}"));
            assert!(m.contains("secrets.yaml"), "{m}");
        }
    }
    // Not a URL (a space in the host): the key and the parse problem, not the value.
    for addr in [
        "https://alice-admin:hunter2pw@vault example:8200",
        "https://alice-admin:hunter2pw@vault.example:port",
        "alice-admin:hunter2pw",
    ] {
        let mut e = env(&source);
        e.insert("VAULT_ADDR".into(), addr.into());
        let err = load(None, &e, &Overrides::default()).unwrap_err();
        let m = err.to_string();
        assert!(m.contains("vault.addr"), "{m}");
        quiet(&m);
        quiet(&format!("{err:?}"));
    }
    // The same address without user info loads.
    let mut e = env(&source);
    e.insert("VAULT_ADDR".into(), "https://vault.example:8200".into());
    load(None, &e, &Overrides::default()).unwrap();
}

mod edited {
    //! Property test of the parser: a valid file edited at random (a line dropped, doubled, or
    //! its value replaced by arbitrary text) loads, or fails with an error that names the file;
    //! it never panics.

    use proptest::prelude::*;

    use super::*;

    fn edit(kind: u8, line: usize, text: &str) -> String {
        gantry_tests::edit_line(FULL, kind, line, text)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn an_edited_file_loads_or_names_the_file(
            kind in any::<u8>(),
            line in any::<usize>(),
            text in "\\PC{0,24}",
        ) {
            let (_dir, path) = write(&edit(kind, line, &text));
            if let Err(e) = load(Some(&path), &env(&[]), &Overrides::default()) {
                let msg = e.to_string();
                prop_assert!(msg.contains(&path.display().to_string()), "{}", msg);
            }
        }
    }
}
