//! Messages of the in-container runner protocol (newline-delimited JSON over
//! the container's attached stdin/stdout). The runner side lives in
//! `images/runner/runner.py`; both sides are versioned by [`PROTOCOL`].

use crate::runtime::{Program, SourceFile, Step};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Protocol version this server speaks; the runner announces its own.
pub const PROTOCOL: u32 = 1;

/// Host → runner: run a program.
#[derive(Debug, Serialize)]
pub struct RunRequest<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a str,
    pub files: &'a [SourceFile],
    pub steps: &'a [Step],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin: Option<&'a str>,
    pub env: &'a BTreeMap<String, String>,
    pub cwd: &'static str,
    pub timeout_ms: u64,
    pub max_output_bytes: u64,
}

impl<'a> RunRequest<'a> {
    pub fn new(id: &'a str, program: &'a Program, env: &'a BTreeMap<String, String>) -> Self {
        Self {
            kind: "run",
            id,
            files: &program.files,
            steps: &program.steps,
            stdin: None,
            env,
            cwd: "/workspace",
            timeout_ms: 30_000,
            max_output_bytes: 1024 * 1024,
        }
    }
}

/// Runner → host.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RunnerMessage {
    /// The runner started and waits for requests.
    Ready { protocol: u32 },
    /// The outcome of a run request.
    Result(RunResult),
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
    pub truncated: bool,
    /// `setup`, `build` or `run`: where the program stopped.
    pub phase: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runner_messages() {
        let ready: RunnerMessage =
            serde_json::from_str(r#"{"type":"ready","protocol":1}"#).unwrap();
        assert_eq!(ready, RunnerMessage::Ready { protocol: 1 });
        let result: RunnerMessage = serde_json::from_str(
            r#"{"type":"result","id":"a","exit_code":0,"signal":null,"stdout":"hi\n","stderr":"",
                "duration_ms":3,"timed_out":false,"truncated":false,"phase":"run"}"#,
        )
        .unwrap();
        match result {
            RunnerMessage::Result(run) => assert_eq!(run.stdout, "hi\n"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn request_serializes_the_program() {
        let program = crate::runtime::Language::Python.prepare("print(1)");
        let env = BTreeMap::from([("A".to_string(), "1".to_string())]);
        let request = RunRequest::new("id-1", &program, &env);
        let json: serde_json::Value = serde_json::to_value(&request).unwrap();
        assert_eq!(json["type"], "run");
        assert_eq!(json["files"][0]["content"], "print(1)");
        assert_eq!(json["steps"][0]["phase"], "run");
        assert_eq!(json["env"]["A"], "1");
        assert!(json.get("stdin").is_none());
    }
}
