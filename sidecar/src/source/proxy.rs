//! Which requests of the sources may go through an HTTP proxy.
//!
//! A proxy sees what is sent through it. Over `https://` it only relays an encrypted tunnel
//! (`CONNECT host:port`); over `http://` it reads the request and the answer: a Vault token, an
//! AppRole role id and secret id, a secret's value, the credentials of the ECS/EKS container
//! endpoint or of IMDS. And a proxy cannot reach this machine's loopback or link-local
//! addresses for us. So a request goes through a proxy only when it is `https://` to a host
//! that is neither loopback nor link-local ([`may_use_proxy`]); every other request goes
//! direct, whatever `HTTP_PROXY`, `HTTPS_PROXY` or `ALL_PROXY` say:
//! - Vault (`vault::http`): one client per address, built without proxies unless the address
//!   [`may_use_proxy`] (redirects are followed within the same origin only, so the client
//!   never talks to another address);
//! - AWS ([`aws_sdk_config`]): the SDK's HTTP client (for Secrets Manager, STS and the
//!   credential endpoints alike) takes `HTTPS_PROXY`, else `ALL_PROXY`, for `https://` requests
//!   only, with `NO_PROXY` plus the loopback and link-local ranges ([`LOCAL_NO_PROXY`]) as
//!   exceptions: a plain `http://` Secrets Manager endpoint (moto, LocalStack), the container
//!   credentials and IMDS are always asked directly. (With the SDK's own client, `HTTP_PROXY`
//!   applied to them too.)
//!
//! Limits: the proxy URL comes from the environment at start; a proxy URL that does not parse is
//! ignored (requests go direct) with a warning that does not quote it (it may hold a password).

use std::net::IpAddr;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_secretsmanager::config::SharedHttpClient;
use aws_smithy_http_client::proxy::ProxyConfig;
use reqwest::Url;

/// Loopback and link-local hosts, as `NO_PROXY` rules.
pub const LOCAL_NO_PROXY: &str = "localhost,127.0.0.0/8,::1,169.254.0.0/16,fe80::/10";

/// Whether `host` (a name, an IPv4 address or a bracketed IPv6 address) is this machine's
/// (loopback) or on its link only (link-local: IMDS, the ECS and EKS credential endpoints).
pub fn is_local_host(host: &str) -> bool {
    if gantry_common::net::is_loopback_host(host) {
        return true;
    }
    let h = host.trim_start_matches('[').trim_end_matches(']');
    match h.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_link_local(),
        Ok(IpAddr::V6(ip)) => (ip.segments()[0] & 0xffc0) == 0xfe80,
        Err(_) => h.to_ascii_lowercase().ends_with(".localhost"),
    }
}

/// Whether a request to `url` may go through a proxy: `https://` to a host that is not local
/// ([`is_local_host`]).
pub fn may_use_proxy(url: &Url) -> bool {
    url.scheme() == "https" && url.host_str().is_some_and(|h| !is_local_host(h))
}

/// The proxy of the AWS SDK's HTTP client, from the variables `env` gives (the process
/// environment in [`aws_sdk_config`]): `HTTPS_PROXY`, else `ALL_PROXY` (either case), for
/// `https://` requests only; `NO_PROXY` and [`LOCAL_NO_PROXY`] go direct. `HTTP_PROXY` is never
/// used: a plain request goes direct.
pub fn aws_proxy(env: impl Fn(&str) -> Option<String>) -> ProxyConfig {
    let first = |names: &[&str]| {
        names.iter().find_map(|n| {
            env(n)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        })
    };
    let Some(url) =
        first(&["HTTPS_PROXY", "https_proxy"]).or_else(|| first(&["ALL_PROXY", "all_proxy"]))
    else {
        return ProxyConfig::disabled();
    };
    // `proxy:3128` means `http://proxy:3128`, as curl and reqwest read it.
    let url = if url.contains("://") {
        url
    } else {
        format!("http://{url}")
    };
    match ProxyConfig::https(url.as_str()) {
        Ok(p) => {
            let no_proxy = match first(&["NO_PROXY", "no_proxy"]) {
                Some(n) => format!("{n},{LOCAL_NO_PROXY}"),
                None => LOCAL_NO_PROXY.to_owned(),
            };
            p.no_proxy(no_proxy)
        }
        Err(_) => {
            tracing::warn!(
                "HTTPS_PROXY (or ALL_PROXY) is not a URL: AWS requests go direct (hint: set it to http://HOST:PORT)"
            );
            ProxyConfig::disabled()
        }
    }
}

/// The AWS SDK's default HTTPS client (rustls with aws-lc, the SDK's timeouts and sleep),
/// with `proxy` instead of the SDK's reading of the environment.
pub fn aws_http_client(proxy: ProxyConfig) -> SharedHttpClient {
    use aws_smithy_http_client::{Builder, ConnectorBuilder, tls};
    // The constructor the SDK's own default client is made with (one connector per set of
    // settings, cached): only the proxy differs.
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut conn = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ));
        conn.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            conn.set_sleep_impl(c.sleep_impl());
        }
        conn.set_proxy_config(Some(proxy.clone()));
        conn.build()
    })
}

/// aws-config's standard chain (environment, profile, web identity, ECS/EKS container
/// credentials, IMDSv2) with the region and endpoint overrides (`None` keeps the chain's), over
/// [`aws_http_client`] with the proxy of the process environment ([`aws_proxy`]).
pub async fn aws_sdk_config(region: Option<&str>, endpoint_url: Option<&str>) -> SdkConfig {
    let client = aws_http_client(aws_proxy(|k| std::env::var(k).ok()));
    aws_sdk_config_with(region, endpoint_url, client).await
}

/// [`aws_sdk_config`] over `client`.
pub async fn aws_sdk_config_with(
    region: Option<&str>,
    endpoint_url: Option<&str>,
    client: SharedHttpClient,
) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(client);
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_owned()));
    }
    if let Some(u) = endpoint_url {
        loader = loader.endpoint_url(u.trim_end_matches('/'));
    }
    loader.load().await
}

#[cfg(test)]
mod tests;
