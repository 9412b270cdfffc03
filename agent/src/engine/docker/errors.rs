//! bollard's errors as [`EngineError`]s: HTTP statuses to not-found / conflict / refused,
//! connection failures to [`EngineError::Unreachable`] with a hint, and pull failures sorted
//! into auth, not-found and other ([`PullFailure`]).
//!
//! Design: pure functions of the error and the object the call was about, so every call site
//! names its object the same way.
//!
//! Limits: classification reads Docker's status codes and message texts; a daemon that words
//! them differently lands in the generic case.

use super::*;

pub(super) fn map_error(host: &str, object: Object, e: BollardError) -> EngineError {
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => match status_code {
            404 => EngineError::NotFound { object },
            409 => EngineError::Conflict { object, message },
            status => EngineError::Api {
                object,
                status,
                message,
            },
        },
        BollardError::RequestTimeoutError => EngineError::Timeout {
            object,
            operation: "Docker API request",
            after: Duration::from_secs(REQUEST_TIMEOUT_SECS),
        },
        BollardError::SocketNotFoundError(_)
        | BollardError::HyperLegacyError { .. }
        | BollardError::IOError { .. } => unreachable_error(host, &e),
        other => EngineError::Protocol {
            object,
            message: other.to_string(),
        },
    }
}

/// A failed container create (of container `name` from `image`). Docker answers 404 for a
/// missing image and for a missing object the spec names (a `volumes_from` container on newer
/// daemons, a network): the message says which; one it does not name stays Docker's words.
pub(super) fn create_error(host: &str, name: &str, image: &str, e: BollardError) -> EngineError {
    match e {
        BollardError::DockerResponseServerError {
            status_code: 404,
            message,
        } => match missing_object(&message, image) {
            Some(object) => EngineError::NotFound { object },
            None => EngineError::Api {
                object: Object::Container(name.to_owned()),
                status: 404,
                message,
            },
        },
        other => map_error(host, Object::Container(name.to_owned()), other),
    }
}

/// The object a 404's message names: `No such image: I` (the spec's `image`), `No such
/// container: C`, `network N not found`, `No such volume: V` / `volume V not found`.
fn missing_object(message: &str, image: &str) -> Option<Object> {
    let m = message.trim();
    let lower = m.to_ascii_lowercase();
    let after = |prefix: &str| {
        let at = lower.find(prefix)? + prefix.len();
        let word = m[at..].split_whitespace().next()?;
        Some(
            word.trim_matches(|c| matches!(c, '"' | '\'' | ',' | ':'))
                .to_owned(),
        )
    };
    let between = |before: &str, after: &str| {
        let at = lower.find(before)? + before.len();
        let end = lower[at..].find(after)? + at;
        let word = m[at..end].trim().trim_matches(|c| matches!(c, '"' | '\''));
        (!word.is_empty() && !word.contains(' ')).then(|| word.to_owned())
    };
    if lower.contains("no such image") {
        Some(Object::Image(image.to_owned()))
    } else if let Some(c) = after("no such container:") {
        Some(Object::Container(c))
    } else if let Some(n) = between("network ", " not found") {
        Some(Object::Network(n))
    } else {
        after("no such volume:")
            .or_else(|| between("volume ", " not found"))
            .map(Object::Volume)
    }
}

/// A transport failure: say where we tried, why it failed, and what to check.
pub(super) fn unreachable_error(host: &str, e: &BollardError) -> EngineError {
    let first: &(dyn std::error::Error + 'static) = e;
    let io_kind = std::iter::successors(Some(first), |e| (*e).source())
        .find_map(|e| e.downcast_ref::<std::io::Error>().map(std::io::Error::kind));
    use std::io::ErrorKind::{ConnectionRefused, NotFound, PermissionDenied};
    let (reason, hint) = match (e, io_kind) {
        (BollardError::SocketNotFoundError(path), _) => (
            format!("no socket at {path}"),
            "is dockerd running? start it (`systemctl start docker`, or tests/env/up for the tests)",
        ),
        (_, Some(NotFound)) => (
            "no socket at that path".to_owned(),
            "is dockerd running? start it (`systemctl start docker`, or tests/env/up for the tests)",
        ),
        (_, Some(PermissionDenied)) => (
            "permission denied on the socket".to_owned(),
            "run as root or as a member of the socket's group (usually `docker`)",
        ),
        (_, Some(ConnectionRefused)) => (
            "connection refused".to_owned(),
            "is dockerd running and listening there? is DOCKER_HOST right?",
        ),
        _ => (
            e.to_string(),
            "is dockerd running and is DOCKER_HOST right?",
        ),
    };
    EngineError::Unreachable {
        host: host.to_owned(),
        reason,
        hint: hint.to_owned(),
    }
}

/// Sorts a pull failure by what the caller can do about it (refresh credentials, fix the tag).
///
/// The HTTP status decides first: 401 is unauthorized; 404 is not found, unless Docker's text
/// says the registry refused access (dockerd answers 404 for a registry's `denied`, an expired
/// ECR token's answer too: `pull access denied for ..., repository does not exist or may
/// require 'docker login': denied: ...`). The message's phrases decide only otherwise (an
/// error in the stream, status 0, or dockerd's 500 for a registry's 401). Every phrase holds a
/// space or starts the message, so no image reference, host name or account id matches one (a
/// bare "401" matched ECR account ids such as 340140112233).
pub(super) fn classify_pull(status: u16, message: &str) -> PullFailure {
    let m = message.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
    let refused = || {
        m.starts_with("unauthorized")
            || any(&[
                ": unauthorized",
                "authentication required",
                "no basic auth credentials",
                "pull access denied",
                "denied: ",
                "access denied",
            ])
    };
    match status {
        401 => return PullFailure::Unauthorized,
        404 if refused() => return PullFailure::Unauthorized,
        404 => return PullFailure::NotFound,
        _ => {}
    }
    if refused() {
        PullFailure::Unauthorized
    } else if any(&[
        "not found",
        "manifest unknown",
        "name unknown",
        "does not exist",
    ]) {
        PullFailure::NotFound
    } else if any(&[
        "no such host",
        "connection refused",
        "i/o timeout",
        "dial tcp ",
        "tls: ",
        "x509: ",
        "server gave http response to https client",
    ]) {
        PullFailure::Unreachable
    } else {
        PullFailure::Other
    }
}
