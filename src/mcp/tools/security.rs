//! `sandbox_security`: the audit log's recent events and policy violations,
//! counts, and verification of its tamper-evident chain.

use super::{OutcomeSlot, Reported, refusal, structured_result};
use crate::config::Config;
use crate::mcp::SandboxServer;
use crate::security::audit::AuditError;
use crate::security::audit::{AuditStats, Outcome, VerifyReport};
use rmcp::handler::server::common::{Extension, schema_for_output};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument;

/// Most events one call returns.
const MAX_COUNT: u32 = 1000;

/// What to report.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum SecurityAction {
    Events,
    Violations,
    Stats,
    Verify,
}

/// Arguments of `sandbox_security`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SecurityParams {
    /// events (recent audit events), violations (code-policy matches and refused network connections), stats (counts by event
    /// type, tool and outcome) or verify (check that no line of the audit log was edited,
    /// removed or reordered).
    pub action: SecurityAction,
    /// events and violations: how many of the most recent to return. Default 20, at most 1000.
    #[serde(default)]
    pub count: Option<u32>,
    /// events: only events of this type: tool_call, session, violation, server_start,
    /// server_stop.
    #[serde(default, rename = "type")]
    pub event_type: Option<String>,
}

/// The security settings in effect (also shown by `sandbox_inspect target=audit`).
#[derive(Debug, Serialize, JsonSchema)]
pub struct SecurityPosture {
    /// The audit log file ("off" when disabled).
    pub log: String,
    /// Code-policy mode: audit (record and run), block (refuse) or off.
    pub policy: String,
    /// Seccomp profile of new sandboxes.
    pub seccomp: String,
}

impl SecurityPosture {
    pub fn of(config: &Config) -> Self {
        Self {
            log: config.audit.location(),
            policy: config.policy.name().to_string(),
            seccomp: config.seccomp.name(),
        }
    }
}

/// Result of `sandbox_security`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SecurityOutput {
    pub action: SecurityAction,
    #[serde(flatten)]
    pub posture: SecurityPosture,
    /// events, violations: oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    // Each event is one JSON object of the audit log.
    #[schemars(with = "Vec<serde_json::Map<String, Value>>")]
    pub events: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<AuditStats>,
    /// verify: `ok`, and the first bad line when the chain is broken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyReport>,
}

#[tool_router(router = security_router, vis = "pub(crate)")]
impl SandboxServer {
    #[tool(
        name = "sandbox_security",
        description = "The sandbox's tamper-evident audit log: action events (recent events, optional \
`type` filter), violations (code that matched the code policy's tripwire rules, and connections the egress proxy refused), stats (counts by event \
type, tool and outcome), verify (checks the hash chain; `verify.ok` is false and `verify.first_bad` names \
the line if anything was edited, removed or reordered).",
        output_schema = schema_for_output::<SecurityOutput>(),
        title = "Audit log",
        // Reads the audit log (the call itself is audited, as every call is).
        annotations(title = "Audit log", read_only_hint = true, open_world_hint = false)
    )]
    async fn sandbox_security(
        &self,
        Parameters(params): Parameters<SecurityParams>,
        Extension(slot): Extension<OutcomeSlot>,
    ) -> Reported {
        let span = tracing::info_span!("sandbox_security", action = ?params.action);
        async move {
            slot.report(match self.security_report(&params).await {
                Ok(output) => {
                    let text = render(&output);
                    // A broken chain is what the caller must hear about.
                    let outcome = if output.verify.as_ref().is_some_and(|report| !report.ok) {
                        Outcome::tool_error(&text)
                    } else {
                        Outcome::Ok
                    };
                    structured_result(&output, text, outcome)
                }
                Err(error) => refusal(&error),
            })
        }
        .instrument(span)
        .await
    }
}

impl SandboxServer {
    async fn security_report(&self, params: &SecurityParams) -> Result<SecurityOutput, AuditError> {
        let config = self.executor.config();
        let mut output = SecurityOutput {
            action: params.action,
            posture: SecurityPosture::of(config),
            events: Vec::new(),
            stats: None,
            verify: None,
        };
        let count = params.count.unwrap_or(20).clamp(1, MAX_COUNT) as usize;
        let executor = self.executor.clone();
        let action = params.action;
        let wanted = params.event_type.clone();
        let work = tokio::task::spawn_blocking(move || -> Result<SecurityOutput, AuditError> {
            let audit = executor.audit();
            match action {
                SecurityAction::Events | SecurityAction::Violations => {
                    // Every event is an object (as the output schema says); a
                    // line that is other JSON is no event (verify reports it).
                    output.events = audit.recent(count, |event| {
                        event.is_object()
                            && match action {
                                SecurityAction::Violations => is_violation(event),
                                _ => wanted
                                    .as_deref()
                                    .is_none_or(|kind| event["type"].as_str() == Some(kind)),
                            }
                    })?;
                }
                SecurityAction::Stats => output.stats = Some(audit.stats()?),
                SecurityAction::Verify => output.verify = Some(audit.verify()?),
            }
            Ok(output)
        });
        work.await
            .map_err(|error| AuditError::Corrupt(format!("reading the audit log stopped: {error}")))?
    }
}

/// Code-policy matches, and connections the egress proxy refused.
fn is_violation(event: &serde_json::Value) -> bool {
    match event["type"].as_str() {
        Some("violation") => true,
        Some("egress") => event["allowed"] == serde_json::Value::Bool(false),
        _ => false,
    }
}

fn render(output: &SecurityOutput) -> String {
    let mut text = format!(
        "Audit log {} (policy {}, seccomp {}).",
        output.posture.log, output.posture.policy, output.posture.seccomp
    );
    match output.action {
        SecurityAction::Events | SecurityAction::Violations => {
            text.push_str(&format!(" {} event(s):", output.events.len()));
            for event in &output.events {
                text.push_str(&format!("\n{event}"));
            }
        }
        SecurityAction::Stats => {
            if let Some(stats) = &output.stats {
                text.push_str(&format!(
                    " {} events; by type {:?}; by tool {:?}; by outcome {:?}",
                    stats.events, stats.by_type, stats.by_tool, stats.by_outcome
                ));
            }
        }
        SecurityAction::Verify => {
            if let Some(report) = &output.verify {
                match &report.first_bad {
                    None => text.push_str(&format!(
                        " The chain is intact: {} lines in {} file(s).",
                        report.lines,
                        report.files.len()
                    )),
                    Some(bad) => text.push_str(&format!(
                        " The chain is BROKEN at {} line {}: {}",
                        bad.file, bad.line, bad.reason
                    )),
                }
            }
        }
    }
    text
}
