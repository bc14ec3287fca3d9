//! What the log records: one typed event per kind, serialized with its
//! `type` tag and the same field names and values the log has always had
//! (so old lines, `audit verify` and `sandbox_security` read them alike).
//! The writer adds `seq`, `ts` and `prev` around them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest error message kept in a tool call's event.
pub const MAX_ERROR_CHARS: usize = 500;

/// One event of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuditEvent {
    /// A server started.
    ServerStart {
        instance: String,
        version: String,
        /// "stdio" or "http".
        transport: String,
        /// Seccomp profile of new sandboxes.
        seccomp: String,
        /// Code-policy mode.
        policy: String,
        pid: u32,
    },
    /// A server stopped.
    ServerStop { instance: String },
    /// An MCP tool call and how it ended (boxed: it is by far the largest).
    ToolCall(Box<ToolCall>),
    /// A session was created, destroyed or expired.
    Session(SessionEvent),
    /// A background job started, was detached from its call, collected,
    /// cancelled or expired uncollected.
    Job(JobEvent),
    /// Code matched a code-policy rule.
    Violation(Violation),
    /// A connection through the egress proxy ended (allowed or refused;
    /// boxed: the second largest).
    Egress(Box<EgressEvent>),
}

/// A tool call: which tool, what it was asked, how long it took and how it
/// ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub tool: String,
    /// The server that answered it.
    pub instance: String,
    pub duration_ms: u64,
    #[serde(flatten)]
    pub arguments: CallArguments,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The arguments of a tool call that say what it did, each clipped as it
/// came (they are recorded before they are checked, so any JSON type), and
/// the code as its SHA-256 and size; the code itself only when code logging
/// is on. Arguments the call did not carry are left out of the line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallArguments {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packages: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ml: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_bytes: Option<usize>,
    /// The code text (clipped), only with code logging on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Size of `sandbox_file_ops`' `content`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_bytes: Option<usize>,
}

/// How a tool call ended, as the tool decided it (`outcome` in the log).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The tool did what it was asked.
    Ok,
    /// The code ran and failed: a nonzero exit code (130 when the caller
    /// cancelled it), or the time limit expired.
    CodeError { exit_code: i64, timed_out: bool },
    /// The tool refused or could not do it (a policy block, an unknown
    /// session, Docker gone, a broken audit chain); `error` is the start of
    /// what the client was told.
    ToolError { error: String },
    /// The request itself was malformed (unknown tool, arguments that do not
    /// match the tool's schema): no tool ran.
    InvalidRequest { error: String },
}

impl Outcome {
    /// A tool error with the start of `message` (at most
    /// [`MAX_ERROR_CHARS`] characters).
    pub fn tool_error(message: &str) -> Self {
        Self::ToolError {
            error: message.chars().take(MAX_ERROR_CHARS).collect(),
        }
    }

    /// True unless the call succeeded (the client's `isError`).
    pub fn is_error(&self) -> bool {
        !matches!(self, Self::Ok)
    }
}

/// A job's lifecycle (`action` in the log); `job` is its handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum JobEvent {
    /// A background execute started as a job.
    Started {
        job: String,
        language: String,
    },
    /// An execute still running at its detach deadline became a job.
    Detached {
        job: String,
        language: String,
    },
    /// Its result was collected.
    Collected {
        job: String,
    },
    Cancelled {
        job: String,
    },
    /// Its result was dropped after `jobs.keep_s` uncollected.
    Expired {
        job: String,
    },
}

/// A session's lifecycle (`action` in the log).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum SessionEvent {
    Created {
        name: String,
        language: String,
        /// The image it started from (standard, data-science or cached).
        image: String,
        seccomp: String,
        /// Host folders mounted into it (an empty list when none).
        mounts: Vec<MountRecord>,
    },
    Destroyed {
        name: String,
        language: String,
    },
    /// Destroyed by the garbage collector after its time to live.
    Expired {
        name: String,
        language: String,
    },
    /// A snapshot of it was taken.
    Snapshot {
        name: String,
        snapshot: String,
    },
    /// It was rolled back to one of its snapshots.
    Restored {
        name: String,
        snapshot: String,
        /// Logged cells run again, and how many of them failed.
        replayed: u32,
        failed: usize,
    },
    /// It was made from a snapshot of session `from` (`snapshot: null`:
    /// from that session's state at the time).
    Forked {
        name: String,
        from: String,
        snapshot: Option<String>,
        replayed: u32,
        failed: usize,
    },
    SnapshotDeleted {
        name: String,
        snapshot: String,
    },
    /// Deleted by the garbage collector after its time to keep.
    SnapshotExpired {
        name: String,
        snapshot: String,
    },
}

/// A host folder mounted into a session, as `sandbox_session` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountRecord {
    pub name: String,
    pub path: String,
    pub host_path: String,
    pub writable: bool,
}

/// A code-policy match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub rule: String,
    pub description: String,
    /// The text that matched.
    pub matched: String,
    pub language: String,
    /// The session the code was sent to (`null` for a stateless execute).
    pub session: Option<String>,
    pub code_sha256: String,
    /// Policy mode: "audit" or "block".
    pub mode: String,
    /// True when the code was refused.
    pub blocked: bool,
}

/// One connection a sandbox asked the egress proxy for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EgressEvent {
    /// The server whose proxy served it.
    pub instance: String,
    /// The session it came from (`null` for a stateless execute).
    pub session: Option<String>,
    /// The stateless execute it came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execute: Option<String>,
    /// The install it came from (`sandbox_install`, or a cached image
    /// being built).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<String>,
    pub host: String,
    pub port: u16,
    /// The connection was let through and reached its origin.
    pub allowed: bool,
    /// What allowed it (a session grant or an `egress.allow` pattern).
    pub rule: Option<String>,
    /// Why it was refused or cut (`null`: it ended normally).
    pub reason: Option<String>,
    /// The address connected to, or refused (`null`: no lookup was made).
    pub address: Option<String>,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(arguments: CallArguments, outcome: Outcome) -> AuditEvent {
        AuditEvent::ToolCall(Box::new(ToolCall {
            tool: "sandbox_execute".into(),
            instance: "i-1".into(),
            duration_ms: 12,
            arguments,
            outcome,
        }))
    }

    /// Every kind of event, with the JSON the log has always had for it
    /// (the `json!` objects the call sites wrote before the enum).
    fn every_kind() -> Vec<(AuditEvent, Value)> {
        let arguments = CallArguments {
            language: Some(json!("python")),
            session: Some(json!("s1")),
            timeout: Some(json!(5000)),
            packages: Some(json!(["rich"])),
            code_sha256: Some("ab".repeat(32)),
            code_bytes: Some(16),
            ..CallArguments::default()
        };
        let call_fields = json!({
            "tool": "sandbox_execute", "instance": "i-1", "duration_ms": 12,
            "language": "python", "session": "s1", "timeout": 5000, "packages": ["rich"],
            "code_sha256": "ab".repeat(32), "code_bytes": 16,
        });
        let with = |extra: Value| {
            let mut fields = call_fields.clone();
            for (key, value) in extra.as_object().unwrap() {
                fields[key] = value.clone();
            }
            fields["type"] = json!("tool_call");
            fields
        };
        vec![
            (
                AuditEvent::ServerStart {
                    instance: "i-1".into(),
                    version: "0.1.0".into(),
                    transport: "stdio".into(),
                    seccomp: "standard".into(),
                    policy: "audit".into(),
                    pid: 42,
                },
                json!({"type": "server_start", "instance": "i-1", "version": "0.1.0", "transport": "stdio",
                       "seccomp": "standard", "policy": "audit", "pid": 42}),
            ),
            (
                AuditEvent::ServerStop { instance: "i-1".into() },
                json!({"type": "server_stop", "instance": "i-1"}),
            ),
            (call(arguments.clone(), Outcome::Ok), with(json!({"outcome": "ok"}))),
            (
                call(
                    arguments.clone(),
                    Outcome::CodeError {
                        exit_code: 137,
                        timed_out: true,
                    },
                ),
                with(json!({"outcome": "code_error", "exit_code": 137, "timed_out": true})),
            ),
            (
                call(arguments.clone(), Outcome::tool_error("no session named s1")),
                with(json!({"outcome": "tool_error", "error": "no session named s1"})),
            ),
            (
                call(
                    arguments,
                    Outcome::InvalidRequest {
                        error: "invalid arguments".into(),
                    },
                ),
                with(json!({"outcome": "invalid_request", "error": "invalid arguments"})),
            ),
            (
                AuditEvent::Session(SessionEvent::Created {
                    name: "s1".into(),
                    language: "python".into(),
                    image: "multilang-sandbox-python:abc".into(),
                    seccomp: "strict".into(),
                    mounts: vec![MountRecord {
                        name: "data".into(),
                        path: "/mnt/data".into(),
                        host_path: "/home/u/data".into(),
                        writable: false,
                    }],
                }),
                json!({"type": "session", "action": "created", "name": "s1", "language": "python",
                       "image": "multilang-sandbox-python:abc", "seccomp": "strict",
                       "mounts": [{"name": "data", "path": "/mnt/data", "host_path": "/home/u/data", "writable": false}]}),
            ),
            (
                AuditEvent::Session(SessionEvent::Destroyed {
                    name: "s1".into(),
                    language: "python".into(),
                }),
                json!({"type": "session", "action": "destroyed", "name": "s1", "language": "python"}),
            ),
            (
                AuditEvent::Session(SessionEvent::Expired {
                    name: "s1".into(),
                    language: "bash".into(),
                }),
                json!({"type": "session", "action": "expired", "name": "s1", "language": "bash"}),
            ),
            (
                AuditEvent::Job(JobEvent::Detached {
                    job: "s1/0a1b2c3d4e5f".into(),
                    language: "python".into(),
                }),
                json!({"type": "job", "action": "detached", "job": "s1/0a1b2c3d4e5f", "language": "python"}),
            ),
            (
                AuditEvent::Job(JobEvent::Collected {
                    job: "0a1b2c3d4e5f".into(),
                }),
                json!({"type": "job", "action": "collected", "job": "0a1b2c3d4e5f"}),
            ),
            (
                AuditEvent::Violation(Violation {
                    rule: "docker-socket".into(),
                    description: "reaches for the Docker socket".into(),
                    matched: "/var/run/docker.sock".into(),
                    language: "bash".into(),
                    session: None,
                    code_sha256: "cd".repeat(32),
                    mode: "audit".into(),
                    blocked: false,
                }),
                json!({"type": "violation", "rule": "docker-socket", "description": "reaches for the Docker socket",
                       "matched": "/var/run/docker.sock", "language": "bash", "session": null,
                       "code_sha256": "cd".repeat(32), "mode": "audit", "blocked": false}),
            ),
        ]
    }

    #[test]
    fn every_event_serializes_with_its_type_and_the_fields_readers_expect() {
        for (event, expected) in every_kind() {
            assert_eq!(serde_json::to_value(&event).unwrap(), expected, "{event:?}");
        }
    }

    #[test]
    fn lines_as_the_log_holds_them_read_back_as_events() {
        for (event, mut line) in every_kind() {
            // The writer's own fields around the event are ignored.
            line["seq"] = json!(7);
            line["ts"] = json!("2026-01-02T03:04:05.678Z");
            line["prev"] = json!("0".repeat(64));
            assert_eq!(serde_json::from_value::<AuditEvent>(line).unwrap(), event);
        }
    }

    #[test]
    fn arguments_keep_their_json_type_and_absent_ones_stay_out() {
        let event = call(
            CallArguments {
                timeout: Some(json!("soon")),
                session: Some(Value::Null),
                content_bytes: Some(3),
                code: Some("print(1)".into()),
                ..CallArguments::default()
            },
            Outcome::Ok,
        );
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["timeout"], "soon");
        assert!(value.as_object().unwrap().contains_key("session"));
        assert_eq!(
            (value["content_bytes"].clone(), value["code"].clone()),
            (json!(3), json!("print(1)"))
        );
        for absent in ["action", "language", "code_sha256", "exit_code", "error"] {
            assert!(value.get(absent).is_none(), "{absent} in {value}");
        }
    }

    #[test]
    fn tool_errors_keep_the_start_of_the_message() {
        let Outcome::ToolError { error } = Outcome::tool_error(&"é".repeat(2000)) else {
            panic!("not a tool error");
        };
        assert_eq!(error.chars().count(), MAX_ERROR_CHARS);
        assert!(!Outcome::Ok.is_error() && Outcome::tool_error("x").is_error());
    }
}
