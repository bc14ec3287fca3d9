//! `sandbox_session`: named, stateful sandboxes.

use super::{OutcomeSlot, Reported, answer};
use crate::core::error::{ExecuteError, SessionError};
use crate::core::executor::{CreatedSession, ForkRequest, SessionRequest};
use crate::core::run::ImageChoice;
use crate::core::session::{ReplaySummary, Restored, SnapshotError, SnapshotInfo};
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
#[serde(rename_all = "snake_case")]
pub enum SessionAction {
    Create,
    List,
    Get,
    Pause,
    Resume,
    Extend,
    Destroy,
    Network,
    Snapshot,
    Snapshots,
    Restore,
    Fork,
    DeleteSnapshot,
}

/// Arguments of `sandbox_session`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SessionParams {
    /// create, list, get, pause, resume, extend, destroy, network, snapshot, snapshots, restore,
    /// fork or delete_snapshot.
    pub action: SessionAction,
    /// Session name: 1 to 63 letters, digits, `-` or `_`, starting with a letter or digit,
    /// for example "analysis-1". Required for every action except list.
    #[serde(default)]
    pub name: Option<String>,
    /// Language of the session, for create: python, javascript, typescript, go, rust or bash
    /// (with `template`, it defaults to the template's).
    #[serde(default)]
    pub language: Option<String>,
    /// create: seconds of inactivity after which the session is destroyed (default 3600, at
    /// most 604800). extend: seconds to add (default: the session's ttl). fork: the new
    /// session's (default: the forked session's).
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
    /// create: start from one of the user's own images (templates, listed in this tool's
    /// description and by sandbox_inspect), for example "data"; `language` defaults to the
    /// template's. Its first use after the user changed it builds it first.
    #[serde(default)]
    pub template: Option<String>,
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
    /// snapshot: the new snapshot's name (same characters as session names; made from the time
    /// when left out). restore, delete_snapshot: the snapshot to use. fork: the snapshot to
    /// fork (left out: the session's state now).
    #[serde(default)]
    pub snapshot: Option<String>,
    /// fork: the name of the new session.
    #[serde(default)]
    pub new_name: Option<String>,
    /// destroy: also delete the session's snapshots (by default they are kept until they expire,
    /// and can still be forked).
    #[serde(default)]
    pub snapshots: Option<bool>,
}

/// Result of `sandbox_session`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SessionOutput {
    /// The action that was carried out.
    pub action: SessionAction,
    /// The session acted on (one element), or every session for list (none for snapshots and
    /// delete_snapshot).
    pub sessions: Vec<SessionInfo>,
    /// snapshot, restore, fork, delete_snapshot: the snapshot acted on; snapshots: every snapshot
    /// of the session, oldest first; destroy with `snapshots`: those deleted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<SnapshotInfo>,
    /// restore, fork: how the logged cells were run again to rebuild variables (absent for Go
    /// and Rust, and when there were no cells).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplaySummary>,
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
network {name, network} replaces a session's hosts. \
snapshot {name, snapshot?} saves the session's files, packages and variables under a name; \
restore {name, snapshot} rolls the session back to it in place (try something risky, then undo); \
fork {name, new_name, snapshot?} makes a new session from a snapshot, or from the session as it is \
now, to branch one state into two experiments; snapshots {name} lists them; delete_snapshot \
{name, snapshot}. Variables come back by re-running the session's successful cells in a fresh \
interpreter: the result's `replay` says which cells fail now or print something else; open files, \
sockets, threads, background processes and unseeded random numbers do not come back. Snapshots \
outlive the session unless destroy is given `snapshots: true`.",
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
        let snapshot = || params.snapshot.as_deref().ok_or(SnapshotError::SnapshotRequired);
        let mut output = SessionOutput {
            action: params.action,
            sessions: Vec::new(),
            snapshots: Vec::new(),
            replay: None,
            message: String::new(),
        };
        let (sessions, message) = match params.action {
            SessionAction::List => {
                let all = sessions.list().await?;
                let message = format!("{} session(s).", all.len());
                (all, message)
            }
            SessionAction::Create => {
                let name = name()?;
                let image = ImageChoice::from_arguments(params.ml, params.template.as_deref())?;
                let language = match params.language.as_deref() {
                    Some(given) => Language::parse(given)?,
                    None => self
                        .executor
                        .template_language(&image)?
                        .ok_or(SessionError::LanguageRequired)?,
                };
                let request = SessionRequest {
                    name: name.to_string(),
                    language,
                    ttl: params.ttl,
                    packages: params.packages.clone().unwrap_or_default(),
                    image,
                    mounts: params.mounts.clone().unwrap_or_default(),
                    seccomp: params.seccomp.clone(),
                    network: params.network.clone(),
                };
                let CreatedSession { session, cached, notes } = self.executor.create_session(&request, &watch).await?;
                let mut message =
                    format!("Created session {name} ({language}). Pass `session: \"{name}\"` to sandbox_execute.");
                for note in notes {
                    message.push(' ');
                    message.push_str(&note);
                }
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
            SessionAction::Destroy => {
                let name = name()?;
                let session = sessions.destroy(name).await?;
                let message = if params.snapshots == Some(true) {
                    let (deleted, failed) = sessions.delete_snapshots(name).await?;
                    output.snapshots = deleted;
                    let mut message = format!(
                        "Destroyed session {name}, its files and {} snapshot(s).",
                        output.snapshots.len()
                    );
                    if !failed.is_empty() {
                        message.push_str(&format!(
                            " These snapshots could not be deleted: {}; delete them with delete_snapshot.",
                            failed.join(", ")
                        ));
                    }
                    message
                } else {
                    let kept = sessions.snapshots(name).await.map(|kept| kept.len()).unwrap_or(0);
                    match kept {
                        0 => format!("Destroyed session {name} and its files."),
                        kept => format!(
                            "Destroyed session {name} and its files. Its {kept} snapshot(s) are kept until they expire: fork one with action fork, or delete them with delete_snapshot."
                        ),
                    }
                };
                (vec![session], message)
            }
            SessionAction::Snapshot => {
                let name = name()?;
                let taken = sessions.snapshot(name, params.snapshot.as_deref()).await?;
                let message = format!(
                    "Took snapshot {} of session {name}: {}. Roll back with restore {{name: \"{name}\", snapshot: \"{}\"}}, or branch with fork.",
                    taken.name, taken.holds, taken.name
                );
                output.snapshots = vec![taken];
                (Vec::new(), message)
            }
            SessionAction::Snapshots => {
                let name = name()?;
                output.snapshots = sessions.snapshots(name).await?;
                (
                    Vec::new(),
                    format!("Session {name} has {} snapshot(s).", output.snapshots.len()),
                )
            }
            SessionAction::DeleteSnapshot => {
                let name = name()?;
                let deleted = sessions.delete_snapshot(name, snapshot()?).await?;
                let message = format!("Deleted snapshot {} of session {name}.", deleted.name);
                output.snapshots = vec![deleted];
                (Vec::new(), message)
            }
            SessionAction::Restore => {
                let name = name()?;
                let restored = sessions.restore(name, snapshot()?, &watch).await?;
                let message = format!("Restored session {name} to snapshot {}.", restored.snapshot.name);
                take_restored(&mut output, restored, message)
            }
            SessionAction::Fork => {
                let name = name()?;
                let new_name = params.new_name.clone().ok_or(SnapshotError::NewNameRequired)?;
                let request = ForkRequest {
                    source: name.to_string(),
                    snapshot: params.snapshot.clone(),
                    new_name: new_name.clone(),
                    ttl: params.ttl,
                };
                let forked = self.executor.fork_session(&request, &watch).await?;
                let from = match &params.snapshot {
                    Some(snapshot) => format!("snapshot {snapshot} of session {name}"),
                    None => format!("session {name} as it is now"),
                };
                let message = format!(
                    "Forked {from} into session {new_name}; pass `session: \"{new_name}\"` to sandbox_execute."
                );
                take_restored(&mut output, forked, message)
            }
        };
        output.sessions = sessions;
        output.message = message;
        Ok(output)
    }
}

/// Puts a restore's or fork's session, snapshot and replay into `output`;
/// the message says what the replay did.
fn take_restored(output: &mut SessionOutput, restored: Restored, message: String) -> (Vec<SessionInfo>, String) {
    let mut message = message;
    match &restored.replay {
        Some(replay) => {
            message.push_str(&format!(
                " Files are back; {} logged cell(s) ran again in a fresh interpreter in {} ms to rebuild variables",
                replay.replayed, replay.duration_ms
            ));
            if replay.skipped > 0 {
                message.push_str(&format!(" ({} that had failed were skipped)", replay.skipped));
            }
            message.push('.');
            if !replay.failed.is_empty() {
                message.push_str(&format!(
                    " {} cell(s) failed now, so what they set is missing: see `replay.failed`.",
                    replay.failed.len()
                ));
            }
            if !replay.differed.is_empty() {
                message.push_str(&format!(
                    " {} cell(s) printed something else than the first time (random numbers, times, or data read from outside).",
                    replay.differed.len()
                ));
            }
            if replay.cancelled {
                message.push_str(" The replay was cancelled: later cells did not run.");
            }
            if !replay.log_complete {
                message.push_str(" The log had lost older cells, so their state is missing.");
            }
            message.push_str(" Open files, sockets, threads and background processes are not brought back.");
        }
        None => message.push_str(" Files are back (no interpreter state to rebuild)."),
    }
    output.snapshots = vec![restored.snapshot];
    output.replay = restored.replay;
    (vec![restored.session], message)
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
    for snapshot in &output.snapshots {
        text.push_str(&format!(
            "\n- snapshot {} of {} ({}), taken {}, kept until {}, {:.1} MB: {}",
            snapshot.name,
            snapshot.session,
            snapshot.language,
            snapshot.created,
            snapshot.expires_at,
            snapshot.size_bytes as f64 / 1e6,
            snapshot.holds
        ));
    }
    if let Some(replay) = &output.replay {
        for failure in &replay.failed {
            text.push_str(&format!(
                "\n- cell {} failed on replay (exit code {}): {}",
                failure.cell,
                failure.exit_code,
                failure.stderr.trim()
            ));
        }
    }
    text
}
