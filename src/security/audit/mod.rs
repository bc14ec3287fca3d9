//! The tamper-evident audit log: JSONL, one event per line, each line
//! carrying a sequence number, a timestamp and the SHA-256 of the previous
//! line's exact bytes. Rotation by size carries the chain across files
//! (`audit.jsonl.1` is the newest rotated file); `audit.head` holds the hash
//! of the last line, so an edit of the last line shows too. Servers running
//! side by side share the log: every append holds an exclusive lock on
//! `audit.lock` (a file that is never rotated) and reads the chain's tail
//! from disk. Evidence, not prevention: a user who rewrites the whole chain
//! and the head can forge it.
//!
//! `event.rs` says what an event holds, `store.rs` writes (the one writer,
//! its thread, the locked append, rotation), `chain.rs` links lines and
//! keeps the head, `verify.rs` checks the chain, `query.rs` reads events
//! back (as JSON, so lines of any age read alike).

mod chain;
mod error;
mod event;
mod query;
mod store;
mod verify;

pub use error::AuditError;
pub use event::{
    AuditEvent, CallArguments, EgressEvent, JobEvent, MountRecord, Outcome, SessionEvent, ToolCall, Violation,
};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use store::{Job, Writer};

/// Longest text kept from one string field of an event (code, when code
/// logging is on, is kept up to [`MAX_CODE_CHARS`]).
pub const MAX_FIELD_CHARS: usize = 1024;
/// Longest code text kept in an event.
pub const MAX_CODE_CHARS: usize = 64 * 1024;

/// `prev` of the very first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Bytes read from the end of the log to find its last line.
const TAIL_BYTES: u64 = 256 * 1024;

/// Where and how the log is written.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSettings {
    /// The current log file; `None` disables the log.
    pub path: Option<PathBuf>,
    /// Size at which the log rotates.
    pub max_bytes: u64,
    /// Rotated files kept (the oldest is removed beyond this).
    pub keep_files: usize,
    /// Record the code itself, not only its hash and size.
    pub log_code: bool,
}

impl AuditSettings {
    /// The log file for people to read, or "off".
    pub fn location(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "off".to_string(), |path| path.display().to_string())
    }
}

/// The audit log of this machine (shared by every server on it).
pub struct AuditLog {
    /// Every append goes through it, from the writer thread or in line.
    writer: Arc<Writer>,
    /// The writer thread's queue, started by the first [`AuditLog::record`].
    queue: Mutex<Option<Sender<Job>>>,
}

/// The first line that breaks the chain.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, PartialEq)]
pub struct BadLine {
    pub file: String,
    /// Line number in that file, from 1.
    pub line: u64,
    pub reason: String,
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, PartialEq)]
pub struct VerifyReport {
    pub ok: bool,
    /// Lines checked across all files.
    pub lines: u64,
    pub files: Vec<String>,
    /// Sequence number of the first line kept (older files rotated away).
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad: Option<BadLine>,
}

/// Counts over the retained log.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema, PartialEq)]
pub struct AuditStats {
    pub events: u64,
    pub by_type: BTreeMap<String, u64>,
    pub by_tool: BTreeMap<String, u64>,
    pub by_outcome: BTreeMap<String, u64>,
}

impl AuditLog {
    pub fn new(settings: AuditSettings) -> Self {
        Self {
            writer: Arc::new(Writer::new(settings)),
            queue: Mutex::new(None),
        }
    }

    pub fn settings(&self) -> &AuditSettings {
        &self.writer.settings
    }

    /// True when the code itself should be logged.
    pub fn logs_code(&self) -> bool {
        self.settings().log_code
    }
}

/// `value` with every string cut to `max` characters and every array to 50
/// items, so no argument a caller sends can make an event huge.
pub fn clip(value: &Value, max: usize) -> Value {
    match value {
        Value::String(text) => Value::from(clip_text(text, max)),
        Value::Array(items) => Value::Array(items.iter().take(50).map(|item| clip(item, max)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .take(50)
                .map(|(key, item)| (key.chars().take(max).collect(), clip(item, max)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `text` cut to `max` characters, with `…` when it was cut.
pub fn clip_text(text: &str, max: usize) -> String {
    if text.chars().count() > max {
        format!("{}…", text.chars().take(max).collect::<String>())
    } else {
        text.to_string()
    }
}

pub fn hash_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Now, RFC 3339 with milliseconds (UTC).
fn timestamp() -> String {
    crate::clock::rfc3339_millis_now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::path::Path;

    pub(super) fn log_in(folder: &Path, max_bytes: u64) -> AuditLog {
        AuditLog::new(AuditSettings {
            path: Some(folder.join("audit.jsonl")),
            max_bytes,
            keep_files: 3,
            log_code: false,
        })
    }

    pub(super) fn temp_folder(name: &str) -> PathBuf {
        let folder = std::env::temp_dir().join(format!("mls-audit-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&folder).unwrap();
        folder
    }

    /// A small event that names `instance`.
    pub(super) fn stop(instance: &str) -> AuditEvent {
        AuditEvent::ServerStop {
            instance: instance.to_string(),
        }
    }

    fn execute_call(outcome: Outcome) -> AuditEvent {
        AuditEvent::ToolCall(Box::new(ToolCall {
            tool: "sandbox_execute".into(),
            instance: "i".into(),
            duration_ms: 1,
            arguments: CallArguments::default(),
            outcome,
        }))
    }

    #[test]
    fn a_written_chain_verifies_and_counts() {
        let folder = temp_folder("ok");
        let log = log_in(&folder, 1 << 20);
        for index in 0..5 {
            let outcome = if index % 2 == 0 {
                Outcome::Ok
            } else {
                Outcome::tool_error("refused")
            };
            log.append(&execute_call(outcome)).unwrap();
        }
        let report = log.verify().unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!((report.lines, report.first_seq, report.last_seq), (5, Some(1), Some(5)));
        let stats = log.stats().unwrap();
        assert_eq!(stats.by_outcome["ok"], 3);
        assert_eq!(stats.by_outcome["tool_error"], 2);
        assert_eq!(stats.by_tool["sandbox_execute"], 5);
        assert_eq!(stats.by_type["tool_call"], 5);
        let recent = log.recent(2, |_| true).unwrap();
        assert_eq!(recent[1]["seq"], 5);
        assert_eq!(recent[1]["type"], "tool_call");
        std::fs::remove_dir_all(folder).ok();
    }

    #[test]
    fn rotation_carries_the_chain_across_files() {
        let folder = temp_folder("rotate");
        let log = log_in(&folder, 400);
        for _ in 0..20 {
            log.append(&AuditEvent::Session(SessionEvent::Destroyed {
                name: "x".into(),
                language: "bash".into(),
            }))
            .unwrap();
        }
        let report = log.verify().unwrap();
        assert!(report.ok, "{report:?}");
        assert!(report.files.len() > 1, "{report:?}");
        assert_eq!(report.last_seq, Some(20));
        assert!(report.first_seq.unwrap() > 1, "the oldest files were rotated away");
        std::fs::remove_dir_all(folder).ok();
    }

    #[test]
    fn edits_deletions_and_reorders_are_found() {
        for (case, damage) in [("edit", 0usize), ("delete", 1), ("reorder", 2), ("edit-last", 3)] {
            let folder = temp_folder(case);
            let log = log_in(&folder, 1 << 20);
            for index in 0..6 {
                log.append(&stop(&format!("i{index}"))).unwrap();
            }
            let path = folder.join("audit.jsonl");
            let text = std::fs::read_to_string(&path).unwrap();
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            match damage {
                0 => lines[2] = lines[2].replace("\"instance\":\"i2\"", "\"instance\":\"i9\""),
                1 => {
                    lines.remove(3);
                }
                2 => lines.swap(1, 2),
                _ => lines[5] = lines[5].replace("\"instance\":\"i5\"", "\"instance\":\"i7\""),
            }
            std::fs::write(&path, lines.join("\n") + "\n").unwrap();
            let report = log.verify().unwrap();
            assert!(!report.ok, "{case} was not found");
            let bad = report.first_bad.unwrap();
            let expected_line = [4, 4, 2, 0][damage];
            assert_eq!(bad.line, expected_line, "{case}: {}", bad.reason);
            std::fs::remove_dir_all(folder).ok();
        }
    }

    #[test]
    fn a_cut_off_write_is_reported_and_the_log_goes_on() {
        let folder = temp_folder("torn");
        let log = log_in(&folder, 1 << 20);
        for _ in 0..3 {
            log.append(&stop("x")).unwrap();
        }
        let path = folder.join("audit.jsonl");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"seq\":4,\"ts\":\"2026").unwrap();
        drop(file);
        assert_eq!(log.append(&stop("after")).unwrap(), 4);
        let report = log.verify().unwrap();
        let bad = report.first_bad.expect("the cut line is reported");
        assert_eq!(bad.line, 4);
        assert!(bad.reason.contains("cut off"), "{}", bad.reason);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 5, "{text}");
        std::fs::remove_dir_all(folder).ok();
    }

    #[test]
    fn a_removed_head_or_removed_files_are_found() {
        let folder = temp_folder("head");
        let log = log_in(&folder, 1 << 20);
        log.append(&stop("x")).unwrap();
        std::fs::remove_file(folder.join("audit.head")).unwrap();
        assert!(!log.verify().unwrap().ok);
        log.append(&stop("x")).unwrap();
        assert!(log.verify().unwrap().ok);
        std::fs::remove_file(folder.join("audit.jsonl")).unwrap();
        let report = log.verify().unwrap();
        assert!(!report.ok && report.first_bad.unwrap().reason.contains("gone"));
        std::fs::remove_dir_all(folder).ok();
    }

    #[test]
    fn huge_fields_are_clipped() {
        let clipped = clip(
            &json!({"session": "a".repeat(300_000), "packages": vec!["p"; 500]}),
            1024,
        );
        assert!(clipped["session"].as_str().unwrap().chars().count() <= 1025);
        assert_eq!(clipped["packages"].as_array().unwrap().len(), 50);
    }

    #[test]
    fn a_disabled_log_writes_nothing() {
        let log = AuditLog::new(AuditSettings {
            path: None,
            max_bytes: 1,
            keep_files: 1,
            log_code: false,
        });
        assert_eq!(log.append(&stop("x")).unwrap(), 0);
        assert!(log.verify().unwrap().ok);
    }
}
