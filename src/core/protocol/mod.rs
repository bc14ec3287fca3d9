//! Messages of the in-container runner protocol (newline-delimited JSON over
//! the container's attached stdin/stdout). The runner side lives in
//! `images/runner/runner.py`; both sides are versioned by [`PROTOCOL`].

use crate::runtime::{Kernel, Program, SourceFile, Step};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Protocol version this server speaks; the runner announces its own.
pub const PROTOCOL: u32 = 3;

/// Host → runner: run a program.
#[derive(Debug, Serialize)]
pub struct RunRequest<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a str,
    /// `exec` (fresh processes) or `kernel` (the container's interpreter).
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<Kernel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_source: Option<&'a str>,
    pub files: &'a [SourceFile],
    pub steps: &'a [Step],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin: Option<&'a str>,
    pub env: &'a BTreeMap<String, String>,
    pub cwd: &'static str,
    pub timeout_ms: u64,
    pub max_output_bytes: u64,
    /// Return files written to this folder during the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collect_outputs: Option<CollectOutputs>,
    /// Send `progress` messages while the request runs.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub progress: bool,
}

/// Which new files the runner returns after a request, and how many bytes.
#[derive(Debug, Clone, Serialize)]
pub struct CollectOutputs {
    pub dir: &'static str,
    pub max_files: usize,
    pub max_bytes: u64,
}

impl<'a> RunRequest<'a> {
    pub fn new(id: &'a str, program: &'a Program, kernel: Option<Kernel>, env: &'a BTreeMap<String, String>) -> Self {
        let uses_kernel = program.uses_kernel() && kernel.is_some();
        Self {
            kind: "run",
            id,
            mode: if uses_kernel { "kernel" } else { "exec" },
            kernel: kernel.filter(|_| uses_kernel),
            kernel_source: program.kernel_source.as_deref().filter(|_| uses_kernel),
            files: &program.files,
            steps: &program.steps,
            stdin: None,
            env,
            cwd: "/workspace",
            timeout_ms: 30_000,
            max_output_bytes: 1024 * 1024,
            collect_outputs: None,
            progress: false,
        }
    }
}

/// Host → runner: stop the request with this id.
#[derive(Debug, Serialize)]
pub struct CancelRequest<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a str,
}

/// Host → runner: a file operation, done by the runner as the sandbox user
/// with every path component opened without following links (see
/// `images/runner/fileops.py`). Answered with [`RunnerMessage::File`], at
/// once even while code runs.
#[derive(Debug, Serialize)]
pub struct FileRequest<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
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

/// Runner → host: the answer to a [`FileRequest`].
#[derive(Debug, Clone, Deserialize, PartialEq)]
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

/// Runner → host.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RunnerMessage {
    /// The runner started and waits for requests.
    Ready {
        protocol: u32,
        #[serde(default)]
        kernel: Option<String>,
    },
    /// The outcome of a run request.
    Result(RunResult),
    /// A running request's progress (when it asked for it).
    Progress(RunProgress),
    /// The runner could not handle a request.
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
}

impl RunnerMessage {
    /// The id of the request this message answers.
    pub fn id(&self) -> Option<&str> {
        match self {
            RunnerMessage::Ready { .. } => None,
            RunnerMessage::Result(result) => result.id.as_deref(),
            RunnerMessage::Progress(progress) => progress.id.as_deref(),
            RunnerMessage::Error { id, .. } | RunnerMessage::Pong { id } => id.as_deref(),
            RunnerMessage::File(reply) => reply.id.as_deref(),
        }
    }
}

/// How far a running program got.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RunProgress {
    pub id: Option<String>,
    pub elapsed_ms: u64,
    /// `build` or `run`.
    pub phase: String,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// The last few lines of output.
    #[serde(default)]
    pub tail: String,
}

impl RunProgress {
    /// One line for a progress notification, then the latest output.
    pub fn describe(&self) -> String {
        let doing = if self.phase == "build" { "compiling" } else { "running" };
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
    /// `setup`, `build` or `run`: where the program stopped.
    pub phase: String,
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
}

/// One file the program wrote to the outputs folder.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RunArtifact {
    pub path: String,
    pub size: u64,
    pub mime: String,
    /// The bytes, base64, for images within the byte cap.
    #[serde(default)]
    pub data_base64: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Language;

    #[test]
    fn parses_runner_messages() {
        let ready: RunnerMessage = serde_json::from_str(r#"{"type":"ready","protocol":2,"kernel":null}"#).unwrap();
        assert_eq!(
            ready,
            RunnerMessage::Ready {
                protocol: 2,
                kernel: None
            }
        );
        let result: RunnerMessage = serde_json::from_str(
            r#"{"type":"result","id":"a","exit_code":0,"signal":null,"stdout":"hi\n","stderr":"",
                "duration_ms":3,"timed_out":false,"truncated":false,"phase":"run","state_lost":false}"#,
        )
        .unwrap();
        assert_eq!(result.id(), Some("a"));
        match result {
            RunnerMessage::Result(run) => assert_eq!(run.stdout, "hi\n"),
            other => panic!("unexpected {other:?}"),
        }
        let progress: RunnerMessage = serde_json::from_str(
            r#"{"type":"progress","id":"a","elapsed_ms":2100,"phase":"build","stdout_bytes":3,
                "stderr_bytes":4,"tail":"Compiling x"}"#,
        )
        .unwrap();
        assert_eq!(progress.id(), Some("a"));
        match progress {
            RunnerMessage::Progress(progress) => assert_eq!(
                progress.describe(),
                "compiling for 2 s, 7 bytes of output; latest:\nCompiling x"
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn exec_requests_serialize_the_program() {
        let program = Language::Bash.prepare("echo 1");
        let env = BTreeMap::from([("A".to_string(), "1".to_string())]);
        let request = RunRequest::new("id-1", &program, None, &env);
        let json: serde_json::Value = serde_json::to_value(&request).unwrap();
        assert_eq!(json["type"], "run");
        assert_eq!(json["mode"], "exec");
        assert_eq!(json["files"][0]["content"], "echo 1");
        assert_eq!(json["steps"][0]["phase"], "run");
        assert_eq!(json["env"]["A"], "1");
        assert!(json.get("stdin").is_none());
        assert!(json.get("kernel_source").is_none());
    }

    #[test]
    fn kernel_requests_name_the_kernel_and_source() {
        let program = Language::Python.prepare_cell("x = 1");
        let env = BTreeMap::new();
        let request = RunRequest::new("id-2", &program, Some(Kernel::Python), &env);
        let json: serde_json::Value = serde_json::to_value(&request).unwrap();
        assert_eq!(json["mode"], "kernel");
        assert_eq!(json["kernel"], "python");
        assert_eq!(json["kernel_source"], "/tmp/run/main.py");
    }
}
