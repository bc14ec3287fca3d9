//! `audit verify`: walks every retained file and checks the chain.

use super::chain::{check_line, read_head};
use super::{AuditLog, BadLine, VerifyReport, hash_hex};
use crate::security::audit::AuditError;
use std::fs::File;
use std::io::{BufRead, BufReader};

impl AuditLog {
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
        let Some(path) = self.settings().path.as_deref() else {
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
}
