//! Reading host patterns: normalization, and errors that say what to write.

use super::patterns;
use crate::security::egress::{HostPattern, HostSpec, PatternError};

fn parse(text: &str) -> Result<HostPattern, PatternError> {
    text.parse()
}

#[test]
fn patterns_normalize_and_display_what_parses_back() {
    let cases = [
        ("api.github.com", "api.github.com"),
        ("EXAMPLE.org.", "example.org"),
        ("  Api.GitHub.com  ", "api.github.com"),
        ("*.Example.ORG.", "*.example.org"),
        ("example.org:8443", "example.org:8443"),
        ("example.org.:443", "example.org:443"),
        ("example.org:0443", "example.org:443"),
        ("*.example.org:8080", "*.example.org:8080"),
        ("192.0.2.1", "192.0.2.1"),
        ("192.0.2.1:8080", "192.0.2.1:8080"),
        ("[2001:DB8::1]", "[2001:db8::1]"),
        ("[2001:db8:0::1]:443", "[2001:db8::1]:443"),
        ("[::ffff:127.0.0.1]", "[::ffff:127.0.0.1]"),
        ("origin", "origin"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("_service.example.org", "_service.example.org"),
    ];
    for (given, shown) in cases {
        let pattern = parse(given).unwrap_or_else(|error| panic!("{given}: {error}"));
        assert_eq!(pattern.to_string(), shown, "{given}");
        assert_eq!(parse(shown).unwrap(), pattern, "{shown} parses back");
    }
}

#[test]
fn parsed_parts_are_what_was_written() {
    let wildcard = parse("*.example.org").unwrap();
    assert_eq!(wildcard.host(), &HostSpec::Subdomains("example.org".into()));
    assert_eq!(wildcard.port(), None);
    assert_eq!(wildcard.ports_text(), "ports 80 and 443");
    let name = parse("EXAMPLE.org.:8443").unwrap();
    assert_eq!(name.host(), &HostSpec::Name("example.org".into()));
    assert_eq!(name.port(), Some(8443));
    assert_eq!(name.ports_text(), "port 8443");
    let v6 = parse("[::1]:443").unwrap();
    assert_eq!(v6.host(), &HostSpec::Address("::1".parse().unwrap()));
    assert!(v6.is_address());
    assert!(!name.is_address());
}

#[test]
fn bad_patterns_are_refused_with_what_to_write() {
    let long_label = format!("{}.example.org", "a".repeat(64));
    let long_name = format!("{}.org", ["abcdefghij"; 23].join("."));
    // (written, the error's variant, words its message must have)
    let cases = [
        ("", "Empty", "write a host name such as `api.github.com`"),
        ("   ", "Empty", "api.github.com"),
        (":443", "Empty", "api.github.com"),
        (
            "https://api.github.com/repos",
            "Scheme",
            "has a scheme: write the host alone, `api.github.com`",
        ),
        ("http://example.org", "Scheme", "`example.org`"),
        (
            "example.org/path",
            "Path",
            "has a path: access is granted per host, so write `example.org`",
        ),
        ("example.org?q=1", "Path", "write `example.org`"),
        ("bücher.example", "NotAscii", "punycode form"),
        (
            "2001:db8::1",
            "UnbracketedIpv6",
            "in brackets, `[2001:db8::1]` (with a port: `[2001:db8::1]:443`)",
        ),
        ("[2001:db8::1", "BadIpv6", "brackets hold an IPv6 address"),
        ("[192.0.2.1]", "BadIpv6", "[2001:db8::1]"),
        ("[::1]443", "BadIpv6", "[2001:db8::1]:443"),
        ("[fe80::1%eth0]", "BadIpv6", "IPv6"),
        (
            "example.org:",
            "BadPort",
            "has port ``: a port is a number from 1 to 65535",
        ),
        ("example.org:0", "BadPort", "port `0`"),
        ("example.org:65536", "BadPort", "port `65536`"),
        ("example.org:+80", "BadPort", "port `+80`"),
        ("example.org:https", "BadPort", "port `https`"),
        ("[::1]:x", "BadPort", "port `x`"),
        ("*", "EveryHost", "would allow every host"),
        ("*.", "EveryHost", "every host"),
        ("*:443", "EveryHost", "every host"),
        (
            "*.com",
            "WholeTopLevel",
            "a whole top-level domain: name a site under it, as in `*.example.com`",
        ),
        ("*.localhost", "WholeTopLevel", "`*.example.localhost`"),
        ("api.*.example.org", "MisplacedWildcard", "the whole leftmost label"),
        ("*.*.example.org", "MisplacedWildcard", "`*.example.org`"),
        ("a*.example.org", "MisplacedWildcard", "leftmost"),
        ("example.*", "MisplacedWildcard", "leftmost"),
        (
            "exa mple.org",
            "BadCharacter",
            "contains ` `: host names are letters, digits",
        ),
        ("user@example.org", "BadCharacter", "contains `@`"),
        ("a:b:c", "BadCharacter", "contains `:`"),
        ("example..org", "EmptyLabel", "an empty label"),
        (".example.org", "EmptyLabel", "a leading dot"),
        ("example.org..", "EmptyLabel", "`..`"),
        (&long_label, "LabelTooLong", "longer than 63 characters"),
        (&long_name, "NameTooLong", "longer than 253 characters"),
        ("-api.example.org", "HyphenAtEdge", "starts or ends with `-`"),
        ("api-.example.org", "HyphenAtEdge", "`-`"),
        ("256.1.1.1", "NumericEnd", "ends in a number, so it is not a host name"),
        ("1.2.3", "NumericEnd", "`192.0.2.1`"),
        ("0x7f.0.0.1", "NumericEnd", "IPv4"),
        ("example.0x1f", "NumericEnd", "number"),
        ("01.2.3.4", "NumericEnd", "number"),
        ("*.0.0.1", "NumericEnd", "number"),
        ("2130706433", "NumericEnd", "number"),
    ];
    for (given, variant, words) in cases {
        let refused = parse(given).expect_err(given);
        let debug = format!("{refused:?}");
        assert_eq!(debug.split(['(', ' ']).next(), Some(variant), "{given}: {debug}");
        let message = refused.to_string();
        assert!(message.contains(words), "{given}: {message:?} should say {words:?}");
        let quoted = format!("`{}`", given.trim());
        assert!(
            variant == "Empty" || message.contains(&quoted),
            "{given}: {message:?} should quote it"
        );
    }
}

#[test]
fn error_fields_carry_the_suggested_host() {
    let refused = parse("https://api.github.com/repos").unwrap_err();
    assert_eq!(
        refused,
        PatternError::Scheme {
            given: "https://api.github.com/repos".into(),
            host: "api.github.com".into()
        }
    );
    let refused = parse("example.org/path").unwrap_err();
    assert_eq!(
        refused,
        PatternError::Path {
            given: "example.org/path".into(),
            host: "example.org".into()
        }
    );
}

#[test]
fn a_name_with_a_numeric_label_inside_is_a_name() {
    for given in ["123.example.org", "a.1.example", "1password.com", "example.co1"] {
        assert!(parse(given).is_ok(), "{given}");
    }
}

#[test]
fn patterns_serialize_as_their_text() {
    let list = patterns(&["*.example.org", "[::1]:8443"]);
    let json = serde_json::to_string(&list).unwrap();
    assert_eq!(json, r#"["*.example.org","[::1]:8443"]"#);
    assert_eq!(serde_json::from_str::<Vec<HostPattern>>(&json).unwrap(), list);
    let refused = serde_json::from_str::<HostPattern>(r#""*.com""#).unwrap_err();
    assert!(refused.to_string().contains("top-level domain"), "{refused}");
}
