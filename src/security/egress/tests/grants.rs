//! Grant decisions per connection, and the review of a model's request.

use super::patterns;
use crate::security::egress::{Decision, HostPattern, Policy, Rule, Verdict};

fn pattern(text: &str) -> HostPattern {
    text.parse().unwrap()
}

fn policy<'a>(configured: &'a [HostPattern], granted: &'a [HostPattern], can_ask: bool) -> Policy<'a> {
    Policy {
        configured,
        granted,
        can_ask,
    }
}

#[test]
fn connections_are_allowed_by_a_grant_only() {
    let configured = patterns(&[
        "api.github.com",
        "*.example.org",
        "192.0.2.10",
        "files.example.net:8443",
    ]);
    let granted = patterns(&["*.github.com", "approved.example:8080"]);
    let rules = policy(&configured, &granted, false);
    let grant = |text: &str| Decision::Allowed {
        rule: Rule::Grant(pattern(text)),
    };
    let cases = [
        ("api.github.com", 443, grant("*.github.com")),
        ("raw.github.com", 80, grant("*.github.com")),
        ("approved.example", 8080, grant("approved.example:8080")),
        ("API.GitHub.com.", 443, grant("*.github.com")),
    ];
    for (host, port, expected) in cases {
        assert_eq!(rules.decide(host, port), expected, "{host}:{port}");
    }
    // What egress.allow covers but the sandbox did not request is refused,
    // asking possible or not: the model can request it.
    for can_ask in [false, true] {
        let rules = policy(&configured, &granted, can_ask);
        for (host, port, key) in [
            ("a.b.example.org", 443, "*.example.org"),
            ("192.0.2.10", 443, "192.0.2.10"),
            ("files.example.net", 8443, "files.example.net:8443"),
        ] {
            let Decision::Refused { reason } = rules.decide(host, port) else {
                panic!("{host}:{port} is refused")
            };
            assert!(
                reason.contains(&format!(
                    "not in this sandbox's grants, though egress.allow has `{key}`"
                )),
                "{reason}"
            );
            assert!(reason.contains("request it with `network`"), "{reason}");
        }
    }
}

#[test]
fn outside_every_rule_the_user_is_asked_when_that_is_possible() {
    let configured = patterns(&["api.github.com"]);
    let asking = policy(&configured, &[], true);
    for (host, port) in [("example.com", 443), ("192.0.2.1", 443), ("github.com", 443)] {
        assert_eq!(asking.decide(host, port), Decision::AskUser, "{host}:{port}");
    }
    assert!(matches!(asking.decide("not a host", 443), Decision::Refused { .. }));
}

#[test]
fn refusals_say_why_and_name_the_config_key() {
    let configured = patterns(&["api.github.com", "*.example.org", "192.0.2.10"]);
    let granted = patterns(&["files.example.net:8443"]);
    let rules = policy(&configured, &granted, false);
    let cases = [
        (
            "example.com",
            443,
            "example.com:443 is refused: it is neither in this sandbox's grants nor in egress.allow; the user can add `example.com` to egress.allow in the config file or to MULTILANG_SANDBOX_EGRESS_ALLOW in the environment",
        ),
        (
            "example.com",
            8080,
            "the user can add `example.com:8080` to egress.allow",
        ),
        (
            "example.org",
            443,
            "neither in this sandbox's grants nor in egress.allow",
        ),
        (
            "www.example.org",
            443,
            "not in this sandbox's grants, though egress.allow has `*.example.org`",
        ),
        (
            "api.github.com",
            8443,
            "api.github.com:8443 is refused: it is allowed on ports 80 and 443 only (`api.github.com`)",
        ),
        (
            "files.example.net",
            443,
            "it is allowed on port 8443 only (`files.example.net:8443`)",
        ),
        (
            "192.0.2.1",
            443,
            "192.0.2.1:443 is refused: an IP address is reachable only when granted as that same address; the user can add `192.0.2.1`",
        ),
        ("2001:db8::1", 443, "[2001:db8::1]:443 is refused: an IP address"),
        (
            "192.0.2.10",
            22,
            "it is allowed on ports 80 and 443 only (`192.0.2.10`)",
        ),
        ("bad host", 443, "`bad host` is neither a host name nor an IP address"),
    ];
    for (host, port, words) in cases {
        let Decision::Refused { reason } = rules.decide(host, port) else {
            panic!("{host}:{port} is refused")
        };
        assert!(reason.contains(words), "{host}:{port}: {reason:?} should say {words:?}");
        assert!(!reason.contains('\n'), "{reason}");
    }
}

#[test]
fn a_session_never_uses_another_sessions_grants() {
    let configured = patterns(&["api.github.com"]);
    let first = patterns(&["approved.example"]);
    let second: Vec<HostPattern> = Vec::new();
    assert!(matches!(
        policy(&configured, &first, false).decide("approved.example", 443),
        Decision::Allowed { .. }
    ));
    assert!(matches!(
        policy(&configured, &second, false).decide("approved.example", 443),
        Decision::Refused { .. }
    ));
}

#[test]
fn requests_inside_egress_allow_are_covered() {
    let configured = patterns(&["*.github.com", "api.example.org", "192.0.2.10", "[2001:db8::1]:8443"]);
    let rules = policy(&configured, &[], false);
    let cases = [
        ("*.github.com", "*.github.com"),
        ("api.github.com", "*.github.com"),
        ("*.api.github.com", "*.github.com"),
        ("api.github.com:443", "*.github.com"),
        ("api.example.org", "api.example.org"),
        ("api.example.org:80", "api.example.org"),
        ("192.0.2.10", "192.0.2.10"),
        ("[2001:db8::1]:8443", "[2001:db8::1]:8443"),
    ];
    for (requested, by) in cases {
        let review = rules.review(&[pattern(requested)]);
        let expected = Verdict::Covered {
            by: Rule::Configured(pattern(by)),
        };
        assert_eq!(review.items, vec![(pattern(requested), expected)], "{requested}");
        assert_eq!(review.refusal(), None);
    }
}

#[test]
fn requests_outside_egress_allow_are_refused_or_asked() {
    let configured = patterns(&[
        "api.github.com",
        "raw.github.com",
        "files.example.net:8443",
        "192.0.2.10",
    ]);
    let cases = [
        (
            "*.github.com",
            "`*.github.com` is not covered by egress.allow (it has the narrower `api.github.com`, `raw.github.com`: request those instead); the user can add `*.github.com` to egress.allow in the config file or to MULTILANG_SANDBOX_EGRESS_ALLOW in the environment",
        ),
        (
            "github.com",
            "`github.com` is not covered by egress.allow; the user can add `github.com`",
        ),
        (
            "api.github.com:8443",
            "(it has `api.github.com`, for ports 80 and 443 only)",
        ),
        (
            "files.example.net",
            "(it has `files.example.net:8443`, for port 8443 only)",
        ),
        (
            "*.example.net",
            "(it has the narrower `files.example.net:8443`: request that instead)",
        ),
        ("192.0.2.11", "(an IP address is covered only by that same address)"),
        ("[::ffff:192.0.2.11]", "IP address"),
        ("192.0.2.10:8443", "(it has `192.0.2.10`, for ports 80 and 443 only)"),
        ("example.com", "MULTILANG_SANDBOX_EGRESS_ALLOW"),
    ];
    let refusing = policy(&configured, &[], false);
    let asking = policy(&configured, &[], true);
    for (requested, words) in cases {
        let review = refusing.review(&[pattern(requested)]);
        let [(_, Verdict::Refused { reason })] = review.items.as_slice() else {
            panic!("{requested}: {review:?}")
        };
        assert!(reason.contains(words), "{requested}: {reason:?} should say {words:?}");
        assert_eq!(review.refusal().as_deref(), Some(reason.as_str()));
        let review = asking.review(&[pattern(requested)]);
        assert_eq!(
            review.items,
            vec![(pattern(requested), Verdict::NeedsApproval)],
            "{requested}"
        );
        assert_eq!(review.needs_approval().collect::<Vec<_>>(), [&pattern(requested)]);
        assert_eq!(review.refusal(), None);
    }
}

#[test]
fn a_review_keeps_order_drops_duplicates_and_counts_existing_grants() {
    let configured = patterns(&["*.github.com"]);
    let granted = patterns(&["approved.example"]);
    let requested = patterns(&[
        "api.github.com",
        "unknown.example",
        "approved.example",
        "API.github.com.",
        "other.test",
    ]);
    let review = policy(&configured, &granted, false).review(&requested);
    let order: Vec<String> = review.items.iter().map(|(p, _)| p.to_string()).collect();
    assert_eq!(
        order,
        ["api.github.com", "unknown.example", "approved.example", "other.test"]
    );
    assert_eq!(
        review.items[2].1,
        Verdict::Covered {
            by: Rule::Grant(pattern("approved.example"))
        }
    );
    assert_eq!(review.covered().count(), 2);
    let refusal = review.refusal().unwrap();
    assert!(refusal.contains("`unknown.example` is not covered") && refusal.contains("; `other.test` is not covered"));
    assert!(!refusal.contains('\n'));
}

#[test]
fn rules_name_where_they_come_from() {
    assert_eq!(
        Rule::Grant(pattern("*.github.com")).to_string(),
        "session grant `*.github.com`"
    );
    assert_eq!(
        Rule::Configured(pattern("api.github.com:8443")).to_string(),
        "egress.allow `api.github.com:8443`"
    );
}
