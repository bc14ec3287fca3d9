//! Reading the log back: the latest events, and counts over it.

use super::{AuditLog, AuditStats};
use crate::security::audit::AuditError;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};

impl AuditLog {
    /// Events of the retained log, newest last, keeping only those `keep`
    /// accepts; at most `count` of the newest.
    pub fn recent(&self, count: usize, keep: impl Fn(&Value) -> bool) -> Result<Vec<Value>, AuditError> {
        let mut found: std::collections::VecDeque<Value> = std::collections::VecDeque::new();
        self.scan(|event| {
            if keep(&event) {
                found.push_back(event);
                if found.len() > count {
                    found.pop_front();
                }
            }
        })?;
        Ok(found.into())
    }

    /// Counts by type, tool and outcome.
    pub fn stats(&self) -> Result<AuditStats, AuditError> {
        let mut stats = AuditStats::default();
        self.scan(|event| {
            stats.events += 1;
            let count = |map: &mut BTreeMap<String, u64>, key: &str| {
                if let Some(value) = event[key].as_str() {
                    *map.entry(value.to_string()).or_default() += 1;
                }
            };
            count(&mut stats.by_type, "type");
            count(&mut stats.by_tool, "tool");
            count(&mut stats.by_outcome, "outcome");
        })?;
        Ok(stats)
    }

    pub(super) fn scan(&self, mut visit: impl FnMut(Value)) -> Result<(), AuditError> {
        self.flush();
        let _shared = self.shared_lock()?;
        for file in self.files() {
            let reader = BufReader::new(File::open(&file).map_err(|e| AuditError::io(&file, e))?);
            for line in reader.split(b'\n') {
                let line = line.map_err(|e| AuditError::io(&file, e))?;
                if let Ok(event) = serde_json::from_slice::<Value>(&line) {
                    visit(event);
                }
            }
        }
        Ok(())
    }
}
