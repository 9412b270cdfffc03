//! The `docker-credential-*` helper protocol with a real helper executable.
//!
//! What: each test writes `docker-credential-gantrytest`, a small shell script, into its own
//! temp dir and points [`DockerConfigCredentials`] at that dir as its search path; the script
//! logs its argv and stdin, answers from a file, says "credentials not found" for unknown
//! registries, and can hang or print garbage. Checked: `credHelpers` wins over `credsStore`
//! wins over `auths`, Docker Hub is asked as `https://index.docker.io/v1/`, the credential is
//! never in argv, `<token>` answers are identity tokens, helper failures name the registry and
//! the helper without echoing what the helper printed on stdout as an answer.
//!
//! Limits: needs `/bin/sh`; nothing else.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gantry_agent::registry::{DockerConfigCredentials, RegistryError};

const HELPER: &str = r#"#!/bin/sh
dir="$(dirname "$0")"
printf '%s\n' "$*" >>"$dir/argv.log"
server="$(cat)"
printf '%s\n' "$server" >>"$dir/servers.log"
[ "$1" = get ] || { echo "unsupported action: $1"; exit 1; }
case "$server" in
reg.example.com | https://index.docker.io/v1/)
	printf '{"ServerURL":"%s","Username":"alice","Secret":"%s"}\n' "$server" "$(cat "$dir/secret")" ;;
tok.example.com)
	printf '{"ServerURL":"%s","Username":"<token>","Secret":"%s"}\n' "$server" "$(cat "$dir/secret")" ;;
slow.example.com)
	exec sleep 30 ;;
garbage.example.com)
	printf 'Username=alice Secret=%s\n' "$(cat "$dir/secret")" ;;
broken.example.com)
	echo "keychain locked" >&2; exit 3 ;;
answered-then-failed.example.com)
	printf '{"ServerURL":"%s","Username":"alice","Secret":"%s"}\n' "$server" "$(cat "$dir/secret")"
	echo "cannot update the keychain" >&2; exit 1 ;;
*)
	echo "credentials not found in native keychain"; exit 1 ;;
esac
"#;

const SECRET: &str = "s3cret-from-helper";

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-gantrytest");
        std::fs::write(&helper, HELPER).unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("secret"), SECRET).unwrap();
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn creds(&self) -> DockerConfigCredentials {
        DockerConfigCredentials::new(Some(self.path().join("config.json")))
            .with_search_path(format!("/nonexistent:{}", self.path().display()))
    }

    fn log(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.path().join(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test]
async fn cred_helpers_answer_and_the_secret_never_reaches_argv() {
    let s = Setup::new(
        r#"{"credHelpers": {"reg.example.com": "gantrytest", "tok.example.com": "gantrytest"},
            "auths": {"reg.example.com": {"auth": "aWdub3JlZDppZ25vcmVk"}}}"#,
    );
    let creds = s.creds();
    let auth = creds.auth("reg.example.com").await.unwrap().unwrap();
    assert_eq!(auth.username, "alice");
    assert_eq!(auth.password.expose(), SECRET);
    assert_eq!(auth.server_address, "reg.example.com");
    assert!(!format!("{auth:?}").contains(SECRET));

    let tok = creds.auth("TOK.example.com").await.unwrap().unwrap();
    assert_eq!(tok.identity_token.as_ref().unwrap().expose(), SECRET);
    assert!(tok.username.is_empty() && tok.password.expose().is_empty());

    // No helper for this one and no credsStore: `auths`, and nothing there: anonymous.
    assert!(creds.auth("other.example.com").await.unwrap().is_none());

    assert_eq!(s.log("argv.log"), ["get", "get"]);
    assert_eq!(s.log("servers.log"), ["reg.example.com", "tok.example.com"]);
}

#[tokio::test]
async fn creds_store_covers_every_registry_and_not_found_is_anonymous() {
    let s = Setup::new(
        r#"{"credsStore": "gantrytest", "auths": {"https://index.docker.io/v1/": {}, "nowhere.example.com": {}}}"#,
    );
    let creds = s.creds();
    let hub = creds.auth("docker.io").await.unwrap().unwrap();
    assert_eq!(hub.username, "alice");
    assert_eq!(hub.server_address, "https://index.docker.io/v1/");
    assert!(creds.auth("nowhere.example.com").await.unwrap().is_none());
    assert_eq!(
        s.log("servers.log"),
        ["https://index.docker.io/v1/", "nowhere.example.com"]
    );
}

#[tokio::test]
async fn helper_failures_name_the_registry_and_the_helper() {
    let s = Setup::new(r#"{"credsStore": "gantrytest"}"#);
    let creds = s.creds().with_helper_timeout(Duration::from_millis(500));

    let err = creds.auth("broken.example.com").await.unwrap_err();
    assert!(matches!(err, RegistryError::Helper { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("broken.example.com")
            && msg.contains("docker-credential-gantrytest")
            && msg.contains("keychain locked"),
        "{msg}"
    );

    // The helper sleeps 30 s: cut at the helper timeout (500 ms), which the message names.
    let msg = creds
        .auth("slow.example.com")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("slow.example.com") && msg.contains("no answer within 500ms"),
        "{msg}"
    );

    let msg = creds
        .auth("garbage.example.com")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("garbage.example.com") && msg.contains("JSON"),
        "{msg}"
    );
    assert!(!msg.contains(SECRET), "{msg}");

    // An answer printed before a failure is not quoted as the error message: stderr is.
    let msg = creds
        .auth("answered-then-failed.example.com")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("answered-then-failed.example.com")
            && msg.contains("cannot update the keychain"),
        "{msg}"
    );
    assert!(!msg.contains(SECRET), "{msg}");
}

#[tokio::test]
async fn helpers_are_looked_up_by_name_only() {
    let s = Setup::new(
        r#"{"credHelpers": {"a.example.com": "missing", "b.example.com": "../gantrytest"}}"#,
    );
    let creds = s.creds();
    let msg = creds.auth("a.example.com").await.unwrap_err().to_string();
    assert!(
        msg.contains("a.example.com") && msg.contains("docker-credential-missing not found"),
        "{msg}"
    );
    let msg = creds.auth("b.example.com").await.unwrap_err().to_string();
    assert!(msg.contains("not a helper name"), "{msg}");
    assert!(s.log("argv.log").is_empty());
}

#[tokio::test]
async fn no_config_file_is_anonymous() {
    let creds = DockerConfigCredentials::new(Some(PathBuf::from("/nonexistent/config.json")));
    assert!(creds.auth("reg.example.com").await.unwrap().is_none());
    let creds = DockerConfigCredentials::new(None);
    assert!(creds.auth("reg.example.com").await.unwrap().is_none());
}
