//! Session snapshots. A snapshot is two labelled volumes: its files volume
//! holds copies of a session's workspace, outputs, packages and `/tmp`
//! volumes and the log of the cells the session's runner ran since it
//! started; its record, an empty volume made once the copy is whole, holds
//! in its labels what a session needs to be made again (language, image,
//! seccomp, host folders, network grants) and the files' size. Docker is the registry,
//! as for sessions: a snapshot exists exactly when its record does, so it
//! outlives server restarts, every server on the engine sees it, and a copy
//! cut short (its server killed) is never taken for a snapshot.
//!
//! Restoring and forking start from a fresh kernel: the files are copied
//! in, the logged cells that succeeded run again in order (rebuilding
//! variables, imports and functions: memory checkpoints do not work on our
//! engines' kernels), then the files are copied once more, since a
//! replayed cell does again what it did to files.
//!
//! One operation per file: `take.rs` (snapshot), `restore.rs` (restore in
//! place, and filling a fork), `copy.rs` (the container that copies
//! files), `replay.rs`, `catalog.rs` (finding, listing, deleting and
//! expiring); the record's labels, names and errors here.

mod catalog;
mod copy;
mod replay;
mod restore;
mod take;

pub use replay::{ReplayFailure, ReplaySummary};
pub use restore::Restored;

use super::labels::{SessionFacts, validate_name};
use super::{SessionHandle, SessionManager};
use crate::clock::rfc3339;
use crate::core::error::SessionError;
use crate::core::session::SessionMount;
use crate::docker::{DockerError, LabelledVolume, labels};
use crate::runtime::Language;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;
use thiserror::Error;

/// Prefix of snapshot volume names.
const VOLUME_PREFIX: &str = "multilang-sandbox-snapshot-";
/// The kind label of snapshot records.
pub(crate) const SNAPSHOT_KIND: &str = "snapshot";
/// The kind label of snapshot files volumes.
const FILES_KIND: &str = "snapshot-files";
/// A files volume without a record older than this was left by a copy cut
/// short (a copy takes at most 15 minutes).
const ORPHAN_AGE: Duration = Duration::from_secs(30 * 60);
/// How long a snapshot, restore or fork waits for the session's running
/// execute to end.
const TURN_WAIT: Duration = Duration::from_secs(30);
/// How long the snapshot a fork of a session's current state takes is
/// kept if the fork never deletes it (its server died).
const TEMPORARY_KEEP: Duration = Duration::from_secs(3600);

/// A snapshot as `sandbox_session` shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, PartialEq)]
pub struct SnapshotInfo {
    /// The session it was taken of.
    pub session: String,
    /// Its name, unique among the session's snapshots.
    pub name: String,
    pub language: String,
    /// When it was taken, RFC 3339 (UTC).
    pub created: String,
    /// When it is deleted unless deleted before, RFC 3339 (UTC).
    pub expires_at: String,
    /// Disk its files use, in bytes.
    pub size_bytes: u64,
    /// Cells a restore or fork runs again to rebuild variables (those that succeeded are run).
    pub cells: usize,
    /// False when the log had lost cells (more than 1000 runs or 16 MiB of code, or a run the
    /// runner itself failed): replaying it rebuilds only part of the state.
    pub cells_complete: bool,
    /// What it holds, in plain words.
    pub holds: String,
}

/// Why a snapshot operation failed.
#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("invalid snapshot name `{0}`: use 1 to 63 letters, digits, `-` or `_`, starting with a letter or digit")]
    InvalidName(String),
    #[error("`snapshot` is required for this action: pass the snapshot's name (action snapshots lists them)")]
    SnapshotRequired,
    #[error("`new_name` is required for fork: pass the name of the session to make")]
    NewNameRequired,
    #[error("session `{session}` has no snapshot named `{snapshot}`; action snapshots {{name}} lists its snapshots")]
    Unknown { session: String, snapshot: String },
    #[error(
        "session `{session}` already has a snapshot named `{snapshot}`: pick another name, or delete the old one with action delete_snapshot"
    )]
    Exists { session: String, snapshot: String },
    #[error(
        "a snapshot named `{snapshot}` of session `{session}` is being made or deleted right now: pick another name, or try again in a few minutes"
    )]
    NameBusy { session: String, snapshot: String },
    #[error(
        "session `{session}` already has {max} snapshots: delete one it no longer needs with action delete_snapshot, then try again"
    )]
    TooMany { session: String, max: usize },
    #[error(
        "session `{name}` is running code that did not finish within {seconds} s; wait for it to end (or cancel it), then try again"
    )]
    Busy { name: String, seconds: u64 },
    #[error(
        "a background job runs in session `{name}`: its state changes while it runs. Wait for it with sandbox_job {{action: \"wait\"}} or cancel it, then try again"
    )]
    JobRunning { name: String },
    #[error(
        "snapshot `{snapshot}` was taken of a {snapshot_language} session and `{name}` runs {session_language}: fork it into a new session instead"
    )]
    LanguageMismatch {
        name: String,
        snapshot: String,
        snapshot_language: String,
        session_language: String,
    },
    #[error(
        "the image snapshot `{snapshot}` ran, {image}, is no longer on the engine (the package cache was pruned, or the images were rebuilt), so no session can be forked from it: create a session named like the snapshot's session, with the same language and packages, and restore the snapshot into it"
    )]
    ImageGone { snapshot: String, image: String },
    #[error(
        "no space was left while copying the files ({detail}): free space by deleting snapshots (action delete_snapshot) or with `multilang-sandbox cache prune`, then try again"
    )]
    DiskFull { detail: String },
    #[error(
        "copying the files failed: {detail}; try again, and if it fails again, `multilang-sandbox doctor` checks the engine"
    )]
    CopyFailed { detail: String },
    #[error(
        "the snapshot was deleted (or expired) while it was being copied from; the session was not changed. Take a new snapshot, or use another (action snapshots lists them)"
    )]
    Vanished,
    #[error(
        "the restore failed after session `{name}`'s files were cleared ({detail}); its files are incomplete: restore again, or destroy the session"
    )]
    RestoreBroken { name: String, detail: String },
    #[error(
        "replaying the snapshot's cells failed ({detail}); the files are restored, but variables may be missing: restore again, or run the code you need"
    )]
    ReplayBroken { detail: String },
    #[error(
        "session `{name}` was made by an older multilang-sandbox whose runner keeps no log of its cells, so its variables cannot be snapshotted; create a new session"
    )]
    NoLog { name: String },
    #[error(
        "snapshot `{snapshot}` holds an unreadable cell log ({detail}), so it cannot be restored; delete it with action delete_snapshot"
    )]
    BadLog { snapshot: String, detail: String },
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Docker(#[from] DockerError),
}

/// A snapshot as its volume's labels describe it.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotFacts {
    pub(crate) session: String,
    pub(crate) name: String,
    pub(crate) language: Language,
    pub(crate) image: String,
    pub(crate) created: u64,
    pub(crate) expires_at: u64,
    /// The session's idle time to live (a fork's default).
    pub(crate) ttl: u64,
    /// The session's seccomp profile's name.
    pub(crate) seccomp: String,
    pub(crate) mounts: Vec<SessionMount>,
    /// The session's network grants; `None`: it had no network.
    pub(crate) grants: Option<Vec<String>>,
    pub(crate) cells: usize,
    pub(crate) cells_complete: bool,
    pub(crate) size_bytes: u64,
    pub(crate) temporary: bool,
}

impl SnapshotFacts {
    fn from_volume(volume: &LabelledVolume) -> Option<Self> {
        let get = |key: &str| volume.labels.get(key);
        if get(labels::KIND).map(String::as_str) != Some(SNAPSHOT_KIND) {
            return None;
        }
        Some(Self {
            session: get(labels::SESSION)?.clone(),
            name: get(labels::SNAPSHOT)?.clone(),
            language: Language::parse(get(labels::LANGUAGE)?).ok()?,
            image: get(labels::IMAGE)?.clone(),
            created: get(labels::CREATED)?.parse().ok()?,
            expires_at: get(labels::EXPIRES)?.parse().ok()?,
            ttl: get(labels::TTL)?.parse().ok()?,
            seccomp: get(labels::SECCOMP)?.clone(),
            // A record whose labels do not read back is no snapshot: a fork
            // of it would lose host folders or network without a word.
            mounts: serde_json::from_str(get(labels::MOUNTS)?).ok()?,
            grants: match get(labels::NETWORK) {
                Some(label) => Some(serde_json::from_str(label).ok()?),
                None => None,
            },
            cells: get(labels::CELLS)?.parse().ok()?,
            cells_complete: get(labels::CELLS_COMPLETE)?.parse().ok()?,
            size_bytes: get(labels::SIZE)?.parse().ok()?,
            temporary: get(labels::TEMPORARY).map(String::as_str) == Some("true"),
        })
    }

    /// The volume holding the snapshot's files and cell log.
    pub(crate) fn files_volume(&self) -> String {
        files_volume(&self.session, &self.name)
    }

    /// The labels of the snapshot's record.
    fn labels(&self) -> HashMap<String, String> {
        let mut made = HashMap::from([
            (labels::KIND.to_string(), SNAPSHOT_KIND.to_string()),
            (labels::SESSION.to_string(), self.session.clone()),
            (labels::SNAPSHOT.to_string(), self.name.clone()),
            (labels::LANGUAGE.to_string(), self.language.name().to_string()),
            (labels::IMAGE.to_string(), self.image.clone()),
            (labels::CREATED.to_string(), self.created.to_string()),
            (labels::EXPIRES.to_string(), self.expires_at.to_string()),
            (labels::TTL.to_string(), self.ttl.to_string()),
            (labels::SECCOMP.to_string(), self.seccomp.clone()),
            (
                labels::MOUNTS.to_string(),
                serde_json::to_string(&self.mounts).unwrap_or_else(|_| "[]".to_string()),
            ),
            (labels::CELLS.to_string(), self.cells.to_string()),
            (labels::CELLS_COMPLETE.to_string(), self.cells_complete.to_string()),
            (labels::SIZE.to_string(), self.size_bytes.to_string()),
        ]);
        if let Some(grants) = &self.grants {
            made.insert(
                labels::NETWORK.to_string(),
                serde_json::to_string(grants).unwrap_or_else(|_| "[]".to_string()),
            );
        }
        if self.temporary {
            made.insert(labels::TEMPORARY.to_string(), "true".to_string());
        }
        made
    }

    pub(crate) fn info(&self) -> SnapshotInfo {
        let mut holds = vec![
            "files in /workspace, /outputs and /tmp".to_string(),
            "installed packages".to_string(),
        ];
        if self.language.kernel().is_some() {
            holds.push(format!(
                "{} logged cell(s) to replay for variables{}",
                self.cells,
                if self.cells_complete {
                    ""
                } else {
                    " (the log had lost older cells)"
                }
            ));
        }
        SnapshotInfo {
            session: self.session.clone(),
            name: self.name.clone(),
            language: self.language.name().to_string(),
            created: rfc3339(self.created),
            expires_at: rfc3339(self.expires_at),
            size_bytes: self.size_bytes,
            cells: self.cells,
            cells_complete: self.cells_complete,
            holds: holds.join(", "),
        }
    }
}

/// The record of a session's snapshot. The `.` cannot appear in either
/// name, so no two (session, snapshot) pairs share a volume.
fn record_volume(session: &str, snapshot: &str) -> String {
    format!("{VOLUME_PREFIX}{session}.{snapshot}")
}

/// The files volume of a session's snapshot.
fn files_volume(session: &str, snapshot: &str) -> String {
    format!("{VOLUME_PREFIX}{session}.{snapshot}.files")
}

/// Snapshot names follow session names' rules.
pub fn validate_snapshot_name(name: &str) -> Result<(), SnapshotError> {
    validate_name(name).map_err(|_| SnapshotError::InvalidName(name.to_string()))
}

/// A snapshot name from the time now, for example `snap-20261206-213012`
/// (`-2`, `-3`, … added when the session already has one of that name).
fn generated_name(taken: &[String]) -> String {
    let base = format!("snap-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S"));
    std::iter::once(base.clone())
        .chain((2..).map(|n| format!("{base}-{n}")))
        .find(|name| !taken.contains(name))
        .unwrap_or(base)
}

impl SessionManager {
    /// The session as it is now, checked to be the one `handle` holds and
    /// to run no background job (call it in the session's turn). `resumed`:
    /// this server resumed it just now, and the engine's record of the
    /// pause can lag behind (its pause and resume events arrive late), so
    /// it is taken to run.
    async fn idle_session(
        &self,
        name: &str,
        handle: &SessionHandle,
        resumed: bool,
    ) -> Result<SessionFacts, SnapshotError> {
        let mut facts = self.lookup(name).await?;
        if facts.info.id != handle.container_id {
            // Destroyed and made again by another server.
            self.lock_handles().remove(name);
            return Err(SessionError::Unknown(name.to_string()).into());
        }
        if resumed {
            facts.info.state = crate::docker::ContainerState::Running;
        }
        if self.runs_job(&facts).await {
            return Err(SnapshotError::JobRunning { name: name.to_string() });
        }
        Ok(facts)
    }

    /// Waits up to [`TURN_WAIT`] for the session's turn (its running
    /// execute to end).
    async fn snapshot_turn<'a>(
        &self,
        handle: &'a SessionHandle,
        name: &str,
    ) -> Result<tokio::sync::MutexGuard<'a, ()>, SnapshotError> {
        tokio::time::timeout(TURN_WAIT, handle.turn.lock())
            .await
            .map_err(|_| SnapshotError::Busy {
                name: name.to_string(),
                seconds: TURN_WAIT.as_secs(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_valid_and_avoid_taken_ones() {
        let first = generated_name(&[]);
        assert!(validate_snapshot_name(&first).is_ok(), "{first}");
        let second = generated_name(std::slice::from_ref(&first));
        assert_ne!(first, second);
        assert!(validate_snapshot_name(&second).is_ok(), "{second}");
    }

    #[test]
    fn labels_read_back_into_the_same_facts() {
        let facts = SnapshotFacts {
            session: "work".to_string(),
            name: "before-refactor".to_string(),
            language: Language::Python,
            image: "multilang-sandbox/python:abc".to_string(),
            created: 1_700_000_000,
            expires_at: 1_700_604_800,
            ttl: 3600,
            seccomp: "strict".to_string(),
            mounts: vec![SessionMount {
                name: "data".to_string(),
                path: "/mnt/data".to_string(),
                host_path: "/home/me/data".to_string(),
                writable: false,
            }],
            grants: Some(vec!["example.org".to_string()]),
            cells: 20,
            cells_complete: false,
            size_bytes: 52_428_800,
            temporary: true,
        };
        let volume = LabelledVolume {
            name: record_volume("work", "before-refactor"),
            labels: facts.labels(),
        };
        let read = SnapshotFacts::from_volume(&volume).expect("the labels read back");
        assert_eq!(format!("{read:?}"), format!("{facts:?}"));
    }

    #[test]
    fn volumes_of_other_kinds_are_not_snapshots() {
        let volume = LabelledVolume {
            name: "multilang-sandbox-session-x.abc.workspace".to_string(),
            labels: HashMap::from([(labels::KIND.to_string(), "session-workspace".to_string())]),
        };
        assert!(SnapshotFacts::from_volume(&volume).is_none());
        let files = LabelledVolume {
            name: files_volume("work", "a"),
            labels: HashMap::from([(labels::KIND.to_string(), FILES_KIND.to_string())]),
        };
        assert!(SnapshotFacts::from_volume(&files).is_none());
    }
}
