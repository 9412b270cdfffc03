//! Stack bundles: how a stack's Compose files reach a host from CI.
//!
//! What: CI packs the stack's directory (compose.yaml, overrides, .env, config files) as one
//! `.tar.gz`, uploads it to S3 and sends its SHA-256 with the deploy (`Gantry-Deploy`'s
//! `BundleUrl` and `BundleSha256`). On the host `gantry fetch-bundle STACK --from s3://B/K
//! --sha256 HEX` fetches it with the instance role ([`S3Source`]), refuses it unless the
//! checksum matches, and installs its files into the stack's directory ([`install`]).
//!
//! Design: nothing is written before the whole bundle is fetched, verified and read: a bundle
//! with an entry Gantry refuses (absolute path, `..`, link, device, FIFO, too deep, too many
//! files, too large once unpacked, headers and long names included, a file that is also the
//! directory of another) changes nothing ([`read_bundle`]). [`install`] runs under the
//! stack's lock (`fetch-bundle` takes it, as deploys do), and checks where each file goes
//! against the disk before any write: a directory the previous bundle installed that is now a
//! file (or a file that is now a directory) is cleared of the previous bundle's files first;
//! anything else in the way (a file no bundle installed, such as a hand-made `.env`, unless it
//! holds exactly the bundle's bytes; a link, there or in place of a directory above it; a
//! FIFO) is refused naming it ([`BundleError::InTheWay`], exit 65) and nothing is written or
//! removed; nothing is written or removed through a link below the stack's directory. Files are then written one by one atomically
//! (temp file, fsync, rename), only where their content changed, with modes cut to 0750 at
//! most; a manifest (`.gantry-bundle.json`) lists what bundles installed, so files a newer
//! bundle no longer carries are removed while files the bundle never owned (the env file
//! `gantry-secrets` renders beside compose.yaml) are left alone. The manifest is written
//! before the first change too, listing the previous files and, as pending, the new ones with
//! the checksum of their bytes, so an install cut short leaves no file it wrote unowned
//! ([`BundleError::Interrupted`]); stopped by an error, it then lists what it wrote, and
//! killed, a pending file is the bundle's only while it holds those bytes. Installing the
//! same bundle again writes nothing. [`pack`] refuses what hosts would refuse.
//!
//! Limits: S3 only (`s3://bucket/key`, the instance's credentials and region, or
//! `AWS_ENDPOINT_URL`); gzip-compressed tar only; 64 MiB fetched, 256 MiB unpacked, 2,000 entries.

mod install;
mod s3;
mod unpack;

use std::path::{Path, PathBuf};

#[cfg(test)]
pub(crate) use install::seam;
pub use install::{Installed, install};
pub use s3::S3Source;
pub use unpack::{BundleFile, read_bundle};

/// Largest bundle fetched.
pub const MAX_BUNDLE: u64 = 64 * 1024 * 1024;
/// Largest total of file contents once unpacked.
pub const MAX_UNPACKED: u64 = 256 * 1024 * 1024;
/// Most entries in one bundle.
pub const MAX_ENTRIES: usize = 2_000;
/// The manifest of what the last bundle installed, in the stack's directory.
pub const MANIFEST: &str = ".gantry-bundle.json";

/// Whether the relative path `path` is the manifest or under a directory of its name.
fn is_manifest_path(path: &str) -> bool {
    path == MANIFEST || path.starts_with(&format!("{MANIFEST}/"))
}

/// Why a bundle was not installed. Nothing was written unless the variant says so.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{url}: not a bundle location: {reason} (expected s3://BUCKET/KEY)")]
    Url { url: String, reason: &'static str },
    #[error("--sha256 {value:?}: expected 64 lowercase hex digits (sha256sum of the bundle)")]
    Sha256 { value: String },
    #[error("{url}: cannot fetch: {message} (hint: the instance role needs s3:GetObject on it)")]
    Fetch { url: String, message: String },
    #[error("{url}: larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error(
        "{url}: checksum mismatch: expected sha256 {expected}, got {actual} (the object changed after CI uploaded it, or the wrong key was sent); nothing installed"
    )]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{url}: {entry}: {reason}; nothing installed")]
    Entry {
        url: String,
        entry: String,
        reason: String,
    },
    #[error("{url}: not a gzip-compressed tar: {message}; nothing installed")]
    Format { url: String, message: String },
    #[error(
        "{}: in the way of the bundle's `{entry}`: {reason}; nothing installed (hint: move it out of the stack's directory, or remove it to let the bundle install and own its own, then fetch the bundle again)",
        path.display()
    )]
    InTheWay {
        path: PathBuf,
        entry: String,
        reason: String,
    },
    #[error("{}: {message}", path.display())]
    Write { path: PathBuf, message: String },
    /// Written in part: the manifest records every file the install wrote.
    #[error(
        "{}: {message}; the install stopped part-way ({}); the stack's manifest records every file it wrote (hint: fix the cause, then run fetch-bundle again with the same bundle: it completes the install)",
        path.display(),
        changed_summary(changed)
    )]
    Interrupted {
        path: PathBuf,
        message: String,
        changed: Vec<String>,
    },
    #[error(
        "{}: {reason}; hosts refuse such a bundle, nothing uploaded",
        path.display()
    )]
    Pack { path: PathBuf, reason: String },
}

/// "already changed: a, b" for [`BundleError::Interrupted`], the first 10 named.
fn changed_summary(changed: &[String]) -> String {
    const SHOWN: usize = 10;
    if changed.is_empty() {
        return "no file changed yet".into();
    }
    let mut text = format!(
        "already changed: {}",
        changed[..changed.len().min(SHOWN)].join(", ")
    );
    if changed.len() > SHOWN {
        text.push_str(&format!(" and {} more", changed.len() - SHOWN));
    }
    text
}

/// An `s3://bucket/key` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub key: String,
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

impl std::str::FromStr for S3Location {
    type Err = BundleError;

    fn from_str(url: &str) -> Result<Self, BundleError> {
        let bad = |reason| BundleError::Url {
            url: url.to_owned(),
            reason,
        };
        let rest = url.strip_prefix("s3://").ok_or_else(|| bad("not s3://"))?;
        let (bucket, key) = rest.split_once('/').ok_or_else(|| bad("no key"))?;
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !bucket_ok {
            return Err(bad("bucket names are 3-63 of a-z 0-9 . -"));
        }
        if key.is_empty() || key.len() > 1024 {
            return Err(bad("the key is empty or longer than 1024 bytes"));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }
}

/// A SHA-256 given as 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256Hex(String);

impl std::str::FromStr for Sha256Hex {
    type Err = BundleError;

    fn from_str(s: &str) -> Result<Self, BundleError> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(BundleError::Sha256 {
                value: s.chars().take(80).collect(),
            })
        }
    }
}

/// Checks `bytes` against `expected`.
pub fn verify(url: &str, bytes: &[u8], expected: &Sha256Hex) -> Result<(), BundleError> {
    use sha2::Digest as _;
    let actual = hex::encode(sha2::Sha256::digest(bytes));
    if actual == expected.0 {
        Ok(())
    } else {
        Err(BundleError::Checksum {
            url: url.to_owned(),
            expected: expected.0.clone(),
            actual,
        })
    }
}

/// Where bundles come from, at our level: the whole object, at most `limit` bytes.
#[async_trait::async_trait]
pub trait BundleSource: Send + Sync {
    async fn fetch(&self, location: &S3Location, limit: u64) -> Result<Vec<u8>, BundleError>;
}

/// Fetches a bundle, verifies it and reads its files (nothing written): what [`install`] takes.
pub async fn fetch_verified(
    source: &dyn BundleSource,
    location: &S3Location,
    sha256: &Sha256Hex,
) -> Result<Vec<BundleFile>, BundleError> {
    let url = location.to_string();
    let bytes = source.fetch(location, MAX_BUNDLE).await?;
    verify(&url, &bytes, sha256)?;
    read_bundle(&url, &bytes)
}

#[cfg(test)]
mod tests;

/// Packs the files under `dir` (regular files and directories; links and the like are
/// refused) into a gzip tar that is the same bytes for the same files: sorted, owner 0,
/// mtime 0, modes as they are. Returns the bytes and their SHA-256. What hosts would refuse
/// is refused here, before anything is uploaded, naming the path ([`BundleError::Pack`]): the
/// manifest's name at the top, a path more than 8 directories deep, more than
/// [`MAX_ENTRIES`] files, more than [`MAX_UNPACKED`] bytes of files, more than [`MAX_BUNDLE`]
/// bytes packed.
pub fn pack(dir: &Path) -> Result<(Vec<u8>, Sha256Hex), BundleError> {
    use sha2::Digest as _;
    let err = |path: &Path, message: String| BundleError::Write {
        path: path.to_path_buf(),
        message,
    };
    let refuse = |path: &Path, reason: String| BundleError::Pack {
        path: path.to_path_buf(),
        reason,
    };
    let mut files = Vec::new();
    let mut total = 0;
    collect(dir, dir, &mut files, &mut total)?;
    files.sort();
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut total = 0u64;
    for rel in &files {
        let path = dir.join(rel);
        let contents = std::fs::read(&path).map_err(|e| err(&path, e.to_string()))?;
        // Again with what was read: a file may have grown since it was listed.
        total += contents.len() as u64;
        if total > MAX_UNPACKED {
            return Err(refuse(&path, too_large_unpacked()));
        }
        let mode = {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(&path)
                .map_err(|e| err(&path, e.to_string()))?
                .permissions()
                .mode()
                & 0o777
        };
        let mut h = tar::Header::new_ustar();
        h.set_size(contents.len() as u64);
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, rel, contents.as_slice())
            .map_err(|e| err(&path, e.to_string()))?;
    }
    let bytes = tar
        .into_inner()
        .and_then(|gz| gz.finish())
        .map_err(|e| err(dir, e.to_string()))?;
    if bytes.len() as u64 > MAX_BUNDLE {
        return Err(refuse(
            dir,
            format!(
                "packs to {} bytes, more than the {MAX_BUNDLE} hosts fetch",
                bytes.len()
            ),
        ));
    }
    let sum = Sha256Hex(hex::encode(sha2::Sha256::digest(&bytes)));
    Ok((bytes, sum))
}

fn too_large_unpacked() -> String {
    format!("the bundle unpacks to more than {MAX_UNPACKED} bytes with this file")
}

/// Lists the files under `dir` (relative to `root`) into `out`, adding their sizes to `total`,
/// refusing what hosts would.
fn collect(
    root: &Path,
    dir: &Path,
    out: &mut Vec<String>,
    total: &mut u64,
) -> Result<(), BundleError> {
    let err = |path: &Path, e: std::io::Error| BundleError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let refuse = |path: &Path, reason: String| BundleError::Pack {
        path: path.to_path_buf(),
        reason,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| err(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| err(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| err(&path, e))?;
        if kind.is_dir() {
            collect(root, &path, out, total)?;
        } else if kind.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel = match unpack::relative_path(rel) {
                Ok(Some(rel)) => rel,
                Ok(None) => continue,
                Err(reason) => return Err(refuse(&path, reason.into())),
            };
            if is_manifest_path(&rel) {
                return Err(refuse(
                    &path,
                    "this name is Gantry's own manifest on hosts (a stack's installed files, not its source, hold it)".into(),
                ));
            }
            if out.len() >= MAX_ENTRIES {
                return Err(refuse(root, format!("more than {MAX_ENTRIES} files")));
            }
            *total += entry.metadata().map_err(|e| err(&path, e))?.len();
            if *total > MAX_UNPACKED {
                return Err(refuse(&path, too_large_unpacked()));
            }
            out.push(rel);
        } else {
            return Err(refuse(
                &path,
                "not a regular file or directory (bundles carry no links or devices)".into(),
            ));
        }
    }
    Ok(())
}

impl Sha256Hex {
    /// The hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
