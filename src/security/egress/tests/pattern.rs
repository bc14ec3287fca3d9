//! Host patterns: matching the host a connection asks for, and covering
//! one another.

use crate::security::egress::{Host, HostPattern};
use std::net::IpAddr;

fn parse(text: &str) -> HostPattern {
    text.parse().unwrap()
}

#[test]
fn wildcards_match_subdomains_at_any_depth_but_not_the_apex() {
    let wildcard = parse("*.example.org");
    let cases = [
        ("api.example.org", true),
        ("a.b.example.org", true),
        ("API.Example.org.", true),
        ("example.org", false),
        ("badexample.org", false),
        ("example.org.evil.test", false),
        ("example.org.", false),
        (".example.org", false),
        ("x..example.org", false),
        ("192.0.2.1", false),
    ];
    for (host, expected) in cases {
        assert_eq!(wildcard.matches(host, 443), expected, "{host}");
    }
    let apex = parse("example.org");
    for (host, expected) in [
        ("example.org", true),
        ("EXAMPLE.org.", true),
        ("api.example.org", false),
    ] {
        assert_eq!(apex.matches(host, 443), expected, "{host}");
    }
}

#[test]
fn ports_default_to_80_and_443_and_are_exact_when_given() {
    let cases = [
        ("api.github.com", "api.github.com", 443, true),
        ("api.github.com", "api.github.com", 80, true),
        ("api.github.com", "api.github.com", 8443, false),
        ("api.github.com", "api.github.com", 22, false),
        ("api.github.com:8443", "api.github.com", 8443, true),
        ("api.github.com:8443", "api.github.com", 443, false),
        ("api.github.com:443", "api.github.com", 80, false),
        ("*.example.org:8080", "a.example.org", 8080, true),
        ("*.example.org:8080", "a.example.org", 80, false),
    ];
    for (pattern, host, port, expected) in cases {
        assert_eq!(
            parse(pattern).matches(host, port),
            expected,
            "{pattern} vs {host}:{port}"
        );
    }
}

#[test]
fn address_patterns_match_only_that_address() {
    let cases = [
        ("192.0.2.1", "192.0.2.1", true),
        ("192.0.2.1", "192.0.2.2", false),
        ("[2001:db8::1]", "2001:db8::1", true),
        ("[2001:db8::1]", "[2001:db8::1]", true),
        ("[2001:db8::1]", "2001:DB8:0:0::1", true),
        ("[::1]", "::1", true),
        ("[::1]", "127.0.0.1", false),
        ("127.0.0.1", "::ffff:127.0.0.1", true),
        ("[::ffff:127.0.0.1]", "127.0.0.1", true),
        ("192.0.2.1", "one.example", false),
        ("one.example", "192.0.2.1", false),
    ];
    for (pattern, host, expected) in cases {
        assert_eq!(parse(pattern).matches(host, 443), expected, "{pattern} vs {host}");
    }
}

#[test]
fn hosts_that_are_not_hosts_match_nothing() {
    let wildcard = parse("*.example.org");
    for host in [
        "",
        "*.example.org",
        "a b.example.org",
        "bücher.example.org",
        "[example.org]",
        "a/b.example.org",
    ] {
        assert!(!wildcard.matches(host, 443), "{host:?}");
        assert_eq!(Host::parse(host), None, "{host:?}");
    }
}

#[test]
fn hosts_as_the_proxy_reports_them() {
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    assert_eq!(Host::parse("2001:db8::1"), Some(Host::Address(v6)));
    assert_eq!(Host::parse("[2001:db8::1]"), Some(Host::Address(v6)));
    assert_eq!(
        Host::parse("Api.Example.org."),
        Some(Host::Name("api.example.org".into()))
    );
    assert_eq!(Host::Address(v6).to_string(), "[2001:db8::1]");
    let exact = HostPattern::exact(&Host::Address(v6), 8443);
    assert_eq!(exact.to_string(), "[2001:db8::1]:8443");
    assert!(exact.matches("2001:db8::1", 8443));
    assert!(!exact.matches("2001:db8::1", 443));
}

#[test]
fn covering_compares_hosts_and_ports() {
    let cases = [
        ("*.github.com", "*.github.com", true),
        ("*.github.com", "api.github.com", true),
        ("*.github.com", "*.api.github.com", true),
        ("*.github.com", "github.com", false),
        ("*.github.com", "*.notgithub.com", false),
        ("api.github.com", "*.github.com", false),
        ("api.github.com", "api.github.com", true),
        ("api.github.com", "raw.github.com", false),
        ("api.github.com", "api.github.com:443", true),
        ("api.github.com", "api.github.com:80", true),
        ("api.github.com", "api.github.com:8443", false),
        ("api.github.com:443", "api.github.com", false),
        ("api.github.com:8443", "api.github.com:8443", true),
        ("*.github.com:8443", "api.github.com:8443", true),
        ("192.0.2.1", "192.0.2.1", true),
        ("192.0.2.1", "192.0.2.1:443", true),
        ("192.0.2.1", "192.0.2.2", false),
        ("127.0.0.1", "[::ffff:127.0.0.1]", true),
        ("*.example.org", "192.0.2.1", false),
    ];
    for (own, other, expected) in cases {
        assert_eq!(parse(own).covers(&parse(other)), expected, "{own} covers {other}");
    }
}
