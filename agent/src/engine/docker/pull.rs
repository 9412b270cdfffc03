//! Pulling an image: Docker's streamed `create image` with the registry's credentials, each
//! progress line handed to the caller, and a failure classified ([`PullFailure`]) from the
//! status or the message Docker put in the stream.
//!
//! Design: a method of [`DockerEngine`] used by `pull_image`; the image is inspected after the
//! stream ends, so a pull that reports success without leaving the image is an error. A
//! connection lost once Docker accepted the pull is [`PullFailure::Interrupted`] of that image,
//! not the daemon unreachable.

use super::*;
use crate::engine::Engine as _;

impl DockerEngine {
    /// Pulls `image` (for `platform`, with `auth`), reporting each progress line.
    pub(super) async fn pull(
        &self,
        image: &ImageRef,
        platform: Option<&str>,
        auth: Option<&RegistryAuth>,
        progress: Option<PullProgressFn<'_>>,
    ) -> Result<ImageInfo> {
        let registry = image.registry().to_owned();
        let pull_error = |kind, reason: String| EngineError::Pull {
            image: image.to_string(),
            registry: registry.clone(),
            kind,
            reason,
        };
        let tag = image
            .digest()
            .map_or_else(|| image.tag_or_latest().to_owned(), |d| d.to_string());
        let options = CreateImageOptions {
            from_image: Some(image.repository().to_owned()),
            tag: Some(tag),
            platform: platform.unwrap_or_default().to_owned(),
            ..Default::default()
        };
        let credentials = auth.map(|a| DockerCredentials {
            username: Some(a.username.clone()),
            password: Some(a.password.expose().clone()),
            serveraddress: Some(a.server_address.clone()),
            identitytoken: a.identity_token.as_ref().map(|t| t.expose().clone()),
            ..Default::default()
        });
        debug!(image = %image, registry = %registry, authenticated = auth.is_some(), "pulling image");
        let mut stream = self.docker.create_image(Some(options), None, credentials);
        let mut accepted = false;
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                Err(e) => return Err(stream_error(&self.host, image, accepted, e)),
            };
            accepted = true;
            if let Some(detail) = info.error_detail {
                let message = detail.message.unwrap_or_default();
                return Err(pull_error(classify_pull(0, &message), message));
            }
            if let Some(report) = progress {
                let detail = info.progress_detail.unwrap_or_default();
                report(&PullProgress {
                    layer: info.id,
                    status: info.status.unwrap_or_default(),
                    current: detail.current.and_then(|c| u64::try_from(c).ok()),
                    total: detail.total.and_then(|t| u64::try_from(t).ok()),
                });
            }
        }
        let info = self.inspect_image(image).await?.ok_or_else(|| {
            pull_error(
                PullFailure::Other,
                "the pull reported success but the image is not present".into(),
            )
        })?;
        debug!(image = %image, registry = %registry, id = %short_id(&info.id), "image pulled");
        Ok(info)
    }
}

/// An error of the pull's stream: Docker's refusal or the error it put in the stream, sorted
/// ([`classify_pull`]). A transport failure before Docker accepted the request (`accepted`:
/// a progress line came) is the daemon being unreachable; after it (the connection cut,
/// dockerd restarted) it is this pull interrupted, naming the image and its registry.
pub(super) fn stream_error(
    host: &str,
    image: &ImageRef,
    accepted: bool,
    e: BollardError,
) -> EngineError {
    let pull_error = |kind, reason: String| EngineError::Pull {
        image: image.to_string(),
        registry: image.registry().to_owned(),
        kind,
        reason,
    };
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => pull_error(classify_pull(status_code, &message), message),
        BollardError::DockerStreamError { error } => pull_error(classify_pull(0, &error), error),
        e if accepted => pull_error(
            PullFailure::Interrupted,
            format!(
                "the connection to the Docker daemon at {host} broke during the pull: {e}; \
                 hint: check that dockerd runs (`systemctl status docker`), then deploy again \
                 (the layers already pulled are kept)"
            ),
        ),
        e => map_error(host, Object::Image(image.to_string()), e),
    }
}
