//! The writer: events queued to a writer thread (off the request path),
//! and the append itself under the cross-process lock, with rotation.

use super::chain::{Tail, last_line, parse_seq, read_head, rotated, sibling, write_head};
use super::{AuditEvent, AuditLog, GENESIS, hash_hex, timestamp};
use crate::error::AuditError;
use serde_json::{Map, Value};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::mpsc::{Sender, SyncSender};

/// Work for the writer thread.
pub(super) enum Job {
    Append(AuditEvent),
    /// Answered once every event queued before it is written.
    Flush(SyncSender<()>),
}

impl AuditLog {
    /// Queues an event for the writer thread, so file IO and the cross-process lock stay off the request's
    /// path; events keep their order. Failures are logged to stderr and
    /// otherwise ignored: the audit log must never stop a sandbox from
    /// answering. Readers of this log ([`AuditLog::recent`], `stats`,
    /// `verify`) first wait for the queue to drain.
    pub fn record(&self, event: AuditEvent) {
        if self.settings.path.is_none() {
            return;
        }
        let job = Job::Append(event);
        let unsent = match self.writer() {
            Some(queue) => queue.send(job).err().map(|returned| returned.0),
            None => Some(job),
        };
        // No writer thread: write here.
        if let Some(Job::Append(event)) = unsent {
            self.append_or_warn(&event);
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

    fn append_or_warn(&self, event: &AuditEvent) {
        if let Err(error) = self.append(event) {
            tracing::warn!(%error, "could not write the audit log");
        }
    }

    pub(super) fn lock_queue(&self) -> std::sync::MutexGuard<'_, Option<Sender<Job>>> {
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
                        Job::Append(event) => log.append_or_warn(&event),
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
    pub fn append(&self, event: &AuditEvent) -> Result<u64, AuditError> {
        let Some(path) = self.settings.path.as_deref() else {
            return Ok(0);
        };
        let fields = match serde_json::to_value(event) {
            Ok(Value::Object(fields)) => fields,
            Ok(other) => return Err(AuditError::Corrupt(format!("an event is not a JSON object: {other}"))),
            Err(error) => return Err(AuditError::Corrupt(error.to_string())),
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
        object.extend(fields);
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
    pub(super) fn tail(&self, path: &Path) -> Result<Tail, AuditError> {
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

    pub(super) fn rotate(&self, path: &Path) -> Result<(), AuditError> {
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

    /// Readers hold the lock shared, so no append or rotation happens
    /// halfway through a read. `None` when the log is off or not yet made.
    pub(super) fn shared_lock(&self) -> Result<Option<File>, AuditError> {
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
