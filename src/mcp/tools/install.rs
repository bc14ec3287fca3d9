//! `sandbox_install`: packages into a session, or into the package cache.

use super::{OutcomeSlot, Reported, answer};
use crate::core::Watch;
use crate::core::error::ExecuteError;
use crate::core::executor::{InstallReport, InstallRequest};
use crate::core::run::ImageChoice;
use crate::mcp::progress::Reporter;
use crate::mcp::{SandboxServer, client_limits, tasks};
use crate::runtime::Language;
use rmcp::handler::server::common::{Extension, schema_for_output};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tracing::Instrument;

/// Arguments of `sandbox_install`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct InstallParams {
    /// Package specs: pip for Python (`requests==2.32.3`, `rich`), npm for JavaScript and
    /// TypeScript (`lodash@4`), crates for Rust (`serde@1`), Go modules for Go, Debian packages
    /// for Bash (cache only). Names from the registry with an optional version; options, URLs
    /// and paths are refused.
    pub packages: Vec<String>,
    /// Session to install into: the session keeps its variables and files, and its code still
    /// has no network (only the install step reaches the package registries, through the egress proxy). Without it, the package set is prepared in
    /// the cache for later `sandbox_execute`/`sandbox_session create` calls with `packages`.
    #[serde(default)]
    pub session: Option<String>,
    /// Language whose package manager to use; required without `session` unless `template`
    /// is given (then it defaults to the template's): python, javascript, typescript, go,
    /// rust, bash.
    #[serde(default)]
    pub language: Option<String>,
    /// Without `session`, Python only: prepare the set on the data-science image.
    #[serde(default)]
    pub ml: Option<bool>,
    /// Without `session`: prepare the set on one of the user's templates (its language is
    /// the default `language`).
    #[serde(default)]
    pub template: Option<String>,
}

/// Result of `sandbox_install`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct InstallOutput {
    pub language: String,
    /// The packages, normalized and sorted.
    pub packages: Vec<String>,
    /// The session installed into, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The cached image holding the set (without a session).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// True when the set was already cached: nothing was installed.
    pub cache_hit: bool,
    pub duration_ms: u64,
    /// The end of the package manager's output.
    pub output: String,
}

impl From<InstallReport> for InstallOutput {
    fn from(report: InstallReport) -> Self {
        Self {
            language: report.language.name().to_string(),
            packages: report.packages,
            session: report.session,
            image: report.image,
            cache_hit: report.cache_hit,
            duration_ms: report.elapsed.as_millis() as u64,
            output: report.output,
        }
    }
}

#[tool_router(router = install_router, vis = "pub(crate)")]
impl SandboxServer {
    #[tool(
        name = "sandbox_install",
        description = "Install packages: with `session`, into that session (it keeps its state; only the \
install step reaches the network: the registries its package manager is configured for, through the egress proxy). Without `session`, prepare the cached image for `language` + `packages`, so \
later sandbox_execute / sandbox_session create calls with the same `packages` start at once. \
Managers: pip (python), npm (javascript, typescript), cargo (rust), go modules (go), apt (bash, cache only).",
        output_schema = schema_for_output::<InstallOutput>(),
        title = "Install packages",
        // Adds packages to a session or to the cache (a version asked for may
        // replace the one a session had; no file of the user's is removed);
        // the same set again changes nothing (a cache hit, or already
        // installed). Open world: packages come from the registries.
        annotations(
            title = "Install packages",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    async fn sandbox_install(
        &self,
        Parameters(params): Parameters<InstallParams>,
        Extension(slot): Extension<OutcomeSlot>,
        context: RequestContext<RoleServer>,
    ) -> Reported {
        let span = tracing::info_span!("sandbox_install", session = ?params.session, language = ?params.language);
        async move {
            let (watch, reporter) = Reporter::start(&context, &self.log_level);
            if !tasks::client_takes_tasks(&context) {
                let result = self.run_install(&params, watch).await.map(InstallOutput::from);
                reporter.finish().await;
                return slot.report(answer(result, render));
            }
            // For a client that takes tasks, an install still going at the
            // detach deadline carries on as a task (with a stop of its own:
            // the call's is cancelled once it has answered).
            let (own, link) = watch.linked();
            drop(watch);
            let cancel = own.cancel.clone();
            let server = self.clone();
            let mut work = tokio::spawn(async move {
                let result = server.run_install(&params, own).await.map(InstallOutput::from);
                answer(result, render)
            });
            let client = client_limits::client_name(&context);
            let config = self.executor.config();
            let deadline = client_limits::detach_after(None, config.jobs.detach_after, client.as_deref());
            let waited = if deadline.is_zero() {
                Ok((&mut work).await)
            } else {
                tokio::time::timeout(deadline, &mut work).await
            };
            // The call's cancel and updates stop reaching the install now.
            drop(link);
            let reported = match waited {
                Ok(Ok(done)) => slot.report(done),
                Ok(Err(error)) => slot.report(super::tool_error(format!("the install stopped: {error}"))),
                Err(_) => slot.report_task(self.carry_on_as_task(work, cancel)),
            };
            reporter.finish().await;
            reported
        }
        .instrument(span)
        .await
    }
}

impl SandboxServer {
    async fn run_install(&self, params: &InstallParams, watch: Watch) -> Result<InstallReport, ExecuteError> {
        let image = ImageChoice::from_arguments(params.ml, params.template.as_deref())?;
        let language = match params.language.as_deref() {
            Some(given) => Some(Language::parse(given)?),
            None => self.executor.template_language(&image)?,
        };
        let request = InstallRequest {
            packages: params.packages.clone(),
            session: params.session.clone(),
            language,
            image,
        };
        self.executor.install(&request, &watch).await
    }
}

fn render(output: &InstallOutput) -> String {
    let place = match (&output.session, &output.image) {
        (Some(session), _) => format!("into session {session}"),
        (None, Some(image)) => format!("into the cached image {image}"),
        (None, None) => "into the cache".to_string(),
    };
    let what = if output.cache_hit {
        "Already cached"
    } else {
        "Installed"
    };
    let mut text = format!(
        "{what}: {} ({}) {place} in {} ms.",
        output.packages.join(", "),
        output.language,
        output.duration_ms
    );
    if !output.output.trim().is_empty() {
        text.push_str("\n--- output ---\n");
        text.push_str(output.output.trim_end());
    }
    text
}
