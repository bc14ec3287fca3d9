//! The egress proxy container of this server: started on first need, on
//! the engine's default bridge (its way out), with the proxy attached the
//! way a runner is; a reader task answers its questions through the
//! [`Ledger`] and books its reports, a writer task sends what the server
//! says. The container goes with this server (its stdin closes and the
//! engine removes it), so each server runs its own.

use super::allow_list::AllowList;
use super::asker::{Approval, Askers, Question, Turn, always_pattern};
use super::error::EgressError;
use super::ledger::{Answered, Judgement, Ledger, Owner};
use super::protocol::{Ask, Closed, DecisionMessage, PROTOCOL, ProxyMessage, ServerMessage};
use crate::config::{AllowEdit, Config, add_to_allow};
use crate::core::session_store::SessionStore;
use crate::docker::{
    ContainerLimits, NetworkAccess, RunnerReader, SandboxContainer, SandboxEngine, SandboxSpec, labels,
};
use crate::images::{self, EGRESS};
use crate::security::audit::{AuditEvent, AuditLog, EgressEvent};
use crate::security::egress::ALLOW_ENV;
use crate::security::seccomp::SeccompProfile;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// The port the proxy listens on in every network it joins.
pub const PROXY_PORT: u16 = 3128;
/// Prefix of every egress proxy container's name (the rest: the server
/// instance and a count), so a network's members show which are proxies.
pub const PROXY_NAME_PREFIX: &str = "multilang-sandbox-egress-";
/// How long the proxy may take to say it listens.
const READY_LIMIT: Duration = Duration::from_secs(30);
/// How much longer than the user's time a connection waits for its
/// decision in the proxy.
const ASK_MARGIN: Duration = Duration::from_secs(5);

/// What the reader task needs to decide and book.
pub(super) struct Context {
    pub(super) config: Arc<Config>,
    pub(super) ledger: Arc<Mutex<Ledger>>,
    pub(super) audit: Arc<AuditLog>,
    pub(super) instance_id: String,
    pub(super) askers: Askers,
    /// Where a session's grants approved by the user are kept.
    pub(super) store: Arc<SessionStore>,
    /// `egress.allow` now (the user's "always" answers extend it).
    pub(super) allow: Arc<AllowList>,
}

/// One running proxy container.
pub(super) struct ProxyProcess {
    container: Mutex<Option<SandboxContainer>>,
    container_id: String,
    name: String,
    outbox: mpsc::UnboundedSender<ServerMessage>,
    alive: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ProxyProcess {
    /// Starts the proxy and waits until it listens and is configured.
    pub(super) async fn start(
        engine: &dyn SandboxEngine,
        context: Context,
        generation: u64,
    ) -> Result<Self, EgressError> {
        let config = context.config.clone();
        let mut spec = spec(&config, &context.instance_id);
        let name = format!("{PROXY_NAME_PREFIX}{}-{generation}", context.instance_id);
        spec.name = Some(name.clone());
        let (container, channel) = engine.start_sandbox(&spec).await?;
        let mut reader = channel.reader;
        let ready = tokio::time::timeout(READY_LIMIT, wait_ready(&mut reader)).await;
        match ready {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                container.remove().await;
                return Err(EgressError::ProxyStart(reason));
            }
            Err(_) => {
                container.remove().await;
                return Err(EgressError::ProxyStart(format!(
                    "it did not say it listens within {} s",
                    READY_LIMIT.as_secs()
                )));
            }
        }
        let (outbox, mut inbox) = mpsc::unbounded_channel::<ServerMessage>();
        let _ = outbox.send(ServerMessage::Configure {
            allow_private: config
                .egress
                .allow_private
                .networks()
                .map(|network| network.to_string())
                .collect(),
            // The server answers first (the user's time, then a refusal).
            ask_timeout_ms: (config.egress.ask_timeout + ASK_MARGIN).as_millis() as u64,
        });
        let alive = Arc::new(AtomicBool::new(true));
        let mut writer = channel.writer;
        let writer_alive = alive.clone();
        let writing = tokio::spawn(async move {
            while let Some(message) = inbox.recv().await {
                if let Err(error) = writer.send_line(&message.to_line()).await {
                    tracing::warn!(%error, "the egress proxy's input closed");
                    writer_alive.store(false, Ordering::SeqCst);
                    break;
                }
            }
        });
        let reading = tokio::spawn(read_reports(reader, Arc::new(context), outbox.clone(), alive.clone()));
        let container_id = container.id().to_string();
        tracing::info!(container = %container_id, "egress proxy started");
        Ok(Self {
            container: Mutex::new(Some(container)),
            container_id,
            name,
            outbox,
            alive,
            tasks: vec![writing, reading],
        })
    }

    pub(super) fn id(&self) -> &str {
        &self.container_id
    }

    /// The container's name ([`PROXY_NAME_PREFIX`], instance, count).
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst) && !self.outbox.is_closed()
    }

    /// Removes the container now.
    pub(super) async fn stop(&self) {
        // Its stream ending now is no news.
        self.alive.store(false, Ordering::SeqCst);
        let container = self.container.lock().take();
        if let Some(container) = container {
            container.remove().await;
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The proxy's image (network holders run `sleep` from it too).
pub(super) fn image(config: &Config) -> String {
    images::tag(&EGRESS, config)
}

fn spec(config: &Config, instance_id: &str) -> SandboxSpec {
    SandboxSpec {
        image: image(config),
        command: ["python3", "-E", "-s", "/opt/egress/egress_proxy.py"]
            .map(String::from)
            .to_vec(),
        name: None,
        labels: HashMap::from([
            (labels::INSTANCE.to_string(), instance_id.to_string()),
            (labels::KIND.to_string(), "egress".to_string()),
        ]),
        limits: ContainerLimits {
            memory_bytes: 256 * 1024 * 1024,
            pids: 128,
            nano_cpus: 1_000_000_000,
            tmpfs_mb: 16,
        },
        // The engine's default runtime: the proxy joins each sandbox network
        // while it runs, which gVisor's runtime cannot do. It is this
        // project's code, with no code of the model's in it.
        runtime: None,
        volumes: Vec::new(),
        binds: Vec::new(),
        seccomp: SeccompProfile::Standard.json().map(String::from),
        one_shot: true,
        network: NetworkAccess::Bridge,
        env: Vec::new(),
        writable_root: false,
        run_as_root: false,
    }
}

async fn wait_ready(reader: &mut RunnerReader) -> Result<(), String> {
    loop {
        let line = reader.read_line().await.map_err(|error| error.to_string())?;
        match serde_json::from_slice::<ProxyMessage>(&line) {
            Ok(ProxyMessage::Ready { protocol, .. }) if protocol == PROTOCOL => return Ok(()),
            Ok(ProxyMessage::Ready { protocol, .. }) => {
                return Err(format!(
                    "its image speaks protocol {protocol}, this server {PROTOCOL}: rebuild the images"
                ));
            }
            _ => tracing::debug!(line = %String::from_utf8_lossy(&line), "egress proxy line before ready"),
        }
    }
}

async fn read_reports(
    mut reader: RunnerReader,
    context: Arc<Context>,
    outbox: mpsc::UnboundedSender<ServerMessage>,
    alive: Arc<AtomicBool>,
) {
    loop {
        let line = match reader.read_line().await {
            Ok(line) => line,
            Err(error) => {
                if alive.load(Ordering::SeqCst) {
                    tracing::warn!(%error, "the egress proxy stopped");
                }
                break;
            }
        };
        match serde_json::from_slice::<ProxyMessage>(&line) {
            Ok(ProxyMessage::Ask(ask)) => match decide(&context, &ask) {
                Ok(decision) => {
                    if outbox.send(ServerMessage::Decision(decision)).is_err() {
                        break;
                    }
                }
                Err(owner) => ask_user(&context, ask, owner, outbox.clone()),
            },
            Ok(ProxyMessage::Closed(closed)) => book(&context, &closed),
            Ok(ProxyMessage::Ready { .. }) => {}
            Err(error) => tracing::warn!(%error, "unreadable egress proxy message"),
        }
    }
    alive.store(false, Ordering::SeqCst);
}

/// The decision on one ask, or, when the user is to be asked, the owner
/// to ask about (the decision follows the answer).
fn decide(context: &Context, ask: &Ask) -> Result<DecisionMessage, Owner> {
    let settings = context.allow.settings(&context.config.egress);
    let judgement = context
        .ledger
        .lock()
        .judge(ask, &settings, |owner| settings.ask && context.askers.can_ask(owner));
    match judgement {
        Judgement::Allow {
            owner,
            budget_bytes,
            private,
            rule,
        } => {
            tracing::debug!(%owner, host = %ask.host, port = ask.port, %rule, "egress allowed");
            Ok(allowance(ask, &owner, budget_bytes, private))
        }
        Judgement::Refuse { owner, reason } => {
            tracing::info!(owner = ?owner.as_ref().map(Owner::tag), host = %ask.host, port = ask.port, %reason, "egress refused");
            Ok(refusal(ask, owner.as_ref(), reason))
        }
        Judgement::AskUser { owner } => Err(owner),
    }
}

fn allowance(ask: &Ask, owner: &Owner, budget_bytes: u64, private: bool) -> DecisionMessage {
    DecisionMessage {
        id: ask.id.clone(),
        allow: true,
        session: Some(owner.tag()),
        budget_bytes: Some(budget_bytes),
        private,
        reason: None,
        host: ask.host.clone(),
        port: ask.port,
    }
}

fn refusal(ask: &Ask, owner: Option<&Owner>, reason: String) -> DecisionMessage {
    DecisionMessage {
        id: ask.id.clone(),
        allow: false,
        session: owner.map(Owner::tag),
        budget_bytes: None,
        private: false,
        reason: Some(reason),
        host: ask.host.clone(),
        port: ask.port,
    }
}

/// Asks the user about `ask` for `owner` (in a task of its own: the
/// proxy's other connections go on meanwhile), then tells the proxy.
fn ask_user(context: &Arc<Context>, ask: Ask, owner: Owner, outbox: mpsc::UnboundedSender<ServerMessage>) {
    let context = context.clone();
    tokio::spawn(async move {
        let settings = &context.config.egress;
        let approval = match context.askers.turn(&owner, &ask.host, ask.port, settings.ask_timeout) {
            Turn::Refuse(reason) => Approval::Refused(reason),
            Turn::Wait(mut answer) => {
                let answered = tokio::time::timeout(settings.ask_timeout, answer.wait_for(Option::is_some)).await;
                match answered {
                    Ok(Ok(answer)) => answer.clone().unwrap_or(Approval::Refused("no answer".into())),
                    _ => Approval::Refused("no answer in time".into()),
                }
            }
            Turn::Ask {
                asker,
                limit,
                registration,
                answer,
            } => {
                let question = Question {
                    owner: owner.clone(),
                    host: ask.host.clone(),
                    port: ask.port,
                    config: context.config.file.clone(),
                };
                let approval = asker.ask(question, limit).await;
                let approval = context
                    .askers
                    .finish(&owner, registration, &ask.host, ask.port, approval);
                if approval == Approval::Always {
                    // Before the answer is shared: connections waiting for
                    // it, and requests from now on, see the host allowed.
                    keep_always(&context, &owner, &ask);
                }
                let _ = answer.send(Some(approval.clone()));
                approval
            }
        };
        tracing::info!(%owner, host = %ask.host, port = ask.port, ?approval, "the user answered about egress");
        let answered = context.ledger.lock().answered(&ask, &owner, &approval, settings);
        let decision = match answered {
            Answered::Allow {
                budget_bytes,
                private,
                grants,
                container,
            } => {
                let for_sandbox = matches!(approval, Approval::ForSandbox | Approval::Always);
                if let (true, Owner::Session(_), Some(container)) = (for_sandbox, &owner, container) {
                    let mut record = context.store.load(&container);
                    record.grants = Some(grants.iter().map(ToString::to_string).collect());
                    context.store.save(&container, &record);
                }
                allowance(&ask, &owner, budget_bytes, private)
            }
            Answered::Refused(reason) => refusal(&ask, Some(&owner), reason),
        };
        let _ = outbox.send(ServerMessage::Decision(decision));
    });
}

/// The user's "always" about `ask`: this server's `egress.allow` takes
/// the host now, and the config file takes it for the next start (in the
/// background; a file that cannot take it changes nothing of the grant and
/// is logged with the reason, the file left as it was).
fn keep_always(context: &Context, owner: &Owner, ask: &Ask) {
    let Some(pattern) = always_pattern(&ask.host, ask.port) else {
        return;
    };
    context.allow.add(pattern.clone());
    let Some(file) = context.config.file.clone() else {
        tracing::warn!(%owner, %pattern, "the user allowed a host always, but this server has no config file to add it to: it is allowed until the server stops");
        return;
    };
    let owner = owner.clone();
    tokio::task::spawn_blocking(move || {
        let path = file.path.display().to_string();
        match add_to_allow(&file.path, &pattern) {
            Ok(AllowEdit::Added { created }) => {
                tracing::info!(%owner, %pattern, file = %path, created, "the user allowed a host always: added to egress.allow in the config file");
            }
            Ok(AllowEdit::AlreadyListed) => {
                tracing::info!(%owner, %pattern, file = %path, "the user allowed a host always: the config file's egress.allow has it already");
            }
            Err(error) => {
                tracing::warn!(%owner, %pattern, file = %path, %error, "the user allowed a host always, but it could not be added to the config file: it is allowed until the server stops");
                return;
            }
        }
        if file.allow_overridden {
            tracing::warn!(
                %pattern,
                file = %path,
                variable = ALLOW_ENV,
                "{ALLOW_ENV} is set and overrides egress.allow in the config file: the host added there counts at the next start only without the variable (or if the variable names it too)"
            );
        }
    });
}

/// Books an ended connection and records it in the audit log.
fn book(context: &Context, closed: &Closed) {
    let settled = context.ledger.lock().closed(closed);
    let (session, execute, install) = match &settled.owner {
        Some(Owner::Session(name)) => (Some(name.clone()), None, None),
        Some(Owner::Execute(id)) => (None, Some(id.clone()), None),
        Some(Owner::Install(id)) => (None, None, Some(id.clone())),
        None => (None, None, None),
    };
    context.audit.record(AuditEvent::Egress(Box::new(EgressEvent {
        instance: context.instance_id.clone(),
        session,
        execute,
        install,
        host: closed.host.clone(),
        port: closed.port,
        allowed: closed.allowed,
        rule: settled.rule,
        reason: closed.reason.clone(),
        address: closed.address.clone(),
        bytes_up: closed.bytes_up,
        bytes_down: closed.bytes_down,
        duration_ms: closed.duration_ms,
    })));
}
