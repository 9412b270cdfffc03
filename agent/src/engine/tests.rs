//! Unit tests of the engine's value types: image references, digests, env redaction, events.

use proptest::prelude::*;

use super::*;

#[test]
fn image_refs_split_like_docker() {
    let cases = [
        ("nginx", DOCKER_HUB, "nginx", None, None),
        ("nginx:1.25", DOCKER_HUB, "nginx", Some("1.25"), None),
        (
            "127.0.0.1:5000/app:v2",
            "127.0.0.1:5000",
            "127.0.0.1:5000/app",
            Some("v2"),
            None,
        ),
        ("localhost/app", "localhost", "localhost/app", None, None),
        ("org/app:1", DOCKER_HUB, "org/app", Some("1"), None),
        (
            "ghcr.io/org/app:1@sha256:0123456789abcdef0123456789abcdef",
            "ghcr.io",
            "ghcr.io/org/app",
            Some("1"),
            Some("sha256:0123456789abcdef0123456789abcdef"),
        ),
        (
            "registry:5000/app",
            "registry:5000",
            "registry:5000/app",
            None,
            None,
        ),
    ];
    for (input, registry, repo, tag, digest) in cases {
        let r = ImageRef::from(input);
        assert_eq!(r.registry(), registry, "{input}");
        assert_eq!(r.repository(), repo, "{input}");
        assert_eq!(r.tag(), tag, "{input}");
        assert_eq!(r.digest().as_ref().map(Digest::as_str), digest, "{input}");
    }
}

#[test]
fn digest_for_matches_hub_shorthand() {
    let d = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let info = ImageInfo {
        id: "sha256:x".into(),
        repo_digests: vec![format!("nginx@{d}")],
        repo_tags: vec![],
        volumes: vec![],
    };
    let r = ImageRef::from("docker.io/library/nginx:1");
    assert_eq!(info.digest_for(&r).unwrap().as_str(), d);
    assert_eq!(
        r.with_digest(&info.digest_for(&r).unwrap()).as_str(),
        format!("docker.io/library/nginx@{d}")
    );
    assert!(info.digest_for(&ImageRef::from("other")).is_none());
}

#[test]
fn env_debug_hides_values() {
    let env: Env = [("DB_PASSWORD", "hunter2")].into_iter().collect();
    let printed = format!("{env:?}");
    assert!(printed.contains("DB_PASSWORD"));
    assert!(!printed.contains("hunter2"));
}

#[test]
fn event_actions_parse() {
    assert_eq!(EventAction::parse("die"), EventAction::Die);
    assert_eq!(
        EventAction::parse("health_status: healthy"),
        EventAction::HealthStatus(HealthStatus::Healthy)
    );
    assert_eq!(
        EventAction::parse("exec_start: sh"),
        EventAction::Other("exec_start: sh".into())
    );
}

proptest! {
    /// Any text: refused, or accepted as itself with an alphanumeric algorithm and at least 32
    /// hex digits, its short form the first 12 of them.
    #[test]
    fn a_digest_accepted_from_any_text_is_algo_colon_hex(
        text in prop_oneof![any::<String>(), "[a-z0-9:]{0,8}:[0-9a-fA-Fg:é]{28,40}"],
    ) {
        if let Some(d) = Digest::parse(&text) {
            prop_assert_eq!(d.as_str(), text.as_str());
            prop_assert_eq!(d.to_string(), text.clone());
            let (algo, hex) = text.split_once(':').unwrap();
            prop_assert!(!algo.is_empty() && algo.bytes().all(|b| b.is_ascii_alphanumeric()));
            prop_assert!(hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
            prop_assert_eq!(d.short(), &hex[..12]);
        }
    }

    /// `algo:hex` reads back as itself (and from its wire form); with fewer than 32 hex digits
    /// it is refused.
    #[test]
    fn algo_colon_hex_round_trips(algo in "[a-zA-Z0-9]{1,10}", hex in "[0-9a-fA-F]{0,80}") {
        let text = format!("{algo}:{hex}");
        let parsed = Digest::parse(&text);
        if hex.len() < 32 {
            prop_assert_eq!(parsed, None);
        } else {
            let d = parsed.unwrap();
            prop_assert_eq!(d.as_str(), text.as_str());
            let wire = serde_json::to_string(&d).unwrap();
            prop_assert_eq!(serde_json::from_str::<Digest>(&wire).unwrap(), d);
        }
    }
}
