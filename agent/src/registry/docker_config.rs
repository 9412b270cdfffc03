//! Credentials from docker's `config.json`: `credHelpers`, `credsStore` and `auths`.
//!
//! What: [`DockerConfigCredentials::auth`] answers like the docker CLI does for a pull: the
//! registry's `credHelpers` entry wins, then `credsStore`, then the `auths` entry (`auth` =
//! base64 `user:password`, or `username`/`password`, or `identitytoken`): the one whose key is
//! exactly the registry's server name (`reg.example.com`, or `https://index.docker.io/v1/`),
//! else the first other spelling of it in sorted order (`https://reg.example.com/v2/`). A
//! helper runs the `docker-credential-<name> get` protocol: the server URL on stdin,
//! `{ServerURL, Username, Secret}` as JSON on stdout (`Username: "<token>"` means `Secret` is
//! an identity token); "credentials not found" means anonymous, as with docker.
//!
//! Design: the file is read on every lookup (a `docker login` is seen at once) and never
//! written. Helpers are looked up in the search path captured at construction and run by
//! absolute path, without a shell, with only `get` in argv, a timeout and kill on drop. Helper
//! names are checked (`[A-Za-z0-9._-]`) so a config cannot name a path. Errors never quote the
//! file's or the helper's output beyond the helper's own error message (bounded).
//!
//! Limits: `HttpHeaders`, `proxies` and the other CLI-only keys are ignored; helper answers are
//! not cached (each pull asks again).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use gantry_common::Secret;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{RegistryError, normalise_registry};
use crate::engine::{DOCKER_HUB, RegistryAuth};

/// How long a credential helper may take.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(30);
/// The key docker uses for Docker Hub in `auths` and with helpers.
pub const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";
/// Helper's own error messages are cut to this length in our errors.
const HELPER_MESSAGE_MAX: usize = 200;

/// Credentials from one docker config file.
#[derive(Debug, Clone)]
pub struct DockerConfigCredentials {
    path: Option<PathBuf>,
    /// Directories searched for `docker-credential-*` (the process's `PATH` by default).
    search_path: Option<OsString>,
    timeout: Duration,
}

/// `config.json` as far as credentials go (other keys are ignored).
#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl std::fmt::Debug for AuthEntry {
    /// Says which fields are set, never their values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthEntry")
            .field("auth", &self.auth.is_some())
            .field("username", &self.username.is_some())
            .field("password", &self.password.is_some())
            .field("identitytoken", &self.identitytoken.is_some())
            .finish()
    }
}

/// What a helper prints for `get`.
#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

impl DockerConfigCredentials {
    /// Reads `path` (none: anonymous for every registry); helpers from the process's `PATH`.
    pub fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            search_path: std::env::var_os("PATH"),
            timeout: HELPER_TIMEOUT,
        }
    }

    /// Looks helpers up in `search_path` (`PATH` syntax) instead of the process's `PATH`.
    pub fn with_search_path(mut self, search_path: impl Into<OsString>) -> Self {
        self.search_path = Some(search_path.into());
        self
    }

    /// Bounds each helper run (default [`HELPER_TIMEOUT`]).
    pub fn with_helper_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Credentials for `registry` (any spelling [`normalise_registry`] accepts); `None` when
    /// the file or its entries say nothing about it.
    pub async fn auth(&self, registry: &str) -> Result<Option<RegistryAuth>, RegistryError> {
        let host = normalise_registry(registry);
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let Some(file) = read_config(path, &host).await? else {
            return Ok(None);
        };
        let server = server_url(&host);
        let helper = file
            .cred_helpers
            .iter()
            .find(|(k, _)| normalise_registry(k) == host)
            .map(|(_, v)| v.as_str())
            .or(file.creds_store.as_deref())
            .filter(|h| !h.is_empty());
        if let Some(helper) = helper {
            return self.run_helper(helper, &host, &server).await;
        }
        // Like docker: the exact key first, then any other spelling of the registry (a
        // scheme, a path, another case) in sorted order.
        let Some(entry) = file.auths.get(&server).or_else(|| {
            file.auths
                .iter()
                .find(|(k, _)| normalise_registry(k) == host)
                .map(|(_, v)| v)
        }) else {
            return Ok(None);
        };
        let auth = from_entry(entry, &host, &server, path)?;
        if auth.is_some() {
            tracing::debug!(registry = %host, source = "auths", "registry credentials from the docker config");
        }
        Ok(auth)
    }

    /// `docker-credential-<helper> get` with `server` on stdin.
    async fn run_helper(
        &self,
        helper: &str,
        host: &str,
        server: &str,
    ) -> Result<Option<RegistryAuth>, RegistryError> {
        let fail = |reason: String| RegistryError::Helper {
            registry: host.to_owned(),
            helper: helper.to_owned(),
            reason,
        };
        let valid = !helper.starts_with('.')
            && helper
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            return Err(fail(
                "not a helper name (only letters, digits, '.', '_' and '-')".into(),
            ));
        }
        let program = format!("docker-credential-{helper}");
        let exe = self
            .find_program(&program)
            .ok_or_else(|| fail(format!("{program} not found in PATH")))?;
        let mut child = tokio::process::Command::new(&exe)
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", exe.display())))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let run = async {
            // A helper that exits without reading stdin is judged by its exit status below.
            let _ = stdin.write_all(server.as_bytes()).await;
            drop(stdin);
            child.wait_with_output().await
        };
        let output = match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return Err(fail(format!("cannot run: {e}"))),
            Err(_) => {
                return Err(fail(format!(
                    "no answer within {}",
                    humantime::format_duration(self.timeout)
                )));
            }
        };
        if !output.status.success() {
            // Helpers print their error message on stdout (and some on stderr). A helper may
            // print its answer and still fail: stdout that names a secret is never quoted.
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            let withheld = stdout.to_ascii_lowercase().contains("secret");
            let stdout = if withheld { "" } else { stdout.trim() };
            let message = [stdout, stderr.trim()]
                .into_iter()
                .find(|m| !m.is_empty())
                .unwrap_or(if withheld {
                    "(its output is not shown: it held a credential)"
                } else {
                    ""
                })
                .to_owned();
            if message
                .to_ascii_lowercase()
                .contains("credentials not found")
            {
                tracing::debug!(registry = %host, helper, "credential helper has no credentials: pulling anonymously");
                return Ok(None);
            }
            return Err(fail(format!(
                "exited with {}: {}",
                output.status,
                bounded(&message)
            )));
        }
        let answer: HelperAnswer = serde_json::from_slice(&output.stdout).map_err(|e| {
            fail(format!(
                "its answer is not the helper protocol's JSON ({:?} at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        if answer.username.is_empty() && answer.secret.is_empty() {
            return Ok(None);
        }
        tracing::debug!(registry = %host, helper, "registry credentials from a credential helper");
        let secret = Secret::new(answer.secret);
        Ok(Some(if answer.username == "<token>" {
            RegistryAuth {
                server_address: server.to_owned(),
                username: String::new(),
                password: Secret::new(String::new()),
                identity_token: Some(secret),
            }
        } else {
            RegistryAuth {
                server_address: server.to_owned(),
                username: answer.username,
                password: secret,
                identity_token: None,
            }
        }))
    }

    /// `program` in the search path, as an absolute path to an executable file.
    fn find_program(&self, program: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt as _;
        let search = self.search_path.as_ref()?;
        std::env::split_paths(search)
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(program))
            .find(|p| {
                std::fs::metadata(p)
                    .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                    .unwrap_or(false)
            })
    }
}

/// The name docker hands helpers and uses as the `auths` key.
fn server_url(host: &str) -> String {
    if host == DOCKER_HUB {
        DOCKER_HUB_SERVER.to_owned()
    } else {
        host.to_owned()
    }
}

/// Reads and parses the file; a missing file is `None`. Parse errors give the position and
/// kind only, never the text around it.
async fn read_config(path: &Path, host: &str) -> Result<Option<ConfigFile>, RegistryError> {
    let fail = |reason: String| RegistryError::DockerConfig {
        registry: host.to_owned(),
        path: path.to_owned(),
        reason,
    };
    let bytes = match tokio::fs::read(path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(format!("cannot read: {e}"))),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        fail(format!(
            "not valid ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

/// An `auths` entry as credentials; an empty entry (left by `credsStore` logins) is `None`.
fn from_entry(
    entry: &AuthEntry,
    host: &str,
    server: &str,
    path: &Path,
) -> Result<Option<RegistryAuth>, RegistryError> {
    let fail = |reason: &str| RegistryError::DockerConfig {
        registry: host.to_owned(),
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let (mut username, mut password) = (
        entry.username.clone().unwrap_or_default(),
        Secret::new(entry.password.clone().unwrap_or_default()),
    );
    if let Some(encoded) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| fail("auths entry: `auth` is not base64"))?;
        let decoded = Secret::new(
            String::from_utf8(decoded).map_err(|_| fail("auths entry: `auth` is not UTF-8"))?,
        );
        let (user, pass) = decoded
            .expose()
            .split_once(':')
            .ok_or_else(|| fail("auths entry: `auth` is not base64 of user:password"))?;
        username = user.to_owned();
        password = Secret::new(pass.to_owned());
    }
    let identity_token = entry
        .identitytoken
        .clone()
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    if username.is_empty() && password.expose().is_empty() && identity_token.is_none() {
        return Ok(None);
    }
    Ok(Some(RegistryAuth {
        server_address: server.to_owned(),
        username,
        password,
        identity_token,
    }))
}

/// `s` cut to [`HELPER_MESSAGE_MAX`] bytes on a char boundary.
fn bounded(s: &str) -> String {
    if s.len() <= HELPER_MESSAGE_MAX {
        return s.to_owned();
    }
    let mut end = HELPER_MESSAGE_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
