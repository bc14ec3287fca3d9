//! `egress.allow_private` entries, and the destination check.

use crate::security::egress::{AddressClass, AllowanceError, PrivateAllowance, PrivateEntry, destination_allowed};
use std::net::IpAddr;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn allowance(entries: &[&str]) -> PrivateAllowance {
    PrivateAllowance::parse(entries).unwrap()
}

#[test]
fn global_destinations_pass_without_any_allowance() {
    let none = PrivateAllowance::default();
    for address in ["140.82.112.3", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
        assert_eq!(
            destination_allowed(ip(address), "api.example.org", &none),
            Ok(()),
            "{address}"
        );
    }
}

#[test]
fn non_global_destinations_are_refused_by_default_with_the_class_in_words() {
    let none = PrivateAllowance::default();
    let cases = [
        ("127.0.0.1", "loopback", "never"),
        ("::1", "loopback", "never"),
        ("::ffff:127.0.0.1", "carrying the IPv4 address 127.0.0.1", "never"),
        ("169.254.169.254", "cloud metadata", "egress.allow_private"),
        ("100.64.0.1", "carrier-grade NAT", "egress.allow_private"),
        ("10.0.0.5", "private", "egress.allow_private"),
        ("fd00::1", "unique local", "egress.allow_private"),
        ("0.0.0.0", "unspecified", "never"),
        ("255.255.255.255", "broadcast", "never"),
        ("224.0.0.1", "multicast", "never"),
        ("192.0.2.1", "documentation", "egress.allow_private"),
        ("240.0.0.1", "reserved", "egress.allow_private"),
    ];
    for (address, class_words, rule_words) in cases {
        let refusal = destination_allowed(ip(address), "rebind.example.org", &none).expect_err(address);
        assert_eq!(refusal.address, ip(address));
        assert_eq!(refusal.class, AddressClass::of(ip(address)));
        let text = refusal.to_string();
        assert!(
            text.starts_with(&format!("rebind.example.org resolves to {address}")),
            "{text}"
        );
        assert!(
            text.contains(class_words) && text.contains(rule_words),
            "{address}: {text}"
        );
        assert!(!text.contains('\n'), "{text}");
    }
}

#[test]
fn a_refused_literal_is_not_said_to_resolve() {
    let refusal = destination_allowed(ip("10.0.0.5"), "10.0.0.5", &PrivateAllowance::default()).unwrap_err();
    assert!(refusal.to_string().starts_with("10.0.0.5 is private: "), "{refusal}");
    let refusal = destination_allowed(ip("::1"), "[::1]", &PrivateAllowance::default()).unwrap_err();
    assert!(refusal.to_string().starts_with("::1 is loopback: "), "{refusal}");
}

#[test]
fn allow_private_networks_open_what_they_contain() {
    let allowed = allowance(&[
        "10.9.0.0/16",
        "fd00:9::/64",
        "192.168.5.7",
        "[fd00:1::5]",
        "169.254.169.254/32",
    ]);
    let cases = [
        ("10.9.0.1", true),
        ("10.9.255.255", true),
        ("10.10.0.1", false),
        ("10.8.255.255", false),
        ("::ffff:10.9.3.4", true),
        ("::ffff:10.10.3.4", false),
        ("fd00:9::1", true),
        ("fd00:9:0:1::1", false),
        ("192.168.5.7", true),
        ("192.168.5.8", false),
        ("fd00:1::5", true),
        ("169.254.169.254", true),
        ("169.254.169.253", false),
        ("100.64.0.1", false),
        ("140.82.112.3", true),
    ];
    for (address, expected) in cases {
        assert_eq!(
            destination_allowed(ip(address), "intranet.example", &allowed).is_ok(),
            expected,
            "{address}"
        );
    }
}

#[test]
fn allow_private_hosts_open_what_those_hosts_resolve_to() {
    let allowed = allowance(&["origin", "*.corp.example"]);
    let cases = [
        ("origin", "172.30.0.4", true),
        ("ORIGIN.", "172.30.0.4", true),
        ("api.corp.example", "10.1.2.3", true),
        ("a.b.corp.example", "fd00::7", true),
        ("corp.example", "10.1.2.3", false),
        ("other.example", "10.1.2.3", false),
        ("10.1.2.3", "10.1.2.3", false),
        ("origin", "127.0.0.1", false),
        ("origin", "0.0.0.0", false),
        ("origin", "224.0.0.1", false),
        ("origin", "::ffff:127.0.0.1", false),
    ];
    for (host, address, expected) in cases {
        assert_eq!(
            destination_allowed(ip(address), host, &allowed).is_ok(),
            expected,
            "{host} -> {address}"
        );
    }
}

#[test]
fn allow_private_entries_read_back_as_written() {
    let allowed = allowance(&[
        " 10.9.0.0/16 ",
        "192.168.5.7",
        "[fd00:1::5]",
        "fd00::1",
        "Origin.",
        "*.corp.example",
    ]);
    let shown: Vec<String> = allowed.entries().iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "10.9.0.0/16",
            "192.168.5.7",
            "fd00:1::5",
            "fd00::1",
            "origin",
            "*.corp.example"
        ]
    );
    assert!(matches!(allowed.entries()[4], PrivateEntry::Host(_)));
    assert!(
        PrivateAllowance::parse(Vec::<String>::new())
            .unwrap()
            .entries()
            .is_empty()
    );
}

#[test]
fn bad_allow_private_entries_are_refused_with_what_to_write() {
    let cases = [
        ("10.9.0.0/33", "write a CIDR such as `10.9.0.0/16`"),
        ("10.9.0/16", "not a network"),
        ("intranet/16", "not a network"),
        ("10.9.0.5/16", "the network is `10.9.0.0/16`"),
        ("0.0.0.0/0", "every address"),
        ("::/0", "every address"),
        ("127.0.0.0/8", "loopback, which the egress proxy never connects to"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255", "broadcast"),
        // Wide networks that hold a never-reachable range, in any form.
        ("64.0.0.0/2", "loopback"),
        ("96.0.0.0/3", "loopback"),
        ("192.0.0.0/2", "never connects to"),
        ("::ffff:64.0.0.0/98", "loopback"),
        ("::ffff:0:0/96", "loopback"),
        ("64:ff9b::/96", "loopback"),
        ("2002::/16", "loopback"),
        ("::/96", "never connects to"),
        // An address written as a name is judged as the address.
        ("127.0.0.1.", "loopback"),
        ("10.9.0.5:80", "ports belong in egress.allow"),
        ("[fd00::1]:443", "has a port"),
        ("intranet.example:8080", "has a port"),
        ("*", "every host"),
        ("", "empty host pattern"),
        ("https://intranet.example", "has a scheme"),
    ];
    for (entry, words) in cases {
        let error: AllowanceError = PrivateAllowance::parse([entry]).expect_err(entry);
        let text = error.to_string();
        assert!(text.starts_with("egress.allow_private: "), "{entry}: {text}");
        assert!(text.contains(words), "{entry}: {text:?} should say {words:?}");
    }
}
