//! Where `DOCKER_HOST` may point without an opt-in.
//!
//! Docker's API over plain `tcp://` (or `http://`) is unauthenticated and unencrypted, and it
//! is root on that machine: a unix socket or a loopback address (an SSH tunnel's end) is
//! accepted as is; any other address is refused unless the operator opts in with
//! `GANTRY_DOCKER_ALLOW_REMOTE=true`, and is then logged as a warning each time it connects.
//!
//! Limits: the check reads only the host part of the address (no name resolution: `localhost`
//! counts as loopback, any other name does not).

use super::super::EngineError;

/// The opt-in for a `tcp://` Docker that is not on loopback.
pub const ALLOW_REMOTE_VAR: &str = "GANTRY_DOCKER_ALLOW_REMOTE";

/// Checks `docker_host` (`DOCKER_HOST` as given; `None`: the default socket). `allow_remote`:
/// the opt-in was given (`GANTRY_DOCKER_ALLOW_REMOTE=true`).
pub fn check_docker_host(docker_host: Option<&str>, allow_remote: bool) -> Result<(), EngineError> {
    let Some(host) = docker_host.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(());
    };
    let Some(rest) = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("http://"))
    else {
        return Ok(());
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let name = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    if gantry_common::net::is_loopback_host(name) {
        return Ok(());
    }
    if allow_remote {
        tracing::warn!(docker_host = %host, "DOCKER_HOST is a plain-TCP address that is not loopback ({ALLOW_REMOTE_VAR}=true): Docker's API there is unauthenticated and unencrypted");
        return Ok(());
    }
    Err(EngineError::RemoteNotAllowed {
        host: host.to_owned(),
    })
}

/// Whether the opt-in is set in `value` (`true` or `1`).
pub fn allow_remote(value: Option<&str>) -> bool {
    value.is_some_and(|v| v == "true" || v == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tcp_docker_that_is_not_loopback_needs_the_opt_in() {
        for ok in [
            None,
            Some(""),
            Some("unix:///var/run/docker.sock"),
            Some("/run/docker.sock"),
            Some("tcp://127.0.0.1:2375"),
            Some("tcp://localhost:2375"),
            Some("http://[::1]:2375"),
        ] {
            check_docker_host(ok, false).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for remote in [
            "tcp://10.0.0.5:2375",
            "tcp://docker.internal:2375",
            "http://[fd00::1]:2375",
        ] {
            let e = check_docker_host(Some(remote), false).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains(remote) && msg.contains(ALLOW_REMOTE_VAR),
                "{msg}"
            );
            assert_eq!(e.exit_code(), crate::ExitCode::Config);
            check_docker_host(Some(remote), true).unwrap();
        }
        assert!(allow_remote(Some("true")) && !allow_remote(Some("no")) && !allow_remote(None));
    }
}
