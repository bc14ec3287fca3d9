//! `sandbox_inspect`: the warm pool, the package cache, the sessions and a
//! summary of the audit log.

use super::security::SecurityPosture;
use super::{OutcomeSlot, Reported, ToolAnswer, refusal, structured_result, tool_error};
use crate::core::jobs::JobInfo;
use crate::core::session::SpareStats;
use crate::core::templates::TemplateSummary;
use crate::core::{CacheStats, PoolLanguageStats, SessionInfo};
use crate::mcp::SandboxServer;
use crate::security::audit::{AuditStats, Outcome};
use rmcp::handler::server::common::{Extension, schema_for_output};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What to inspect.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum InspectTarget {
    #[default]
    All,
    Pool,
    Cache,
    Sessions,
    Jobs,
    Audit,
    Templates,
}

/// Arguments of `sandbox_inspect`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct InspectParams {
    /// all (default: pool, cache, sessions and templates), pool, cache, sessions, templates (the
    /// user's own images), jobs (background jobs, as sandbox_job lists them) or audit (the audit log's file, policy mode, seccomp profile and
    /// event counts; sandbox_security has the events).
    #[serde(default)]
    pub target: Option<InspectTarget>,
}

/// Result of `sandbox_inspect`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct InspectOutput {
    /// Warm pool figures per language (target all or pool).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<Vec<PoolLanguageStats>>,
    /// Every session on the Docker engine (target all or sessions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<Vec<SessionInfo>>,
    /// Warm spare sessions per language, which plain creates claim
    /// (target all or sessions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spares: Option<Vec<SpareStats>>,
    /// Background jobs: this server's and those kept in running sessions (target jobs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs: Option<Vec<JobInfo>>,
    /// The user's own images (target all or templates): name, language, whether built, size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub templates: Option<Vec<TemplateSummary>>,
    /// The package cache (target all or cache).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStats>,
    /// The audit log and security settings (target audit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditSummary>,
    /// Id of this server instance (labels its pooled containers).
    pub instance: String,
}

/// The audit log and security settings in brief.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditSummary {
    #[serde(flatten)]
    pub posture: SecurityPosture,
    /// Event counts over the retained log.
    pub stats: AuditStats,
}

#[tool_router(router = inspect_router, vis = "pub(crate)")]
impl SandboxServer {
    #[tool(
        name = "sandbox_inspect",
        description = "Show the sandbox's state: `pool` (warm containers per language: configured size, \
current target, which grows while calls come faster than the pool refills, idle, starting, hits, misses, \
average acquire time, idle memory), `cache` (cached package images, hits, misses, size), `sessions` (name, language, \
state, created, last used, ttl left), `jobs` (background jobs: handle, state, age, first line of code), \
`templates` (the user's own images: name, language, built, size; use one with `template`), \
`audit` (audit log file, policy mode, seccomp profile, event counts), or `all` (default: pool, cache, \
sessions and templates).",
        output_schema = schema_for_output::<InspectOutput>(),
        title = "Inspect the sandbox",
        // Reads the pool, cache and sessions; changes nothing.
        annotations(title = "Inspect the sandbox", read_only_hint = true, open_world_hint = false)
    )]
    async fn sandbox_inspect(
        &self,
        Parameters(params): Parameters<InspectParams>,
        Extension(slot): Extension<OutcomeSlot>,
    ) -> Reported {
        slot.report(self.inspect(params).await)
    }
}

impl SandboxServer {
    async fn inspect(&self, params: InspectParams) -> ToolAnswer {
        let target = params.target.unwrap_or_default();
        // Counting events reads the whole retained log: only on request.
        let audit = if target == InspectTarget::Audit {
            match self.audit_summary().await {
                Ok(summary) => Some(summary),
                Err(error) => return tool_error(error),
            }
        } else {
            None
        };
        let pool = matches!(target, InspectTarget::All | InspectTarget::Pool).then(|| self.executor.pool().stats());
        let sessions = if matches!(target, InspectTarget::All | InspectTarget::Sessions) {
            match self.executor.sessions().list().await {
                Ok(sessions) => Some(sessions),
                Err(error) => return refusal(&error),
            }
        } else {
            None
        };
        let spares = if matches!(target, InspectTarget::All | InspectTarget::Sessions) {
            match self.executor.sessions().spare_stats().await {
                Ok(spares) => Some(spares),
                Err(error) => return refusal(&error),
            }
        } else {
            None
        };
        // Listing jobs asks every running session's runner: only on request.
        let jobs = if target == InspectTarget::Jobs {
            Some(self.executor.job_list().await)
        } else {
            None
        };
        let cache = if matches!(target, InspectTarget::All | InspectTarget::Cache) {
            match self.executor.cache().stats().await {
                Ok(cache) => Some(cache),
                Err(error) => return refusal(&error),
            }
        } else {
            None
        };
        let templates = if matches!(target, InspectTarget::All | InspectTarget::Templates) {
            Some(self.executor.templates().list().await)
        } else {
            None
        };
        let output = InspectOutput {
            pool,
            sessions,
            spares,
            jobs,
            templates,
            cache,
            audit,
            instance: self.instance_id.clone(),
        };
        let text = render(&output);
        structured_result(&output, text, Outcome::Ok)
    }

    async fn audit_summary(&self) -> Result<AuditSummary, String> {
        let config = self.executor.config();
        let executor = self.executor.clone();
        let stats = tokio::task::spawn_blocking(move || executor.audit().stats())
            .await
            .map_err(|error| format!("reading the audit log stopped: {error}"))?
            .map_err(|error| error.to_string())?;
        Ok(AuditSummary {
            posture: SecurityPosture::of(config),
            stats,
        })
    }
}

fn render(output: &InspectOutput) -> String {
    let mut text = String::new();
    if let Some(pool) = &output.pool {
        text.push_str("Warm pool:\n");
        for stats in pool {
            text.push_str(&format!(
                "- {}: {}/{} idle, {} starting, {} hits, {} misses, avg acquire {:.1} ms{}\n",
                stats.language,
                stats.idle,
                stats.target,
                stats.starting,
                stats.hits,
                stats.misses,
                stats.avg_acquire_ms,
                stats
                    .last_error
                    .as_ref()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            ));
        }
    }
    if let Some(spares) = output.spares.as_ref().filter(|spares| !spares.is_empty()) {
        text.push_str("Spare sessions:\n");
        for stats in spares {
            text.push_str(&format!(
                "- {}: {} ready of {}, {} claimed\n",
                stats.language, stats.ready, stats.configured, stats.claimed
            ));
        }
    }
    if let Some(sessions) = &output.sessions {
        text.push_str(&format!("Sessions: {}\n", sessions.len()));
        for session in sessions {
            text.push_str(&format!(
                "- {} ({}, {}): created {}, last used {}, {} s left\n",
                session.name,
                session.language,
                session.state,
                session.created,
                session.last_used,
                session.ttl_left_seconds
            ));
        }
    }
    if let Some(jobs) = &output.jobs {
        text.push_str(&format!("Jobs: {}\n", jobs.len()));
        for job in jobs {
            text.push_str(&format!("- {}\n", job.describe()));
        }
    }
    if let Some(templates) = output.templates.as_ref().filter(|templates| !templates.is_empty()) {
        text.push_str("Templates:\n");
        for template in templates {
            let state = match (&template.problem, template.size_bytes) {
                (Some(problem), _) => format!("unusable: {problem}"),
                (None, Some(size)) => format!("built, {:.1} MB", size as f64 / 1e6),
                (None, None) => "not built yet (its first use builds it)".to_string(),
            };
            text.push_str(&format!(
                "- {} ({}): {state}\n",
                template.name,
                template.language.as_deref().unwrap_or("?")
            ));
        }
    }
    if let Some(audit) = &output.audit {
        text.push_str(&format!(
            "Audit log {}: {} events (policy {}, seccomp {})\n",
            audit.posture.log, audit.stats.events, audit.posture.policy, audit.posture.seccomp
        ));
    }
    if let Some(cache) = &output.cache {
        text.push_str(&format!(
            "Package cache: {} images, {:.1} MB, {} hits, {} misses (hit rate {:.0}%)\n",
            cache.images,
            cache.total_size_bytes as f64 / 1e6,
            cache.hits,
            cache.misses,
            cache.hit_rate * 100.0
        ));
        for entry in &cache.entries {
            text.push_str(&format!(
                "- {} [{}]: {}\n",
                entry.image,
                entry.language,
                entry.packages.join(", ")
            ));
        }
    }
    text
}
