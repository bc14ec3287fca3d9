//! The `egress.*` keys (network egress, issue #14): the typed settings and
//! how their values are read and written back. What they mean for a
//! connection is decided in `security::egress`; this module only loads them.

use super::ConfigError;
use super::values::{invalid, list, number};
use crate::security::egress::{ALLOW_PRIVATE_KEY, HostPattern, PrivateAllowance};

/// One MiB, the unit of `egress.budget_mb`.
const MIB: u64 = 1024 * 1024;

/// `egress.budget_mb` when unset: 1 GiB.
pub const DEFAULT_BUDGET_MB: u64 = 1024;

/// `egress.ask_timeout_s` when unset.
pub const DEFAULT_ASK_TIMEOUT_S: u64 = 60;

/// `egress.max_connections` when unset.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// The `egress.*` keys. Nothing here gives a sandbox network by itself: a
/// session or execute has network only when it asks (`network: [...]`).
#[derive(Debug, Clone, PartialEq)]
pub struct EgressSettings {
    /// `egress.allow`: host patterns granted without asking.
    pub allow: Vec<HostPattern>,
    /// `egress.allow_private`: non-global destinations the proxy may open.
    pub allow_private: PrivateAllowance,
    /// `egress.ask`: the user may be asked (MCP elicitation, when the client
    /// supports it) about hosts outside `allow` and the session's grants.
    pub ask: bool,
    /// `egress.ask_timeout_s`: how long a connection waits for the user's
    /// answer before it is refused.
    pub ask_timeout: std::time::Duration,
    /// `egress.budget_mb`, in bytes: what one session (or stateless
    /// execute) may move through the proxy, both directions together.
    pub budget_bytes: u64,
    /// `egress.max_connections`: connections one session may hold open
    /// through the proxy at once.
    pub max_connections: usize,
}

impl Default for EgressSettings {
    /// The keys' defaults: nothing allowed or opened, ask, 1 GiB, 64.
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            allow_private: PrivateAllowance::default(),
            ask: true,
            ask_timeout: std::time::Duration::from_secs(DEFAULT_ASK_TIMEOUT_S),
            budget_bytes: DEFAULT_BUDGET_MB * MIB,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// `api.github.com,*.example.org,host:8080`, each a [`HostPattern`].
pub(super) fn parse_allow(label: &str, value: &str) -> Result<Vec<HostPattern>, ConfigError> {
    list(value)
        .map(|entry| entry.parse().map_err(|error| invalid(label, format!("{error}"))))
        .collect()
}

/// `egress.allow` as [`parse_allow`] reads it.
pub(super) fn render_allow(patterns: &[HostPattern]) -> String {
    let entries: Vec<String> = patterns.iter().map(HostPattern::to_string).collect();
    entries.join(",")
}

/// `10.9.0.0/16,192.0.2.7,intranet.example`, read by [`PrivateAllowance::parse`].
pub(super) fn parse_allow_private(label: &str, value: &str) -> Result<PrivateAllowance, ConfigError> {
    PrivateAllowance::parse(list(value)).map_err(|error| {
        // The error names the key itself; the label already does.
        let text = error.to_string();
        let reason = text.strip_prefix(&format!("{ALLOW_PRIVATE_KEY}: ")).unwrap_or(&text);
        invalid(label, reason.to_string())
    })
}

/// `egress.allow_private` as [`parse_allow_private`] reads it.
pub(super) fn render_allow_private(allowance: &PrivateAllowance) -> String {
    let entries: Vec<String> = allowance.entries().iter().map(ToString::to_string).collect();
    entries.join(",")
}

/// MiB, at least 1, as bytes.
pub(super) fn parse_budget(label: &str, value: &str) -> Result<u64, ConfigError> {
    let megabytes: u64 = number(value, label)?;
    if megabytes == 0 {
        return Err(invalid(
            label,
            "use at least 1 (MiB); a session without network needs no budget".to_string(),
        ));
    }
    megabytes
        .checked_mul(MIB)
        .ok_or_else(|| invalid(label, format!("use at most {} (MiB)", u64::MAX / MIB)))
}

/// `egress.budget_mb` as [`parse_budget`] reads it (a part MiB counts whole).
pub(super) fn render_budget(bytes: u64) -> String {
    bytes.div_ceil(MIB).to_string()
}

/// A connection count, at least 1.
/// `egress.ask_timeout_s`: 1 second to 10 minutes.
pub(super) fn parse_ask_timeout(label: &str, value: &str) -> Result<std::time::Duration, ConfigError> {
    let seconds: u64 = number(value, label)?;
    if !(1..=600).contains(&seconds) {
        return Err(invalid(label, "use 1 to 600 seconds".to_string()));
    }
    Ok(std::time::Duration::from_secs(seconds))
}

pub(super) fn parse_max_connections(label: &str, value: &str) -> Result<usize, ConfigError> {
    let connections: usize = number(value, label)?;
    if connections == 0 {
        return Err(invalid(label, "use at least 1".to_string()));
    }
    Ok(connections)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, env_name};
    use crate::security::egress::{ALLOW_ENV, ALLOW_KEY, PrivateEntry};
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|key| map.get(key).cloned())
    }

    fn error_of(variable: &str, value: &str) -> String {
        from(&[(variable, value)]).unwrap_err().to_string()
    }

    #[test]
    fn the_defaults_allow_nothing_ask_and_bound_each_session() {
        let config = Config::default();
        assert_eq!(config.egress, EgressSettings::default());
        assert!(config.egress.allow.is_empty());
        assert!(config.egress.allow_private.entries().is_empty());
        assert!(config.egress.ask);
        assert_eq!(config.egress.budget_bytes, 1024 * 1024 * 1024);
        assert_eq!(config.egress.max_connections, 64);
    }

    #[test]
    fn the_variables_are_the_keys_with_the_dot_as_an_underscore() {
        assert_eq!(env_name(ALLOW_KEY), ALLOW_ENV);
        assert_eq!(env_name(ALLOW_PRIVATE_KEY), "MULTILANG_SANDBOX_EGRESS_ALLOW_PRIVATE");
        assert_eq!(env_name("egress.budget_mb"), "MULTILANG_SANDBOX_EGRESS_BUDGET_MB");
        for key in [ALLOW_KEY, ALLOW_PRIVATE_KEY] {
            assert!(crate::config::keys::key(key).is_some(), "{key} is not in KEYS");
        }
    }

    #[test]
    fn allow_reads_a_comma_list_of_host_patterns_and_writes_it_back() {
        let config = from(&[(
            ALLOW_ENV,
            " api.github.com, *.Example.org ,, host.example:8080,[2001:db8::1]:443",
        )])
        .unwrap();
        let expected: Vec<HostPattern> = [
            "api.github.com",
            "*.example.org",
            "host.example:8080",
            "[2001:db8::1]:443",
        ]
        .iter()
        .map(|text| text.parse().unwrap())
        .collect();
        assert_eq!(config.egress.allow, expected);
        let text = render_allow(&config.egress.allow);
        assert_eq!(text, "api.github.com,*.example.org,host.example:8080,[2001:db8::1]:443");
        assert_eq!(parse_allow("x", &text).unwrap(), expected);
    }

    #[test]
    fn a_bad_host_pattern_stops_loading_with_its_own_reason_and_the_variable() {
        let error = error_of(ALLOW_ENV, "api.github.com,https://example.org/x");
        assert!(error.contains(ALLOW_ENV), "{error}");
        assert!(
            error.contains("has a scheme: write the host alone, `example.org`"),
            "{error}"
        );
        for bad in ["*", "*.com", "host:0", "2001:db8::1"] {
            let error = error_of(ALLOW_ENV, bad);
            let expected = bad.parse::<HostPattern>().unwrap_err().to_string();
            assert!(error.contains(ALLOW_ENV) && error.contains(&expected), "{bad}: {error}");
        }
    }

    #[test]
    fn allow_private_reads_networks_addresses_and_hosts() {
        let variable = env_name(ALLOW_PRIVATE_KEY);
        let config = from(&[(
            &variable,
            "10.9.0.0/16, 192.168.1.7,fd00:9::/64,intranet.example,*.corp.example",
        )])
        .unwrap();
        let entries = config.egress.allow_private.entries();
        assert_eq!(entries.len(), 5);
        assert!(matches!(entries[0], PrivateEntry::Network(net) if net.to_string() == "10.9.0.0/16"));
        assert!(matches!(&entries[3], PrivateEntry::Host(pattern) if pattern.to_string() == "intranet.example"));
        let text = render_allow_private(&config.egress.allow_private);
        assert_eq!(
            text,
            "10.9.0.0/16,192.168.1.7,fd00:9::/64,intranet.example,*.corp.example"
        );
        assert_eq!(parse_allow_private("x", &text).unwrap(), config.egress.allow_private);
    }

    #[test]
    fn a_bad_network_stops_loading_naming_the_variable_once() {
        let variable = env_name(ALLOW_PRIVATE_KEY);
        for (bad, reason) in [
            (
                "10.9.0.1/16",
                "has bits set after the prefix: the network is `10.9.0.0/16`",
            ),
            ("10.0.0.0/33", "is not a network"),
            ("0.0.0.0/0", "is every address"),
            ("127.0.0.0/8", "never connects to"),
            ("intranet.example:8080", "has a port"),
        ] {
            let error = error_of(&variable, bad);
            assert!(error.contains(&variable) && error.contains(reason), "{bad}: {error}");
            assert_eq!(error.matches(ALLOW_PRIVATE_KEY).count(), 0, "{bad}: {error}");
        }
    }

    #[test]
    fn ask_is_a_flag_and_a_typo_is_an_error() {
        for (value, ask) in [
            ("false", false),
            ("0", false),
            ("no", false),
            ("true", true),
            ("1", true),
            ("YES", true),
        ] {
            assert_eq!(
                from(&[("MULTILANG_SANDBOX_EGRESS_ASK", value)]).unwrap().egress.ask,
                ask,
                "{value}"
            );
        }
        let error = error_of("MULTILANG_SANDBOX_EGRESS_ASK", "ture");
        assert!(
            error.contains("MULTILANG_SANDBOX_EGRESS_ASK") && error.contains("`ture`"),
            "{error}"
        );
    }

    #[test]
    fn the_budget_is_in_mib_and_at_least_one() {
        let config = from(&[("MULTILANG_SANDBOX_EGRESS_BUDGET_MB", "2048")]).unwrap();
        assert_eq!(config.egress.budget_bytes, 2048 * MIB);
        assert_eq!(render_budget(config.egress.budget_bytes), "2048");
        assert_eq!(render_budget(MIB + 1), "2");
        let error = error_of("MULTILANG_SANDBOX_EGRESS_BUDGET_MB", "0");
        assert!(
            error.contains("MULTILANG_SANDBOX_EGRESS_BUDGET_MB") && error.contains("at least 1"),
            "{error}"
        );
        let error = error_of("MULTILANG_SANDBOX_EGRESS_BUDGET_MB", &u64::MAX.to_string());
        assert!(error.contains("at most"), "{error}");
        assert!(error_of("MULTILANG_SANDBOX_EGRESS_BUDGET_MB", "lots").contains("not a valid number"));
    }

    #[test]
    fn connections_are_at_least_one() {
        let config = from(&[("MULTILANG_SANDBOX_EGRESS_MAX_CONNECTIONS", "8")]).unwrap();
        assert_eq!(config.egress.max_connections, 8);
        let error = error_of("MULTILANG_SANDBOX_EGRESS_MAX_CONNECTIONS", "0");
        assert!(
            error.contains("MULTILANG_SANDBOX_EGRESS_MAX_CONNECTIONS") && error.contains("at least 1"),
            "{error}"
        );
    }
}
