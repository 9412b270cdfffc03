//! [`S3Source`]: fetches a bundle with `aws-sdk-s3` GetObject, with the host's AWS credentials
//! (the instance role on EC2) and `AWS_ENDPOINT_URL` honoured (path-style then, as S3
//! stand-ins on loopback need). The SDK's tracing is kept out of ours during the call.

use aws_config::{BehaviorVersion, Region};
use aws_sdk_s3::error::ProvideErrorMetadata;
use tracing::instrument::WithSubscriber as _;

use super::{BundleError, BundleSource, S3Location};

/// S3 through the AWS SDK.
#[derive(Debug, Clone)]
pub struct S3Source {
    client: aws_sdk_s3::Client,
}

impl S3Source {
    /// A client from the standard chain, in `region` when given; `endpoint` (an S3-compatible
    /// stand-in) switches to path-style addressing.
    pub async fn from_env(region: Option<String>, endpoint: Option<String>) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(r) = region {
            loader = loader.region(Region::new(r));
        }
        let sdk = loader.load().with_subscriber(quiet()).await;
        let mut conf = aws_sdk_s3::config::Builder::from(&sdk);
        if endpoint.is_some() || sdk.endpoint_url().is_some() {
            conf = conf.force_path_style(true);
        }
        if let Some(e) = endpoint {
            conf = conf.endpoint_url(e);
        }
        Self {
            client: aws_sdk_s3::Client::from_conf(conf.build()),
        }
    }
}

fn quiet() -> tracing::Dispatch {
    tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default())
}

#[async_trait::async_trait]
impl BundleSource for S3Source {
    async fn fetch(&self, location: &S3Location, limit: u64) -> Result<Vec<u8>, BundleError> {
        let url = location.to_string();
        let fetch_err = |message: String| BundleError::Fetch {
            url: url.clone(),
            message,
        };
        let out = self
            .client
            .get_object()
            .bucket(&location.bucket)
            .key(&location.key)
            .send()
            .with_subscriber(quiet())
            .await
            .map_err(|e| {
                let e = e.into_service_error();
                fetch_err(format!(
                    "{}: {}",
                    e.code().unwrap_or("error"),
                    e.message()
                        .unwrap_or("no message (network or credentials?)")
                ))
            })?;
        if out
            .content_length()
            .is_some_and(|n| n > 0 && n as u64 > limit)
        {
            return Err(BundleError::TooLarge { url, limit });
        }
        let mut body = out.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| fetch_err(e.to_string()))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > limit {
                return Err(BundleError::TooLarge { url, limit });
            }
        }
        Ok(bytes)
    }
}

impl S3Source {
    /// Uploads `bytes` to `location` (CI's side of a bundle).
    pub async fn put(&self, location: &S3Location, bytes: Vec<u8>) -> Result<(), BundleError> {
        self.client
            .put_object()
            .bucket(&location.bucket)
            .key(&location.key)
            .body(bytes.into())
            .send()
            .with_subscriber(quiet())
            .await
            .map(|_| ())
            .map_err(|e| {
                let e = e.into_service_error();
                BundleError::Fetch {
                    url: location.to_string(),
                    message: format!(
                        "upload: {}: {} (hint: the CI role needs s3:PutObject on it)",
                        e.code().unwrap_or("error"),
                        e.message()
                            .unwrap_or("no message (network or credentials?)")
                    ),
                }
            })
    }
}
