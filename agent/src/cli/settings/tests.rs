use std::path::Path;

use super::*;

fn settings(yaml: &str) -> Result<Settings, ConfigError> {
    Ok(Settings {
        path: PathBuf::from("/etc/gantry/gantry.yaml"),
        raw: serde_yaml::from_str(yaml).map_err(|e| ConfigError::Invalid {
            path: PathBuf::from("/etc/gantry/gantry.yaml"),
            message: e.to_string(),
        })?,
    })
}

fn daemon(yaml: &str) -> Result<DaemonConfig, ConfigError> {
    settings(&format!("daemon: {yaml}\n"))?.daemon_section(
        Path::new("/tmp"),
        Path::new("/run/gantry/gantry.sock"),
        None,
    )
}

#[test]
fn missing_file_is_default_and_unknown_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Settings::load(dir.path()).unwrap();
    assert_eq!(s.path, dir.path().join("gantry.yaml"));
    std::fs::write(dir.path().join("gantry.yaml"), "registres: {}\n").unwrap();
    let err = Settings::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("gantry.yaml") && err.contains("registres"),
        "{err}"
    );
}

#[test]
fn daemon_defaults_and_overrides() {
    let c = daemon("{}").unwrap();
    assert_eq!(c.heal, HealConfig::default());
    assert!(c.policy("web").reconcile && !c.policy("web").watch_compose_files);
    let c = daemon(
        "{heal: {max_restarts: 3, window: 1m}, stacks: {web: {reconcile: false, watch_compose_files: true}}}",
    )
    .unwrap();
    assert_eq!(c.heal.max_restarts, 3);
    assert_eq!(c.heal.window, Duration::from_secs(60));
    assert!(!c.policy("web").reconcile && c.policy("web").watch_compose_files);
    assert!(c.policy("other").reconcile);
}

#[test]
fn bad_daemon_values_name_the_key() {
    let e = daemon("{heal: {window: soon}}").unwrap_err().to_string();
    assert!(e.contains("daemon.heal.window"), "{e}");
    let e = daemon("{metrics_address: 0.0.0.0:9464}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("loopback"), "{e}");
    // From the command line or the environment: named as such, not as the file's key.
    let e = settings("daemon: {}\n")
        .unwrap()
        .daemon_section(
            Path::new("/tmp"),
            Path::new("/run/gantry/gantry.sock"),
            Some("0.0.0.0:9464"),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--metrics-address")
            && e.contains("GANTRY_METRICS_ADDRESS")
            && e.contains("loopback")
            && !e.contains("gantry.yaml"),
        "{e}"
    );
    let e = daemon("{stacks: {Web: {}}}").unwrap_err().to_string();
    assert!(
        e.contains("daemon.stacks.Web") && e.contains("not a stack name"),
        "{e}"
    );
    assert!(settings("daemon: {helth: {}}").is_err());
}

#[test]
fn registries_are_validated_naming_the_file_and_the_key() {
    let none = |_: &str| None;
    let s = settings("registries:\n  ecr: ['a b']\n").unwrap();
    let e = s.registries_with(&none).unwrap_err().to_string();
    assert!(
        e.contains("/etc/gantry/gantry.yaml") && e.contains("registries.ecr[0]"),
        "{e}"
    );
    let s = settings("registries:\n  ecr: ['ecr.example.com']\n").unwrap();
    let c = s.registries_with(&none).unwrap();
    assert!(c.is_ecr("ecr.example.com"));
    // The environment wins over the file.
    let env = |k: &str| (k == "GANTRY_ECR_REGISTRIES").then(|| "other.example.com".to_owned());
    let c = s.registries_with(&env).unwrap();
    assert!(c.is_ecr("other.example.com") && !c.is_ecr("ecr.example.com"));
}

mod edited {
    //! Property test of `gantry.yaml`'s parser: the packaged file with a `registries:` section,
    //! edited at random (a line dropped, doubled, or its value replaced by arbitrary text),
    //! loads and validates, or fails with an error that names the file; it never panics.

    use proptest::prelude::*;

    use super::*;

    const FULL: &str = concat!(
        include_str!("../../../../packaging/gantry.yaml"),
        "  stacks:\n    web:\n      reconcile: false\n      watch_compose_files: true\n",
        "registries:\n  docker_config: /etc/gantry/docker/config.json\n",
        "  ecr:\n    - registry.internal.example.com\n  ecr_region: eu-west-1\n",
    );

    fn edit(kind: u8, line: usize, text: &str) -> String {
        gantry_tests::edit_line(FULL, kind, line, text)
    }

    fn load(text: &str) -> Result<(), ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gantry.yaml"), text).unwrap();
        let s = Settings::load(dir.path())?;
        s.daemon_section(
            Path::new("/tmp"),
            Path::new("/run/gantry/gantry.sock"),
            None,
        )?;
        s.registries_with(&|_| None)?;
        Ok(())
    }

    #[test]
    fn the_full_file_is_valid() {
        load(FULL).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn an_edited_file_loads_or_names_the_file(
            kind in any::<u8>(),
            line in any::<usize>(),
            text in "\\PC{0,24}",
        ) {
            if let Err(e) = load(&edit(kind, line, &text)) {
                let msg = e.to_string();
                prop_assert!(msg.contains("gantry.yaml"), "{}", msg);
            }
        }
    }
}

/// A variable whose name or value is not UTF-8 (a Latin-1 value left by a login script) is
/// left out of the environment instead of panicking (exit 101); the others are all there.
#[test]
fn variables_that_are_not_utf8_are_left_out() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt as _;
    let vars = vec![
        (OsString::from("IMAGE_TAG"), OsString::from("3f2a1c")),
        (
            OsString::from("LATIN1"),
            OsString::from_vec(b"caf\xe9".to_vec()),
        ),
        (OsString::from_vec(b"N\xffME".to_vec()), OsString::from("x")),
        (OsString::from("EMPTY"), OsString::new()),
    ];
    let env = utf8_variables(vars);
    assert_eq!(
        env,
        BTreeMap::from([
            ("EMPTY".to_string(), String::new()),
            ("IMAGE_TAG".to_string(), "3f2a1c".to_string()),
        ])
    );
}
