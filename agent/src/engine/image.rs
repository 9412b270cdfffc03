//! Image references and what the engine says about images: [`ImageRef`] split the way Docker
//! splits it, [`Digest`], [`ImageInfo`], registry credentials for a pull ([`RegistryAuth`]) and
//! pull progress.
//!
//! Design: plain values with no I/O; Docker Hub shorthands (`nginx`, `library/nginx`,
//! `docker.io/library/nginx`) compare equal where Docker treats them so.
//!
//! Limits: references are not validated beyond splitting; Docker refuses bad ones.

use std::fmt;

use gantry_common::Secret;

/// Docker Hub's registry host, as `docker login` and credential stores name it.
pub const DOCKER_HUB: &str = "docker.io";

/// An image reference as written in a Compose file: `[registry/]repository[:tag][@digest]`.
///
/// Parsing follows Docker's rule: the first path component is a registry when it contains a `.`
/// or a `:` or is `localhost`; otherwise the image is on Docker Hub.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef(String);

impl ImageRef {
    pub fn new(reference: impl Into<String>) -> Self {
        Self(reference.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `registry/repository` or `repository` as written, without tag or digest.
    pub fn repository(&self) -> &str {
        let no_digest = self.0.split_once('@').map_or(self.0.as_str(), |(r, _)| r);
        // A ':' after the last '/' is a tag; one before it is a registry port.
        match no_digest.rfind(':') {
            Some(colon) if !no_digest[colon..].contains('/') => &no_digest[..colon],
            _ => no_digest,
        }
    }

    /// The tag, if one is written.
    pub fn tag(&self) -> Option<&str> {
        let repo = self.repository();
        let rest = &self.0[repo.len()..];
        let rest = rest.split_once('@').map_or(rest, |(t, _)| t);
        rest.strip_prefix(':')
    }

    /// The digest, if the reference is pinned (`repo@sha256:...`).
    pub fn digest(&self) -> Option<Digest> {
        self.0.split_once('@').map(|(_, d)| Digest(d.to_owned()))
    }

    /// The registry host (with port) the image is pulled from: `docker.io` for Hub images.
    pub fn registry(&self) -> &str {
        match self.repository().split_once('/') {
            Some((first, _))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                first
            }
            _ => DOCKER_HUB,
        }
    }

    /// The same repository pinned to `digest`: `repository@digest` (the tag is dropped, since
    /// Docker resolves a `tag@digest` reference by digest anyway).
    pub fn with_digest(&self, digest: &Digest) -> ImageRef {
        ImageRef(format!("{}@{}", self.repository(), digest.as_str()))
    }

    /// The reference Docker pulls when the tag is omitted: `:latest` is added.
    pub fn tag_or_latest(&self) -> &str {
        self.tag().unwrap_or("latest")
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ImageRef {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for ImageRef {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// A content digest, `sha256:<64 hex>`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    /// Accepts `algo:hex` (e.g. `sha256:ab12...`).
    pub fn parse(s: &str) -> Option<Self> {
        let (algo, hex) = s.split_once(':')?;
        let ok = !algo.is_empty()
            && algo.bytes().all(|b| b.is_ascii_alphanumeric())
            && hex.len() >= 32
            && hex.bytes().all(|b| b.is_ascii_hexdigit());
        ok.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, for compact output.
    pub fn short(&self) -> &str {
        let hex = self.0.split_once(':').map_or(self.0.as_str(), |(_, h)| h);
        &hex[..hex.len().min(12)]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What Docker knows of a local image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The image id (`sha256:...` of its config): what containers record as their image.
    pub id: String,
    /// `repository@sha256:...` for every registry the image was pulled from or pushed to.
    /// Empty for images that only exist locally (built or imported).
    pub repo_digests: Vec<String>,
    pub repo_tags: Vec<String>,
    /// The mount points the image declares (`VOLUME`), sorted (from an inspect; a listing
    /// leaves them empty).
    pub volumes: Vec<String>,
}

impl ImageInfo {
    /// The registry digest of this image for `reference`'s repository, if it came from one.
    pub fn digest_for(&self, reference: &ImageRef) -> Option<Digest> {
        let wanted = normalise_repository(reference.repository());
        self.repo_digests.iter().find_map(|rd| {
            let (repo, digest) = rd.split_once('@')?;
            (normalise_repository(repo) == wanted)
                .then(|| Digest::parse(digest))
                .flatten()
        })
    }
}

/// `nginx` and `docker.io/library/nginx` name the same repository.
fn normalise_repository(repo: &str) -> String {
    let r = ImageRef::new(repo);
    let (registry, path) = match repo.split_once('/') {
        Some((first, rest)) if r.registry() == first => (first, rest),
        _ => (DOCKER_HUB, repo),
    };
    if registry == DOCKER_HUB && !path.contains('/') {
        format!("{DOCKER_HUB}/library/{path}")
    } else {
        format!("{registry}/{path}")
    }
}

/// Credentials for one registry, sent with a pull as `X-Registry-Auth`.
#[derive(Debug, Clone)]
pub struct RegistryAuth {
    /// The registry host as the credentials name it, e.g. `123.dkr.ecr.eu-west-1.amazonaws.com`.
    pub server_address: String,
    pub username: String,
    pub password: Secret<String>,
    /// An OAuth identity token instead of a password (`docker login` with some registries).
    pub identity_token: Option<Secret<String>>,
}

/// One progress message of a pull, as Docker sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullProgress {
    /// Layer id, when the message is about one layer.
    pub layer: Option<String>,
    /// `Pulling fs layer`, `Downloading`, `Pull complete`, `Digest: sha256:...`, ...
    pub status: String,
    pub current: Option<u64>,
    pub total: Option<u64>,
}

/// Called for every progress message of a pull (draw a bar, print a line, or nothing).
pub type PullProgressFn<'a> = &'a (dyn Fn(&PullProgress) + Send + Sync);
