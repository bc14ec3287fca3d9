//! The chain: each line's link to the one before it, the head file, and
//! the rotated files that carry the chain on.

use super::{AuditLog, GENESIS, TAIL_BYTES};
use crate::security::audit::AuditError;
use serde_json::Value;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

impl AuditLog {
    /// The retained files, oldest first.
    pub(super) fn files(&self) -> Vec<PathBuf> {
        let Some(path) = self.settings().path.as_deref() else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = (1..=self.settings().keep_files.max(1))
            .rev()
            .map(|index| rotated(path, index))
            .filter(|file| file.exists())
            .collect();
        if path.exists() {
            files.push(path.to_path_buf());
        }
        files
    }
}

/// Checks one line against the one before it; returns its sequence number.
pub(super) fn check_line(bytes: &[u8], previous: Option<&(u64, String)>) -> Result<u64, String> {
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

pub(super) fn parse_seq(line: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(line).ok()?["seq"].as_u64()
}

/// The chain's end, as [`AuditLog::tail`] finds it.
pub(super) struct Tail {
    pub(super) seq: u64,
    pub(super) prev: String,
    pub(super) size: u64,
    /// The file does not end with a newline (a cut-off write).
    pub(super) needs_newline: bool,
}

/// The last line of a file.
pub(super) struct LastLine {
    pub(super) bytes: Vec<u8>,
    pub(super) file_size: u64,
    /// It ends with a newline.
    pub(super) terminated: bool,
}

/// The last line of `path` (read from at most the last 256 KiB; events are
/// kept well under that); `None` when the file is missing or empty.
pub(super) fn last_line(path: &Path) -> Result<Option<LastLine>, AuditError> {
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

pub(super) fn sibling(path: &Path, extension: &str) -> PathBuf {
    path.with_extension(extension)
}

pub(super) fn rotated(path: &Path, index: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

pub(super) fn write_head(path: &Path, seq: u64, hash: &str) -> Result<(), AuditError> {
    let head = sibling(path, "head");
    let temporary = sibling(path, "head.tmp");
    std::fs::write(&temporary, format!("{seq} {hash}\n")).map_err(|e| AuditError::io(&temporary, e))?;
    std::fs::rename(&temporary, &head).map_err(|e| AuditError::io(&head, e))
}

pub(super) fn read_head(path: &Path) -> Option<(u64, String)> {
    let text = std::fs::read_to_string(sibling(path, "head")).ok()?;
    let (seq, hash) = text.trim().split_once(' ')?;
    Some((seq.parse().ok()?, hash.to_string()))
}
