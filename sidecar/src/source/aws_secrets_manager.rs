//! AWS Secrets Manager source.
//!
//! Design:
//! - One [`SmClient`] per process, built by [`client`] through
//!   [`proxy::aws_sdk_config`](super::proxy::aws_sdk_config) from aws-config's standard chain
//!   (over an HTTP client that sends only `https://` requests to other hosts through a proxy):
//!   credentials from the environment, ECS/App Runner container credentials
//!   (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`/`FULL_URI`), profile files, or IMDSv2 on EC2;
//!   region from `AWS_REGION`/`AWS_DEFAULT_REGION`/profile; endpoint from `AWS_ENDPOINT_URL`
//!   (or `AWS_ENDPOINT_URL_SECRETS_MANAGER`). The `aws:` block of the configuration overrides
//!   region and endpoint.
//! - `GetSecretValue` by name or ARN, with a version stage (default `AWSCURRENT`) or a version
//!   id. A `SecretString` holding a JSON object expands into one variable per key (nested values
//!   become JSON text), or `key` picks one; `name` puts the whole string under one variable.
//!   A `SecretBinary` goes to [`Snapshot::binary`] (for raw file outputs).
//! - Change check every `refresh`: `DescribeSecret` → `VersionIdsToStages`; the secret is read
//!   again only when the stage moved to another version id (a rotation or `PutSecretValue`).
//!   A pinned `version_id` never changes and is not polled.
//! - Every call runs inside `gantry_common::aws::quiet`: the SDK logs whole responses (the
//!   secret value) at TRACE, and those events are dropped.
//!
//! - A response body is read up to [`MAX_BODY`] (1 MiB: a secret is at most 64 KiB), never
//!   more ([`BodyCap`]): one whose `Content-Length` is above is refused before its body is read,
//!   one without `Content-Length` (chunked) is cut off, with the same error, as soon as it
//!   passes the cap.
//!
//! Limits: No cross-account role assumption beyond what the standard chain does
//! (`AWS_ROLE_ARN` web identity, profiles); no `BatchGetSecretValue`; a binary secret has no
//! variables unless a renderer writes it to a file.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_types::body::SdkBody;
use gantry_common::{Secret, aws};
use serde_json::Value;
use tokio::time::Instant;

use super::config::{AwsConfig, AwsSourceSpec, AwsVersion};
use super::{Snapshot, Source, SourceError};

/// The Secrets Manager client shared by all AWS sources.
pub type SmClient = aws_sdk_secretsmanager::Client;

/// Builds the client from the standard AWS configuration chain plus the `aws:` overrides.
pub async fn client(cfg: &AwsConfig) -> SmClient {
    let sdk = super::proxy::aws_sdk_config(
        cfg.region.as_deref(),
        cfg.endpoint_url.as_ref().map(|u| u.as_str()),
    )
    .await;
    SmClient::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&sdk)
            .interceptor(BodyCap)
            .build(),
    )
}

/// The largest Secrets Manager response body read.
pub const MAX_BODY: u64 = 1 << 20;

/// Refuses a response announced larger than [`MAX_BODY`] before the SDK reads its body, and
/// caps the body as it is read when no length was announced ([`CappedBody`]).
#[derive(Debug)]
pub struct BodyCap;

/// The error of a response body larger than [`MAX_BODY`].
fn too_large(size: &str) -> Box<dyn std::error::Error + Send + Sync> {
    format!(
        "the response ({size}) is larger than the {} KiB cap",
        MAX_BODY >> 10
    )
    .into()
}

/// A response body that fails as soon as more than [`MAX_BODY`] bytes have come through it.
struct CappedBody {
    inner: std::pin::Pin<Box<SdkBody>>,
    read: u64,
}

impl http_body::Body for CappedBody {
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = self.inner.as_mut().poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.read = self.read.saturating_add(data.len() as u64);
            if self.read > MAX_BODY {
                let size = format!("more than {} bytes", self.read);
                return std::task::Poll::Ready(Some(Err(too_large(&size))));
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl aws_sdk_secretsmanager::config::Intercept for BodyCap {
    fn name(&self) -> &'static str {
        "gantry_body_cap"
    }

    fn read_before_deserialization(
        &self,
        context: &aws_sdk_secretsmanager::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _components: &aws_sdk_secretsmanager::config::RuntimeComponents,
        _cfg: &mut aws_sdk_secretsmanager::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let length = context
            .response()
            .headers()
            .get("content-length")
            .and_then(|v| v.parse::<u64>().ok());
        match length {
            Some(n) if n > MAX_BODY => Err(too_large(&format!("{n} bytes"))),
            _ => Ok(()),
        }
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_secretsmanager::config::interceptors::BeforeDeserializationInterceptorContextMut<'_>,
        _components: &aws_sdk_secretsmanager::config::RuntimeComponents,
        _cfg: &mut aws_sdk_secretsmanager::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let response = context.response_mut();
        let inner = Box::pin(response.take_body());
        *response.body_mut() = SdkBody::from_body_1_x(CappedBody { inner, read: 0 });
        Ok(())
    }
}

/// One Secrets Manager secret.
#[derive(Debug)]
pub struct AwsSource {
    spec: AwsSourceSpec,
    id: String,
    client: SmClient,
    refresh: Duration,
    /// VersionId of the last snapshot.
    version: Option<String>,
    due: Option<Instant>,
}

impl AwsSource {
    pub fn new(spec: AwsSourceSpec, client: SmClient, refresh: Duration) -> Self {
        let id = super::SourceSpec::Aws(spec.clone()).id();
        Self {
            spec,
            id,
            client,
            refresh,
            version: None,
            due: None,
        }
    }

    fn schedule(&mut self) {
        let d = self.refresh.mul_f64(1.0 - rand::random_range(0.0..0.1));
        self.due = Some(Instant::now() + d);
    }

    fn sdk_err<E, R>(&self, op: &str, e: SdkError<E, R>) -> SourceError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let id = &self.spec.id;
        if let SdkError::ServiceError(se) = &e {
            let code = se.err().code().unwrap_or("Unknown");
            let msg = se.err().message().unwrap_or("");
            let hint = match code {
                "ResourceNotFoundException" => Some(format!(
                    "no secret `{id}` (or no version with that stage/id) in this account and region: check the name or ARN and AWS_REGION"
                )),
                "AccessDeniedException" => Some(format!(
                    "the credentials' policy lacks secretsmanager:{op} on {id}"
                )),
                "DecryptionFailure" => Some(format!(
                    "the credentials cannot use the KMS key that encrypts {id} (kms:Decrypt)"
                )),
                "InvalidRequestException" => {
                    Some("the secret may be scheduled for deletion".to_owned())
                }
                "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "ExpiredTokenException"
                | "InvalidClientTokenId" => Some(
                    "the AWS credentials are invalid or expired; check the credential chain"
                        .to_owned(),
                ),
                _ => None,
            };
            let mut err = SourceError::new(&self.id, format!("{op} failed: {code}: {msg}"));
            err.hint = hint;
            return err;
        }
        let hint = match &e {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                "cannot reach Secrets Manager: check AWS_REGION, AWS_ENDPOINT_URL and the network"
            }
            _ => {
                "check that AWS credentials are available (environment, container credentials, IMDSv2) and a region is set"
            }
        };
        SourceError::new(
            &self.id,
            format!("{op} failed: {}", DisplayErrorContext(&e)),
        )
        .with_hint(hint)
    }

    async fn read(&mut self) -> Result<Snapshot, SourceError> {
        let mut req = self.client.get_secret_value().secret_id(&self.spec.id);
        req = match &self.spec.version {
            AwsVersion::Stage(s) => req.version_stage(s),
            AwsVersion::Id(v) => req.version_id(v),
        };
        // The SDK logs the response (the secret value) at TRACE: its events go nowhere.
        let out = aws::quiet(req.send())
            .await
            .map_err(|e| self.sdk_err("GetSecretValue", e))?;
        let version = out.version_id().unwrap_or("").to_owned();
        let prefix = self.spec.prefix.as_deref().unwrap_or("");
        let mut values = BTreeMap::new();
        let mut binary = None;
        if let Some(s) = out.secret_string() {
            values = expand(&self.id, &self.spec, prefix, s)?;
        } else if let Some(b) = out.secret_binary() {
            if self.spec.key.is_some() {
                return Err(
                    SourceError::new(&self.id, "the secret is binary: it has no keys")
                        .with_hint("remove `key`; a binary secret goes to a raw file output"),
                );
            }
            binary = Some(Secret::new(b.as_ref().to_vec()));
        } else {
            return Err(SourceError::new(&self.id, "the secret has no value")
                .with_hint("put a value with PutSecretValue"));
        }
        Ok(Snapshot {
            values,
            binary,
            version,
        })
    }

    /// The version id that currently carries the configured stage.
    async fn staged_version(&self, stage: &str) -> Result<String, SourceError> {
        let out = aws::quiet(
            self.client
                .describe_secret()
                .secret_id(&self.spec.id)
                .send(),
        )
        .await
        .map_err(|e| self.sdk_err("DescribeSecret", e))?;
        out.version_ids_to_stages()
            .into_iter()
            .flatten()
            .find(|(_, stages)| stages.iter().any(|s| s == stage))
            .map(|(v, _)| v.clone())
            .ok_or_else(|| {
                SourceError::new(&self.id, format!("no version has the stage {stage}"))
                    .with_hint("check `stage`; AWSCURRENT always exists once a value was put")
            })
    }
}

/// Turns a secret string into variables. Never puts the value, or a parser message that could
/// quote it, into an error.
fn expand(
    id: &str,
    spec: &AwsSourceSpec,
    prefix: &str,
    s: &str,
) -> Result<BTreeMap<String, Secret<String>>, SourceError> {
    let mut out = BTreeMap::new();
    if spec.key.is_none()
        && let Some(name) = &spec.name
    {
        out.insert(format!("{prefix}{name}"), Secret::from(s));
        return Ok(out);
    }
    let parsed: Option<serde_json::Map<String, Value>> = match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    };
    let Some(map) = parsed else {
        return Err(SourceError::new(id, "the secret string is not a JSON object").with_hint(
            "set `name` to take the whole string as one variable (GANTRY_SECRETS_AWS_IDS expects JSON objects)",
        ));
    };
    let text = |v: &Value| match v {
        Value::String(s) => Secret::from(s.as_str()),
        other => Secret::new(other.to_string()),
    };
    match &spec.key {
        Some(k) => {
            let v = map.get(k).ok_or_else(|| {
                let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                SourceError::new(id, format!("no key `{k}` in the secret"))
                    .with_hint(format!("the keys there are: {}", keys.join(", ")))
            })?;
            let name = spec.name.as_deref().unwrap_or(k);
            out.insert(format!("{prefix}{name}"), text(v));
        }
        None => {
            for (k, v) in &map {
                out.insert(format!("{prefix}{k}"), text(v));
            }
        }
    }
    Ok(out)
}

#[async_trait::async_trait]
impl Source for AwsSource {
    fn id(&self) -> &str {
        &self.id
    }

    async fn fetch(&mut self) -> Result<Snapshot, SourceError> {
        let snap = self.read().await?;
        tracing::info!(secret_ref = %self.id, source = "aws", version = %snap.version,
            keys = snap.values.len(), binary = snap.binary.is_some(), "aws secret read");
        self.version = Some(snap.version.clone());
        self.schedule();
        Ok(snap)
    }

    async fn refresh(&mut self) -> Result<Option<Snapshot>, SourceError> {
        let Some(current) = self.version.clone() else {
            return self.fetch().await.map(Some);
        };
        if self.due.is_some_and(|d| d > Instant::now()) {
            return Ok(None);
        }
        self.schedule();
        let AwsVersion::Stage(stage) = &self.spec.version else {
            // A pinned version id never changes.
            return Ok(None);
        };
        let staged = self.staged_version(&stage.clone()).await?;
        if staged == current {
            return Ok(None);
        }
        let snap = self.read().await?;
        if snap.version == current {
            return Ok(None);
        }
        tracing::info!(secret_ref = %self.id, source = "aws", version = %snap.version,
            previous = %current, "aws secret changed");
        self.version = Some(snap.version.clone());
        Ok(Some(snap))
    }

    fn next_refresh(&self) -> Duration {
        match self.due {
            None if self.version.is_none() => Duration::ZERO,
            None => self.refresh,
            Some(d) => d.saturating_duration_since(Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: Option<&str>, name: Option<&str>) -> AwsSourceSpec {
        AwsSourceSpec {
            id: "prod/app".into(),
            version: AwsVersion::Stage("AWSCURRENT".into()),
            key: key.map(Into::into),
            name: name.map(Into::into),
            prefix: None,
        }
    }

    #[tokio::test]
    async fn responses_above_the_cap_are_refused_before_their_body_is_read() {
        let e = fetch_oversized(true).await;
        assert!(
            e.contains("(2097171 bytes) is larger than the 1024 KiB cap"),
            "{e}"
        );
        assert!(!e.contains("vvvv"), "the body is not quoted: {e}");
    }

    #[tokio::test]
    async fn responses_without_a_length_are_cut_off_at_the_cap() {
        let e = fetch_oversized(false).await;
        assert!(e.contains("is larger than the 1024 KiB cap"), "{e}");
        assert!(!e.contains("vvvv"), "the body is not quoted: {e}");
    }

    /// Fetches from a Secrets Manager stand-in on loopback (moto cannot send an oversized
    /// answer) that answers 2 MiB, with its `Content-Length` or chunked without one; the error.
    async fn fetch_oversized(with_length: bool) -> String {
        use aws_sdk_secretsmanager::config::{Credentials, Region};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                let body = format!("{{\"SecretString\":\"{}\"}}", "v".repeat(2 << 20));
                let framing = if with_length {
                    format!("content-length: {}", body.len())
                } else {
                    "transfer-encoding: chunked".to_owned()
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\n{framing}\r\nconnection: close\r\n\r\n"
                );
                let _ = s.write_all(head.as_bytes()).await;
                if with_length {
                    let _ = s.write_all(body.as_bytes()).await;
                    continue;
                }
                for chunk in body.as_bytes().chunks(64 << 10) {
                    let framed =
                        [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
                    if s.write_all(&framed).await.is_err() {
                        break;
                    }
                }
                let _ = s.write_all(b"0\r\n\r\n").await;
            }
        });
        let conf = aws_sdk_secretsmanager::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "AKIDTEST",
                "test-secret",
                None,
                None,
                "test",
            ))
            .endpoint_url(format!("http://127.0.0.1:{port}"))
            .interceptor(BodyCap)
            .build();
        let mut source = AwsSource::new(
            spec(None, None),
            SmClient::from_conf(conf),
            Duration::from_secs(60),
        );
        source.fetch().await.unwrap_err().to_string()
    }

    #[test]
    fn json_expands_and_nested_values_become_json_text() {
        let v = expand(
            "aws:prod/app",
            &spec(None, None),
            "P_",
            r#"{"user":"u1","port":5432,"tls":{"mode":"verify"}}"#,
        )
        .unwrap();
        assert_eq!(v["P_user"].expose(), "u1");
        assert_eq!(v["P_port"].expose(), "5432");
        assert_eq!(v["P_tls"].expose(), r#"{"mode":"verify"}"#);
    }

    #[test]
    fn key_and_name() {
        let s = r#"{"user":"u1","password":"pw-secret"}"#;
        let v = expand("aws:x", &spec(Some("password"), Some("DB_PASS")), "", s).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v["DB_PASS"].expose(), "pw-secret");
        let v = expand("aws:x", &spec(None, Some("WHOLE")), "", "plain-value").unwrap();
        assert_eq!(v["WHOLE"].expose(), "plain-value");
    }

    #[test]
    fn errors_never_quote_the_value() {
        let e = expand("aws:x", &spec(None, None), "", "not-json-hunter2").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().starts_with("aws:x: "), "{e}");
        let e = expand("aws:x", &spec(Some("nope"), None), "", r#"{"a":"hunter2"}"#).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("the keys there are: a"), "{e}");
    }
}
