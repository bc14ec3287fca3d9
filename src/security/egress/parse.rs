//! Reading a host pattern from what a user or a model wrote, with errors
//! that say what to write instead.
//!
//! Choices:
//! - Normalized: lower case, surrounding spaces and one trailing dot dropped,
//!   IPv6 in its shortest form.
//! - Names are ASCII: an internationalized name is written in its punycode
//!   form (`xn--…`), which is what goes on the wire; no IDNA crate. Labels
//!   are letters, digits, `-` and `_` (found in real host names, though not
//!   in the strict rules), at most 63 characters, 253 in all.
//! - A wildcard is the whole leftmost label and needs at least two labels
//!   after it: `*` and `*.com` are refused. (Two-label public suffixes such
//!   as `*.co.uk` cannot be told apart without a suffix list, so they pass.)
//! - A name whose last label is a number (`1.2.3`, `0x7f.1`, `2130706433`)
//!   is refused: resolvers would read it as an IPv4 address in disguise.
//! - IPv6 literals are written in brackets (`[2001:db8::1]:443`); schemes,
//!   paths and zone ids are refused.

use super::pattern::{HostPattern, HostSpec};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use thiserror::Error;

const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// A host pattern that cannot be used; the text says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatternError {
    #[error("an empty host pattern: write a host name such as `api.github.com` or `*.example.org`")]
    Empty,
    #[error(
        "`{given}` has a scheme: write the host alone, `{host}` (add `:port` only for a port other than 80 and 443)"
    )]
    Scheme { given: String, host: String },
    #[error("`{given}` has a path: access is granted per host, so write `{host}`")]
    Path { given: String, host: String },
    #[error(
        "`{0}` is not ASCII: write the name in its punycode form, as it goes on the wire \
         (`bücher.example` is `xn--bcher-kva.example`)"
    )]
    NotAscii(String),
    #[error("`{0}` is an IPv6 address: write it in brackets, `[{0}]` (with a port: `[{0}]:443`)")]
    UnbracketedIpv6(String),
    #[error("`{0}`: brackets hold an IPv6 address, as in `[2001:db8::1]` or `[2001:db8::1]:443`")]
    BadIpv6(String),
    #[error("`{given}` has port `{port}`: a port is a number from 1 to 65535, as in `api.example.org:8443`")]
    BadPort { given: String, port: String },
    #[error("`{0}` would allow every host: list the hosts, or one site's subdomains such as `*.example.org`")]
    EveryHost(String),
    #[error("`{0}`: a wildcard is the whole leftmost label and nothing else, as in `*.example.org`")]
    MisplacedWildcard(String),
    #[error("`{given}` covers a whole top-level domain: name a site under it, as in `*.example.{tld}`")]
    WholeTopLevel { given: String, tld: String },
    #[error("`{given}` contains `{character}`: host names are letters, digits, `-`, `_` and dots")]
    BadCharacter { given: String, character: char },
    #[error("`{0}` has an empty label (a leading dot or `..`): write the name as in `api.example.org`")]
    EmptyLabel(String),
    #[error("`{0}` has a label longer than 63 characters, more than DNS allows")]
    LabelTooLong(String),
    #[error("`{0}` is longer than 253 characters, more than DNS allows")]
    NameTooLong(String),
    #[error("`{0}` has a label that starts or ends with `-`, which host names cannot")]
    HyphenAtEdge(String),
    #[error("`{0}` ends in a number, so it is not a host name: write an IPv4 address whole, as in `192.0.2.1`")]
    NumericEnd(String),
}

impl FromStr for HostPattern {
    type Err = PatternError;

    fn from_str(text: &str) -> Result<Self, PatternError> {
        let given = text.trim();
        if given.is_empty() {
            return Err(PatternError::Empty);
        }
        if let Some((_, rest)) = given.split_once("://") {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default().to_string();
            return Err(PatternError::Scheme {
                given: given.into(),
                host,
            });
        }
        if let Some(at) = given.find(['/', '?', '#']) {
            let host = given[..at].to_string();
            return Err(PatternError::Path {
                given: given.into(),
                host,
            });
        }
        if !given.is_ascii() {
            return Err(PatternError::NotAscii(given.into()));
        }
        let lower = given.to_ascii_lowercase();
        if let Some(bracketed) = lower.strip_prefix('[') {
            return parse_bracketed(given, bracketed);
        }
        let (host, port) = match lower.matches(':').count() {
            0 => (lower.as_str(), None),
            1 => {
                let (host, port) = lower.split_once(':').unwrap_or((&lower, ""));
                (host, Some(parse_port(given, port)?))
            }
            _ if lower.parse::<Ipv6Addr>().is_ok() => return Err(PatternError::UnbracketedIpv6(given.into())),
            _ => {
                return Err(PatternError::BadCharacter {
                    given: given.into(),
                    character: ':',
                });
            }
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() {
            return Err(PatternError::Empty);
        }
        if let Ok(ip) = host.parse::<Ipv4Addr>() {
            return Ok(HostPattern::new(HostSpec::Address(ip.into()), port));
        }
        if host == "*" {
            return Err(PatternError::EveryHost(given.into()));
        }
        let spec = if let Some(domain) = host.strip_prefix("*.") {
            check_name(given, domain)?;
            if !domain.contains('.') {
                return Err(PatternError::WholeTopLevel {
                    given: given.into(),
                    tld: domain.into(),
                });
            }
            HostSpec::Subdomains(domain.into())
        } else {
            check_name(given, host)?;
            HostSpec::Name(host.into())
        };
        Ok(HostPattern::new(spec, port))
    }
}

/// `[v6]` or `[v6]:port`, the opening bracket already taken off.
fn parse_bracketed(given: &str, bracketed: &str) -> Result<HostPattern, PatternError> {
    let bad = || PatternError::BadIpv6(given.into());
    let (inner, after) = bracketed.split_once(']').ok_or_else(bad)?;
    let ip = inner.parse::<Ipv6Addr>().map_err(|_| bad())?;
    let port = match after {
        "" => None,
        _ => Some(parse_port(given, after.strip_prefix(':').ok_or_else(bad)?)?),
    };
    Ok(HostPattern::new(HostSpec::Address(ip.into()), port))
}

fn parse_port(given: &str, port: &str) -> Result<u16, PatternError> {
    let bad = || PatternError::BadPort {
        given: given.into(),
        port: port.into(),
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    port.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(bad)
}

/// Checks a lower-case name without trailing dot; `given` is what the user
/// wrote, for the message.
pub(super) fn check_name(given: &str, name: &str) -> Result<(), PatternError> {
    if name.len() > MAX_NAME {
        return Err(PatternError::NameTooLong(given.into()));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(PatternError::EmptyLabel(given.into()));
        }
        if label.contains('*') {
            return Err(PatternError::MisplacedWildcard(given.into()));
        }
        if let Some(character) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(PatternError::BadCharacter {
                given: given.into(),
                character,
            });
        }
        if label.len() > MAX_LABEL {
            return Err(PatternError::LabelTooLong(given.into()));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(PatternError::HyphenAtEdge(given.into()));
        }
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    let hex = |digits: &str| digits.bytes().all(|b| b.is_ascii_hexdigit());
    if last.bytes().all(|b| b.is_ascii_digit()) || last.strip_prefix("0x").is_some_and(hex) {
        return Err(PatternError::NumericEnd(given.into()));
    }
    Ok(())
}

impl TryFrom<String> for HostPattern {
    type Error = PatternError;

    fn try_from(text: String) -> Result<Self, PatternError> {
        text.parse()
    }
}
