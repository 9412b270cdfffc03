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
