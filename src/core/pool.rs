//! The warm pool: per language, containers already started with the runner
//! (and its kernel, or a `node` waiting for its program) loaded and waiting
//! on stdin. A pooled container serves exactly one stateless execute and is
//! then removed. A background task keeps each language topped up to its
//! target, starting one container per engine CPU at once, and drops those
//! that died. The target follows demand: the configured size is the floor,
//! a miss raises it to the calls that came while the pool could not have
//! refilled (the time to start its whole target, at least two container
//! starts), up to `pool_max_size` and while the grown part's measured
//! memory fits `pool_memory_mb`; each check after a minute without a miss
//! halves the growth. A miss waits for a container the pool is already
//! starting, if no earlier miss waits for it, else starts one on demand.
//! While stateless calls keep coming, starts beyond the configured sizes
//! and the removal of used containers wait for a pause (at most 2 s).

use super::background::Background;
use super::launcher::{Launcher, Purpose, READY_TIMEOUT, Sandbox};
use crate::docker::DockerError;
use crate::docker::labels;
use crate::runtime::Language;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
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
/// Containers the pool starts at once: one per CPU of the engine's machine
/// within these bounds (more only queue in the engine, and take the CPU the
/// calls being served need: on 2 cores, 2 at once served calls right after
/// a burst faster than 4).
const PARALLEL_STARTS: (usize, usize) = (2, 8);
/// A miss grows the pool to the calls that came while it could not have
/// refilled: within the time to start its whole target, [`PARALLEL_STARTS`]
/// at a time, and no less than two of the language's container starts
/// (arrivals times the time to replace them: what keeps every call a hit).
/// The span is kept within these bounds; until a start was timed, one is
/// taken to last a second.
const DEMAND_SPAN: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(10));
const ASSUMED_START: Duration = Duration::from_secs(1);
/// A language whose pool grew shrinks once it has had no miss for this
/// long, halving what it grew by at most once per [`CHECK_INTERVAL`].
const SHRINK_AFTER: Duration = Duration::from_secs(60);
/// Memory assumed for one idle container until one has been measured.
const ASSUMED_MEMORY: u64 = 64 * 1024 * 1024;
/// How often one idle container per language is measured again.
const MEASURE_EVERY: Duration = Duration::from_secs(300);
/// While stateless calls keep coming (one within this span), the pool's
/// own work waits for a pause: starts beyond what keeps each language at
/// its configured size, and the removal of used containers without
/// network. On a small machine they take the CPU the calls need (calls
/// right after a burst, served from a grown pool, ran 3 to 10 times slower
/// beside them).
const YIELD_TO_CALLS: Duration = Duration::from_millis(250);
/// The longest the pool's own work waits for calls to pause: steady calls
/// still get the pool grown, and used containers removed.
const YIELD_AT_MOST: Duration = Duration::from_secs(2);

#[derive(Debug, Default, Clone)]
struct LanguageStats {
    hits: u64,
    misses: u64,
    acquire_total: Duration,
    last_error: Option<(Instant, String)>,
}

/// One language's part of the pool.
#[derive(Default)]
struct LanguagePool {
    idle: VecDeque<Sandbox>,
    starting: usize,
    /// Callers that missed and wait for one of the `starting` containers.
    waiting: usize,
    stats: LanguageStats,
    /// Containers wanted beyond the configured size, from recent misses.
    grown: usize,
    /// When the latest calls came, newest last (no more than the pool's
    /// largest size are kept).
    calls: VecDeque<Instant>,
    last_miss: Option<Instant>,
    last_shrink: Option<Instant>,
    /// How long a container start takes (a moving average).
    start_time: Option<Duration>,
    /// One idle container's memory in bytes, and when it was measured.
    memory_each: Option<(u64, Instant)>,
}

impl LanguagePool {
    fn have(&self) -> usize {
        self.idle.len() + self.starting
    }

    fn note_call(&mut self, keep: usize) {
        self.calls.push_back(Instant::now());
        while self.calls.len() > keep.max(1) {
            self.calls.pop_front();
        }
    }

    fn calls_within(&self, window: Duration) -> usize {
        self.calls.iter().rev().take_while(|at| at.elapsed() < window).count()
    }

    /// The calls that came while the pool could not have refilled: within
    /// the time to start its target (`floor` plus its growth) `parallel` at
    /// a time, and at least two container starts. A burst that emptied the
    /// pool counts with the calls that came while it refilled.
    fn demand(&self, floor: usize, parallel: usize) -> usize {
        let rounds = (floor + self.grown).div_ceil(parallel.max(1)).max(2);
        let span = self
            .start_time
            .unwrap_or(ASSUMED_START)
            .saturating_mul(u32::try_from(rounds).unwrap_or(u32::MAX));
        self.calls_within(span.clamp(DEMAND_SPAN.0, DEMAND_SPAN.1))
    }

    fn note_start_time(&mut self, took: Duration) {
        self.start_time = Some(match self.start_time {
            Some(mean) => (mean * 3 + took) / 4,
            None => took,
        });
    }

    /// Halves what the pool grew by once it has had no miss for
    /// [`SHRINK_AFTER`], at most once per [`CHECK_INTERVAL`]; true when it did.
    fn shrink_if_quiet(&mut self) -> bool {
        let quiet = self.last_miss.is_none_or(|at| at.elapsed() >= SHRINK_AFTER);
        let due = self.last_shrink.is_none_or(|at| at.elapsed() >= CHECK_INTERVAL);
        if self.grown == 0 || !quiet || !due {
            return false;
        }
        self.grown /= 2;
        self.last_shrink = Some(Instant::now());
        true
    }

    fn memory_each(&self) -> u64 {
        self.memory_each.map_or(ASSUMED_MEMORY, |(bytes, _)| bytes)
    }

    /// The containers to aim for: `floor`, plus what misses grew it by as
    /// far as `memory_left` (of the grown part's budget) holds them.
    fn target(&self, floor: usize, memory_left: u64) -> usize {
        let affordable = usize::try_from(memory_left / self.memory_each().max(1)).unwrap_or(usize::MAX);
        (floor + self.grown).min(self.have().max(floor).saturating_add(affordable))
    }

    fn backing_off(&self) -> bool {
        self.stats
            .last_error
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < RETRY_AFTER)
    }
}

#[derive(Default)]
struct PoolState {
    languages: HashMap<Language, LanguagePool>,
    closed: bool,
    /// Memory the grown part of the pool may use, in bytes.
    memory_budget: u64,
    /// Containers started at once.
    parallel_starts: usize,
    /// When the latest stateless call came (any language).
    last_call: Option<Instant>,
    /// Since when starts beyond the configured sizes have waited for calls
    /// to pause (they go on after [`YIELD_AT_MOST`]).
    holding_since: Option<Instant>,
    /// Used containers whose removal waits for calls to pause.
    removals_waiting: usize,
}

impl PoolState {
    /// When the pool's own work may go on if no call comes meanwhile; None
    /// when it may now.
    fn yielding_until(&self) -> Option<Instant> {
        let resume = self.last_call? + YIELD_TO_CALLS;
        (resume > Instant::now()).then_some(resume)
    }

    /// When starts beyond the configured sizes may go on: at a pause in
    /// the calls, or once they waited [`YIELD_AT_MOST`]. None when they may
    /// now.
    fn starts_held_until(&self) -> Option<Instant> {
        let pause = self.yielding_until()?;
        let limit = self.holding_since.map_or(Instant::now(), |since| since) + YIELD_AT_MOST;
        (limit > Instant::now()).then_some(pause.min(limit))
    }
}

/// What the pool starts next.
enum NextStart {
    Start(Language),
    /// Starts wait for calls to pause, until then at the latest.
    Held(Instant),
    Nothing,
}

impl PoolState {
    fn language(&mut self, language: Language) -> &mut LanguagePool {
        self.languages.entry(language).or_default()
    }

    /// Memory the containers beyond the configured sizes use (or will,
    /// once started), by each language's measured figure.
    fn grown_memory(&self, floors: &BTreeMap<Language, usize>) -> u64 {
        self.languages
            .iter()
            .map(|(language, pool)| {
                let floor = floors.get(language).copied().unwrap_or(0);
                pool.have().saturating_sub(floor) as u64 * pool.memory_each()
            })
            .sum()
    }
}

/// Pool figures for one language, as `sandbox_inspect` shows them.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PoolLanguageStats {
    pub language: String,
    /// Warm containers the pool keeps for this language when calls are
    /// rare (the configured `pool_size`).
    pub size: usize,
    /// Warm containers the pool aims for right now: the size, plus what
    /// recent misses added (up to `pool_max_size` and the memory budget).
    pub target: usize,
    /// Warm containers waiting right now.
    pub idle: usize,
    /// Containers being started right now.
    pub starting: usize,
    /// Executes served by a warm container.
    pub hits: u64,
    /// Executes that found no warm container (they took one the pool was
    /// starting, or started their own).
    pub misses: u64,
    /// Mean time to get a container (hits and misses), in milliseconds.
    pub avg_acquire_ms: f64,
    /// Memory one idle container uses, in MiB, as last measured (absent
    /// until one was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_each_mb: Option<f64>,
    /// Memory the idle containers use together, in MiB (idle × each).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_memory_mb: Option<f64>,
    /// Why the last start failed, if it did recently.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Warm containers for stateless executes.
pub struct ContainerPool {
    launcher: Arc<Launcher>,
    /// The configured sizes: the floor of each language's target.
    floors: BTreeMap<Language, usize>,
    max_size: usize,
    state: Mutex<PoolState>,
    refill: Notify,
    /// Told when a start the pool made ends, ready or failed.
    settled: Notify,
}

/// A caller waiting for a container the pool is starting; counted while
/// it waits, however the wait ends.
struct Waiting<'a> {
    pool: &'a ContainerPool,
    language: Language,
}

/// A used container's removal waiting for calls to pause; counted while
/// it waits.
struct RemovalWaiting<'a> {
    pool: &'a ContainerPool,
}

impl Drop for RemovalWaiting<'_> {
    fn drop(&mut self) {
        self.pool
            .with_state(|state| state.removals_waiting = state.removals_waiting.saturating_sub(1));
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.pool.with_state(|state| {
            let pool = state.language(self.language);
            pool.waiting = pool.waiting.saturating_sub(1);
        });
    }
}

impl ContainerPool {
    pub fn new(launcher: Arc<Launcher>) -> Arc<Self> {
        let config = launcher.config();
        let floors = config.pool_sizes.clone();
        let max_size = config.pool_max_size;
        let memory_budget = config.pool_memory_mb.saturating_mul(1024 * 1024);
        Arc::new(Self {
            launcher,
            floors,
            max_size,
            state: Mutex::new(PoolState {
                memory_budget,
                parallel_starts: PARALLEL_STARTS.0,
                ..PoolState::default()
            }),
            refill: Notify::new(),
            settled: Notify::new(),
        })
    }

    /// Starts the background task that fills the pool and replaces dead
    /// containers. It never blocks the caller, and ends when `background`
    /// shuts down (after finishing the container starts under way).
    pub fn start_maintenance(self: &Arc<Self>, background: &Background) {
        let pool = self.clone();
        let stop = background.clone();
        background.spawn(async move {
            match pool.remove_orphans().await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed orphaned pool containers"),
                Err(error) => tracing::debug!(%error, "orphan sweep skipped"),
            }
            pool.size_to_engine().await;
            while !pool.is_closed() && !stop.is_stopping() {
                pool.drop_dead();
                pool.shrink_when_quiet().await;
                pool.fill(&stop).await;
                pool.measure_memory().await;
                tokio::select! {
                    () = pool.refill.notified() => {}
                    () = tokio::time::sleep(CHECK_INTERVAL) => {}
                    () = stop.stopping() => {}
                }
            }
        });
    }

    /// A ready container for one stateless execute: a warm one if there is
    /// one (a hit), else a new one (a miss, which also grows the pool).
    pub async fn acquire(&self, language: Language) -> Result<Sandbox, DockerError> {
        let started = Instant::now();
        self.with_state(|state| {
            state.last_call = Some(started);
            state.language(language).note_call(self.max_size);
        });
        let mut warm = self.take_idle(language);
        let hit = warm.is_some();
        if !hit {
            self.grow(language);
        }
        self.refill.notify_one();
        // A miss takes a container the pool is already starting, when no
        // earlier miss waits for it: it is ready sooner than a new one.
        while warm.is_none() && self.wait_for_a_start(language).await {
            warm = self.take_idle(language);
        }
        let result = match warm {
            Some(sandbox) => Ok(sandbox),
            None => self.launcher.launch(language, Purpose::Pool).await,
        };
        self.with_state(|state| {
            let pool = state.language(language);
            if hit {
                pool.stats.hits += 1;
            } else {
                pool.stats.misses += 1;
            }
            pool.stats.acquire_total += started.elapsed();
        });
        result
    }

    /// After a miss: the pool aims to hold as many containers as calls came
    /// while it could not have refilled (this one included), within its room.
    fn grow(&self, language: Language) {
        let room = self.room_to_grow(language);
        let floor = self.floor(language);
        self.with_state(|state| {
            let parallel = state.parallel_starts;
            let pool = state.language(language);
            pool.last_miss = Some(Instant::now());
            let demand = pool.demand(floor, parallel);
            pool.grown = pool.grown.max(demand.saturating_sub(floor)).max(1).min(room);
        });
    }

    /// Waits until a container the pool is starting for `language` is
    /// ready (or failed), if there is one no other caller waits for;
    /// false when there is none.
    async fn wait_for_a_start(&self, language: Language) -> bool {
        let settled = self.settled.notified();
        tokio::pin!(settled);
        settled.as_mut().enable();
        let promised = self.with_state(|state| {
            let pool = state.language(language);
            let free = pool.waiting < pool.starting;
            if free {
                pool.waiting += 1;
            }
            free
        });
        if !promised {
            return false;
        }
        let _waiting = Waiting { pool: self, language };
        tokio::time::timeout(READY_TIMEOUT, settled).await.is_ok()
    }

    /// Figures per language.
    pub fn stats(&self) -> Vec<PoolLanguageStats> {
        self.with_state(|state| {
            let budget = state.memory_budget;
            let grown_memory = state.grown_memory(&self.floors);
            self.floors
                .iter()
                .map(|(language, size)| {
                    let target = self.target(state, *language, budget, grown_memory);
                    let pool = state.language(*language);
                    let served = pool.stats.hits + pool.stats.misses;
                    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
                    let measured = pool.memory_each.map(|(bytes, _)| bytes);
                    PoolLanguageStats {
                        language: language.name().to_string(),
                        size: *size,
                        target,
                        idle: pool.idle.len(),
                        starting: pool.starting,
                        hits: pool.stats.hits,
                        misses: pool.stats.misses,
                        avg_acquire_ms: if served == 0 {
                            0.0
                        } else {
                            pool.stats.acquire_total.as_secs_f64() * 1000.0 / served as f64
                        },
                        memory_each_mb: measured.map(mib),
                        idle_memory_mb: measured.map(|each| mib(each * pool.idle.len() as u64)),
                        last_error: pool
                            .stats
                            .last_error
                            .clone()
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
            state
                .languages
                .values_mut()
                .flat_map(|pool| pool.idle.drain(..))
                .collect()
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

    fn floor(&self, language: Language) -> usize {
        self.floors.get(&language).copied().unwrap_or(0)
    }

    /// The containers `language` aims for: its floor, plus what misses
    /// grew it by while the grown part's memory fits the budget.
    fn target(&self, state: &mut PoolState, language: Language, budget: u64, grown_memory: u64) -> usize {
        let floor = self.floor(language);
        state
            .language(language)
            .target(floor, budget.saturating_sub(grown_memory))
    }

    /// How far misses may grow `language`'s pool: up to `pool_max_size`,
    /// and not at all where its size is 0 (the pool is off for it).
    fn room_to_grow(&self, language: Language) -> usize {
        match self.floor(language) {
            0 => 0,
            floor => self.max_size.saturating_sub(floor),
        }
    }

    /// The engine's machine bounds the memory budget (at most a quarter of
    /// its memory) and sets how many containers start at once.
    async fn size_to_engine(&self) {
        match self.launcher.engine().capacity().await {
            Ok(capacity) => self.with_state(|state| {
                if let Some(total) = capacity.memory_bytes {
                    state.memory_budget = state.memory_budget.min(total / 4);
                }
                if let Some(cpus) = capacity.cpus {
                    state.parallel_starts = cpus.clamp(PARALLEL_STARTS.0, PARALLEL_STARTS.1);
                }
            }),
            Err(error) => tracing::debug!(%error, "could not read the engine's capacity"),
        }
    }

    fn take_idle(&self, language: Language) -> Option<Sandbox> {
        self.with_state(|state| {
            let queue = &mut state.languages.get_mut(&language)?.idle;
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
            for pool in state.languages.values_mut() {
                pool.idle.retain(|sandbox| sandbox.connection.is_alive());
            }
        });
    }

    /// Halves what a language grew by once it has had no call for
    /// [`SHRINK_AFTER`], and removes the idle containers beyond its target.
    async fn shrink_when_quiet(&self) {
        let surplus: Vec<Sandbox> = self.with_state(|state| {
            let mut surplus = Vec::new();
            for (language, pool) in &mut state.languages {
                if !pool.shrink_if_quiet() {
                    continue;
                }
                let target = self.floor(*language) + pool.grown;
                while pool.have() > target {
                    match pool.idle.pop_back() {
                        Some(sandbox) => surplus.push(sandbox),
                        None => break,
                    }
                }
            }
            surplus
        });
        if !surplus.is_empty() {
            tracing::debug!(removed = surplus.len(), "the pool shrinks after a quiet minute");
        }
        futures::future::join_all(surplus.into_iter().map(|sandbox| sandbox.container.remove())).await;
    }

    /// Starts containers, as many at once as the engine has CPUs, until every
    /// language reaches its target; a call that misses meanwhile raises
    /// the target and is seen at once.
    async fn fill(&self, stop: &Background) {
        let mut starts = FuturesUnordered::new();
        let parallel = self.with_state(|state| state.parallel_starts);
        loop {
            // Starts held back while calls come go on then.
            let mut resume = None;
            while starts.len() < parallel && !stop.is_stopping() {
                let language = match self.next_to_start() {
                    NextStart::Start(language) => language,
                    NextStart::Held(until) => {
                        resume = Some(until);
                        break;
                    }
                    NextStart::Nothing => break,
                };
                starts.push(async move {
                    let started = Instant::now();
                    let launched = self.launcher.launch(language, Purpose::Pool).await;
                    (language, launched, started.elapsed())
                });
            }
            if starts.is_empty() && resume.is_none() {
                return;
            }
            let pause = async {
                match resume {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some((language, launched, took)) = starts.next() => {
                    self.settle(language, launched, took).await;
                    // A language's first container is measured at once:
                    // until then its growth counts an assumed size.
                    if self.with_state(|state| state.language(language).memory_each.is_none()) {
                        self.measure_memory().await;
                    }
                }
                () = self.refill.notified() => {}
                () = pause => {}
            }
        }
    }

    /// Waits until stateless calls pause (none for [`YIELD_TO_CALLS`]), or
    /// [`YIELD_AT_MOST`] passed: the removal of a used container waits so,
    /// unless as many as the pool's largest size already wait (steady calls
    /// must not pile up used containers).
    pub async fn until_calls_pause(&self) {
        let waiting = self.with_state(|state| {
            state.removals_waiting += 1;
            state.removals_waiting
        });
        let _counted = RemovalWaiting { pool: self };
        if waiting > self.max_size {
            return;
        }
        let deadline = Instant::now() + YIELD_AT_MOST;
        while let Some(resume) = self.with_state(|state| state.yielding_until()) {
            if resume >= deadline {
                tokio::time::sleep_until(deadline.into()).await;
                return;
            }
            tokio::time::sleep_until(resume.into()).await;
        }
    }

    /// The language most short of its target, counted as started. While
    /// calls come, only a language below its configured size is started;
    /// the others wait for a pause ([`PoolState::starts_held_until`]).
    fn next_to_start(&self) -> NextStart {
        self.with_state(|state| {
            if state.closed {
                return NextStart::Nothing;
            }
            let budget = state.memory_budget;
            let grown_memory = state.grown_memory(&self.floors);
            let held_until = state.starts_held_until();
            let mut held = false;
            let mut neediest: Option<(Language, usize)> = None;
            for language in self.floors.keys() {
                let floor = self.floor(*language);
                let target = self.target(state, *language, budget, grown_memory);
                let pool = state.language(*language);
                if pool.backing_off() || pool.have() >= target {
                    continue;
                }
                if held_until.is_some() && pool.have() >= floor {
                    held = true;
                    continue;
                }
                let filled = pool.have() * 1000 / target;
                if neediest.is_none_or(|(_, least)| filled < least) {
                    neediest = Some((*language, filled));
                }
            }
            if let Some((language, _)) = neediest {
                state.language(language).starting += 1;
                return NextStart::Start(language);
            }
            match held_until {
                Some(until) if held => {
                    state.holding_since.get_or_insert_with(Instant::now);
                    NextStart::Held(until)
                }
                _ => {
                    state.holding_since = None;
                    NextStart::Nothing
                }
            }
        })
    }

    /// Puts a started container in the pool (or removes it, the pool being
    /// closed), or notes why it could not start.
    async fn settle(&self, language: Language, launched: Result<Sandbox, DockerError>, took: Duration) {
        let leftover = self.with_state(|state| {
            let closed = state.closed;
            let pool = state.language(language);
            pool.starting = pool.starting.saturating_sub(1);
            match launched {
                Ok(sandbox) if !closed => {
                    pool.stats.last_error = None;
                    pool.note_start_time(took);
                    pool.idle.push_back(sandbox);
                    None
                }
                Ok(sandbox) => Some(sandbox),
                Err(error) => {
                    tracing::warn!(language = %language, %error, "could not warm a pooled container");
                    pool.stats.last_error = Some((Instant::now(), error.to_string()));
                    None
                }
            }
        });
        self.settled.notify_waiters();
        if let Some(sandbox) = leftover {
            sandbox.container.remove().await;
        }
    }

    /// Measures one idle container per language whose figure is missing
    /// or old, for the memory budget and `sandbox_inspect`.
    async fn measure_memory(&self) {
        let due: Vec<(Language, String)> = self.with_state(|state| {
            state
                .languages
                .iter()
                .filter(|(_, pool)| pool.memory_each.is_none_or(|(_, at)| at.elapsed() >= MEASURE_EVERY))
                .filter_map(|(language, pool)| Some((*language, pool.idle.front()?.container.id().to_string())))
                .collect()
        });
        for (language, id) in due {
            match self.launcher.engine().memory_in_use(&id).await {
                Ok(Some(bytes)) => {
                    self.with_state(|state| state.language(language).memory_each = Some((bytes, Instant::now())))
                }
                Ok(None) => {}
                Err(error) => tracing::debug!(%error, language = %language, "could not measure a pooled container"),
            }
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut PoolState) -> T) -> T {
        let mut state = self.state.lock();
        f(&mut state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn grown_by(grown: usize, starting: usize, memory_each_mib: u64) -> LanguagePool {
        LanguagePool {
            grown,
            starting,
            memory_each: Some((memory_each_mib * MIB, Instant::now())),
            ..LanguagePool::default()
        }
    }

    #[test]
    fn the_configured_size_is_the_floor_whatever_the_budget() {
        assert_eq!(grown_by(0, 0, 30).target(2, 0), 2);
        assert_eq!(grown_by(5, 0, 30).target(2, 0), 2);
    }

    #[test]
    fn misses_grow_the_target_while_the_memory_holds_it() {
        assert_eq!(grown_by(10, 0, 30).target(2, 1024 * MIB), 12);
        // 100 MiB left holds three more 30 MiB containers.
        assert_eq!(grown_by(10, 0, 30).target(2, 100 * MIB), 5);
        // Containers already starting count as held.
        assert_eq!(grown_by(10, 4, 30).target(2, 60 * MIB), 6);
    }

    #[test]
    fn an_unmeasured_language_is_assumed_large() {
        let pool = LanguagePool {
            grown: 10,
            ..LanguagePool::default()
        };
        assert_eq!(pool.target(1, 4 * ASSUMED_MEMORY), 5);
    }

    #[test]
    fn recent_calls_are_counted_within_a_window_and_kept_bounded() {
        let mut pool = LanguagePool::default();
        for _ in 0..5 {
            pool.note_call(3);
        }
        assert_eq!(pool.calls.len(), 3);
        assert_eq!(pool.demand(1, 2), 3);
        assert_eq!(pool.calls_within(Duration::ZERO), 0);
    }

    #[test]
    fn demand_is_the_calls_within_the_time_to_refill_the_target() {
        let mut pool = LanguagePool::default();
        pool.note_start_time(Duration::from_millis(400));
        pool.note_start_time(Duration::from_millis(800));
        assert_eq!(pool.start_time, Some(Duration::from_millis(500)));
        let now = Instant::now();
        for ago_ms in [6000, 3000, 1200, 900, 100, 0] {
            pool.calls.push_back(now - Duration::from_millis(ago_ms));
        }
        // A target of 2 refills in two starts at least: 1 s.
        assert_eq!(pool.demand(2, 2), 3);
        // 10 containers, 2 at a time: five starts, 2.5 s.
        pool.grown = 8;
        assert_eq!(pool.demand(2, 2), 4);
        // 4 at a time: three starts, 1.5 s.
        assert_eq!(pool.demand(2, 4), 4);
        assert_eq!(pool.demand(2, 8), 3);
    }

    #[test]
    fn growth_halves_only_after_a_minute_without_a_miss_and_once_per_check() {
        let mut pool = LanguagePool {
            grown: 8,
            last_miss: Some(Instant::now()),
            ..LanguagePool::default()
        };
        assert!(!pool.shrink_if_quiet());
        pool.last_miss = Instant::now().checked_sub(SHRINK_AFTER);
        assert!(pool.shrink_if_quiet());
        assert_eq!(pool.grown, 4);
        assert!(!pool.shrink_if_quiet(), "twice within one check interval");
        pool.last_shrink = Instant::now().checked_sub(CHECK_INTERVAL);
        assert!(pool.shrink_if_quiet());
        assert_eq!(pool.grown, 2);
    }

    #[test]
    fn starts_wait_for_a_pause_in_the_calls_at_most_a_while() {
        let mut state = PoolState::default();
        assert_eq!(state.starts_held_until(), None, "no call yet");
        state.last_call = Some(Instant::now());
        let held = state.starts_held_until().expect("held while calls come");
        assert!(held <= Instant::now() + YIELD_TO_CALLS);
        state.holding_since = Instant::now().checked_sub(YIELD_AT_MOST);
        assert_eq!(state.starts_held_until(), None, "held long enough");
        state.holding_since = None;
        state.last_call = Instant::now().checked_sub(YIELD_TO_CALLS);
        assert_eq!(state.starts_held_until(), None, "the calls paused");
    }

    #[test]
    fn grown_memory_counts_what_is_beyond_each_floor() {
        let mut state = PoolState::default();
        state.languages.insert(Language::Python, grown_by(3, 5, 30));
        state.languages.insert(Language::Bash, grown_by(0, 1, 10));
        let floors = BTreeMap::from([(Language::Python, 2), (Language::Bash, 1)]);
        assert_eq!(state.grown_memory(&floors), 3 * 30 * MIB);
    }
}
