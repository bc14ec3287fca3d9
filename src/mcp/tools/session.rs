//! `sandbox_session`: named, stateful sandboxes.

use super::{OutcomeSlot, Reported, answer};
use crate::core::error::{ExecuteError, SessionError};
use crate::core::executor::SessionRequest;
use crate::core::{SessionInfo, Watch};
use crate::mcp::SandboxServer;
use crate::mcp::progress::Reporter;
use crate::runtime::Language;
use rmcp::handler::server::common::{Extension, schema_for_output};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

/// What to do with a session.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum SessionAction {
    Create,
    List,
    Get,
    Pause,
    Resume,
    Extend,
    Destroy,
    Network,
}

/// Arguments of `sandbox_session`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SessionParams {
    /// create, list, get, pause, resume, extend, destroy or network.
    pub action: SessionAction,
    /// Session name: 1 to 63 letters, digits, `-` or `_`, starting with a letter or digit,
    /// for example "analysis-1". Required for every action except list.
    #[serde(default)]
    pub name: Option<String>,
    /// Language of the session, for create: python, javascript, typescript, go, rust or bash.
    #[serde(default)]
    pub language: Option<String>,
    /// create: seconds of inactivity after which the session is destroyed (default 3600, at
    /// most 604800). extend: seconds to add (default: the session's ttl).
    #[serde(default)]
    pub ttl: Option<u64>,
    /// create: packages to start with, for example `["pandas"]` (pip, npm, crates, or Debian
    /// packages for bash). The set is installed once and cached; later sessions with the same
    /// set start from the cache at once.
    #[serde(default)]
    pub packages: Option<Vec<String>>,
    /// create, Python only: start from the data-science image (numpy, pandas, matplotlib, …).
    #[serde(default)]
    pub ml: Option<bool>,
    /// create: names of host folders the user configured (MULTILANG_SANDBOX_HOST_FOLDERS) to
    /// mount, for example `["data"]`; each appears at /mnt/<name>, read-only unless the user
    /// made it writable. `list` shows each session's mounts.
    #[serde(default)]
    pub mounts: Option<Vec<String>>,
    /// create: seccomp profile, "standard" (the usual default) or "strict" (also refuses
    /// system calls none of the languages needs). A session may tighten the server's profile,
    /// never loosen it.
    #[serde(default)]
    pub seccomp: Option<String>,
    /// create: hosts the session's code may reach over HTTP(S), for example
    /// `["api.github.com", "*.example.org", "example.net:8443"]` (ports 80 and 443 unless
    /// given); `[]` gives network with no host yet (add some later with action network). Each host
    /// must be in the user's allow list (egress.allow), else the create is refused with how the
    /// user can allow it. Without `network` the session has no network at all. network: the
    /// session's new list (replaces the old one).
    #[serde(default)]
    pub network: Option<Vec<String>>,
}

/// Result of `sandbox_session`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SessionOutput {
    /// The action that was carried out.
    pub action: SessionAction,
    /// The session acted on (one element), or every session for list.
    pub sessions: Vec<SessionInfo>,
    /// What happened, in plain words.
    pub message: String,
}

#[tool_router(router = session_router, vis = "pub(crate)")]
impl SandboxServer {
    #[tool(
        name = "sandbox_session",
        description = "Manage named, stateful sandboxes. create {name, language, ttl?} starts one; \
then pass `session: name` to sandbox_execute and variables, imports, functions (Python, JavaScript, \
TypeScript, Bash) and files in /workspace (every language) persist between calls. \
list, get {name}, pause {name} (freezes it), resume {name}, extend {name, ttl?} (more time), \
destroy {name}. Sessions expire after `ttl` seconds without use (default 3600). \
create also takes `packages` (installed once, then cached), `ml` (Python data-science image) and \
`mounts` (host folders the user configured, seen at /mnt/<name>), `seccomp` (\"strict\" to \
tighten the system-call filter) and `network` (hosts the code may reach over HTTP(S) through the \
egress proxy, which the user must have allowed; without it the session has no network). \
network {name, network} replaces a session's hosts.",
        output_schema = schema_for_output::<SessionOutput>(),
        title = "Manage sandbox sessions",
        // destroy removes a session and its files; extend twice adds twice.
        // Open world: create installs `packages` from the registries and
        // `network` grants the session's code hosts outside.
        annotations(
            title = "Manage sandbox sessions",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn sandbox_session(
        &self,
        Parameters(params): Parameters<SessionParams>,
        Extension(slot): Extension<OutcomeSlot>,
        context: RequestContext<RoleServer>,
    ) -> Reported {
        let span = tracing::info_span!("sandbox_session", action = ?params.action, name = ?params.name);
        async move {
            let (watch, reporter) = Reporter::start(&context, &self.log_level);
            let result = self.run_session_action(&params, watch).await;
            reporter.finish().await;
            slot.report(answer(result, render))
        }
        .instrument(span)
        .await
    }
}

impl SandboxServer {
    async fn run_session_action(&self, params: &SessionParams, watch: Watch) -> Result<SessionOutput, ExecuteError> {
        let sessions = self.executor.sessions();
        let name = || params.name.as_deref().ok_or(SessionError::NameRequired);
        let (sessions, message) = match params.action {
            SessionAction::List => {
                let all = sessions.list().await?;
                let message = format!("{} session(s).", all.len());
                (all, message)
            }
            SessionAction::Create => {
                let name = name()?;
                let language = Language::parse(params.language.as_deref().ok_or(SessionError::LanguageRequired)?)?;
                let request = SessionRequest {
                    name: name.to_string(),
                    language,
                    ttl: params.ttl,
                    packages: params.packages.clone().unwrap_or_default(),
                    ml: params.ml.unwrap_or(false),
                    mounts: params.mounts.clone().unwrap_or_default(),
                    seccomp: params.seccomp.clone(),
                    network: params.network.clone(),
                };
                let (session, cached) = self.executor.create_session(&request, &watch).await?;
                let mut message =
                    format!("Created session {name} ({language}). Pass `session: \"{name}\"` to sandbox_execute.");
                if let Some(cached) = cached {
                    message.push_str(&format!(
                        " Packages {} {} ({:.1} s).",
                        cached.packages.join(", "),
                        if cached.hit {
                            "came from the cache"
                        } else {
                            "were installed and cached"
                        },
                        cached.elapsed.as_secs_f64()
                    ));
                }
                (vec![session], message)
            }
            SessionAction::Get => (vec![sessions.get(name()?).await?], format!("Session {}.", name()?)),
            SessionAction::Pause => (
                vec![sessions.pause(name()?).await?],
                format!("Paused session {}; executing in it resumes it.", name()?),
            ),
            SessionAction::Resume => (
                vec![sessions.resume(name()?).await?],
                format!("Resumed session {}.", name()?),
            ),
            SessionAction::Extend => (
                vec![sessions.extend(name()?, params.ttl).await?],
                format!("Extended session {}.", name()?),
            ),
            SessionAction::Network => {
                let name = name()?;
                let requested = params.network.as_deref().ok_or(SessionError::NetworkRequired)?;
                let session = sessions.set_grants(name, requested).await?;
                let message = format!(
                    "Session {name} may now reach: {}.",
                    match session.network.as_deref() {
                        Some([]) | None => "no host (the proxy refuses every connection)".to_string(),
                        Some(hosts) => hosts.join(", "),
                    }
                );
                (vec![session], message)
            }
            SessionAction::Destroy => (
                vec![sessions.destroy(name()?).await?],
                format!("Destroyed session {} and its files.", name()?),
            ),
        };
        Ok(SessionOutput {
            action: params.action,
            sessions,
            message,
        })
    }
}

fn render(output: &SessionOutput) -> String {
    let mut text = output.message.clone();
    for session in &output.sessions {
        text.push_str(&format!(
            "\n- {} ({}, {}, seccomp {}): last used {}, expires {} ({} s left)",
            session.name,
            session.language,
            session.state,
            session.seccomp,
            session.last_used,
            session.expires_at,
            session.ttl_left_seconds
        ));
        if let Some(network) = &session.network {
            let hosts = if network.is_empty() {
                "no host yet".to_string()
            } else {
                network.join(", ")
            };
            text.push_str(&format!("\n    network: {hosts}"));
            if let Some(egress) = &session.egress {
                text.push_str(&format!(
                    " ({} connections, {} refused, {} bytes sent, {} received)",
                    egress.connections, egress.refused, egress.bytes_up, egress.bytes_down
                ));
            }
        }
        for mount in &session.mounts {
            text.push_str(&format!(
                "\n    {} ← host folder {} ({})",
                mount.path,
                mount.host_path,
                if mount.writable { "read-write" } else { "read-only" }
            ));
        }
    }
    text
}
