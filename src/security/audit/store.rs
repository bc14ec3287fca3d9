//! The writer: one [`Writer`] per log does every append, under one lock
//! here and the cross-process lock on `audit.lock`, with rotation; events
//! recorded on the request path are queued to a thread that hands them to
//! the same writer, and are written in line through it when that thread is
//! not there. So two appends never interleave, whichever path they take.

use super::chain::{Tail, last_line, parse_seq, read_head, rotated, sibling, write_head};
use super::{AuditError, AuditEvent, AuditLog, AuditSettings, GENESIS, hash_hex, timestamp};
use parking_lot::{Mutex, MutexGuard};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Sender, SyncSender};

/// Work for the writer thread.
pub(super) enum Job {
    Append(AuditEvent),
    /// Answered once every event queued before it is written.
    Flush(SyncSender<()>),
}

impl AuditLog {
    /// Records an event: queued for the writer thread, so file IO and the
    /// cross-process lock stay off the request's path, and events keep
    /// their order; without that thread (it could not start, or it
    /// stopped) written here, through the same writer. Failures are logged
    /// to stderr and otherwise ignored: the audit log must never stop a
    /// sandbox from answering. Readers of this log ([`AuditLog::recent`],
    /// `stats`, `verify`) first wait for the queue to drain.
    pub fn record(&self, event: AuditEvent) {
        if self.writer.settings.path.is_none() {
            return;
        }
        let job = Job::Append(event);
        let unsent = match self.queue() {
            Some(queue) => queue.send(job).err().map(|returned| returned.0),
            None => Some(job),
        };
        if let Some(Job::Append(event)) = unsent {
            self.writer.append_or_warn(&event);
        }
    }

    /// Appends an event now, after the ones already queued, returning its
    /// sequence number (0 when the log is off).
    pub fn append(&self, event: &AuditEvent) -> Result<u64, AuditError> {
        self.flush();
        self.writer.append(event)
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

    fn lock_queue(&self) -> MutexGuard<'_, Option<Sender<Job>>> {
        self.queue.lock()
    }

    /// The writer thread's queue, starting the thread on first use.
    fn queue(&self) -> Option<Sender<Job>> {
        let mut slot = self.lock_queue();
        if slot.is_none() {
            let (queue, jobs) = std::sync::mpsc::channel::<Job>();
            let writer = Arc::clone(&self.writer);
            let started = std::thread::Builder::new().name("audit-writer".into()).spawn(move || {
                for job in jobs {
                    match job {
                        Job::Append(event) => writer.append_or_warn(&event),
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

    /// Readers hold the lock shared, so no append or rotation happens
    /// halfway through a read. `None` when the log is off or not yet made.
    pub(super) fn shared_lock(&self) -> Result<Option<File>, AuditError> {
        let Some(path) = self.writer.settings.path.as_deref() else {
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

/// The one writer of a log: each append holds `appending` (appends of this
/// process, whichever thread) and then the lock file (appends of other
/// processes) while it reads the chain's tail and writes the next line.
pub(super) struct Writer {
    pub(super) settings: AuditSettings,
    appending: Mutex<()>,
}

impl Writer {
    pub(super) fn new(settings: AuditSettings) -> Self {
        Self {
            settings,
            appending: Mutex::new(()),
        }
    }

    pub(super) fn append_or_warn(&self, event: &AuditEvent) {
        if let Err(error) = self.append(event) {
            tracing::warn!(%error, "could not write the audit log");
        }
    }

    /// Appends an event, returning its sequence number (0 when the log is
    /// off).
    pub(super) fn append(&self, event: &AuditEvent) -> Result<u64, AuditError> {
        let Some(path) = self.settings.path.as_deref() else {
            return Ok(0);
        };
        let fields = match serde_json::to_value(event) {
            Ok(Value::Object(fields)) => fields,
            Ok(other) => return Err(AuditError::Corrupt(format!("an event is not a JSON object: {other}"))),
            Err(error) => return Err(AuditError::Corrupt(error.to_string())),
        };
        let _in_process = self.appending.lock();
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
        // The chain's own fields go in last, so no event field can replace
        // them (keys are written sorted, so the line reads the same).
        let mut object = fields;
        object.insert("seq".into(), Value::from(seq + 1));
        object.insert("ts".into(), Value::from(timestamp()));
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
}

#[cfg(test)]
mod tests {
    use super::super::tests::{stop, temp_folder};
    use super::*;
    use std::collections::BTreeSet;

    fn settings(folder: &Path) -> AuditSettings {
        AuditSettings {
            path: Some(folder.join("audit.jsonl")),
            // Small files, all kept: appends race with rotations, and every
            // event stays readable.
            max_bytes: 2048,
            keep_files: 10_000,
            log_code: false,
        }
    }

    fn written(log: &AuditLog) -> Vec<Value> {
        log.recent(usize::MAX, |_| true).unwrap()
    }

    /// Threads append at once through every path: queued for the writer
    /// thread, in line through the same writer (what `record` does when
    /// that thread is not there), and through a second log on the same
    /// file, as another server would (only the lock file orders those).
    /// Every event is written exactly once and the chain verifies.
    #[test]
    fn appends_from_every_path_at_once_keep_the_chain() {
        let folder = temp_folder("concurrent");
        let log = Arc::new(AuditLog::new(settings(&folder)));
        let other_server = Arc::new(AuditLog::new(settings(&folder)));
        const THREADS: usize = 6;
        const EACH: usize = 15;
        let threads: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (log, other_server) = (log.clone(), other_server.clone());
                std::thread::spawn(move || {
                    for index in 0..EACH {
                        log.record(stop(&format!("queued-{thread}-{index}")));
                        log.writer.append_or_warn(&stop(&format!("in-line-{thread}-{index}")));
                        other_server.append(&stop(&format!("other-{thread}-{index}"))).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let report = log.verify().unwrap();
        let total = (THREADS * EACH * 3) as u64;
        assert!(report.ok, "{report:?}");
        assert_eq!(
            (report.lines, report.first_seq, report.last_seq),
            (total, Some(1), Some(total))
        );
        assert!(report.files.len() > 2, "the test rotates: {report:?}");
        let events = written(&log);
        let instances: BTreeSet<&str> = events.iter().filter_map(|event| event["instance"].as_str()).collect();
        assert_eq!(instances.len() as u64, total, "every event once");
        let sequence: Vec<u64> = events.iter().filter_map(|event| event["seq"].as_u64()).collect();
        assert_eq!(sequence, (1..=total).collect::<Vec<_>>());
        std::fs::remove_dir_all(folder).ok();
    }

    #[test]
    fn without_the_writer_thread_events_are_written_in_line() {
        let folder = temp_folder("in-line");
        let log = AuditLog::new(settings(&folder));
        log.record(stop("queued"));
        // The writer thread is gone: its queue no longer takes anything.
        let (dead, receiver) = std::sync::mpsc::channel();
        drop(receiver);
        log.flush();
        *log.lock_queue() = Some(dead);
        log.record(stop("in line"));
        let events = written(&log);
        let instances: Vec<&str> = events.iter().filter_map(|event| event["instance"].as_str()).collect();
        assert_eq!(instances, ["queued", "in line"]);
        assert!(log.verify().unwrap().ok);
        std::fs::remove_dir_all(folder).ok();
    }

    #[test]
    fn lines_carry_the_chain_fields_around_the_event() {
        let folder = temp_folder("line");
        let log = AuditLog::new(settings(&folder));
        log.record(stop("a"));
        log.record(stop("b"));
        let events = written(&log);
        assert_eq!(events[0]["seq"], 1);
        assert_eq!(events[0]["prev"], GENESIS);
        assert_eq!(events[1]["type"], "server_stop");
        assert!(
            events[1]["ts"].as_str().is_some_and(|ts| ts.ends_with('Z')),
            "{}",
            events[1]
        );
        let text = std::fs::read_to_string(folder.join("audit.jsonl")).unwrap();
        let first = text.lines().next().unwrap();
        assert_eq!(events[1]["prev"], hash_hex(first.as_bytes()));
        std::fs::remove_dir_all(folder).ok();
    }
}
