//! Calls at once: a burst of concurrent stateless executes and the
//! back-to-back calls right after it, sessions executing at the same time
//! (1, 4, 16), and the sustained stateless throughput set against the
//! engine's own create + start + remove rate at the same concurrency.

use crate::calls::print_one;
use crate::engine::sustained_cycles;
use crate::harness::{BoxError, Case, Client, Sessions, execute, execute_expecting, unique, wait_for_warm_pool};
use bollard::Docker;
use futures::future::join_all;
use serde_json::json;
use std::time::{Duration, Instant};

/// Stateless executes in one burst.
pub const BURST: usize = 20;
/// Back-to-back executes right after each burst.
pub const AFTER_BURST: usize = 10;
/// Sessions executing at once, one level after the other.
pub const SWEEP: [usize; 3] = [1, 4, 16];
/// Callers of the sustained throughput case, and workers of its engine
/// baseline.
pub const CONCURRENCY: usize = 4;

/// Rounds of: a full python pool, a burst of [`BURST`] concurrent
/// stateless `print(1)` (its wall time, and how many answered exit 0), then
/// [`AFTER_BURST`] stateless `print(1)` back to back with no pause.
pub async fn burst_cases(client: &Client, rounds: usize) -> Result<Vec<Case>, BoxError> {
    let (mut walls, mut after, mut oks) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        wait_for_warm_pool(client, "python", None).await?;
        let started = Instant::now();
        let results = join_all((0..BURST).map(|_| execute_expecting(client, print_one(), "1\n"))).await;
        walls.push(started.elapsed());
        let failures: Vec<String> = results
            .into_iter()
            .filter_map(|result| result.err().map(|error| error.to_string()))
            .collect();
        if let Some(first) = failures.first() {
            eprintln!("burst: {} of {BURST} failed, the first with: {first}", failures.len());
        }
        if failures.len() == BURST {
            return Err("every call of the burst failed (see above)".into());
        }
        oks.push(BURST - failures.len());
        for _ in 0..AFTER_BURST {
            let started = Instant::now();
            execute_expecting(client, print_one(), "1\n").await?;
            after.push(started.elapsed());
        }
    }
    let oks: Vec<String> = oks.iter().map(usize::to_string).collect();
    Ok(vec![
        Case::new(
            format!(
                "burst of {BURST} concurrent stateless `print(1)` (python) from a full pool, wall time \
                 (ok per round: {} of {BURST})",
                oks.join(", ")
            ),
            walls,
        ),
        Case::new(
            format!("stateless `print(1)` (python), {AFTER_BURST} back to back right after each burst"),
            after,
        ),
    ])
}

/// 16 python sessions; at each level of [`SWEEP`], that many of them each
/// execute `print(1)` `runs` times back to back, all at once.
pub async fn sweep_cases(client: &Client, runs: usize) -> Result<Vec<Case>, BoxError> {
    let mut sessions = Sessions::new(client);
    let result = sweep_in(client, &mut sessions, runs).await;
    sessions.close().await;
    result
}

async fn sweep_in(client: &Client, sessions: &mut Sessions<'_>, runs: usize) -> Result<Vec<Case>, BoxError> {
    let most = SWEEP.iter().copied().max().unwrap_or(1);
    let mut names = Vec::with_capacity(most);
    for index in 0..most {
        let name = unique(&format!("sweep-{index}"));
        sessions.create_plain(&name, "python").await?;
        execute_expecting(client, in_session(&name), "1\n").await?; // warm-up
        names.push(name);
    }
    let mut cases = Vec::new();
    for level in SWEEP {
        let worker = |name: &str| {
            let arguments = in_session(name);
            async move {
                let mut samples = Vec::with_capacity(runs);
                for _ in 0..runs {
                    let started = Instant::now();
                    execute_expecting(client, arguments.clone(), "1\n").await?;
                    samples.push(started.elapsed());
                }
                Ok::<_, BoxError>(samples)
            }
        };
        let results = join_all(names.iter().take(level).map(|name| worker(name))).await;
        let mut samples = Vec::with_capacity(level * runs);
        for result in results {
            samples.extend(result?);
        }
        let sessions_at_once = if level == 1 {
            "1 session".to_string()
        } else {
            format!("{level} sessions at once")
        };
        cases.push(Case::new(
            format!("`print(1)` in python sessions, {sessions_at_once}, each call"),
            samples,
        ));
    }
    for name in names {
        sessions.destroy(&name).await?;
    }
    Ok(cases)
}

fn in_session(name: &str) -> serde_json::Value {
    json!({"language": "python", "session": name, "code": "print(1)"})
}

/// The throughput comparison: the server's sustained stateless rate and
/// the engine's own create + start + remove rate, both with
/// [`CONCURRENCY`] callers each doing `each` back to back.
pub struct Throughput {
    pub cases: Vec<Case>,
    pub comparison: String,
}

pub async fn throughput(client: &Client, docker: &Docker, image: &str, each: usize) -> Result<Throughput, BoxError> {
    wait_for_warm_pool(client, "python", None).await?;
    let caller = || async move {
        let mut samples = Vec::with_capacity(each);
        for _ in 0..each {
            let started = Instant::now();
            execute(client, print_one()).await?;
            samples.push(started.elapsed());
        }
        Ok::<_, BoxError>(samples)
    };
    let started = Instant::now();
    let results = join_all((0..CONCURRENCY).map(|_| caller())).await;
    let server_wall = started.elapsed();
    let mut calls = Vec::with_capacity(CONCURRENCY * each);
    for result in results {
        calls.extend(result?);
    }
    // The pool refills before the engine's turn, so nothing competes with it.
    wait_for_warm_pool(client, "python", None).await?;
    let (cycles, engine_wall) = sustained_cycles(docker, image, CONCURRENCY, each).await?;
    let rate = |count: usize, wall: Duration| count as f64 / wall.as_secs_f64();
    let server_rate = rate(calls.len(), server_wall);
    let engine_rate = rate(cycles.len(), engine_wall);
    let ratio = server_rate / engine_rate;
    let comparison = format!(
        "| comparison | server | engine | result | target | met |\n|---|---|---|---|---|---|\n\
         | sustained stateless `print(1)` (python) vs the engine's create + start + remove, \
         {CONCURRENCY} callers each {each} back to back | {server_rate:.2}/s | {engine_rate:.2}/s | {ratio:.2}× | ≥ 0.9× | {} |\n",
        if ratio >= 0.9 { "yes" } else { "no" },
    );
    Ok(Throughput {
        cases: vec![
            Case::new(
                format!("sustained stateless `print(1)` (python), {CONCURRENCY} callers back to back, each call"),
                calls,
            ),
            Case::new(
                format!("baseline: container create + start + remove, {CONCURRENCY} workers back to back, each cycle"),
                cycles,
            ),
        ],
        comparison,
    })
}
