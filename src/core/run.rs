//! Sends one program to a connected runner and turns the reply into an
//! [`ExecutionOutcome`]: shared by stateless executes and sessions.

use super::artifacts::{self, Artifact};
use super::connection::{RequestFailure, RunnerConnection};
use super::egress::UserAsker;
use super::protocol::{CollectOutputs, HostMessage, RunMode, RunRequest, RunResult, RunnerMessage};
use super::watch::Watch;
use crate::config::Config;
use crate::core::error::{ExecuteError, PackageError};
use crate::docker::DockerError;
use crate::runtime::{Kernel, Language, Phase, Program};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Slack on top of the caller's timeout before the host gives up on the
/// runner (which enforces the timeout itself, interrupting first).
const HOST_GRACE: Duration = Duration::from_secs(5);
/// How long a cancelled run may take to stop: the runner interrupts a
/// kernel, kills it after its own 2 s grace and starts a new one.
pub const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// The image a sandbox starts from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ImageChoice {
    /// The language's standard image.
    #[default]
    Standard,
    /// The data-science Python image (`ml: true`).
    Ml,
    /// One of the user's templates, by name.
    Template(String),
}

impl ImageChoice {
    /// The choice a tool's `ml` and `template` arguments make.
    pub fn from_arguments(ml: Option<bool>, template: Option<&str>) -> Result<Self, PackageError> {
        match (ml.unwrap_or(false), template) {
            (true, Some(_)) => Err(PackageError::MlAndTemplate),
            (true, None) => Ok(ImageChoice::Ml),
            (false, Some(name)) => Ok(ImageChoice::Template(name.to_string())),
            (false, None) => Ok(ImageChoice::Standard),
        }
    }
}

/// One execute, validated.
#[derive(Debug, Clone)]
pub struct ExecuteRequest {
    pub language: Language,
    pub code: String,
    pub timeout_ms: u64,
    pub stdin: Option<String>,
    pub env: BTreeMap<String, String>,
    /// Run in this session instead of a fresh container.
    pub session: Option<String>,
    /// Packages the code needs (stateless only: a session's packages are
    /// installed into the session, not with an execute).
    pub packages: Vec<String>,
    /// The image to start from (stateless only).
    pub image: ImageChoice,
    /// Hosts a stateless execute asks to reach (`None`: no network).
    pub network: Option<Vec<String>>,
    /// Who can be asked about hosts outside the grants while it runs.
    pub asker: UserAsker,
    /// Cancellation and progress of this execute.
    pub watch: Watch,
    /// Start it as a job and return its handle at once.
    pub background: bool,
    /// Turn it into a job when it still runs after this long (`None`: the
    /// configured `jobs.detach_after_s`; zero: never).
    pub detach_after: Option<Duration>,
    /// When the call arrived (the detach deadline counts from it).
    pub received: Instant,
}

impl ExecuteRequest {
    /// A stateless execute of `code` with no stdin, env or packages.
    pub fn stateless(language: Language, code: impl Into<String>, timeout_ms: u64) -> Self {
        Self {
            language,
            code: code.into(),
            timeout_ms,
            stdin: None,
            env: BTreeMap::new(),
            session: None,
            packages: Vec::new(),
            image: ImageChoice::Standard,
            network: None,
            asker: UserAsker::default(),
            watch: Watch::default(),
            background: false,
            detach_after: None,
            received: Instant::now(),
        }
    }

    /// What the job is, in job lists: the code's first line with text.
    pub fn label(&self) -> String {
        let line = self
            .code
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .unwrap_or("");
        let mut label: String = line.chars().take(80).collect();
        if label.len() < line.len() {
            label.push('…');
        }
        label
    }

    /// How the execute's `program` runs (in `kernel`, when the container
    /// has one): with its env, stdin and timeout, returning what it writes
    /// to `/outputs`.
    pub fn run_spec<'a>(&'a self, program: &'a Program, kernel: Option<Kernel>) -> RunSpec<'a> {
        RunSpec {
            program,
            kernel,
            env: &self.env,
            stdin: self.stdin.as_deref(),
            timeout_ms: self.timeout_ms,
            collect_outputs: true,
            watch: &self.watch,
            keep: false,
            label: None,
        }
    }
}

/// One run of [`run_program`]: an execute's ([`ExecuteRequest::run_spec`])
/// or a package install's.
#[derive(Debug, Clone, Copy)]
pub struct RunSpec<'a> {
    pub program: &'a Program,
    /// The container's kernel; a kernel cell runs in it, anything else (and
    /// a cell when there is none) as fresh processes.
    pub kernel: Option<Kernel>,
    pub env: &'a BTreeMap<String, String>,
    pub stdin: Option<&'a str>,
    pub timeout_ms: u64,
    /// Return the files the program writes to `/outputs` (within the
    /// configured caps).
    pub collect_outputs: bool,
    /// Cancellation and progress of the run.
    pub watch: &'a Watch,
    /// A job from the start: the runner keeps its output and result until
    /// it is collected (a background execute).
    pub keep: bool,
    /// What the job is, in job lists.
    pub label: Option<&'a str>,
}

/// What happened to the code.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionOutcome {
    pub language: Language,
    pub session: Option<String>,
    pub stdout: String,
    pub stderr: String,
    /// Exit code of the step that ran last; 128+N when killed by signal N.
    pub exit_code: i64,
    /// Wall time of the program (build and run) inside the container.
    pub duration_ms: u64,
    pub timed_out: bool,
    pub truncated: bool,
    /// `Build` when compilation failed, `Run` otherwise (`Setup` when the
    /// program's files could not be written).
    pub phase: Phase,
    /// The session's interpreter had to be restarted: variables are gone.
    pub state_lost: bool,
    /// Plain-words explanations of anything unusual (timeout, out of memory,
    /// a resumed or restarted session).
    pub notes: Vec<String>,
    /// Files the code wrote to `/outputs` (images with their bytes).
    pub artifacts: Vec<Artifact>,
    /// The job it ran as, when it was one.
    pub job: Option<crate::core::jobs::JobInfo>,
}

impl ExecutionOutcome {
    /// True when the code ran to completion with exit code 0.
    pub fn succeeded(&self) -> bool {
        self.exit_code == 0 && !self.timed_out
    }
}

/// Why a program got no result.
pub enum RunFailure {
    /// The runner did not answer within the timeout plus grace.
    HostTimeout,
    /// The caller cancelled and the runner did not confirm in time.
    Cancelled,
    /// The caller cancelled before the program was sent: nothing ran.
    NotStarted,
    /// The container or the engine went away.
    Gone(DockerError),
    /// A job runs in the sandbox (this server's or another's): nothing ran.
    Busy { job: String },
}

impl From<RunFailure> for ExecuteError {
    fn from(failure: RunFailure) -> Self {
        match failure {
            RunFailure::HostTimeout => ExecuteError::Docker(DockerError::ContainerGone(
                "the sandbox stopped answering after the timeout".into(),
            )),
            RunFailure::Cancelled | RunFailure::NotStarted => ExecuteError::Cancelled,
            RunFailure::Gone(error) => ExecuteError::Docker(error),
            RunFailure::Busy { job } => ExecuteError::JobRunning { job },
        }
    }
}

/// The run request of `spec`, with the output caps of `config`, run in
/// `/workspace`.
pub(crate) fn run_request<'a>(id: &'a str, spec: &RunSpec<'a>, config: &Config) -> RunRequest<'a> {
    let program = spec.program;
    let kernel = spec.kernel.filter(|_| program.uses_kernel());
    RunRequest {
        id,
        mode: if kernel.is_some() {
            RunMode::Kernel
        } else {
            RunMode::Exec
        },
        kernel,
        kernel_source: program.kernel_source.as_deref().filter(|_| kernel.is_some()),
        files: &program.files,
        steps: &program.steps,
        stdin: spec.stdin,
        env: spec.env,
        cwd: "/workspace",
        timeout_ms: spec.timeout_ms,
        max_output_bytes: config.max_output_bytes,
        collect_outputs: spec.collect_outputs.then_some(CollectOutputs {
            dir: "/outputs",
            max_files: config.max_artifacts,
            max_bytes: config.max_artifact_bytes,
        }),
        progress: spec.watch.wants_progress(),
        keep: spec.keep,
        label: spec.label,
    }
}

/// A new run id: 12 hex digits (a job's id is its run's).
pub fn new_run_id() -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(12);
    id
}

/// Runs `spec`'s program through `connection`.
pub async fn run_program(
    connection: &RunnerConnection,
    spec: RunSpec<'_>,
    config: &Config,
) -> Result<RunResult, RunFailure> {
    run_program_as(connection, &new_run_id(), spec, config, None).await
}

/// Runs `spec`'s program through `connection` as the run `id`; `sent`
/// hears when the request is on its way.
pub async fn run_program_as(
    connection: &RunnerConnection,
    id: &str,
    spec: RunSpec<'_>,
    config: &Config,
    sent: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<RunResult, RunFailure> {
    let run = run_request(id, &spec, config);
    let progress = run.progress;
    let payload = HostMessage::Run(run).encode().map_err(RunFailure::Gone)?;
    let watch = spec.watch;
    if watch.is_cancelled() {
        return Err(RunFailure::NotStarted);
    }
    let limit = Duration::from_millis(spec.timeout_ms) + HOST_GRACE;
    let mut reply = connection
        .start(id, &payload, progress.then(|| watch.clone()))
        .await
        .map_err(failure_of)?;
    if let Some(sent) = sent {
        let _ = sent.send(());
    }
    let answer = tokio::select! {
        answer = reply.wait(limit) => answer,
        () = watch.cancel.cancelled() => {
            // The runner stops the program (a kernel is interrupted and
            // kept) and answers with what it printed so far.
            send_cancel(connection, id).await;
            match reply.wait(CANCEL_GRACE).await {
                Err(RequestFailure::Timeout) => return Err(RunFailure::Cancelled),
                answer => answer,
            }
        }
    };
    match answer {
        Ok(RunnerMessage::Result(result)) => Ok(result),
        Ok(RunnerMessage::Busy { job, .. }) => Err(RunFailure::Busy { job }),
        Ok(RunnerMessage::Error { message, .. }) => Err(RunFailure::Gone(DockerError::RunnerFailed(message))),
        Ok(other) => Err(RunFailure::Gone(DockerError::Protocol(format!(
            "expected a result, got {other:?}"
        )))),
        Err(RequestFailure::Timeout) => {
            // Ask the runner to stop it (it normally enforces the timeout
            // itself; this covers a runner that fell behind).
            send_cancel(connection, id).await;
            Err(RunFailure::HostTimeout)
        }
        Err(RequestFailure::Gone(error)) => Err(RunFailure::Gone(error)),
    }
}

fn failure_of(failure: RequestFailure) -> RunFailure {
    match failure {
        RequestFailure::Timeout => RunFailure::HostTimeout,
        RequestFailure::Gone(error) => RunFailure::Gone(error),
    }
}

async fn send_cancel(connection: &RunnerConnection, id: &str) {
    if let Ok(payload) = (HostMessage::Cancel { id }).encode() {
        let _ = connection.send(&payload).await;
    }
}

/// The outcome of a runner's reply, with notes in plain words.
pub fn outcome(
    config: &Config,
    request: &ExecuteRequest,
    mut run: RunResult,
    mut notes: Vec<String>,
) -> ExecutionOutcome {
    // The runner caps output, but a reply is data from inside the sandbox:
    // the caps hold here whatever it says.
    notes.extend(runner_notes(std::mem::take(&mut run.notes)));
    let stdout_cut = cap_output(&mut run.stdout, config.max_output_bytes);
    let stderr_cut = cap_output(&mut run.stderr, config.max_output_bytes);
    run.truncated |= stdout_cut | stderr_cut;
    if run.timed_out {
        notes.push(format!(
            "Timed out after {} ms: the program was stopped. Make it faster or pass a larger `timeout` (milliseconds, up to {}).",
            request.timeout_ms, config.max_timeout_ms
        ));
    } else if run.cancelled {
        notes.push("Cancelled: the program was stopped.".into());
    } else if run.signal == Some(9) {
        notes.push(format!(
            "The program was killed (SIGKILL), most likely because it ran out of memory (limit {} MiB).",
            config.memory_mb
        ));
    }
    if run.state_lost {
        let note = "The session's interpreter had to be restarted: variables, imports and functions defined earlier are gone; files in /workspace are kept.";
        if let Some(session) = &request.session {
            request.watch.warn(format!("Session {session}: {note}"));
        }
        notes.push(note.into());
    }
    if !run.output_lost.is_empty() {
        notes.push(format!(
            "The code closed {}, so what it printed after that was lost; the interpreter opened {} again for the next executes.",
            run.output_lost.join(" and "),
            if run.output_lost.len() > 1 { "them" } else { "it" }
        ));
    }
    if run.truncated {
        notes.push(format!(
            "Output was longer than {} bytes per stream and was cut.",
            config.max_output_bytes
        ));
    }
    if run.artifacts_omitted > 0 {
        notes.push(format!(
            "{} more files in /outputs were not returned (at most {} per execute).",
            run.artifacts_omitted, config.max_artifacts
        ));
    }
    let artifacts = artifacts::check(run.artifacts, config.max_artifacts, config.max_artifact_bytes);
    ExecutionOutcome {
        language: request.language,
        session: request.session.clone(),
        stdout: run.stdout,
        stderr: run.stderr,
        exit_code: run.exit_code,
        duration_ms: run.duration_ms,
        timed_out: run.timed_out,
        truncated: run.truncated,
        phase: run.phase,
        state_lost: run.state_lost,
        notes,
        artifacts,
        job: None,
    }
}

/// The runner's notes (what it changed in the program), bounded: they come
/// from inside the sandbox. At most 4, of 1 KiB each.
fn runner_notes(notes: Vec<String>) -> impl Iterator<Item = String> {
    notes.into_iter().take(4).map(|mut note| {
        cap_output(&mut note, 1024);
        note
    })
}

/// Cuts `text` to at most `max` bytes (at a character boundary); true when
/// it was longer.
pub fn cap_output(text: &mut String, max: u64) -> bool {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

/// The outcome of a program whose output could not be recovered: only
/// its status and the note that says why.
fn unrecovered_outcome(
    request: &ExecuteRequest,
    exit_code: i64,
    duration_ms: u64,
    timed_out: bool,
    note: String,
) -> ExecutionOutcome {
    ExecutionOutcome {
        language: request.language,
        session: request.session.clone(),
        stdout: String::new(),
        stderr: String::new(),
        exit_code,
        duration_ms,
        timed_out,
        truncated: false,
        phase: Phase::Run,
        state_lost: false,
        artifacts: Vec::new(),
        notes: vec![note],
        job: None,
    }
}

/// The outcome when the caller cancelled and the runner did not confirm
/// the stop in time.
pub fn cancelled_outcome(request: &ExecuteRequest) -> ExecutionOutcome {
    let note = "Cancelled: the program was asked to stop; its output could not be recovered.";
    unrecovered_outcome(request, 130, 0, false, note.into())
}

/// The outcome when the caller cancelled before anything ran.
pub fn not_started_outcome(request: &ExecuteRequest) -> ExecutionOutcome {
    unrecovered_outcome(
        request,
        130,
        0,
        false,
        "Cancelled before it started: nothing ran.".into(),
    )
}

/// The outcome when the runner never answered in time.
pub fn host_timeout_outcome(request: &ExecuteRequest) -> ExecutionOutcome {
    let note = format!(
        "Timed out after {} ms and the sandbox did not answer in time, so no output could be recovered. \
         In a session, if the next execute times out as well, destroy and recreate the session.",
        request.timeout_ms
    );
    unrecovered_outcome(request, 137, request.timeout_ms, true, note)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forged(stdout: String) -> RunResult {
        RunResult {
            id: Some("a".into()),
            exit_code: 0,
            signal: None,
            stdout,
            stderr: "é".repeat(10),
            duration_ms: 1,
            timed_out: false,
            cancelled: false,
            truncated: false,
            phase: Phase::Run,
            state_lost: false,
            output_lost: Vec::new(),
            artifacts: Vec::new(),
            artifacts_omitted: 0,
            notes: Vec::new(),
        }
    }

    fn request() -> ExecuteRequest {
        ExecuteRequest::stateless(Language::Python, "print(1)", 1000)
    }

    #[test]
    fn output_caps_hold_whatever_the_runner_says() {
        let config = Config {
            max_output_bytes: 15,
            ..Config::default()
        };
        let result = outcome(&config, &request(), forged("x".repeat(3 << 20)), Vec::new());
        assert_eq!(result.stdout.len(), 15);
        // Ten two-byte characters cut at 15 bytes keep seven whole ones.
        assert_eq!(result.stderr, "é".repeat(7));
        assert!(result.truncated);
        assert!(
            result.notes.iter().any(|note| note.contains("was cut")),
            "{:?}",
            result.notes
        );
        let small = outcome(&config, &request(), forged("fine".into()), Vec::new());
        assert_eq!(small.stdout, "fine");
    }

    #[test]
    fn runner_notes_are_kept_within_bounds() {
        let mut run = forged("fine".into());
        run.notes = vec!["Added imports: fmt (goimports).".into(), "é".repeat(600)];
        run.notes.extend((0..10).map(|index| index.to_string()));
        let result = outcome(&Config::default(), &request(), run, vec!["resumed".into()]);
        assert_eq!(result.notes[0], "resumed");
        assert_eq!(result.notes[1], "Added imports: fmt (goimports).");
        assert_eq!(result.notes[2], "é".repeat(512));
        assert_eq!(result.notes.len(), 5);
    }
}
