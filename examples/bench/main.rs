//! Latency benchmark, through a real MCP client against the real server and
//! real Docker, with the engine's own baselines measured in the same run.
//! Prints medians and p95 and writes them to `BENCHMARKS.md`.
//!
//! Two groups of cases, each run on its own and each rewriting only its own
//! part of `BENCHMARKS.md`: by default the latency cases; with `--egress`
//! only the egress cases (issue #14: session create with network grants,
//! HTTP through the egress proxy against a container with full network,
//! download throughput), which start a local origin container and a direct
//! container on the engine's default bridge and remove them afterwards.
//!
//! ```text
//! cargo build --release     # the server binary the benchmark starts
//! cargo run --release --example bench -- [RUNS]     # default 30 runs per case
//! cargo run --release --example bench -- --egress [RUNS]     # default 10 (each moves 100 MiB twice)
//! cargo run --release --example bench -- --print [RUNS]     # print only, BENCHMARKS.md untouched
//! cargo run --release --example bench -- --only load,engine [RUNS]     # some parts, printed only
//! ```
//!
//! The parts `--only` takes: `languages`, `sessions`, `snapshots`, `sweep`, `plot`,
//! `packages`, `load`, `http`, `pool-off`, `first-call`, `engine`.

mod calls;
mod egress;
mod engine;
mod first_call;
mod harness;
mod load;
mod snapshots;

use bollard::Docker;
use harness::{BoxError, Case, Client, start_server, stop_server, table};

/// Every part of the latency group, in the order of the table.
const PARTS: [&str; 11] = [
    "languages",
    "sessions",
    "snapshots",
    "sweep",
    "plot",
    "packages",
    "load",
    "http",
    "pool-off",
    "first-call",
    "engine",
];
/// The parts that run against the main server.
const MAIN_SERVER_PARTS: [&str; 7] = [
    "languages",
    "sessions",
    "snapshots",
    "sweep",
    "plot",
    "packages",
    "load",
];
/// The main server's pool: the default sizes, written out.
const MAIN_POOL: &str = "python=2,bash=1,javascript=1,typescript=1,go=1,rust=1";

struct Options {
    egress: bool,
    write: bool,
    only: Option<Vec<String>>,
    runs: usize,
}

fn options() -> Result<Options, BoxError> {
    let (mut egress, mut write, mut only, mut runs) = (false, true, None, None);
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--egress" => egress = true,
            "--print" => write = false,
            "--only" => {
                let list = arguments.next().ok_or("--only needs a list of parts")?;
                let parts: Vec<String> = list.split(',').map(|part| part.trim().to_string()).collect();
                if let Some(unknown) = parts.iter().find(|part| !PARTS.contains(&part.as_str())) {
                    return Err(format!("unknown part `{unknown}`; the parts are {}", PARTS.join(", ")).into());
                }
                only = Some(parts);
                write = false;
            }
            count => {
                runs = Some(
                    count
                        .parse::<usize>()
                        .map_err(|_| format!("`{count}` is neither an option nor a run count"))?,
                )
            }
        }
    }
    let runs = runs.unwrap_or(if egress { 10 } else { 30 });
    if runs == 0 {
        return Err("the run count must be at least 1".into());
    }
    Ok(Options {
        egress,
        write,
        only,
        runs,
    })
}

impl Options {
    /// Burst rounds and server starts of the first-call cases: a few.
    fn few(&self) -> usize {
        self.runs.clamp(1, 5)
    }

    fn wants(&self, part: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|held| held == part))
    }
}

/// `future`'s answer, its error prefixed with the part it belongs to.
async fn part<T>(name: &str, future: impl Future<Output = Result<T, BoxError>>) -> Result<T, BoxError> {
    future.await.map_err(|error| format!("{name}: {error}").into())
}

/// The latency group's timings and its throughput comparison.
struct Latency {
    cases: Vec<Case>,
    comparison: Option<String>,
}

/// The parts that run against one server with the default pool.
async fn main_server_parts(
    client: &Client,
    options: &Options,
    docker: &Docker,
    image: &str,
    latency: &mut Latency,
) -> Result<(), BoxError> {
    let runs = options.runs;
    if options.wants("languages") {
        latency
            .cases
            .extend(part("stateless hello", calls::stateless_hello(client, runs)).await?);
        latency
            .cases
            .extend(part("hello in sessions", calls::session_hello(client, runs)).await?);
    }
    if options.wants("sessions") {
        latency
            .cases
            .extend(part("session cases", calls::session_cases(client, runs)).await?);
        latency
            .cases
            .extend(part("session create and destroy", calls::session_lifecycle(client, runs)).await?);
    }
    if options.wants("snapshots") {
        latency
            .cases
            .extend(part("snapshots", snapshots::snapshot_cases(client, runs)).await?);
    }
    if options.wants("sweep") {
        latency
            .cases
            .extend(part("session sweep", load::sweep_cases(client, runs)).await?);
    }
    if options.wants("plot") {
        latency.cases.push(part("plot", calls::plot_case(client, runs)).await?);
    }
    if options.wants("packages") {
        for package in ["requests", "pandas"] {
            latency
                .cases
                .extend(part("packages", calls::package_cases(client, package, runs.clamp(1, 3))).await?);
        }
    }
    if options.wants("load") {
        latency
            .cases
            .extend(part("burst", load::burst_cases(client, options.few())).await?);
        let throughput = part("sustained throughput", load::throughput(client, docker, image, runs)).await?;
        latency.cases.extend(throughput.cases);
        latency.comparison = Some(throughput.comparison);
    }
    Ok(())
}

async fn latency_group(options: &Options, docker: &Docker, image: &str) -> Result<Latency, BoxError> {
    let runs = options.runs;
    let mut latency = Latency {
        cases: Vec::new(),
        comparison: None,
    };
    if MAIN_SERVER_PARTS.iter().any(|part| options.wants(part)) {
        let client = start_server(&[("MULTILANG_SANDBOX_POOL_SIZE", MAIN_POOL)]).await?;
        let result = main_server_parts(&client, options, docker, image, &mut latency).await;
        let stopped = stop_server(client).await;
        result?;
        stopped?;
    }
    if options.wants("http") {
        latency
            .cases
            .push(part("streamable HTTP", calls::http_case(runs)).await?);
    }
    if options.wants("pool-off") {
        latency
            .cases
            .extend(part("pool off", calls::pool_off_cases(runs)).await?);
    }
    if options.wants("first-call") {
        latency
            .cases
            .extend(part("first call", first_call::first_call_cases(docker, options.few())).await?);
    }
    if options.wants("engine") {
        latency
            .cases
            .extend(part("engine baselines", engine::baselines(docker, image, runs)).await?);
    }
    Ok(latency)
}

/// Writes one group's part of `BENCHMARKS.md` and keeps the other's: the
/// egress group owns everything from [`egress::EGRESS_HEADING`] on, the
/// latency group everything before it.
fn write_report(egress: bool, text: &str) -> std::io::Result<()> {
    let existing = std::fs::read_to_string("BENCHMARKS.md").unwrap_or_default();
    let split = existing.find(egress::EGRESS_HEADING).unwrap_or(existing.len());
    let (head, tail) = existing.split_at(split);
    let report = if egress {
        let head = head.trim_end();
        let head = if head.is_empty() { "# Benchmarks" } else { head };
        format!("{head}\n\n{}\n", text.trim_end())
    } else if tail.is_empty() {
        format!("{}\n", text.trim_end())
    } else {
        format!("{}\n\n{}\n", text.trim_end(), tail.trim_end())
    };
    std::fs::write("BENCHMARKS.md", report)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let options = options()?;
    let runs = options.runs;
    let config = multilang_sandbox::config::Config::from_env()?;
    let python_image = multilang_sandbox::images::tag_for(multilang_sandbox::runtime::Language::Python, &config);
    let docker = Docker::connect_with_defaults()?.negotiate_version().await?;
    let version = harness::engine("the engine's version", docker.version()).await?;
    let machine = format!(
        "{} ({} cores; Docker {} API {})",
        std::env::consts::ARCH,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        version.version.unwrap_or_default(),
        version.api_version.unwrap_or_default(),
    );
    let print_flag = if options.write { "" } else { "--print " };

    if options.egress {
        let figures = part("egress", egress::egress_group(&docker, &python_image, runs)).await?;
        let timings = table(&figures.cases, "samples");
        println!("{timings}\n{}", figures.comparisons);
        if !options.write {
            return Ok(());
        }
        let report = format!(
            "{}\n\nProduced by `cargo build --release && cargo run --release --example bench -- --egress {runs}` \
             on {machine}, with the server started with {}. The origin is a container of the python sandbox image \
             running `python3 -m http.server` on the engine's default bridge, serving a {}-byte and a \
             {}-byte file of zeros, allowed by its address. Through egress: python sessions created with \
             `network: [\"<origin>:{}\"]`, whose urllib goes through the egress proxy (`HTTP_PROXY`). \
             Direct: a container of the same image on the default bridge with full network, no proxy variables \
             and the sessions' limits (1 CPU, 512 MiB), running the same code with `docker exec`.\n\n\
             Session create and destroy are wall time through rmcp's client over stdio to the release binary, \
             one session with grants and one without in turn ({runs} runs each, after one warm-up pair that \
             also starts the proxy; each destroyed right after its create). A session with grants takes one of \
             the two sandbox networks the server keeps ready (made at its start, since `egress.allow` names the \
             origin, and made again in the background after each is taken). HTTP figures are measured inside \
             the sandbox with `time.perf_counter` around each urllib fetch (a new connection each, on both \
             sides, body read to the end): {} fetches of 1 KiB per execute after one discarded, \
             {runs} executes per side taken in turn; one 100 MiB download per execute read in 1 MiB chunks \
             and discarded, {runs} per side in turn after one warm-up each. The network baselines are measured through \
             the Docker API on the same engine in the same run, with the direct container as the one connected.\n\n{timings}\n{}",
            egress::EGRESS_HEADING,
            figures.settings,
            egress::SMALL_BYTES,
            egress::LARGE_BYTES,
            egress::ORIGIN_PORT,
            egress::FETCHES,
            figures.comparisons,
        );
        write_report(true, &report)?;
        eprintln!("wrote the egress section of BENCHMARKS.md");
        return Ok(());
    }

    let latency = latency_group(&options, &docker, &python_image).await?;
    let table = table(&latency.cases, "runs");
    let comparison = latency.comparison.map(|text| format!("\n{text}")).unwrap_or_default();
    let only = options
        .only
        .as_ref()
        .map(|parts| format!("--only {} ", parts.join(",")))
        .unwrap_or_default();
    let report = format!(
        "# Benchmarks\n\nProduced by `cargo build --release && cargo run --release --example bench -- {print_flag}{only}{runs}` \
         on {machine}. Every figure is wall time seen by the caller: MCP cases through rmcp's client over stdio \
         (HTTP where it says so) to the release binary, most of them against one server with the default pool \
         (`MULTILANG_SANDBOX_POOL_SIZE={MAIN_POOL}`); baselines through the Docker API on the same engine in the \
         same run.\n\n\
         Pool-hit cases wait before each run until `sandbox_inspect` shows the language's pool full with nothing \
         starting (as calls ~1.5 s apart would), and fail if the pool counts a miss. Hello is a whole program \
         printing `hello` (Go and Rust with their `main`), after one warm-up; session cases use one session per \
         language. The `background: true` case is both calls, the execute that returns the job's handle and the \
         `sandbox_job` `wait` that collects it, in the same session as the plain `print(1)`. Session create on \
         a warm spare waits for a ready spare (`sandbox_inspect`) and fails if the create did not claim it; \
         the cold create runs on a server with spares and pool off. The snapshot cases use one python session \
         that ran {snapshot_cells} cells, the first writing a {workspace} MiB file of random bytes to `/workspace`; \
         each run snapshots it, restores the snapshot, forks it into a new session (destroyed after, untimed) and \
         deletes it (untimed); the replay row is the runner's own measure of the replay inside each restore. \
         The sweep runs \
         {sweep} python sessions at once, each executing `print(1)` {runs} times back to back (every call a \
         sample). The burst is {burst} stateless executes sent at once from a full pool, in {rounds} rounds, \
         each followed by {after_burst} calls back to back. The sustained case runs {concurrency} callers of \
         stateless `print(1)` back to back ({runs} each, from a full pool), and its baseline {concurrency} \
         workers doing container create + start + remove through the Docker API ({runs} each); the comparison \
         below sets the two rates side by side. First-call cases start a fresh server per sample ({starts} \
         starts each; python=2, other pools off; rmcp's client sends no `tools/list`) and check that the call was \
         a pool hit: either waited for with `sandbox_inspect`, or, for the first tool call of all, waited for \
         through the engine (the pool's containers running, then {grace} s for their kernels).\n\n{table}{comparison}",
        sweep = load::SWEEP.map(|level| level.to_string()).join(", "),
        snapshot_cells = snapshots::SMALL_CELLS + 1,
        workspace = snapshots::WORKSPACE_MIB,
        burst = load::BURST,
        rounds = options.few(),
        after_burst = load::AFTER_BURST,
        concurrency = load::CONCURRENCY,
        starts = options.few(),
        grace = first_call::KERNEL_GRACE.as_secs(),
    );
    println!("{report}");
    if options.write {
        write_report(false, &report)?;
        eprintln!("wrote BENCHMARKS.md");
    }
    Ok(())
}
