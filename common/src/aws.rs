//! AWS SDK set-up shared by the agent (ECR tokens) and the sidecar (Secrets Manager), with the
//! guard that keeps the SDK's own logs away from secrets.
//!
//! Design: [`sdk_config`] loads aws-config's standard chain (environment, profile, ECS/App
//! Runner container credentials, web identity, IMDSv2), with an optional region and endpoint
//! override; `AWS_ENDPOINT_URL` (and the per-service `AWS_ENDPOINT_URL_<SERVICE>`) are honoured
//! by the chain itself, so moto can stand in for AWS. [`quiet`] runs a future with every
//! tracing event inside it dropped: at TRACE the SDK (smithy's HTTP client and
//! deserialisers) logs whole responses, which hold secret values and tokens. Callers log
//! their own event after the call, saying what happened without the value.
//!
//! Limits: [`quiet`] drops every event of the future, ours included, so a caller keeps its own
//! logging outside it; it covers the future it wraps, not work the SDK spawns on other tasks
//! (the credential cache refresh), which carries no secret values.

use std::future::Future;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use tracing::instrument::WithSubscriber as _;

/// The standard chain plus the overrides (`None` keeps the chain's value).
pub async fn sdk_config(region: Option<&str>, endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_owned()));
    }
    if let Some(u) = endpoint_url {
        loader = loader.endpoint_url(u.trim_end_matches('/'));
    }
    loader.load().await
}

/// Runs `f` with its tracing events dropped (see the module header).
pub fn quiet<F: Future>(f: F) -> impl Future<Output = F::Output> {
    f.with_subscriber(tracing::subscriber::NoSubscriber::default())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::subscriber::with_default;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Counts events that reach the subscriber.
    #[derive(Clone, Default)]
    struct Count(Arc<Mutex<usize>>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
        fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            *self.0.lock().unwrap() += 1;
        }
    }

    #[test]
    fn quiet_drops_the_events_of_the_wrapped_future_only() {
        let count = Count::default();
        let subscriber = tracing_subscriber::registry().with(count.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        with_default(subscriber, || {
            rt.block_on(async {
                quiet(async { tracing::trace!(body = "s3cr3t", "sdk response") }).await;
                tracing::info!("after the call");
            });
        });
        assert_eq!(*count.0.lock().unwrap(), 1);
    }

    #[test]
    fn overrides_reach_the_config() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let c = rt.block_on(sdk_config(Some("eu-west-3"), Some("http://127.0.0.1:1/")));
        assert_eq!(c.region().map(|r| r.as_ref()), Some("eu-west-3"));
        assert_eq!(c.endpoint_url(), Some("http://127.0.0.1:1"));
    }
}
