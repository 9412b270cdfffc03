//! Render tests: dotenv quoting and round trips (our decoder, proptest, and the real Docker
//! Compose v2 binary when the machine has one), key checks, partial outputs, json, raw, writes.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

fn snap(pairs: &[(&str, &str)]) -> Snapshot {
    Snapshot::of(pairs)
}

fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, Secret<String>> {
    snap(pairs).values
}

fn output(path: &str, format: Format) -> Output {
    Output {
        path: PathBuf::from(path),
        format,
        mode: 0o600,
        uid: None,
        gid: None,
        sources: None,
        keys: None,
        on_change: None,
    }
}

/// Values that break naive quoting.
const NASTY: &[(&str, &str)] = &[
    ("PLAIN", "hunter2"),
    ("EMPTY", ""),
    ("SPACES", "  two  spaces  "),
    ("HASH", "a # not a comment"),
    ("HASH0", "#start"),
    ("DOLLAR", "$HOME ${HOME} $$ $"),
    ("DQ", "say \"hi\""),
    ("SQ", "it's"),
    ("BOTH", "'\"'\""),
    ("BACKSLASH", "C:\\path\\n\\t"),
    ("TRAILING_BS", "ends with \\"),
    ("NEWLINES", "line1\nline2\n"),
    ("CRLF", "a\r\nb"),
    ("MIXED", "p@ss'w\"o$rd\\ #1\nnext = line"),
    ("EQUALS", "a=b=c"),
    ("UNICODE", "é ✓ 🦀"),
    ("TAB", "a\tb"),
];

#[test]
fn quoting_rules() {
    assert_eq!(dotenv_quote("simple"), "'simple'");
    assert_eq!(dotenv_quote("$HOME #x"), "'$HOME #x'");
    assert_eq!(dotenv_quote("it's"), "\"it's\"");
    assert_eq!(dotenv_quote("a\nb"), "\"a\\nb\"");
    assert_eq!(dotenv_quote("x\\"), "\"x\\\\\"");
    assert_eq!(dotenv_quote("'$'"), "\"'\\$'\"");
}

#[test]
fn nasty_values_round_trip_through_our_decoder() {
    let v = values(NASTY);
    let text = encode_dotenv(&v);
    let back = decode_dotenv(&text).unwrap();
    for (k, val) in NASTY {
        assert_eq!(back.get(*k).map(String::as_str), Some(*val), "{k}");
    }
}

proptest! {
    #[test]
    fn dotenv_round_trips(map in prop::collection::btree_map("[A-Za-z_][A-Za-z0-9_]{0,12}", any::<String>().prop_filter("no NUL", |s| !s.contains('\0')), 0..8)) {
        let v: BTreeMap<String, Secret<String>> = map.iter().map(|(k, v)| (k.clone(), Secret::from(v.as_str()))).collect();
        let back = decode_dotenv(&encode_dotenv(&v)).unwrap();
        prop_assert_eq!(back, map);
    }

    #[test]
    fn dotenv_round_trips_shell_heavy(map in prop::collection::btree_map("[A-Z_]{1,6}", "[ -~\n\r\t'\"$#\\\\]{0,24}", 0..6)) {
        let v: BTreeMap<String, Secret<String>> = map.iter().map(|(k, v)| (k.clone(), Secret::from(v.as_str()))).collect();
        let back = decode_dotenv(&encode_dotenv(&v)).unwrap();
        prop_assert_eq!(back, map);
    }
}

/// The Docker Compose v2 binary, if this machine has one: `COMPOSE_BIN`, the test environment
/// file's `COMPOSE_BIN`, or `docker-compose` on PATH.
fn compose_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("COMPOSE_BIN")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
    {
        return Some(p);
    }
    let env_file = std::env::var("GANTRY_TEST_ENV_FILE")
        .unwrap_or_else(|_| "/var/cache/gantry/test-env/env".into());
    if let Ok(text) = std::fs::read_to_string(env_file)
        && let Some(p) = text.lines().find_map(|l| l.strip_prefix("COMPOSE_BIN="))
    {
        let p = PathBuf::from(p.trim_matches(|c| c == '"' || c == '\''));
        if p.is_file() {
            return Some(p);
        }
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("docker-compose"))
        .find(|p| p.is_file())
}

/// `docker compose config` (v2, no daemon needed) reads our env file back exactly.
#[test]
fn docker_compose_reads_the_dotenv_file_back_exactly() {
    let compose = compose_bin();
    if !gantry_tests::prerequisite(
        compose.is_some(),
        "a Docker Compose v2 binary (set COMPOSE_BIN or run tests/env/up compose)",
    ) {
        return;
    }
    let Some(compose) = compose else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut all: Vec<(String, String)> = NASTY
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    // and a deterministic batch of random shell-heavy values
    let alphabet: Vec<char> = " '\"$#\\\n\r\t{}=ab-é".chars().collect();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..60 {
        let mut s = String::new();
        for _ in 0..(i % 17) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        all.push((format!("R{i}"), s));
    }
    let v: BTreeMap<String, Secret<String>> = all
        .iter()
        .map(|(k, v)| (k.clone(), Secret::from(v.as_str())))
        .collect();
    std::fs::write(dir.path().join("app.env"), encode_dotenv(&v)).unwrap();
    std::fs::write(
        dir.path().join("compose.yaml"),
        "services:\n  app:\n    image: busybox\n    env_file: [app.env]\n",
    )
    .unwrap();
    let out = std::process::Command::new(&compose)
        .current_dir(dir.path())
        .env_remove("COMPOSE_FILE")
        .args(["-p", "gantry-dotenv-test", "config", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "compose failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let envs = model["services"]["app"]["environment"].as_object().unwrap();
    for (k, want) in &all {
        // `config` escapes `$` as `$$` in what it prints (it is re-interpolatable YAML/JSON).
        let got = envs
            .get(k)
            .and_then(|v| v.as_str())
            .map(|s| s.replace("$$", "$"));
        assert_eq!(
            got.as_deref(),
            Some(want.as_str()),
            "{k}: compose read {got:?}"
        );
    }
    assert_eq!(envs.len(), all.len());
}

#[test]
fn invalid_key_is_named_without_the_value() {
    let s = snap(&[("good", "x"), ("bad-key", "topsecretvalue")]);
    let e = merge("app.env", &[("vault:kv/app", &s)], None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad-key") && e.contains("vault:kv/app") && e.contains("app.env"),
        "{e}"
    );
    assert!(!e.contains("topsecretvalue"), "{e}");
}

/// Review item: a NUL in a value passed `merge` (only names were checked), so a rotated value
/// with one stopped the old child and then failed to start the new one, naming no key.
#[test]
fn a_nul_in_a_value_is_refused_for_an_environment_naming_the_key_not_the_value() {
    let s = snap(&[("GOOD", "x"), ("TOKEN", "top\0secret")]);
    for target in ["the child's environment", "app.env"] {
        let e = merge(target, &[("vault:kv/app", &s)], None).unwrap_err();
        assert!(matches!(e, RenderError::NulInValue { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("\"TOKEN\"") && e.contains("vault:kv/app") && e.contains(target),
            "{e}"
        );
        assert!(!e.contains("top") && !e.contains("secret\""), "{e}");
    }
    // A dotenv output refuses it too; json and raw files are not environments and keep it.
    let mut o = output("/run/app.env", Format::Dotenv);
    let view = [("vault:kv/app", Some(&s))];
    assert!(matches!(
        render(&o, &view),
        Err(RenderError::NulInValue { .. })
    ));
    o.format = Format::Json;
    assert!(render(&o, &view).unwrap().is_some());
}

#[test]
fn collisions_and_missing_keys_are_errors() {
    let a = snap(&[("A", "1")]);
    let b = snap(&[("A", "2")]);
    let e = merge("env", &[("s1", &a), ("s2", &b)], None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("s1") && e.contains("s2") && e.contains("\"A\""),
        "{e}"
    );
    let e = merge("env", &[("s1", &a)], Some(&["B".to_owned()]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"B\""), "{e}");
}

#[test]
fn outputs_wait_for_all_their_sources() {
    let a = snap(&[("A", "1")]);
    let mut o = output("/tmp/x.env", Format::Dotenv);
    assert!(
        render(&o, &[("s1", Some(&a)), ("s2", None)])
            .unwrap()
            .is_none()
    );
    o.sources = Some(vec!["s1".into()]);
    let c = render(&o, &[("s1", Some(&a)), ("s2", None)])
        .unwrap()
        .unwrap();
    assert_eq!(c.expose(), b"A='1'\n");
}

#[test]
fn json_and_raw() {
    let a = snap(&[("A", "1"), ("B", "x\"y")]);
    let o = output("/tmp/x.json", Format::Json);
    let c = render(&o, &[("s", Some(&a))]).unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_slice(c.expose()).unwrap();
    assert_eq!(v, serde_json::json!({"A": "1", "B": "x\"y"}));

    let mut raw = output("/tmp/x.key", Format::Raw);
    assert!(matches!(
        render(&raw, &[("s", Some(&a))]),
        Err(RenderError::RawAmbiguous { .. })
    ));
    raw.keys = Some(vec!["B".into()]);
    assert_eq!(
        render(&raw, &[("s", Some(&a))]).unwrap().unwrap().expose(),
        b"x\"y"
    );

    let bin = Snapshot {
        values: BTreeMap::new(),
        binary: Some(Secret::new(vec![0, 159, 146, 150])),
        version: "v".into(),
    };
    let raw = output("/tmp/x.bin", Format::Raw);
    assert_eq!(
        render(&raw, &[("b", Some(&bin))])
            .unwrap()
            .unwrap()
            .expose(),
        &[0, 159, 146, 150]
    );
}

#[test]
fn unknown_output_source_is_named() {
    let mut o = output("/tmp/x.env", Format::Dotenv);
    o.sources = Some(vec!["vault:kv/nope".into()]);
    let e = check_sources(&[o], &["vault:kv/app".into()])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("vault:kv/nope") && e.contains("vault:kv/app"),
        "{e}"
    );
}

#[test]
fn writes_with_mode_only_on_change() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let o = output(dir.path().join("app.env").to_str().unwrap(), Format::Dotenv);
    let a = snap(&[("A", "1")]);
    let c = render(&o, &[("s", Some(&a))]).unwrap().unwrap();
    assert!(write(&o, &c).unwrap());
    let m = std::fs::metadata(&o.path).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
    assert!(!write(&o, &c).unwrap());
    assert_eq!(std::fs::metadata(&o.path).unwrap().ino(), m.ino());
}
