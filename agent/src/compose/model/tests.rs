//! Unit tests of the model's value types: durations, sizes, restart policies, serde forms.

use super::*;

#[test]
fn durations_print_like_go() {
    let cases = [
        ("1m30s", "1m30s"),
        ("90s", "1m30s"),
        ("1m", "1m0s"),
        ("1h", "1h0m0s"),
        ("500ms", "500ms"),
        ("1.5s", "1.5s"),
        ("10s", "10s"),
        ("0s", "0s"),
        ("0", "0s"),
        ("2h45m", "2h45m0s"),
        ("1us", "1µs"),
        ("3ns", "3ns"),
    ];
    for (input, want) in cases {
        let d: Duration = input.parse().unwrap();
        assert_eq!(d.to_string(), want, "{input}");
    }
    assert!("10".parse::<Duration>().is_err());
    assert!("1x".parse::<Duration>().is_err());
    assert!("-1s".parse::<Duration>().is_err());
    assert!("".parse::<Duration>().is_err());
}

#[test]
fn bytes_parse_like_compose() {
    assert_eq!(parse_bytes("64m").unwrap(), 67108864);
    assert_eq!(parse_bytes("50M").unwrap(), 52428800);
    assert_eq!(parse_bytes("1g").unwrap(), 1073741824);
    assert_eq!(parse_bytes("1000").unwrap(), 1000);
    assert_eq!(parse_bytes("1kb").unwrap(), 1024);
    assert!(parse_bytes("lots").is_err());
}

#[test]
fn restart_round_trips() {
    for s in [
        "no",
        "always",
        "on-failure",
        "on-failure:3",
        "unless-stopped",
    ] {
        assert_eq!(s.parse::<Restart>().unwrap().to_string(), s);
    }
    assert!("sometimes".parse::<Restart>().is_err());
}
