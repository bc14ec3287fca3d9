//! The tamper-evident audit log: JSONL, one event per line, each line
//! carrying a sequence number, a timestamp and the SHA-256 of the previous
//! line's exact bytes. Rotation by size carries the chain across files
//! (`audit.jsonl.1` is the newest rotated file); `audit.head` holds the hash
//! of the last line, so an edit of the last line shows too. Servers running
//! side by side share the log: every append holds an exclusive lock on
//! `audit.lock` (a file that is never rotated) and reads the chain's tail
//! from disk. Evidence, not prevention: a user who rewrites the whole chain
//! and the head can forge it.

use crate::error::AuditError;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};

/// Longest text kept from one string field of an event (code, when code
/// logging is on, is kept up to [`MAX_CODE_CHARS`]).
pub const MAX_FIELD_CHARS: usize = 1024;
/// Longest code text kept in an event.
pub const MAX_CODE_CHARS: usize = 64 * 1024;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Sender, SyncSender};

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
    settings: AuditSettings,
    guard: std::sync::Mutex<()>,
    /// The writer thread's queue, started by the first [`AuditLog::record`].
    queue: std::sync::Mutex<Option<Sender<Job>>>,
}

/// Work for the writer thread.
enum Job {
    Append(String, Value),
    /// Answered once every event queued before it is written.
    Flush(SyncSender<()>),
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
            settings,
            guard: std::sync::Mutex::new(()),
            queue: std::sync::Mutex::new(None),
        }
    }

    pub fn settings(&self) -> &AuditSettings {
        &self.settings
    }

    /// True when the code itself should be logged.
    pub fn logs_code(&self) -> bool {
        self.settings.log_code
    }

    /// Queues an event of `kind` with `fields` (an object) for the writer
    /// thread, so file IO and the cross-process lock stay off the request's
    /// path; events keep their order. Failures are logged to stderr and
    /// otherwise ignored: the audit log must never stop a sandbox from
    /// answering. Readers of this log ([`AuditLog::recent`], `stats`,
    /// `verify`) first wait for the queue to drain.
    pub fn record(&self, kind: &str, fields: Value) {
        if self.settings.path.is_none() {
            return;
        }
        let job = Job::Append(kind.to_string(), fields);
        let unsent = match self.writer() {
            Some(queue) => queue.send(job).err().map(|returned| returned.0),
            None => Some(job),
        };
        // No writer thread: write here.
        if let Some(Job::Append(kind, fields)) = unsent {
            self.append_or_warn(&kind, fields);
        }
    }

    /// Waits (up to 10 s) until every queued event is written.
    pub fn flush(&self) {
        let Some(queue) = self.lock_queue().clone() else {
            return;
        };
        let (done, written) = std::sync::mpsc::sync_channel(1);
        if queue.send(Job::Flush(done)).is_ok() {
            let _ = written.recv_timeout(std::time::Duration::from_secs(10));
        }
    }

    fn append_or_warn(&self, kind: &str, fields: Value) {
        if let Err(error) = self.append(kind, fields) {
            tracing::warn!(%error, "could not write the audit log");
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Option<Sender<Job>>> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The writer thread's queue, starting the thread on first use.
    fn writer(&self) -> Option<Sender<Job>> {
        let mut slot = self.lock_queue();
        if slot.is_none() {
            let (queue, jobs) = std::sync::mpsc::channel::<Job>();
            let log = AuditLog::new(self.settings.clone());
            let started = std::thread::Builder::new().name("audit-writer".into()).spawn(move || {
                for job in jobs {
                    match job {
                        Job::Append(kind, fields) => log.append_or_warn(&kind, fields),
                        Job::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            });
            if let Err(error) = started {
                tracing::warn!(%error, "cannot start the audit writer; writing in line");
                return None;
            }
            *slot = Some(queue);
        }
        slot.clone()
    }

    /// Appends an event, returning its sequence number.
    pub fn append(&self, kind: &str, fields: Value) -> Result<u64, AuditError> {
        let Some(path) = self.settings.path.as_deref() else {
            return Ok(0);
        };
        let _local = self.guard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let folder = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(folder).map_err(|e| AuditError::io(folder, e))?;
        let lock_path = sibling(path, "lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| AuditError::io(&lock_path, e))?;
        lock.lock().map_err(|e| AuditError::io(&lock_path, e))?;
        let Tail {
            seq,
            prev,
            size,
            needs_newline,
        } = self.tail(path)?;
        let mut object = Map::new();
        object.insert("seq".into(), Value::from(seq + 1));
        object.insert("ts".into(), Value::from(timestamp()));
        object.insert("type".into(), Value::from(kind));
        if let Value::Object(fields) = fields {
            for (key, value) in fields {
                if !matches!(key.as_str(), "seq" | "ts" | "type" | "prev") {
                    object.insert(key, value);
                }
            }
        }
        object.insert("prev".into(), Value::from(prev));
        let line = serde_json::to_string(&Value::Object(object)).map_err(|e| AuditError::Corrupt(e.to_string()))?;
        if size > 0 && size + line.len() as u64 + 1 > self.settings.max_bytes {
            self.rotate(path)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| AuditError::io(path, e))?;
        // After a cut-off write the file does not end with a newline: start a
        // new line (verify reports the cut line; the chain goes on from it).
        let separator = if needs_newline && size > 0 { "\n" } else { "" };
        file.write_all(format!("{separator}{line}\n").as_bytes())
            .map_err(|e| AuditError::io(path, e))?;
        write_head(path, seq + 1, &hash_hex(line.as_bytes()))?;
        Ok(seq + 1)
    }

    /// Where the chain stands: the last sequence number, the hash the next
    /// line must carry, and the current file's size. A last line that is not
    /// an event (a write cut off by a crash) is chained to as it is, and the
    /// sequence goes on from the head file, so one bad line never stops the
    /// log; `verify` reports it.
    fn tail(&self, path: &Path) -> Result<Tail, AuditError> {
        let from_head = || read_head(path).map_or(0, |(seq, _)| seq);
        if let Some(last) = last_line(path)? {
            let seq = parse_seq(&last.bytes).unwrap_or_else(from_head);
            return Ok(Tail {
                seq,
                prev: hash_hex(&last.bytes),
                size: last.file_size,
                needs_newline: !last.terminated,
            });
        }
        // An empty current file continues the newest rotated one.
        if let Some(last) = last_line(&rotated(path, 1))? {
            return Ok(Tail {
                seq: parse_seq(&last.bytes).unwrap_or_else(from_head),
                prev: hash_hex(&last.bytes),
                size: 0,
                needs_newline: false,
            });
        }
        Ok(Tail {
            seq: 0,
            prev: GENESIS.to_string(),
            size: 0,
            needs_newline: false,
        })
    }

    fn rotate(&self, path: &Path) -> Result<(), AuditError> {
        let keep = self.settings.keep_files.max(1);
        let oldest = rotated(path, keep);
        if oldest.exists() {
            std::fs::remove_file(&oldest).map_err(|e| AuditError::io(&oldest, e))?;
        }
        for index in (1..keep).rev() {
            let from = rotated(path, index);
            if from.exists() {
                let to = rotated(path, index + 1);
                std::fs::rename(&from, &to).map_err(|e| AuditError::io(&from, e))?;
            }
        }
        std::fs::rename(path, rotated(path, 1)).map_err(|e| AuditError::io(path, e))
    }

    /// The retained files, oldest first.
    fn files(&self) -> Vec<PathBuf> {
        let Some(path) = self.settings.path.as_deref() else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = (1..=self.settings.keep_files.max(1))
            .rev()
            .map(|index| rotated(path, index))
            .filter(|file| file.exists())
            .collect();
        if path.exists() {
            files.push(path.to_path_buf());
        }
        files
    }

    /// Checks the whole retained chain: each line's `prev` is the SHA-256
    /// of the line before it, sequence numbers follow each other, and the
    /// head file matches the last line.
    pub fn verify(&self) -> Result<VerifyReport, AuditError> {
        self.flush();
        let _shared = self.shared_lock()?;
        let files = self.files();
        let mut report = VerifyReport {
            ok: true,
            lines: 0,
            files: files.iter().map(|file| file.display().to_string()).collect(),
            first_seq: None,
            last_seq: None,
            first_bad: None,
        };
        let mut previous: Option<(u64, String)> = None;
        for file in &files {
            let reader = BufReader::new(File::open(file).map_err(|e| AuditError::io(file, e))?);
            for (index, line) in reader.split(b'\n').enumerate() {
                let bytes = line.map_err(|e| AuditError::io(file, e))?;
                report.lines += 1;
                let bad = |reason: String| BadLine {
                    file: file.display().to_string(),
                    line: index as u64 + 1,
                    reason,
                };
                let problem = check_line(&bytes, previous.as_ref());
                match problem {
                    Err(reason) => {
                        report.ok = false;
                        report.first_bad = Some(bad(reason));
                        return Ok(report);
                    }
                    Ok(seq) => {
                        report.first_seq.get_or_insert(seq);
                        report.last_seq = Some(seq);
                        previous = Some((seq, hash_hex(&bytes)));
                    }
                }
            }
        }
        let Some(path) = self.settings.path.as_deref() else {
            return Ok(report);
        };
        let last_file = files.last().map(|f| f.display().to_string()).unwrap_or_default();
        let problem = match (previous.as_ref(), read_head(path)) {
            (None, None) => None,
            (None, Some((head_seq, _))) => Some(format!(
                "audit.head records event {head_seq} but the log files are gone: they were deleted"
            )),
            (Some((seq, _)), None) => Some(format!(
                "audit.head is missing (the log ends at event {seq}): it was deleted, so the end of the log cannot be checked"
            )),
            (Some((seq, hash)), Some((head_seq, head_hash))) if head_seq != *seq || head_hash != *hash => {
                Some(format!(
                    "the last line (event {seq}) does not match audit.head (event {head_seq}): the end of the log was edited or removed"
                ))
            }
            _ => None,
        };
        if let Some(reason) = problem {
            report.ok = false;
            report.first_bad = Some(BadLine {
                file: last_file,
                line: 0,
                reason,
            });
        }
        Ok(report)
    }

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

    fn scan(&self, mut visit: impl FnMut(Value)) -> Result<(), AuditError> {
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

    /// Readers hold the lock shared, so no append or rotation happens
    /// halfway through a read. `None` when the log is off or not yet made.
    fn shared_lock(&self) -> Result<Option<File>, AuditError> {
        let Some(path) = self.settings.path.as_deref() else {
            return Ok(None);
        };
        let lock_path = sibling(path, "lock");
        let lock = match File::open(&lock_path) {
            Ok(lock) => lock,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(AuditError::io(&lock_path, error)),
        };
        lock.lock_shared().map_err(|e| AuditError::io(&lock_path, e))?;
        Ok(Some(lock))
    }
}

/// Checks one line against the one before it; returns its sequence number.
fn check_line(bytes: &[u8], previous: Option<&(u64, String)>) -> Result<u64, String> {
    let event: Value = serde_json::from_slice(bytes)
        .map_err(|_| "not a JSON event: the line was edited, or a write was cut off by a crash".to_string())?;
    let seq = event["seq"].as_u64().ok_or("no sequence number")?;
    let prev = event["prev"].as_str().ok_or("no `prev` hash")?;
    match previous {
        None if seq == 1 && prev != GENESIS => Err("the first event does not start the chain".into()),
        None => Ok(seq),
        Some((previous_seq, _)) if seq != previous_seq + 1 => Err(format!(
            "sequence {seq} follows {previous_seq}: lines were removed or reordered"
        )),
        Some((_, previous_hash)) if prev != previous_hash => {
            Err("`prev` is not the hash of the line before: that line was edited".into())
        }
        Some(_) => Ok(seq),
    }
}

/// `value` with every string cut to `max` characters and every array to 50
/// items, so no argument a caller sends can make an event huge.
pub fn clip(value: &Value, max: usize) -> Value {
    match value {
        Value::String(text) if text.chars().count() > max => {
            Value::from(format!("{}…", text.chars().take(max).collect::<String>()))
        }
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

pub fn hash_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn parse_seq(line: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(line).ok()?["seq"].as_u64()
}

/// The chain's end, as [`AuditLog::tail`] finds it.
struct Tail {
    seq: u64,
    prev: String,
    size: u64,
    /// The file does not end with a newline (a cut-off write).
    needs_newline: bool,
}

/// The last line of a file.
struct LastLine {
    bytes: Vec<u8>,
    file_size: u64,
    /// It ends with a newline.
    terminated: bool,
}

/// The last line of `path` (read from at most the last 256 KiB; events are
/// kept well under that); `None` when the file is missing or empty.
fn last_line(path: &Path) -> Result<Option<LastLine>, AuditError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(AuditError::io(path, error)),
    };
    let size = file.metadata().map_err(|e| AuditError::io(path, e))?.len();
    if size == 0 {
        return Ok(None);
    }
    // Read backwards, a little at a time, until the line before the last
    // one ends (events are small, so one read usually does).
    let mut window: u64 = 8 * 1024;
    let tail = loop {
        let start = size.saturating_sub(window);
        file.seek(SeekFrom::Start(start)).map_err(|e| AuditError::io(path, e))?;
        let mut tail = Vec::with_capacity((size - start) as usize);
        file.read_to_end(&mut tail).map_err(|e| AuditError::io(path, e))?;
        let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
        if start == 0 || window >= TAIL_BYTES || body.contains(&b'\n') {
            break tail;
        }
        window *= 4;
    };
    let terminated = tail.ends_with(b"\n");
    let trimmed = tail.strip_suffix(b"\n").unwrap_or(&tail);
    let line = match trimmed.iter().rposition(|byte| *byte == b'\n') {
        Some(at) => &trimmed[at + 1..],
        None => trimmed,
    };
    Ok(Some(LastLine {
        bytes: line.to_vec(),
        file_size: size,
        terminated,
    }))
}

fn sibling(path: &Path, extension: &str) -> PathBuf {
    path.with_extension(extension)
}

fn rotated(path: &Path, index: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

fn write_head(path: &Path, seq: u64, hash: &str) -> Result<(), AuditError> {
    let head = sibling(path, "head");
    let temporary = sibling(path, "head.tmp");
    std::fs::write(&temporary, format!("{seq} {hash}\n")).map_err(|e| AuditError::io(&temporary, e))?;
    std::fs::rename(&temporary, &head).map_err(|e| AuditError::io(&head, e))
}

fn read_head(path: &Path) -> Option<(u64, String)> {
    let text = std::fs::read_to_string(sibling(path, "head")).ok()?;
    let (seq, hash) = text.trim().split_once(' ')?;
    Some((seq.parse().ok()?, hash.to_string()))
}

/// Now, RFC 3339 with milliseconds (UTC).
fn timestamp() -> String {
    crate::clock::rfc3339_millis_now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn log_in(folder: &Path, max_bytes: u64) -> AuditLog {
        AuditLog::new(AuditSettings {
            path: Some(folder.join("audit.jsonl")),
            max_bytes,
            keep_files: 3,
            log_code: false,
        })
    }

    fn temp_folder(name: &str) -> PathBuf {
        let folder = std::env::temp_dir().join(format!("mls-audit-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&folder).unwrap();
        folder
    }

    #[test]
    fn a_written_chain_verifies_and_counts() {
        let folder = temp_folder("ok");
        let log = log_in(&folder, 1 << 20);
        for index in 0..5 {
            log.append(
                "tool_call",
                json!({"tool": "sandbox_execute", "outcome": if index % 2 == 0 { "ok" } else { "tool_error" }}),
            )
            .unwrap();
        }
        let report = log.verify().unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!((report.lines, report.first_seq, report.last_seq), (5, Some(1), Some(5)));
        let stats = log.stats().unwrap();
        assert_eq!(stats.by_outcome["ok"], 3);
        assert_eq!(stats.by_tool["sandbox_execute"], 5);
        let recent = log.recent(2, |_| true).unwrap();
        assert_eq!(recent[1]["seq"], 5);
        std::fs::remove_dir_all(folder).ok();
    }

    #[test]
    fn rotation_carries_the_chain_across_files() {
        let folder = temp_folder("rotate");
        let log = log_in(&folder, 400);
        for _ in 0..20 {
            log.append("session", json!({"action": "created", "name": "x"}))
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
                log.append("tool_call", json!({"tool": "t", "index": index})).unwrap();
            }
            let path = folder.join("audit.jsonl");
            let text = std::fs::read_to_string(&path).unwrap();
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            match damage {
                0 => lines[2] = lines[2].replace("\"index\":2", "\"index\":9"),
                1 => {
                    lines.remove(3);
                }
                2 => lines.swap(1, 2),
                _ => lines[5] = lines[5].replace("\"index\":5", "\"index\":7"),
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
            log.append("x", json!({})).unwrap();
        }
        let path = folder.join("audit.jsonl");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"seq\":4,\"ts\":\"2026").unwrap();
        drop(file);
        assert_eq!(log.append("after", json!({})).unwrap(), 4);
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
        log.append("x", json!({})).unwrap();
        std::fs::remove_file(folder.join("audit.head")).unwrap();
        assert!(!log.verify().unwrap().ok);
        log.append("x", json!({})).unwrap();
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
        assert_eq!(log.append("x", json!({})).unwrap(), 0);
        assert!(log.verify().unwrap().ok);
    }
}
