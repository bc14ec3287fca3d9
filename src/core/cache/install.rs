//! Running one install in its container: the registries its package
//! manager is configured for are found and granted to the install's
//! network, then the
//! package manager's steps run, with the configured CA bundle.

use super::{INSTALL_TIMEOUT, OUTPUT_TAIL, PackageCache, tail};
use crate::config::ca;
use crate::core::connection::RunnerConnection;
use crate::core::egress::LeasedNetwork;
use crate::core::error::PackageError;
use crate::core::launcher::{Purpose, Sandbox};
use crate::core::protocol::RunResult;
use crate::core::run::{RunFailure, RunSpec, run_program};
use crate::core::watch::Watch;
use crate::docker::DockerError;
use crate::runtime::packages::PackageManager;
use crate::runtime::registries::{self as discovery, Registries};
use crate::runtime::{Language, Program, SourceFile, Step};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long finding the registries may take.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(3 * 60);

impl PackageCache {
    /// Starts an install container on `lease`'s network and binds it, with
    /// nothing granted yet: discovery needs no network (the network is
    /// removed if it does not start).
    pub(super) async fn start(
        &self,
        lease: &LeasedNetwork,
        language: Language,
        image: &str,
        purpose: Purpose<'_>,
    ) -> Result<Sandbox, PackageError> {
        match self.launcher.launch_from(language, image, purpose).await {
            Ok(sandbox) => {
                lease.bind(&self.egress, sandbox.container.id(), Vec::new());
                Ok(sandbox)
            }
            Err(error) => {
                lease.close(&self.egress).await;
                Err(error.into())
            }
        }
    }

    /// Finds the registries, grants them, installs; on failure the output
    /// ends with the proxy's refusals, if any.
    pub(super) async fn install(
        &self,
        connection: &RunnerConnection,
        lease: &LeasedNetwork,
        manager: PackageManager,
        packages: &[String],
        root: &str,
        watch: &Watch,
    ) -> Result<String, PackageError> {
        let failed = |output: String| PackageError::Failed {
            manager: manager.name(),
            packages: packages.join(" "),
            output,
        };
        watch.progress(format!(
            "finding the package registries {} is configured for",
            manager.name()
        ));
        let registries = self.discover(connection, lease, manager, watch).await?;
        tracing::info!(
            install = %lease.owner(),
            manager = manager.name(),
            packages = %packages.join(" "),
            registries = %registries.listed(),
            "installing through the egress proxy"
        );
        let run = self
            .run(
                connection,
                manager.install_steps(packages, root),
                INSTALL_TIMEOUT,
                watch,
            )
            .await
            .map_err(|failure| failure.into_error(failed))?;
        let mut output = run.stdout;
        if !run.stderr.is_empty() {
            output.push_str(&run.stderr);
        }
        let output = tail(&output, OUTPUT_TAIL);
        if run.exit_code != 0 || run.timed_out {
            let mut output = output;
            for refusal in lease.refusals(&self.egress).await {
                output.push('\n');
                output.push_str(&refusal);
            }
            if manager == PackageManager::GoModules {
                output.push_str("\n(The Go module proxy may be unreachable from this machine.)");
            }
            return Err(failed(output));
        }
        Ok(output)
    }

    /// The registries `manager` is configured for in the install
    /// container, granted to the install. Cargo's sparse index names its
    /// download host in its `config.json`, read once the index is granted.
    async fn discover(
        &self,
        connection: &RunnerConnection,
        lease: &LeasedNetwork,
        manager: PackageManager,
        watch: &Watch,
    ) -> Result<Registries, PackageError> {
        let none_found = |detail: String| PackageError::NoRegistries {
            manager: manager.name(),
            hint: manager.configuration_hint(),
            detail,
        };
        let found = |run: Result<RunResult, StepFailure>| match run {
            Ok(run) => {
                let mut found = Registries::parse(&run.stdout);
                if run.exit_code != 0 || run.timed_out {
                    let stderr = tail(run.stderr.trim(), 600);
                    found.problems.push(format!("the discovery step failed: {stderr}"));
                }
                Ok(found)
            }
            Err(StepFailure::Cancelled) => Err(PackageError::Cancelled),
            Err(StepFailure::Gone(error)) => Err(PackageError::Docker(error)),
            Err(StepFailure::HostTimeout) => Err(none_found("the discovery step did not answer in time".into())),
        };
        let mut registries = found(
            self.run(connection, manager.discovery_steps(), DISCOVERY_TIMEOUT, watch)
                .await,
        )?;
        if registries.grants.is_empty() {
            let detail = match registries.problems.is_empty() {
                true => "its configuration names no http or https registry".to_string(),
                false => registries.problems.join("; "),
            };
            return Err(none_found(detail));
        }
        self.egress.set_grants(lease.owner(), registries.grants.clone());
        for index in registries.indexes.clone() {
            let more = found(
                self.run(connection, discovery::download_steps(&index), DISCOVERY_TIMEOUT, watch)
                    .await,
            )?;
            registries.extend(more);
        }
        if !registries.problems.is_empty() {
            tracing::debug!(install = %lease.owner(), problems = %registries.problems.join("; "), "registry discovery");
        }
        self.egress.set_grants(lease.owner(), registries.grants.clone());
        Ok(registries)
    }

    /// Runs `steps` in the install container, with the discovery script and
    /// the configured CA bundle written to its tmpfs.
    async fn run(
        &self,
        connection: &RunnerConnection,
        steps: Vec<Step>,
        timeout: Duration,
        watch: &Watch,
    ) -> Result<RunResult, StepFailure> {
        let config = self.launcher.config();
        let mut program = Program {
            files: vec![SourceFile {
                path: discovery::SCRIPT_PATH.to_string(),
                content: discovery::SCRIPT.to_string(),
            }],
            steps,
            kernel_source: None,
        };
        let mut env = BTreeMap::new();
        if let Some(bundle) = config.read_ca_bundle() {
            program.files.push(SourceFile {
                path: CA_BUNDLE_PATH.to_string(),
                content: bundle,
            });
            for variable in ca::VARIABLES {
                env.insert(variable.to_string(), CA_BUNDLE_PATH.to_string());
            }
        }
        let spec = RunSpec {
            program: &program,
            kernel: None,
            env: &env,
            stdin: None,
            timeout_ms: timeout.as_millis() as u64,
            collect_outputs: false,
            watch,
            keep: false,
            label: None,
        };
        let run = run_program(connection, spec, config)
            .await
            .map_err(|failure| match failure {
                RunFailure::HostTimeout => StepFailure::HostTimeout,
                RunFailure::Cancelled | RunFailure::NotStarted => StepFailure::Cancelled,
                RunFailure::Gone(error) => StepFailure::Gone(error),
                // An install container runs nothing else.
                RunFailure::Busy { job } => StepFailure::Gone(DockerError::Protocol(format!(
                    "the install container said job {job} runs in it"
                ))),
            })?;
        if run.cancelled {
            return Err(StepFailure::Cancelled);
        }
        Ok(run)
    }
}

/// Why a step in an install container gave no result.
enum StepFailure {
    HostTimeout,
    Cancelled,
    Gone(DockerError),
}

impl StepFailure {
    fn into_error(self, failed: impl Fn(String) -> PackageError) -> PackageError {
        match self {
            StepFailure::HostTimeout => failed(format!("no answer within {} minutes", INSTALL_TIMEOUT.as_secs() / 60)),
            StepFailure::Cancelled => PackageError::Cancelled,
            StepFailure::Gone(error) => PackageError::Docker(error),
        }
    }
}

/// Where install containers get the trusted CA bundle (a tmpfs: never
/// committed into a cached image).
const CA_BUNDLE_PATH: &str = "/tmp/ca-bundle.pem";
