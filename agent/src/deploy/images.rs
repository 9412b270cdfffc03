//! Images: pulls with registry credentials, resolving what a deploy runs, pruning what no
//! kept release needs.
//!
//! Design: a deploy resolves every image before anything running is touched: the ones
//! missing locally (or all with `pull_policy: always`) are pulled in parallel, each reference
//! once however many services use it. A pull asks the registries for credentials and, on a
//! 401 with credentials, invalidates them and asks once more (an expired ECR token). Pruning
//! removes only images that pruned releases pinned and no kept release does; an image any
//! container still uses stays (Docker refuses, and that refusal means "keep").
//!
//! Limits: pulls report progress per layer as Docker gives it; nothing is pulled by digest
//! except on rollback to a release whose image is gone.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::join_all;

use crate::compose::{Project, PullPolicy, Service};
use crate::engine::{Engine, EngineError, ImageInfo, ImageRef};
use crate::ledger::{Release, StackLedger};

use super::apply::Deployer;
use super::{DeployError, Progress};

impl Deployer {
    /// Pulls an image with the registry's credentials, asking for fresh ones once on a 401.
    pub async fn pull(&self, image: &ImageRef) -> Result<ImageInfo, DeployError> {
        self.pull_with(image, None, &super::Quiet).await
    }

    /// [`Deployer::pull`], reporting the bytes of all layers to [`Progress::pull`].
    pub async fn pull_with(
        &self,
        image: &ImageRef,
        platform: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<ImageInfo, DeployError> {
        let layers: std::sync::Mutex<BTreeMap<String, (u64, u64)>> = Default::default();
        let report = |p: &crate::engine::PullProgress| {
            let Some(layer) = &p.layer else { return };
            let Ok(mut layers) = layers.lock() else {
                return;
            };
            let entry = layers.entry(layer.clone()).or_default();
            match (p.status.as_str(), p.current, p.total) {
                ("Downloading", Some(c), Some(t)) => *entry = (c, t),
                ("Download complete" | "Pull complete" | "Already exists", _, _) => {
                    entry.0 = entry.1;
                }
                _ => return,
            }
            let (done, total) = layers
                .values()
                .fold((0, 0), |(d, t), (c, n)| (d + c, t + n));
            progress.pull(image.as_str(), done, total);
        };
        let auth_err = |e: crate::registry::RegistryError| DeployError::Registry(e);
        let auth = self.registries.auth_for(image).await.map_err(auth_err)?;
        match self
            .engine
            .pull_image(image, platform, auth.as_ref(), Some(&report))
            .await
        {
            Err(EngineError::Pull {
                kind: crate::engine::PullFailure::Unauthorized,
                ..
            }) if auth.is_some() => {
                self.registries.invalidate(image.registry());
                let auth = self.registries.auth_for(image).await.map_err(auth_err)?;
                Ok(self
                    .engine
                    .pull_image(image, platform, auth.as_ref(), Some(&report))
                    .await?)
            }
            other => Ok(other?),
        }
    }

    /// Pulls what is missing (or everything with `pull_policy: always`), in parallel.
    /// Returns service → (reference, image), and whether anything was pulled.
    pub(super) async fn resolve_images(
        &self,
        project: &Project,
        progress: &dyn Progress,
    ) -> Result<(BTreeMap<String, (String, ImageInfo)>, bool), DeployError> {
        let mut by_ref: BTreeMap<String, Vec<&Service>> = BTreeMap::new();
        for svc in project.services.values() {
            if let Some(image) = &svc.image {
                by_ref.entry(image.clone()).or_default().push(svc);
            }
        }
        let engine = &self.engine;
        let this = self;
        let lookups = by_ref.iter().map(|(reference, services)| async move {
            let image = ImageRef::new(reference);
            let policy = services
                .iter()
                .find_map(|s| s.pull_policy.as_ref())
                .unwrap_or(&PullPolicy::Missing);
            // One local tag holds one platform: the first service that names one decides.
            let platform = services.iter().find_map(|s| s.platform.as_deref());
            let local = engine.inspect_image(&image).await?;
            let info = match (policy, local) {
                (PullPolicy::Always, _) => {
                    (this.pull_with(&image, platform, progress).await?, true)
                }
                (PullPolicy::Never, None) => {
                    return Err(DeployError::Unsupported {
                        service: services[0].name.clone(),
                        reason: format!(
                            "image {reference} is not present and pull_policy is never"
                        ),
                    });
                }
                (_, Some(info)) => (info, false),
                (_, None) => (this.pull_with(&image, platform, progress).await?, true),
            };
            Ok::<_, DeployError>((reference.clone(), info))
        });
        let mut out = BTreeMap::new();
        let mut any_pulled = false;
        for result in join_all(lookups).await {
            let (reference, (info, pulled)) = result?;
            any_pulled |= pulled;
            if pulled {
                progress.step(
                    None,
                    &format!("pulled {reference} ({})", short_id(&info.id)),
                );
            }
            for svc in &by_ref[&reference] {
                out.insert(svc.name.clone(), (reference.clone(), info.clone()));
            }
        }
        Ok((out, any_pulled))
    }

    /// Removes the images that only pruned releases used. An image a kept release pins, or
    /// that any container still uses (of any stack), stays: Docker refuses to remove an image
    /// in use, and that refusal is taken as "keep".
    pub(super) async fn prune_images(
        &self,
        stack: &StackLedger,
        pruned: &[Release],
        progress: &dyn Progress,
    ) -> Result<(), DeployError> {
        let kept: BTreeSet<String> = stack
            .releases()?
            .iter()
            .flat_map(|r| r.images.values().map(|i| i.id.clone()))
            .collect();
        let candidates: BTreeSet<&str> = pruned
            .iter()
            .flat_map(|r| r.images.values().map(|i| i.id.as_str()))
            .filter(|id| !kept.contains(*id))
            .collect();
        for id in candidates {
            match self.engine.remove_image(id, false).await {
                Ok(true) => progress.step(None, &format!("pruned image {}", short_id(id))),
                Ok(false) => {}
                Err(e) => {
                    tracing::info!(stack = %stack.name(), image = %id, reason = %e, "image kept");
                }
            }
        }
        Ok(())
    }
}

/// What to create a container from: the tag when it still names `image_id`, else the id
/// itself (a rollback after the tag moved).
pub(super) async fn create_image_ref(
    engine: &dyn Engine,
    svc: &Service,
    image_id: &str,
) -> Result<String, DeployError> {
    let reference = svc.image.clone().unwrap_or_default();
    if image_id.is_empty() {
        return Ok(reference);
    }
    let resolved = engine.inspect_image(&ImageRef::new(&reference)).await?;
    Ok(match resolved {
        Some(info) if info.id == image_id => reference,
        _ => image_id.to_owned(),
    })
}

/// An image id as Docker prints it: 12 hex digits, without `sha256:`.
pub(super) fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}
