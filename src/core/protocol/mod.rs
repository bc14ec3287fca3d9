//! Messages of the in-container runner protocol: newline-delimited JSON over
//! the container's attached stdin/stdout, one tagged enum per direction
//! ([`HostMessage`], [`RunnerMessage`]). The runner side lives in
//! `images/runner/` (`runner_protocol.py` holds the spec and checks every
//! request); both sides are versioned by [`PROTOCOL`] and pinned by the
//! golden messages in `images/runner/fixtures/`, which the tests of both
//! sides read.
//!
//! Defaults live on this side only: the host sends every setting of a
//! request (timeout, output cap, working folder, the caps of collected
//! outputs and of file operations) and the runner refuses a request that
//! lacks one. Fields a runner sends are parsed with defaults where older
//! runners (in sessions made by an older image) left them out; unknown
//! fields are ignored, except in this crate's tests, where they fail
//! parsing so that a field the runner sends and this side ignores shows.

use crate::docker::DockerError;
use crate::runtime::{Kernel, Phase, SourceFile, Step};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Protocol version this server speaks; the runner announces its own.
pub const PROTOCOL: u32 = 6;

/// Host → runner.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum HostMessage<'a> {
    /// Run a program; answered with [`RunnerMessage::Result`] (or `Error`),
    /// after [`RunnerMessage::Progress`] reports when it asked for them.
    Run(RunRequest<'a>),
    /// Stop the running request with this id (it is answered as usual).
    Cancel { id: &'a str },
    /// A file operation; answered with [`RunnerMessage::File`].
    File(FileRequest<'a>),
    /// Are you there? Answered with [`RunnerMessage::Pong`]. Part of the
    /// contract (the runner answers it, the fixtures pin it) for a liveness
    /// check; the server itself tells liveness by the stream today.
    Ping { id: &'a str },
    /// A question about a job (a run whose output and result the runner
    /// keeps until forgotten), answered at once.
    Job(JobQuery<'a>),
    /// A pooled container's one request is over and it is removed later:
    /// the runner ends every other process in it now. No answer.
    Retire { id: &'a str },
    /// The runs since the runner started (kernel runs before a lost state
    /// left out); answered with [`RunnerMessage::Cells`].
    Cells { id: &'a str },
    /// Run the logged cells that succeeded again, in order (a fresh
    /// kernel rebuilding a snapshot's state); answered with
    /// [`RunnerMessage::Replayed`].
    Replay {
        id: &'a str,
        cells: &'a [LoggedCell],
        /// False when `cells` is a log that had lost cells: the runner's
        /// own log is then incomplete too.
        complete: bool,
    },
}

impl HostMessage<'_> {
    /// The message as one protocol line (without its newline).
    pub fn encode(&self) -> Result<Vec<u8>, DockerError> {
        serde_json::to_vec(self).map_err(|error| DockerError::Protocol(format!("cannot encode a request: {error}")))
    }
}

/// Whether a run's program runs as fresh processes or in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    /// Every step as a fresh process group.
    Exec,
    /// The build steps, then the source file in the container's kernel.
    Kernel,
}

/// Host → runner: run a program.
#[derive(Debug, Serialize)]
pub struct RunRequest<'a> {
    pub id: &'a str,
    pub mode: RunMode,
    /// Kernel mode: the kernel that runs `kernel_source`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<Kernel>,
    /// Kernel mode: the file the kernel runs after the steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_source: Option<&'a str>,
    pub files: &'a [SourceFile],
    pub steps: &'a [Step],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin: Option<&'a str>,
    pub env: &'a BTreeMap<String, String>,
    pub cwd: &'static str,
    pub timeout_ms: u64,
    /// Most bytes kept of each of stdout and stderr.
    pub max_output_bytes: u64,
    /// Return files written to this folder during the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collect_outputs: Option<CollectOutputs>,
    /// Send `progress` messages while the request runs.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub progress: bool,
    /// A job from the start: the runner keeps its output and result until
    /// the host forgets it (a background execute).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub keep: bool,
    /// What the job is, as job lists show it (the first line of the code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'a str>,
}

/// A `job` request.
#[derive(Debug, Serialize)]
pub struct JobQuery<'a> {
    pub id: &'a str,
    pub op: JobOp,
    /// The run's id (every op but `list`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<&'a str>,
    /// `keep`: the label the job is listed with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'a str>,
}

/// What a `job` request asks.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JobOp {
    /// Keep the running run's output and result (it becomes a job).
    Keep,
    /// The output not read before and, once it ended, the result.
    Read,
    /// Drop a finished job.
    Forget,
    /// Every kept job.
    List,
}

/// Which new files the runner returns after a request, and how many bytes.
#[derive(Debug, Clone, Serialize)]
pub struct CollectOutputs {
    pub dir: &'static str,
    pub max_files: usize,
    pub max_bytes: u64,
}

/// Host → runner: a file operation, done by the runner as the sandbox user
/// with every path component opened without following links (see
/// `images/runner/fileops.py`). Answered with [`RunnerMessage::File`], at
/// once even while code runs.
#[derive(Debug, Serialize)]
pub struct FileRequest<'a> {
    pub id: &'a str,
    pub op: FileOp,
    /// Absolute, lexically normalized path inside one of `roots`.
    pub path: &'a str,
    /// The folders the operation may touch, and whether each may be written.
    pub roots: Vec<FileRoot<'a>>,
    /// write: the new content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_base64: Option<String>,
    /// read: the largest file returned.
    pub max_bytes: u64,
    /// list: the most entries returned.
    pub max_entries: usize,
}

/// The operation of a [`FileRequest`].
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum FileOp {
    Read,
    Write,
    Mkdir,
    List,
    Delete,
}

/// One folder a [`FileRequest`] may touch.
#[derive(Debug, Serialize)]
pub struct FileRoot<'a> {
    pub path: &'a str,
    pub writable: bool,
}

/// Runner → host.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub enum RunnerMessage {
    /// The runner started (and its kernel, if any, is loaded) and waits for
    /// requests; sent once.
    Ready {
        protocol: u32,
        /// The kernel the runner was started with.
        #[serde(default)]
        kernel: Option<Kernel>,
    },
    /// The outcome of a run request.
    Result(RunResult),
    /// A running request's progress (when it asked for it).
    Progress(RunProgress),
    /// The runner could not handle a request (no id when it could not read
    /// one).
    Error {
        #[serde(default)]
        id: Option<String>,
        message: String,
    },
    /// Answer to a ping.
    Pong {
        #[serde(default)]
        id: Option<String>,
    },
    /// Answer to a file operation.
    File(FileReply),
    /// The answer to a `job` request: the jobs it names (none when the
    /// runner keeps no such job).
    Job {
        #[serde(default)]
        id: Option<String>,
        jobs: Vec<JobReport>,
    },
    /// A run refused because a job runs: nothing ran.
    Busy {
        #[serde(default)]
        id: Option<String>,
        job: String,
    },
    /// The runner's log of runs, oldest first; `complete` is false when
    /// the oldest were dropped (the log's caps) or a run failed inside the
    /// runner.
    Cells {
        #[serde(default)]
        id: Option<String>,
        cells: Vec<LoggedCell>,
        complete: bool,
    },
    /// What a replay did.
    Replayed(ReplayReport),
}

impl RunnerMessage {
    /// The id of the request this message answers.
    pub fn id(&self) -> Option<&str> {
        match self {
            RunnerMessage::Ready { .. } => None,
            RunnerMessage::Result(result) => result.id.as_deref(),
            RunnerMessage::Progress(progress) => progress.id.as_deref(),
            RunnerMessage::Error { id, .. }
            | RunnerMessage::Pong { id }
            | RunnerMessage::Job { id, .. }
            | RunnerMessage::Busy { id, .. }
            | RunnerMessage::Cells { id, .. } => id.as_deref(),
            RunnerMessage::Replayed(report) => report.id.as_deref(),
            RunnerMessage::File(reply) => reply.id.as_deref(),
        }
    }
}

/// One run in the runner's log (`images/runner/runner_cells.py`): the
/// request as the runner kept it, which the host only stores and sends
/// back, and how it ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct LoggedCell {
    pub request: serde_json::Value,
    pub exit_code: i32,
    pub stdout_sha256: String,
    pub stderr_sha256: String,
    pub duration_ms: u64,
    /// It ran as a job (`background`, or past its detach deadline).
    pub job: bool,
}

/// What a replay of logged cells did.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct ReplayReport {
    #[serde(default)]
    pub id: Option<String>,
    /// The cells run again (those that had succeeded).
    pub replayed: u32,
    /// Those that fail now.
    pub failed: Vec<ReplayFailure>,
    /// Those that succeeded with other output than before (indexes into
    /// the cells sent).
    pub differed: Vec<usize>,
    /// A cancel ended it before its last cell.
    pub cancelled: bool,
    pub duration_ms: u64,
}

/// A logged cell that failed when it ran again.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct ReplayFailure {
    /// Its index in the cells sent.
    pub cell: usize,
    pub exit_code: i32,
    /// The end of its stderr.
    pub stderr: String,
}

/// A job as the runner reports it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct JobReport {
    /// The run's id.
    pub job: String,
    pub label: String,
    pub state: JobState,
    /// When it started, Unix milliseconds (the sandbox's clock).
    pub started_ms: u64,
    /// How long it ran, so far or in all.
    pub elapsed_ms: u64,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// `read`: the output not read before.
    #[serde(default)]
    pub stdout: Option<String>,
    #[serde(default)]
    pub stderr: Option<String>,
    /// `read`, once it ended: its result (its output is in `stdout` and
    /// `stderr` of the reads).
    #[serde(default)]
    pub result: Option<Box<RunResult>>,
    /// `read`, once it ended: more output waits for the next read.
    #[serde(default)]
    pub unread: bool,
}

/// Whether a job still runs.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
}

/// How far a running program got.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct RunProgress {
    pub id: Option<String>,
    pub elapsed_ms: u64,
    /// The step running now.
    pub phase: Phase,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// The last few lines of output.
    #[serde(default)]
    pub tail: String,
}

impl RunProgress {
    /// One line for a progress notification, then the latest output.
    pub fn describe(&self) -> String {
        let doing = if self.phase == Phase::Build {
            "compiling"
        } else {
            "running"
        };
        let seconds = self.elapsed_ms / 1000;
        let bytes = self.stdout_bytes + self.stderr_bytes;
        let mut text = format!("{doing} for {seconds} s, {bytes} bytes of output");
        if !self.tail.trim().is_empty() {
            text.push_str("; latest:\n");
            text.push_str(&self.tail);
        }
        text
    }
}

/// What happened to one program.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct RunResult {
    pub id: Option<String>,
    pub exit_code: i64,
    pub signal: Option<i64>,
    pub stdout: String,
    pub stderr: String,
    pub duration_ms: u64,
    pub timed_out: bool,
    #[serde(default)]
    pub cancelled: bool,
    pub truncated: bool,
    /// Where the program stopped.
    pub phase: Phase,
    /// The kernel had to be restarted: variables and imports are gone.
    #[serde(default)]
    pub state_lost: bool,
    /// Output streams the code closed (`stdout`, `stderr`): what it printed
    /// after that was lost; the kernel reopened them.
    #[serde(default)]
    pub output_lost: Vec<String>,
    /// Files written to the outputs folder during the request.
    #[serde(default)]
    pub artifacts: Vec<RunArtifact>,
    /// New files beyond the count cap, not listed.
    #[serde(default)]
    pub artifacts_omitted: u64,
    /// How the runner changed the program to build it (imports it added).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// One file the program wrote to the outputs folder.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct RunArtifact {
    pub path: String,
    pub size: u64,
    pub mime: String,
    /// The bytes, base64, for images within the byte cap.
    #[serde(default)]
    pub data_base64: Option<String>,
}

/// Runner → host: the answer to a [`FileRequest`].
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct FileReply {
    pub id: Option<String>,
    /// The path acted on, after following links.
    #[serde(default)]
    pub path: Option<String>,
    /// write, mkdir, delete: the entry acted on.
    #[serde(default)]
    pub entry: Option<RunnerEntry>,
    /// list: the folder's entries, sorted by name.
    #[serde(default)]
    pub entries: Vec<RunnerEntry>,
    /// read: the content.
    #[serde(default)]
    pub content_base64: Option<String>,
    #[serde(default)]
    pub error: Option<FileReplyError>,
}

/// A file or folder as the runner reports it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct RunnerEntry {
    pub name: String,
    pub path: String,
    /// file, folder, symlink or other.
    pub kind: String,
    pub size: u64,
    /// Unix seconds (negative for files dated before 1970).
    pub modified: i64,
}

/// Why the runner refused or failed a file operation.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[cfg_attr(test, serde(deny_unknown_fields))]
pub struct FileReplyError {
    /// not_found, is_folder, not_folder, too_large, read_only, root_folder,
    /// symlink_escape, changed, permission_denied, no_space, list_too_large,
    /// outside or failed.
    pub kind: String,
    pub path: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub max: Option<u64>,
    #[serde(default)]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests;
