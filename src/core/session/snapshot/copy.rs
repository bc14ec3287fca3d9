//! The container that copies a session's files into a snapshot or back:
//! the session's image, its runner, root with the capabilities a faithful
//! copy needs (`Purpose::Copy`), no network, and only the volumes of the
//! copy mounted: the snapshot's at `/snapshot`, the session's workspace,
//! outputs and packages at `/session/<folder>`. The side copied from is
//! mounted read-only. `cp -a` keeps owners, modes, times and symbolic
//! links as links (it never follows one), so nothing a session's code
//! planted makes the copy read or write outside these volumes.

use super::SnapshotError;
use crate::core::cache::tail;
use crate::core::connection::RequestFailure;
use crate::core::launcher::{Launcher, Purpose, Sandbox};
use crate::core::protocol::{FileOp, FileRequest, FileRoot, HostMessage, LoggedCell, RunResult, RunnerMessage};
use crate::core::run::{RunFailure, RunSpec, new_run_id, run_program};
use crate::core::watch::Watch;
use crate::docker::{SandboxEngine, VolumeMount};
use crate::runtime::{Language, Phase, Program, SourceFile, Step};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where the copy container sees the snapshot.
const SNAPSHOT_MOUNT: &str = "/snapshot";
/// The cell log's file in a snapshot.
const CELLS_FILE: &str = "/snapshot/cells.json";
/// The longest one copy may take (a large workspace on a slow disk).
const COPY_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// The longest reading a snapshot's cell log may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest cell log read back (the runner keeps at most 16 MiB of
/// code, plus each cell's digests).
const MAX_LOG_BYTES: u64 = 40 * 1024 * 1024;
/// The standard output of a copy that succeeded; the error of one that
/// did not.
fn copied(run: RunResult) -> Result<String, SnapshotError> {
    if run.exit_code == 0 && !run.timed_out {
        return Ok(run.stdout);
    }
    let detail = tail(run.stderr.trim(), ERROR_TAIL);
    if detail.contains("No space left on device") {
        return Err(SnapshotError::DiskFull { detail });
    }
    Err(SnapshotError::CopyFailed {
        detail: if run.timed_out {
            format!("it took over {} minutes", COPY_TIMEOUT.as_secs() / 60)
        } else {
            detail
        },
    })
}

/// The exit code of a restore that found no snapshot to copy from.
const VANISHED: i64 = 3;
/// How long a copy container's removal is waited for.
const REMOVAL_WAIT: Duration = Duration::from_secs(10);
/// The end of a failed copy's error output kept in its error.
const ERROR_TAIL: usize = 1500;

/// The session's volumes a snapshot copies, named.
#[derive(Debug, Clone)]
pub(crate) struct SessionVolumes {
    pub(crate) workspace: String,
    pub(crate) outputs: String,
    pub(crate) packages: String,
    /// `/tmp`: absent in sessions made before it was a volume.
    pub(crate) tmp: Option<String>,
}

impl SessionVolumes {
    /// The folder names of the volumes under `/session` and `/snapshot`,
    /// as a shell word list.
    fn folders(&self) -> &'static str {
        match self.tmp {
            Some(_) => "workspace outputs packages tmp",
            None => "workspace outputs packages",
        }
    }
}

/// Which way files go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// Session → snapshot.
    Take,
    /// Snapshot → session.
    Restore,
}

/// A running copy container.
pub(super) struct CopyContainer {
    sandbox: Sandbox,
    /// The session's folders it copies (see [`SessionVolumes::folders`]).
    folders: &'static str,
}

impl CopyContainer {
    /// Starts a copy container from `image` (the session's) with the
    /// snapshot's and the session's volumes mounted for `direction`.
    pub(super) async fn launch(
        launcher: &Launcher,
        language: Language,
        image: &str,
        snapshot_volume: &str,
        session: &SessionVolumes,
        direction: Direction,
    ) -> Result<Self, SnapshotError> {
        let mount = |volume: &str, target: &str, read_only: bool| VolumeMount {
            volume: volume.to_string(),
            target: target.to_string(),
            read_only,
        };
        let session_read_only = direction == Direction::Take;
        let mut volumes = vec![
            mount(snapshot_volume, SNAPSHOT_MOUNT, !session_read_only),
            mount(&session.workspace, "/session/workspace", session_read_only),
            mount(&session.outputs, "/session/outputs", session_read_only),
            mount(&session.packages, "/session/packages", session_read_only),
        ];
        if let Some(tmp) = &session.tmp {
            volumes.push(mount(tmp, "/session/tmp", session_read_only));
        }
        let sandbox = launcher.launch_from(language, image, Purpose::Copy { volumes }).await?;
        Ok(Self {
            sandbox,
            folders: session.folders(),
        })
    }

    /// Copies the session's folders into the (empty) snapshot and writes
    /// its cell log there; returns the bytes the snapshot's files take.
    pub(super) async fn take(
        &self,
        cells: &[LoggedCell],
        config: &crate::config::Config,
    ) -> Result<u64, SnapshotError> {
        let log = serde_json::to_string(cells).map_err(|error| SnapshotError::CopyFailed {
            detail: format!("the cell log could not be written: {error}"),
        })?;
        let script = format!(
            "set -e; for folder in {}; do mkdir /snapshot/$folder; cp -a /session/$folder/. /snapshot/$folder/; done; sync -f /snapshot; du -sb /snapshot",
            self.folders
        );
        let stdout = copied(self.run(&script, Some(log), config).await?)?;
        // `du` prints the size, a tab, and the folder.
        let size = stdout.split_whitespace().next().and_then(|bytes| bytes.parse().ok());
        if size.is_none() {
            tracing::warn!(output = %stdout, "a snapshot's size could not be read from du");
        }
        Ok(size.unwrap_or(0))
    }

    /// Replaces what is in the session's folders with the snapshot's (a
    /// folder the snapshot does not hold is left as it is).
    pub(super) async fn restore(&self, config: &crate::config::Config) -> Result<(), SnapshotError> {
        let script = format!(
            // No cell log: the snapshot was deleted before its volume was
            // mounted (the engine then made an empty one); nothing is cleared.
            "[ -f {CELLS_FILE} ] || exit {VANISHED}; set -e; for folder in {}; do [ -d /snapshot/$folder ] || continue; find /session/$folder -mindepth 1 -delete; cp -a /snapshot/$folder/. /session/$folder/; done",
            self.folders
        );
        let run = self.run(&script, None, config).await?;
        if run.exit_code == VANISHED {
            return Err(SnapshotError::Vanished);
        }
        copied(run).map(|_| ())
    }

    /// Runs `script` with `sh`, with the cell log written first when
    /// given.
    async fn run(
        &self,
        script: &str,
        log: Option<String>,
        config: &crate::config::Config,
    ) -> Result<RunResult, SnapshotError> {
        let program = Program {
            files: log
                .into_iter()
                .map(|content| SourceFile {
                    path: CELLS_FILE.to_string(),
                    content,
                })
                .collect(),
            steps: vec![Step::new(Phase::Run, ["sh", "-c", script].map(String::from).to_vec())],
            kernel_source: None,
        };
        // The copy is not the caller's to cancel halfway: a half-made copy
        // is worse than a finished one.
        let watch = Watch::default();
        let spec = RunSpec {
            program: &program,
            kernel: None,
            env: &BTreeMap::new(),
            stdin: None,
            timeout_ms: COPY_TIMEOUT.as_millis() as u64,
            collect_outputs: false,
            watch: &watch,
            keep: false,
            label: None,
        };
        let run = run_program(&self.sandbox.connection, spec, config)
            .await
            .map_err(|failure| SnapshotError::CopyFailed {
                detail: match failure {
                    RunFailure::HostTimeout => format!("it took over {} minutes", COPY_TIMEOUT.as_secs() / 60),
                    RunFailure::Gone(error) => error.to_string(),
                    RunFailure::Cancelled | RunFailure::NotStarted => "it was stopped".to_string(),
                    RunFailure::Busy { job } => format!("the copy container said job {job} runs in it"),
                },
            })?;
        Ok(run)
    }

    /// The snapshot's cell log.
    pub(super) async fn read_cells(&self, snapshot: &str) -> Result<Vec<LoggedCell>, SnapshotError> {
        let bad = |detail: String| SnapshotError::BadLog {
            snapshot: snapshot.to_string(),
            detail,
        };
        let id = new_run_id();
        let payload = HostMessage::File(FileRequest {
            id: &id,
            op: FileOp::Read,
            path: CELLS_FILE,
            roots: vec![FileRoot {
                path: SNAPSHOT_MOUNT,
                writable: false,
            }],
            content_base64: None,
            max_bytes: MAX_LOG_BYTES,
            max_entries: 0,
        })
        .encode()?;
        let reply = match self.sandbox.connection.request(&id, &payload, READ_TIMEOUT).await {
            Ok(RunnerMessage::File(reply)) => reply,
            Ok(other) => return Err(bad(format!("the copy container answered {other:?}"))),
            Err(RequestFailure::Timeout) => return Err(bad("no answer in time".to_string())),
            Err(RequestFailure::Gone(error)) => return Err(error.into()),
        };
        if let Some(error) = reply.error {
            if error.kind == "not_found" {
                // The snapshot was deleted before its volume was mounted
                // (the engine then made an empty one).
                return Err(SnapshotError::Vanished);
            }
            return Err(bad(format!("{} ({})", error.kind, error.message.unwrap_or_default())));
        }
        let content = STANDARD
            .decode(reply.content_base64.unwrap_or_default())
            .map_err(|error| bad(error.to_string()))?;
        serde_json::from_slice(&content).map_err(|error| bad(error.to_string()))
    }

    /// Removes the container and waits until the engine has let go of its
    /// volumes.
    pub(super) async fn remove(self, engine: &dyn SandboxEngine) {
        let id = self.sandbox.container.id().to_string();
        self.sandbox.container.remove().await;
        if !engine.wait_removed(&id, REMOVAL_WAIT).await {
            tracing::debug!(container = %id, "a copy container is still being removed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(exit_code: i64, stdout: &str, stderr: &str) -> RunResult {
        serde_json::from_value(serde_json::json!({
            "exit_code": exit_code, "signal": null, "stdout": stdout, "stderr": stderr,
            "duration_ms": 5, "timed_out": false, "truncated": false, "phase": "run",
        }))
        .expect("a run result")
    }

    #[test]
    fn a_full_disk_is_told_apart_from_other_copy_failures() {
        assert_eq!(
            copied(ended(0, "52428800\t/snapshot\n", "")).ok().as_deref(),
            Some("52428800\t/snapshot\n")
        );
        let full = copied(ended(
            1,
            "",
            "cp: error writing '/snapshot/workspace/big.bin': No space left on device",
        ));
        assert!(matches!(full, Err(SnapshotError::DiskFull { .. })), "{full:?}");
        let other = copied(ended(
            1,
            "",
            "cp: cannot stat '/session/workspace/x': Permission denied",
        ));
        assert!(
            matches!(&other, Err(SnapshotError::CopyFailed { detail }) if detail.contains("Permission denied")),
            "{other:?}"
        );
    }
}
