//! Unit tests of the nftables data plane: the rules rendered and the table read back (what
//! only the kernel can show is in `tests/tests/edge_*.rs`).

use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::super::{Backend, SwitchedPort};
use super::*;

fn routes(weights: &[u8]) -> Routes {
    Routes {
        stack: "app".into(),
        service: "web".into(),
        ports: vec![SwitchedPort {
            listen: Listen {
                ip: Some(Ipv4Addr::LOCALHOST),
                port: 18080,
            },
            target: 8080,
        }],
        backends: weights
            .iter()
            .enumerate()
            .map(|(i, w)| Backend {
                container: format!("app-web-{}", i + 1),
                ip: Ipv4Addr::new(172, 18, 0, 2 + i as u8),
                weight: *w,
                ports: Vec::new(),
            })
            .collect(),
    }
}

#[test]
fn one_backend_is_a_plain_dnat() {
    let r = render_rules(&routes(&[100]));
    assert_eq!(
        r,
        vec![
            "add rule ip gantry g/app/web ip daddr 127.0.0.1 tcp dport 18080 ct mark set \
             0x47414e54 dnat ip to 172.18.0.2:8080 comment \"app/web 127.0.0.1:18080\""
        ]
    );
}

#[test]
fn weights_become_ranges_covering_0_to_99() {
    let r = render_rules(&routes(&[10, 90]));
    assert!(
        r[0].contains(
            "numgen random mod 100 map { 0-9 : 172.18.0.2 . 8080, 10-99 : 172.18.0.3 . 8080 }"
        ),
        "{r:?}"
    );
    let r = render_rules(&routes(&[34, 33, 33]));
    assert!(r[0].contains("0-33 : "), "{r:?}");
    assert!(r[0].contains("67-99 : 172.18.0.4"), "{r:?}");
    // A zero weight is out of rotation; none left closes the port.
    let r = render_rules(&routes(&[0, 100]));
    assert!(r[0].contains("dnat ip to 172.18.0.3:8080"), "{r:?}");
    assert!(render_rules(&routes(&[0])).is_empty());
}

/// A container of an earlier release keeps the container port it was created with; one
/// that does not serve a host port gets none of its new connections.
#[test]
fn each_backend_is_reached_at_its_own_container_port() {
    let mut r = routes(&[90, 10]);
    let listen = r.ports[0].listen;
    r.backends[0].ports = vec![SwitchedPort { listen, target: 80 }];
    let rules = render_rules(&r);
    assert!(
        rules[0].contains("map { 0-89 : 172.18.0.2 . 80, 90-99 : 172.18.0.3 . 8080 }"),
        "{rules:?}"
    );
    // The new release adds host port 9000: only the new container serves it.
    let added = SwitchedPort {
        listen: Listen {
            ip: None,
            port: 9000,
        },
        target: 9000,
    };
    r.ports.push(added);
    r.backends[1].ports = r.ports.clone();
    let rules = render_rules(&r);
    assert!(
        rules[1].contains("tcp dport 9000") && rules[1].contains("dnat ip to 172.18.0.3:9000"),
        "{rules:?}"
    );
    // A host port published on another address in the other release still matches by port.
    r.backends[0].ports[0].listen.ip = None;
    assert!(render_rules(&r)[0].contains("0-89 : 172.18.0.2 . 80"));
}

#[test]
fn every_address_matches_local_destinations() {
    let mut r = routes(&[100]);
    r.ports[0].listen.ip = None;
    assert!(render_rules(&r)[0].contains("fib daddr type local tcp dport 18080"));
}

#[test]
fn route_owners_come_from_comments() {
    let table = "\t\tip daddr 127.0.0.1 tcp dport 18080 ct mark set 0x47414e54 dnat ip to 172.18.0.2:8080 comment \"app/web 127.0.0.1:18080\"\n\t\tjump routes\n";
    let listen = Listen {
        ip: Some(Ipv4Addr::LOCALHOST),
        port: 18080,
    };
    assert_eq!(route_owners(table), vec![("app/web".to_owned(), listen)]);
}

/// Docker binds one port on two addresses for two containers: the switch lets two services do
/// the same, and refuses a port on every address beside a service that routes it on one (and
/// the reverse). The error names the address of the route in the way.
#[test]
fn a_port_is_taken_on_its_address_or_on_every_address() {
    let mut r = routes(&[100]);
    r.service = "api".into();
    r.ports[0].listen.ip = Some(Ipv4Addr::new(127, 0, 0, 1));
    let mut table = render_rules(&r).join("\n");
    r.ports[0].listen = Listen {
        ip: None,
        port: 9000,
    };
    table.push('\n');
    table.push_str(&render_rules(&r).join("\n"));
    let at = |ip: Option<[u8; 4]>, port| Listen {
        ip: ip.map(Ipv4Addr::from),
        port,
    };
    // 127.0.0.1:18080 and 0.0.0.0:9000 are app/api's.
    let free = |l: Listen| routed_by_another(&table, "app", "web", l);
    assert!(free(at(Some([10, 0, 0, 5]), 18080)).is_ok());
    assert!(free(at(Some([127, 0, 0, 2]), 18080)).is_ok());
    assert!(free(at(Some([127, 0, 0, 1]), 18081)).is_ok());
    let taken = free(at(Some([127, 0, 0, 1]), 18080)).unwrap_err();
    assert!(
        matches!(&taken, EdgeError::PortTaken { by, .. } if by.contains("app/api") && by.contains("127.0.0.1:18080")),
        "{taken}"
    );
    assert!(
        free(at(None, 18080)).is_err(),
        "every address includes 127.0.0.1"
    );
    assert!(
        free(at(Some([10, 0, 0, 5]), 9000)).is_err(),
        "9000 is on every address"
    );
    // Its own routes are never in its way.
    assert!(routed_by_another(&table, "app", "api", at(None, 18080)).is_ok());
}

/// Only `iptables -C`'s exit status 1 says the rule is missing; the lock held past `-w`
/// (exit 4), a bad option (2) or a program killed (no status) say nothing, and inserting
/// then piles rules up in DOCKER-USER.
#[test]
fn only_a_check_that_exits_1_adds_the_forward_rule() {
    assert_eq!(rule_check(Some(0)), RuleCheck::Present);
    assert_eq!(rule_check(Some(1)), RuleCheck::Absent);
    for code in [Some(2), Some(3), Some(4), Some(127), None] {
        assert_eq!(rule_check(code), RuleCheck::Unknown, "{code:?}");
    }
}

/// Weights that add up to 100 are their ranges' widths exactly; others are scaled, every
/// range within a point of its exact share, the last ending at 100.
#[test]
fn range_boundaries_round_the_running_total() {
    assert_eq!(boundaries(&[3, 3, 3, 91]), [3, 6, 9, 100]);
    assert_eq!(boundaries(&[100]), [100]);
    // Three backends of 33 (one serving another port has its 1 % left out): 33.3 each.
    assert_eq!(boundaries(&[33, 33, 33]), [33, 67, 100]);
    for n in 1..=12u8 {
        for total in [50u8, 99, 100] {
            let weights: Vec<u8> = (0..n)
                .map(|i| total / n + u8::from(i < total % n))
                .collect();
            let ends = boundaries(&weights);
            assert_eq!(ends.last(), Some(&100));
            let mut from = 0;
            for (w, to) in weights.iter().zip(&ends) {
                let exact = f64::from(*w) * 100.0 / f64::from(total);
                assert!(
                    (f64::from(to - from) - exact).abs() < 1.0,
                    "{weights:?} {ends:?}"
                );
                from = *to;
            }
        }
    }
}

#[test]
fn chains_are_read_from_the_listing() {
    let text = "table ip nat {\n\tchain g/x/y {\n\t}\n}\ntable ip gantry {\n\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat - 5; policy accept;\n\t}\n\tchain g/app/web {\n\t}\n\tchain g/app-2/api.v1 {\n\t}\n}\n";
    assert_eq!(parse_chains(text), vec!["g/app/web", "g/app-2/api.v1"]);
}

/// A table of `nft list chains ip` output: its name and its chains (service chains, a base
/// chain, or names that only look like service chains elsewhere).
fn listed_table() -> impl Strategy<Value = (String, Vec<String>)> {
    let table = prop_oneof![Just("gantry"), Just("nat"), Just("gantry2"), Just("filter")];
    let chain = prop_oneof![
        "g/[a-z0-9][a-z0-9_-]{0,8}/[a-z0-9][a-z0-9_.-]{0,8}",
        Just("prerouting".to_owned()),
        Just("output".to_owned()),
        "[a-z/]{1,6}",
    ];
    (
        table.prop_map(str::to_owned),
        prop::collection::vec(chain, 0..4),
    )
}

/// The listing of `tables` as `nft list chains ip` prints it.
fn listing(tables: &[(String, Vec<String>)]) -> String {
    let mut text = String::new();
    for (table, chains) in tables {
        text.push_str(&format!("table ip {table} {{\n"));
        for chain in chains {
            text.push_str(&format!("\tchain {chain} {{\n"));
            if chain == "prerouting" {
                text.push_str("\t\ttype nat hook prerouting priority dstnat - 5; policy accept;\n");
            }
            text.push_str("\t}\n");
        }
        text.push_str("}\n");
    }
    text
}

proptest! {
    /// Any text: never a panic, and every chain returned is a service chain (`g/...`) named on a
    /// `chain` line of the text.
    #[test]
    fn chains_read_from_any_text_are_service_chains_named_in_it(
        text in prop_oneof![
            any::<String>(),
            "(table ip (gantry|nat) \\{?\n|[ \t]*chain [ g/a-z{]{0,8}\n|[ \t}]{0,3}\n){0,8}",
        ],
    ) {
        for chain in parse_chains(&text) {
            prop_assert!(chain.starts_with("g/") && !chain.contains('\n'), "{chain:?}");
            prop_assert!(
                text.lines().any(|l| l.trim_start().starts_with("chain ") && l.contains(&chain)),
                "{chain:?} is not on a chain line of {text:?}"
            );
        }
    }

    /// From a listing: exactly the service chains of table `gantry`, in order.
    #[test]
    fn chains_are_the_service_chains_of_table_gantry(
        tables in prop::collection::vec(listed_table(), 0..4),
    ) {
        let want: Vec<String> = tables
            .iter()
            .filter(|(table, _)| table == "gantry")
            .flat_map(|(_, chains)| chains.iter().filter(|c| c.starts_with("g/")).cloned())
            .collect();
        prop_assert_eq!(parse_chains(&listing(&tables)), want);
    }
}
