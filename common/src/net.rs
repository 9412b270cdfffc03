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
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

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

    /// Text close to an address: `localhost`, `127.x.y.z`, a bracketed IPv6 address or a
    /// name, a port that may be out of range or signed, blanks.
    const ADDRESS_LIKE: &str = concat!(
        "[ ]?(localhost|127\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        "|\\[[0-9a-f:.]{2,12}\\]|[a-z0-9.:]{1,12}):[0-9+-]{1,6}[ ]?",
    );

    /// Any address, loopback or not, IPv4 or IPv6.
    fn address() -> impl Strategy<Value = SocketAddr> {
        let ip = prop_oneof![
            any::<[u8; 4]>().prop_map(|b| IpAddr::from(Ipv4Addr::from(b))),
            any::<[u8; 3]>().prop_map(|[a, b, c]| IpAddr::from([127, a, b, c])),
            any::<[u16; 8]>().prop_map(|s| IpAddr::from(Ipv6Addr::from(s))),
            Just(IpAddr::from(Ipv6Addr::LOCALHOST)),
        ];
        (ip, any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
    }

    proptest! {
        /// Whatever text is given, an address accepted is a loopback one.
        #[test]
        fn anything_accepted_is_loopback(
            text in prop_oneof![
                any::<String>(),
                ADDRESS_LIKE,
            ],
        ) {
            if let Ok(addr) = parse_loopback(&text) {
                prop_assert!(addr.ip().is_loopback(), "{text:?} read as {addr}");
            }
        }

        /// An address written as Rust writes it reads back as it when it is loopback, and is
        /// refused naming it when it is not.
        #[test]
        fn an_address_reads_back_or_is_refused_as_not_loopback(addr in address()) {
            let read = parse_loopback(&addr.to_string());
            if addr.ip().is_loopback() {
                prop_assert_eq!(read, Ok(addr));
            } else {
                prop_assert_eq!(read, Err(LoopbackError::NotLoopback(addr)));
            }
        }

        #[test]
        fn localhost_is_127_0_0_1(port in any::<u16>()) {
            prop_assert_eq!(
                parse_loopback(&format!("localhost:{port}")),
                Ok(SocketAddr::from(([127, 0, 0, 1], port)))
            );
        }
    }
}
