//! The engine's own figures, measured through the Docker API on the same
//! engine in the same run: container create + start, remove, `docker exec`
//! in a running container, and the sustained create + start + remove rate
//! at the concurrency of the server's stateless throughput case. Every
//! container made here carries the label `multilang-sandbox.bench` and is
//! removed, on error too.

use crate::harness::{BoxError, Case, engine};
use bollard::Docker;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptionsBuilder, StartContainerOptions};
use futures::StreamExt;
use std::time::{Duration, Instant};

/// The label that marks what the benchmark made on the engine.
pub const LABEL: &str = "multilang-sandbox.bench";

/// What a group made on the engine, to remove whatever happens.
#[derive(Default)]
pub struct Made {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
}

impl Made {
    /// Removes everything left, saying so on stderr when it cannot.
    pub async fn clean(self, docker: &Docker) {
        for id in self.containers {
            if let Err(error) = remove(docker, &id).await {
                eprintln!("could not remove container {id}: {error}");
            }
        }
        for name in self.networks {
            if let Err(error) = engine(&format!("remove network {name}"), docker.remove_network(&name)).await {
                eprintln!("could not remove network {name}: {error}");
            }
        }
    }
}

pub async fn remove(docker: &Docker, id: &str) -> Result<(), BoxError> {
    let options = RemoveContainerOptionsBuilder::default().force(true).build();
    engine("remove a container", docker.remove_container(id, Some(options))).await
}

/// A container of `image` that sleeps, without network, labelled as the
/// benchmark's.
fn sleeper(image: &str) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(vec!["sleep".into(), "600".into()]),
        labels: Some([(LABEL.to_string(), "baseline".to_string())].into()),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Creates and starts a sleeper, noting its id in `made` as soon as it
/// exists.
async fn create_start(docker: &Docker, image: &str, made: &mut Made) -> Result<String, BoxError> {
    let created = engine(
        "create a container",
        docker.create_container(None::<CreateContainerOptions>, sleeper(image)),
    )
    .await?;
    made.containers.push(created.id.clone());
    engine(
        "start a container",
        docker.start_container(&created.id, None::<StartContainerOptions>),
    )
    .await?;
    Ok(created.id)
}

/// Removes `id` and forgets it in `made`.
async fn remove_made(docker: &Docker, id: &str, made: &mut Made) -> Result<(), BoxError> {
    remove(docker, id).await?;
    made.containers.retain(|held| held != id);
    Ok(())
}

/// Runs `cmd` in container `id` and returns its stdout (an error unless it
/// exits 0).
pub async fn exec_output(docker: &Docker, id: &str, cmd: Vec<String>) -> Result<String, BoxError> {
    exec_with_limit(docker, id, cmd, Duration::from_secs(600)).await
}

async fn exec_with_limit(docker: &Docker, id: &str, cmd: Vec<String>, limit: Duration) -> Result<String, BoxError> {
    use bollard::container::LogOutput;
    let what = format!("docker exec {cmd:?}");
    let run = async {
        let exec = docker
            .create_exec(
                id,
                CreateExecOptions::<String> {
                    cmd: Some(cmd.clone()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        if let StartExecResults::Attached { mut output, .. } = docker.start_exec(&exec.id, None).await? {
            while let Some(item) = output.next().await {
                match item? {
                    LogOutput::StdOut { message } => stdout.extend_from_slice(&message),
                    LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                    _ => {}
                }
            }
        }
        let exit_code = docker.inspect_exec(&exec.id).await?.exit_code;
        if exit_code != Some(0) {
            let message = format!("exited {exit_code:?}: {}", String::from_utf8_lossy(&stderr));
            return Err::<String, BoxError>(message.into());
        }
        Ok(String::from_utf8_lossy(&stdout).into_owned())
    };
    crate::harness::within(limit, &what, run).await
}

/// Create + start, remove, and `docker exec` of `true` and of
/// `python3 -c 'print(1)'` in a running container, `runs` each.
pub async fn baselines(docker: &Docker, image: &str, runs: usize) -> Result<Vec<Case>, BoxError> {
    let mut made = Made::default();
    let cases = baselines_with(docker, image, runs, &mut made).await;
    made.clean(docker).await;
    cases
}

async fn baselines_with(docker: &Docker, image: &str, runs: usize, made: &mut Made) -> Result<Vec<Case>, BoxError> {
    let (mut create_starts, mut removals) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let started = Instant::now();
        let id = create_start(docker, image, made).await?;
        create_starts.push(started.elapsed());
        let started = Instant::now();
        remove_made(docker, &id, made).await?;
        removals.push(started.elapsed());
    }
    let id = create_start(docker, image, made).await?;
    let mut cases = vec![
        Case::new("baseline: container create + start", create_starts),
        Case::new("baseline: container remove (force)", removals),
    ];
    for (name, cmd, stdout) in [
        ("baseline: `docker exec true`", vec!["true"], ""),
        (
            "baseline: `docker exec python3 -c 'print(1)'`",
            vec!["python3", "-c", "print(1)"],
            "1\n",
        ),
    ] {
        let cmd: Vec<String> = cmd.into_iter().map(String::from).collect();
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..=runs {
            let started = Instant::now();
            let output = exec_with_limit(docker, &id, cmd.clone(), crate::harness::ENGINE_TIMEOUT).await?;
            samples.push(started.elapsed());
            if output != stdout {
                return Err(format!("{name}: printed {output:?}").into());
            }
        }
        samples.remove(0); // warm-up
        cases.push(Case::new(name, samples));
    }
    remove_made(docker, &id, made).await?;
    Ok(cases)
}

/// The engine's sustained rate: `concurrency` workers, each doing `each`
/// create + start + remove cycles back to back. Returns the per-cycle
/// times and the wall time of the whole.
pub async fn sustained_cycles(
    docker: &Docker,
    image: &str,
    concurrency: usize,
    each: usize,
) -> Result<(Vec<Duration>, Duration), BoxError> {
    let worker = || async move {
        let mut made = Made::default();
        let mut cycles = Vec::with_capacity(each);
        let result = async {
            for _ in 0..each {
                let started = Instant::now();
                let id = create_start(docker, image, &mut made).await?;
                remove_made(docker, &id, &mut made).await?;
                cycles.push(started.elapsed());
            }
            Ok::<(), BoxError>(())
        }
        .await;
        made.clean(docker).await;
        result.map(|()| cycles)
    };
    let started = Instant::now();
    let results = futures::future::join_all((0..concurrency).map(|_| worker())).await;
    let wall = started.elapsed();
    let mut cycles = Vec::new();
    for result in results {
        cycles.extend(result?);
    }
    Ok((cycles, wall))
}
