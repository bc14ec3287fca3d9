//! `egress.allow` as this server uses it now: the configured patterns,
//! plus those the user allowed "always" since the server started (which
//! are also added to the config file, for the next start). What models
//! may request, and the decisions on connections, read it here.

use crate::config::EgressSettings;
use crate::security::egress::HostPattern;
use parking_lot::{RwLock, RwLockReadGuard};
use std::borrow::Cow;

/// The live `egress.allow`.
#[derive(Debug, Default)]
pub struct AllowList {
    patterns: RwLock<Vec<HostPattern>>,
    /// How many patterns came from the configuration (the rest were added).
    configured: usize,
}

impl AllowList {
    pub fn new(configured: &[HostPattern]) -> Self {
        Self {
            patterns: RwLock::new(configured.to_vec()),
            configured: configured.len(),
        }
    }

    /// The patterns now (hold the guard briefly).
    pub fn read(&self) -> RwLockReadGuard<'_, Vec<HostPattern>> {
        self.patterns.read()
    }

    /// Adds `pattern` unless a listed one covers it; true when added.
    pub fn add(&self, pattern: HostPattern) -> bool {
        let mut patterns = self.patterns.write();
        if patterns.iter().any(|listed| listed.covers(&pattern)) {
            return false;
        }
        patterns.push(pattern);
        true
    }

    /// `settings` with `allow` as it is now (borrowed while nothing was added).
    pub fn settings<'a>(&self, settings: &'a EgressSettings) -> Cow<'a, EgressSettings> {
        let patterns = self.patterns.read();
        if patterns.len() == self.configured {
            return Cow::Borrowed(settings);
        }
        Cow::Owned(EgressSettings {
            allow: patterns.clone(),
            ..settings.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> HostPattern {
        text.parse().unwrap()
    }

    #[test]
    fn added_patterns_extend_the_configured_ones_once() {
        let settings = EgressSettings {
            allow: vec![pattern("*.example.org")],
            ..EgressSettings::default()
        };
        let list = AllowList::new(&settings.allow);
        assert!(matches!(list.settings(&settings), Cow::Borrowed(_)));
        assert!(!list.add(pattern("api.example.org")), "covered already");
        assert!(list.add(pattern("10.9.0.7:8080")));
        assert!(!list.add(pattern("10.9.0.7:8080")));
        assert_eq!(*list.read(), vec![pattern("*.example.org"), pattern("10.9.0.7:8080")]);
        let now = list.settings(&settings);
        assert_eq!(now.allow, *list.read());
        assert_eq!(now.budget_bytes, settings.budget_bytes);
    }
}
