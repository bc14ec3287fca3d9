//! The warm pool: per language, containers already started with the runner
//! (and, for Python, its kernel) loaded and waiting on stdin. A pooled
//! container serves exactly one stateless execute and is then removed; a
//! background task keeps each language topped up to its target and drops
//! containers that died. A miss starts a container on demand.

use super::background::Background;
use super::launcher::{Launcher, Purpose, Sandbox};
use crate::docker::DockerError;
use crate::docker::labels;
use crate::runtime::Language;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often idle containers are checked even when nothing asks for a refill.
const CHECK_INTERVAL: Duration = Duration::from_secs(15);
/// After a failed start, how long before the pool tries that language again.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// A pooled container that was never started (or exited without being
/// removed) and is older than this is an orphan of a server that died
/// mid-start; any server removes it.
const ORPHAN_AGE: Duration = Duration::from_secs(120);

#[derive(Debug, Default, Clone)]
struct LanguageStats {
    hits: u64,
    misses: u64,
    acquire_total: Duration,
    last_error: Option<(Instant, String)>,
}

#[derive(Default)]
struct PoolState {
    idle: HashMap<Language, VecDeque<Sandbox>>,
    starting: HashMap<Language, usize>,
    stats: HashMap<Language, LanguageStats>,
    closed: bool,
}

/// Pool figures for one language, as `sandbox_inspect` shows them.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PoolLanguageStats {
    pub language: String,
    /// Warm containers the pool keeps for this language.
    pub target: usize,
    /// Warm containers waiting right now.
    pub idle: usize,
    /// Containers being started right now.
    pub starting: usize,
    /// Executes served by a warm container.
    pub hits: u64,
    /// Executes that had to start a container.
    pub misses: u64,
    /// Mean time to get a container (hits and misses), in milliseconds.
    pub avg_acquire_ms: f64,
    /// Why the last start failed, if it did recently.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Warm containers for stateless executes.
pub struct ContainerPool {
    launcher: Arc<Launcher>,
    targets: BTreeMap<Language, usize>,
    state: Mutex<PoolState>,
    refill: Notify,
}

impl ContainerPool {
    pub fn new(launcher: Arc<Launcher>) -> Arc<Self> {
        let targets = launcher.config().pool_sizes.clone();
        Arc::new(Self {
            launcher,
            targets,
            state: Mutex::new(PoolState::default()),
            refill: Notify::new(),
        })
    }

    /// Starts the background task that fills the pool and replaces dead
    /// containers. It never blocks the caller, and ends when `background`
    /// shuts down (after finishing a container start under way).
    pub fn start_maintenance(self: &Arc<Self>, background: &Background) {
        let pool = self.clone();
        let stop = background.clone();
        background.spawn(async move {
            match pool.remove_orphans().await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed orphaned pool containers"),
                Err(error) => tracing::debug!(%error, "orphan sweep skipped"),
            }
            while !pool.is_closed() && !stop.is_stopping() {
                pool.drop_dead();
                pool.fill().await;
                tokio::select! {
                    () = pool.refill.notified() => {}
                    () = tokio::time::sleep(CHECK_INTERVAL) => {}
                    () = stop.stopping() => {}
                }
            }
        });
    }

    /// A ready container for one stateless execute: a warm one if there is
    /// one (a hit), else a new one (a miss).
    pub async fn acquire(&self, language: Language) -> Result<Sandbox, DockerError> {
        let started = Instant::now();
        let warm = self.take_idle(language);
        let hit = warm.is_some();
        let result = match warm {
            Some(sandbox) => Ok(sandbox),
            None => self.launcher.launch(language, Purpose::Pool).await,
        };
        self.with_state(|state| {
            let stats = state.stats.entry(language).or_default();
            if hit {
                stats.hits += 1;
            } else {
                stats.misses += 1;
            }
            stats.acquire_total += started.elapsed();
        });
        self.refill.notify_one();
        result
    }

    /// Figures per language.
    pub fn stats(&self) -> Vec<PoolLanguageStats> {
        self.with_state(|state| {
            self.targets
                .iter()
                .map(|(language, target)| {
                    let stats = state.stats.get(language).cloned().unwrap_or_default();
                    let served = stats.hits + stats.misses;
                    PoolLanguageStats {
                        language: language.name().to_string(),
                        target: *target,
                        idle: state.idle.get(language).map_or(0, VecDeque::len),
                        starting: state.starting.get(language).copied().unwrap_or(0),
                        hits: stats.hits,
                        misses: stats.misses,
                        avg_acquire_ms: if served == 0 {
                            0.0
                        } else {
                            stats.acquire_total.as_secs_f64() * 1000.0 / served as f64
                        },
                        last_error: stats
                            .last_error
                            .filter(|(at, _)| at.elapsed() < RETRY_AFTER * 4)
                            .map(|(_, message)| message),
                    }
                })
                .collect()
        })
    }

    /// Stops refilling and removes every idle container. A start under way
    /// removes its container when done; the maintenance task, owned by the
    /// server's [`Background`], is waited for there.
    pub async fn shutdown(&self) {
        let idle: Vec<Sandbox> = self.with_state(|state| {
            state.closed = true;
            state.idle.drain().flat_map(|(_, queue)| queue).collect()
        });
        self.refill.notify_one();
        futures::future::join_all(idle.into_iter().map(|sandbox| sandbox.container.remove())).await;
    }

    /// Removes pooled containers that no live server can be using: never
    /// started or exited, and older than [`ORPHAN_AGE`].
    pub async fn remove_orphans(&self) -> Result<usize, DockerError> {
        let engine = self.launcher.engine();
        let now = i64::try_from(crate::clock::unix_now()).unwrap_or(i64::MAX);
        let mut removed = 0;
        for container in engine.list_sandboxes(&[(labels::KIND, "pool")]).await? {
            let stale = container.state.is_stopped();
            let old = container
                .created
                .is_some_and(|created| now - created > ORPHAN_AGE.as_secs() as i64);
            if stale && old {
                engine.remove_sandbox(&container.id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn take_idle(&self, language: Language) -> Option<Sandbox> {
        self.with_state(|state| {
            let queue = state.idle.get_mut(&language)?;
            while let Some(sandbox) = queue.pop_front() {
                if sandbox.connection.is_alive() {
                    return Some(sandbox);
                }
                tracing::info!(container = %sandbox.container.id(), "dropping a dead pooled container");
            }
            None
        })
    }

    fn is_closed(&self) -> bool {
        self.with_state(|state| state.closed)
    }

    /// Removes idle containers whose runner stream ended.
    fn drop_dead(&self) {
        self.with_state(|state| {
            for queue in state.idle.values_mut() {
                queue.retain(|sandbox| sandbox.connection.is_alive());
            }
        });
    }

    /// Starts containers, one at a time, until every language reaches its target.
    async fn fill(&self) {
        for (language, target) in &self.targets {
            loop {
                let wanted = self.with_state(|state| {
                    let stats = state.stats.entry(*language).or_default();
                    let backing_off = stats
                        .last_error
                        .as_ref()
                        .is_some_and(|(at, _)| at.elapsed() < RETRY_AFTER);
                    let have = state.idle.get(language).map_or(0, VecDeque::len)
                        + state.starting.get(language).copied().unwrap_or(0);
                    let wanted = !state.closed && !backing_off && have < *target;
                    if wanted {
                        *state.starting.entry(*language).or_default() += 1;
                    }
                    wanted
                });
                if !wanted {
                    break;
                }
                let launched = self.launcher.launch(*language, Purpose::Pool).await;
                let leftover = self.with_state(|state| {
                    if let Some(starting) = state.starting.get_mut(language) {
                        *starting = starting.saturating_sub(1);
                    }
                    match launched {
                        Ok(sandbox) if !state.closed => {
                            state.stats.entry(*language).or_default().last_error = None;
                            state.idle.entry(*language).or_default().push_back(sandbox);
                            None
                        }
                        Ok(sandbox) => Some(sandbox),
                        Err(error) => {
                            tracing::warn!(language = %language, %error, "could not warm a pooled container");
                            state.stats.entry(*language).or_default().last_error =
                                Some((Instant::now(), error.to_string()));
                            None
                        }
                    }
                });
                if let Some(sandbox) = leftover {
                    sandbox.container.remove().await;
                }
            }
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut PoolState) -> T) -> T {
        let mut state = self.state.lock();
        f(&mut state)
    }
}
