//! The loopback check: listeners that must never face the network (the sidecar's health
//! listener, the daemon's metrics) and plain-HTTP peers that are only safe on this host.
//!
//! Design: an address is loopback when its IP is in `127.0.0.0/8` or is `::1` (or the name is
//! `localhost`); no DNS lookup is made, so the answer never depends on the resolver.
//!
//! Limits: `localhost` is taken to mean 127.0.0.1 for listeners (not `::1`).

use std::net::{IpAddr, SocketAddr};

/// Why an address cannot be used as a loopback listener.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoopbackError {
    #[error("{0:?} is not an address like 127.0.0.1:9464")]
    NotAnAddress(String),
    #[error("{0} is not a loopback address: only 127.0.0.0/8 or [::1] are allowed")]
    NotLoopback(SocketAddr),
}

/// Parses `127.0.0.1:9464`, `[::1]:9464` or `localhost:9464`, and refuses anything that is not
/// loopback.
pub fn parse_loopback(text: &str) -> Result<SocketAddr, LoopbackError> {
    let t = text.trim();
    let addr: SocketAddr = t
        .parse()
        .ok()
        .or_else(|| {
            t.strip_prefix("localhost:")
                .and_then(|p| p.parse::<u16>().ok())
                .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        })
        .ok_or_else(|| LoopbackError::NotAnAddress(t.to_owned()))?;
    if !addr.ip().is_loopback() {
        return Err(LoopbackError::NotLoopback(addr));
    }
    Ok(addr)
}

/// Whether a URL host (`127.0.0.1`, `[::1]`, `::1`, `localhost`) names this host's loopback.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_listeners_only() {
        assert_eq!(
            parse_loopback("127.0.0.1:9464").unwrap(),
            "127.0.0.1:9464".parse().unwrap()
        );
        assert_eq!(parse_loopback(" [::1]:1 ").unwrap().port(), 1);
        assert_eq!(
            parse_loopback("localhost:80").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        assert!(matches!(
            parse_loopback("0.0.0.0:9464"),
            Err(LoopbackError::NotLoopback(_))
        ));
        assert!(matches!(
            parse_loopback("10.0.0.1:1"),
            Err(LoopbackError::NotLoopback(_))
        ));
        assert!(matches!(
            parse_loopback("example.com:80"),
            Err(LoopbackError::NotAnAddress(_))
        ));
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "::1",
            "localhost",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["10.0.0.1", "vault", "localhost.example.com", "[::2]", ""] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
