//! Smoke tests of the test environment itself (tests/env/up): every service answers for real.
//! Docker runs the local busybox image and serves a page, the registry checks passwords, OpenBao,
//! moto and PostgreSQL answer, and the Docker Compose v2 binary runs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::Duration;

use gantry_tests::{docker, env, http_get, unique, wait_for};

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Removes the container when the test ends, passed or not.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.0]);
    }
}

/// A GET on a loopback URL with extra headers; returns the status and body.
fn get_with_headers(url: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    request("GET", url, headers, "")
}

/// One HTTP/1.0 request to a loopback URL; returns the status and body.
fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Option<(u16, String)> {
    let rest = url.strip_prefix("http://").expect("http:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    assert!(
        authority.starts_with("127.") || authority.starts_with("localhost"),
        "{url} is not loopback"
    );
    let mut stream = TcpStream::connect(authority).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let status = raw.split_whitespace().nth(1)?.parse().ok()?;
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Some((status, body.to_string()))
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        gantry_tests::base64(format!("{user}:{password}"))
    )
}

#[test]
fn docker_answers() {
    let version = ok(
        &docker(&["version", "--format", "{{.Server.Version}}"]),
        "docker version",
    );
    assert!(!version.is_empty());
}

#[test]
fn busybox_image_has_its_applets() {
    let image = env().get("GANTRY_TEST_IMAGE");
    let script = "for a in sh httpd wget nc sleep cat echo ls env kill ps date mkdir rm grep \
                  test true false printf id hostname; do command -v $a >/dev/null || echo missing $a; done; \
                  test -d /var/www && test -k /tmp && grep -q '^root:' /etc/passwd && \
                  grep -q '^root:' /etc/group && echo ok";
    let out = ok(
        &docker(&["run", "--rm", image, "sh", "-c", script]),
        "docker run busybox",
    );
    assert_eq!(out, "ok");
}

#[test]
fn busybox_httpd_serves_a_page_on_a_published_loopback_port() {
    let image = env().get("GANTRY_TEST_IMAGE");
    let name = unique("smoke-httpd");
    let script = "mkdir -p /srv && echo hello-from-busybox > /srv/index.html && \
                  exec httpd -f -p 8080 -h /srv";
    let _guard = Container(name.clone());
    ok(
        &docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "-p",
            "127.0.0.1::8080",
            image,
            "sh",
            "-c",
            script,
        ]),
        "docker run httpd",
    );
    let port = ok(&docker(&["port", &name, "8080/tcp"]), "docker port");
    let addr = port
        .lines()
        .find(|l| l.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("no 127.0.0.1 binding in {port:?}"))
        .to_string();
    let (status, body) = wait_for("busybox httpd", Duration::from_secs(20), || {
        http_get(&format!("http://{addr}/index.html")).filter(|(s, _)| *s == 200)
    });
    assert_eq!(status, 200);
    assert_eq!(body.trim(), "hello-from-busybox");
}

#[test]
fn registry_rejects_a_wrong_password_and_accepts_the_right_one() {
    let e = env();
    let url = format!("http://{}/v2/", e.get("GANTRY_TEST_REGISTRY"));
    let user = e.get("GANTRY_TEST_REGISTRY_USER");
    let password = e.get("GANTRY_TEST_REGISTRY_PASSWORD");

    let (anonymous, _) = get_with_headers(&url, &[]).expect("registry answers");
    assert_eq!(anonymous, 401);
    let wrong = basic(user, &format!("{password}-wrong"));
    let (status, _) = get_with_headers(&url, &[("Authorization", &wrong)]).expect("registry");
    assert_eq!(status, 401);
    let right = basic(user, password);
    let (status, _) = get_with_headers(&url, &[("Authorization", &right)]).expect("registry");
    assert_eq!(status, 200);
    // moto's ECR token password is accepted too (user AWS), for the ECR path.
    let ecr = basic(
        e.get("GANTRY_TEST_REGISTRY_ECR_USER"),
        e.get("GANTRY_TEST_REGISTRY_ECR_PASSWORD"),
    );
    let (status, _) = get_with_headers(&url, &[("Authorization", &ecr)]).expect("registry");
    assert_eq!(status, 200);
}

#[test]
fn openbao_answers_health_and_the_root_token() {
    let e = env();
    let addr = e.get("VAULT_ADDR");
    let (status, body) = http_get(&format!("{addr}/v1/sys/health")).expect("bao answers");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"sealed\":false"), "{body}");
    let (status, body) = get_with_headers(
        &format!("{addr}/v1/auth/token/lookup-self"),
        &[("X-Vault-Token", e.get("GANTRY_TEST_VAULT_ROOT_TOKEN"))],
    )
    .expect("bao answers");
    assert_eq!(status, 200, "{body}");
    let (status, _) = get_with_headers(
        &format!("{addr}/v1/auth/token/lookup-self"),
        &[("X-Vault-Token", "not-a-token")],
    )
    .expect("bao answers");
    assert_eq!(status, 403);
    let out = Command::new(e.get("BAO_BIN"))
        .arg("version")
        .output()
        .expect("run bao");
    assert!(ok(&out, "bao version").contains("OpenBao"));
}

#[test]
fn moto_answers() {
    let endpoint = env().get("GANTRY_TEST_AWS_ENDPOINT");
    // moto's own config endpoint: small and constant (data.json grows with every test's state
    // and outgrows the 2 s of http_get on a busy machine).
    let (status, body) = http_get(&format!("{endpoint}/moto-api/config")).expect("moto answers");
    assert!(status == 200 || status == 201, "{status}: {body}");
    let config: serde_json::Value = serde_json::from_str(&body).expect("moto returns JSON");
    assert!(config.is_object(), "{body}");
}

#[test]
fn moto_ecr_token_is_a_password_the_registry_accepts() {
    let e = env();
    let region = e.get("GANTRY_TEST_AWS_REGION");
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={}/20260101/{region}/ecr/aws4_request, \
         SignedHeaders=host, Signature=00",
        e.get("GANTRY_TEST_AWS_ACCESS_KEY_ID")
    );
    let (status, body) = request(
        "POST",
        &format!("{}/", e.get("GANTRY_TEST_AWS_ENDPOINT")),
        &[
            ("Content-Type", "application/x-amz-json-1.1"),
            (
                "X-Amz-Target",
                "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
            ),
            ("Authorization", &auth),
        ],
        "{}",
    )
    .expect("moto answers");
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let token = json["authorizationData"][0]["authorizationToken"]
        .as_str()
        .expect("authorizationToken");
    let (user, password) = (
        e.get("GANTRY_TEST_REGISTRY_ECR_USER"),
        e.get("GANTRY_TEST_REGISTRY_ECR_PASSWORD"),
    );
    assert_eq!(token, gantry_tests::base64(format!("{user}:{password}")));
    let url = format!("http://{}/v2/", e.get("GANTRY_TEST_REGISTRY"));
    let (status, _) =
        get_with_headers(&url, &[("Authorization", &format!("Basic {token}"))]).expect("registry");
    assert_eq!(status, 200);
}

#[test]
fn postgres_accepts_a_login_and_rejects_a_wrong_password() {
    let e = env();
    let psql = |password: &str| {
        Command::new(e.get("GANTRY_TEST_PSQL"))
            .args([
                "-h",
                e.get("GANTRY_TEST_PG_HOST"),
                "-p",
                e.get("GANTRY_TEST_PG_PORT"),
                "-U",
                e.get("GANTRY_TEST_PG_USER"),
                "-d",
                e.get("GANTRY_TEST_PG_DATABASE"),
                "-w",
                "-Atc",
                "select current_user",
            ])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .expect("run psql")
    };
    let out = psql(e.get("GANTRY_TEST_PG_PASSWORD"));
    assert_eq!(ok(&out, "psql login"), e.get("GANTRY_TEST_PG_USER"));
    assert!(!psql("wrong-password").status.success());
}

#[test]
fn compose_v2_binary_runs() {
    let out = Command::new(env().get("COMPOSE_BIN"))
        .args(["version", "--short"])
        .output()
        .expect("run docker-compose");
    let version = ok(&out, "docker-compose version");
    assert!(version.starts_with('2'), "{version}");
}
