//! `multilang-sandbox doctor`: checks everything the server depends on
//! (the Docker engine, the images, seccomp, the optional runtime, the audit
//! log and state folders, the MCP client configurations), runs one program
//! end to end, and names the command that fixes each problem.

mod clients;

use crate::config::{Config, SessionStorage};
use crate::core::jobs::Executed;
use crate::core::{ExecuteRequest, Executor};
use crate::docker::{DockerEngine, EngineFacts, EngineProduct, SandboxEngine};
use crate::images;
use crate::images::templates::{self, TemplateError};
use crate::runtime::Language;
use crate::security::audit::AuditLog;
use crate::security::seccomp::SeccompProfile;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Optional, or worth knowing; not a failure.
    Note,
    /// Something the server needs is broken: doctor exits non-zero.
    Problem,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    /// The command (or change) that fixes it.
    pub fix: Option<String>,
}

impl Check {
    fn new(name: &str, status: Status, detail: impl Into<String>, fix: Option<String>) -> Self {
        Self {
            name: name.to_string(),
            status,
            detail: detail.into(),
            fix,
        }
    }
}

/// Every check's outcome.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// True when nothing is a [`Status::Problem`].
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|check| check.status != Status::Problem)
    }

    pub fn render(&self) -> String {
        let width = self.checks.iter().map(|check| check.name.len()).max().unwrap_or(0);
        let mut text = String::new();
        for check in &self.checks {
            let label = match check.status {
                Status::Ok => "ok",
                Status::Note => "note",
                Status::Problem => "PROBLEM",
            };
            text.push_str(&format!("{label:<8} {:<width$}  {}\n", check.name, check.detail));
            if let Some(fix) = &check.fix {
                text.push_str(&format!("{:<8} {:<width$}  fix: {fix}\n", "", ""));
            }
        }
        let problems = self
            .checks
            .iter()
            .filter(|check| check.status == Status::Problem)
            .count();
        text.push_str(&match problems {
            0 => "\nAll is well.\n".to_string(),
            1 => "\n1 problem.\n".to_string(),
            n => format!("\n{n} problems.\n"),
        });
        text
    }
}

/// Runs every check against `config`. `binary` is this program's path
/// (what client configurations should start).
pub async fn run(config: &Config, binary: &str) -> Report {
    let lookup = |key: &str| std::env::var(key).ok();
    let mut report = Report::default();
    let engine = Arc::new(DockerEngine::new(&config.state_dir));
    match engine.facts().await {
        Ok(facts) => {
            report.checks.push(engine_check(&facts, engine.is_local()));
            report.checks.extend(limits_check(&facts));
            report.checks.extend(podman_checks(&facts, config, engine.is_local()));
            report.checks.push(seccomp_check(&facts, config));
            report.checks.push(runtime_check(&facts, config));
            if let Some(check) = userns_check(&facts, config) {
                report.checks.push(check);
            }
            let images_ok = image_checks(engine.as_ref(), config, &mut report).await;
            if images_ok {
                report.checks.push(smoke_test(engine.clone(), config).await);
                report.checks.extend(template_checks(engine.clone(), config).await);
            }
        }
        Err(error) => report.checks.push(Check::new(
            "Docker engine",
            Status::Problem,
            error.to_string(),
            Some(engine_fix()),
        )),
    }
    report.checks.push(audit_check(config));
    if !config.host_folders.is_empty() && engine.is_local() {
        report.checks.push(host_folders_check(config));
    }
    report.checks.push(folder_check(
        "state folder",
        &config.state_dir,
        "MULTILANG_SANDBOX_STATE_DIR",
    ));
    let home = lookup("HOME").map(PathBuf::from).unwrap_or_default();
    let clients = clients::check_clients(&home, &lookup, binary);
    if clients.is_empty() {
        report.checks.push(Check::new(
            "MCP clients",
            Status::Note,
            "no Claude Desktop, Claude Code or LM Studio configuration found",
            Some("./install.sh prints the configuration to add to your client".to_string()),
        ));
    }
    report.checks.extend(clients);
    report
}

fn engine_fix() -> String {
    if std::env::var("DOCKER_HOST").is_ok_and(|host| !host.starts_with("unix://")) {
        "check that the engine at DOCKER_HOST is up and reachable (see README, Remote engines)".to_string()
    } else {
        "start Docker: `sudo systemctl start docker` (or open Docker Desktop)".to_string()
    }
}

fn engine_check(facts: &EngineFacts, local: bool) -> Check {
    let place = if local { "local" } else { "remote" };
    Check::new(
        "Docker engine",
        Status::Ok,
        format!(
            "{} on {} (API {}, negotiated {}) at {} ({place})",
            facts.product_and_version(),
            facts.os,
            facts.api_version,
            facts.negotiated_api,
            facts.host
        ),
        None,
    )
}

/// A sandbox's memory and process limits are part of its boundary: an
/// engine that would drop them gets no sandboxes.
fn limits_check(facts: &EngineFacts) -> Option<Check> {
    let traits = facts.traits();
    (!traits.limits_enforced).then(|| {
        Check::new(
            "resource limits",
            Status::Problem,
            format!(
                "the engine ({}, cgroup {}) cannot enforce memory and process-count limits, so sandboxes are refused",
                traits.describe(),
                if facts.cgroup_version.is_empty() {
                    "version unknown".to_string()
                } else {
                    format!("v{}", facts.cgroup_version)
                }
            ),
            Some(
                "use a rootful engine (Podman: `sudo podman system service --time=0`), or boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1)"
                    .into(),
            ),
        )
    })
}

/// What Podman needs beyond Docker: a runtime that works on the machine's
/// cgroups, and the seccomp profile as a file on its own machine.
fn podman_checks(facts: &EngineFacts, config: &Config, local: bool) -> Vec<Check> {
    if facts.product != EngineProduct::Podman {
        return Vec::new();
    }
    let mut checks = Vec::new();
    if facts.default_runtime == "crun" && facts.cgroup_version == "1" {
        checks.push(Check::new(
            "Podman runtime",
            Status::Problem,
            "Podman's default runtime is crun, which cannot start containers on this machine's cgroup v1 (hybrid) hierarchy",
            Some("install runc and set `runtime = \"runc\"` under [engine] in /etc/containers/containers.conf (`./install.sh --podman` does both)".into()),
        ));
    }
    if let Some(runtime) = &config.runtime {
        checks.push(Check::new(
            "Podman runtime",
            Status::Problem,
            format!("`{runtime}` is configured, but Podman's Docker-compatible API ignores a runtime named per container, so sandboxes are refused"),
            Some(format!("set `runtime = \"{runtime}\"` under [engine] in /etc/containers/containers.conf and unset MULTILANG_SANDBOX_RUNTIME")),
        ));
    }
    if config.seccomp.json().is_some() && !local {
        checks.push(Check::new(
            "Podman seccomp",
            Status::Problem,
            format!(
                "Podman reads a seccomp profile from a file on its own machine, and this one is remote, so the `{}` profile cannot be given to it",
                config.seccomp.name()
            ),
            Some("run multilang-sandbox on the engine's machine, or set `seccomp = \"engine-default\"`".into()),
        ));
    }
    checks
}

fn seccomp_check(facts: &EngineFacts, config: &Config) -> Check {
    let supported = facts
        .security_options
        .iter()
        .any(|option| option.contains("name=seccomp"));
    if !supported {
        return Check::new(
            "seccomp",
            Status::Problem,
            "the engine has no seccomp support, so sandboxes would run without a system call filter",
            Some("use a Docker engine built with seccomp (Docker on Linux and Docker Desktop have it)".into()),
        );
    }
    match &config.seccomp {
        SeccompProfile::Permissive => Check::new(
            "seccomp",
            Status::Note,
            "supported; the configured profile is `permissive` (weaker than the default)",
            Some("unset MULTILANG_SANDBOX_SECCOMP to use `standard`".into()),
        ),
        profile => Check::new(
            "seccomp",
            Status::Ok,
            format!("supported; sandboxes use the `{}` profile", profile.name()),
            None,
        ),
    }
}

/// With userns-remap the engine mounts a session's in-memory volumes owned
/// by the host's uid 1000, which the sandbox user cannot write.
fn userns_check(facts: &EngineFacts, config: &Config) -> Option<Check> {
    let remapped = facts
        .security_options
        .iter()
        .any(|option| option.contains("name=userns"));
    (remapped && config.session_storage == SessionStorage::Memory).then(|| {
        Check::new(
            "user namespaces",
            Status::Problem,
            "the engine remaps user ids (userns-remap), so in-memory session folders would not be writable",
            Some("set MULTILANG_SANDBOX_SESSION_STORAGE=disk".into()),
        )
    })
}

fn runtime_check(facts: &EngineFacts, config: &Config) -> Check {
    let known = facts.runtimes.join(", ");
    match &config.runtime {
        None => Check::new(
            "OCI runtime",
            Status::Ok,
            format!("engine default (available: {known}); gVisor (`runsc`) is optional"),
            None,
        ),
        Some(runtime) if facts.runtimes.contains(runtime) => Check::new(
            "OCI runtime",
            Status::Ok,
            format!("`{runtime}` is configured and the engine has it"),
            None,
        ),
        Some(runtime) => Check::new(
            "OCI runtime",
            Status::Problem,
            format!("`{runtime}` is configured but the engine only has: {known}"),
            Some(format!(
                "install {runtime} and register it in /etc/docker/daemon.json (\"runtimes\"), then restart Docker; or unset MULTILANG_SANDBOX_RUNTIME"
            )),
        ),
    }
}

/// One check per image; true when every language image is present and current.
async fn image_checks(engine: &dyn SandboxEngine, config: &Config, report: &mut Report) -> bool {
    let mut states: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut all_ok = true;
    for language in Language::ALL {
        let state = image_state(engine, &images::tag_for(language, config)).await;
        all_ok &= state == "up to date";
        states.entry(state).or_default().push(language.name());
    }
    let build = "multilang-sandbox images build".to_string();
    for (state, languages) in &states {
        let status = if *state == "up to date" {
            Status::Ok
        } else {
            Status::Problem
        };
        let fix = (status == Status::Problem).then(|| build.clone());
        report.checks.push(Check::new(
            "sandbox images",
            status,
            format!("{state}: {}", languages.join(", ")),
            fix,
        ));
    }
    let ml = image_state(engine, &images::ml_tag(config)).await;
    report.checks.push(match ml {
        "up to date" => Check::new("data-science image", Status::Ok, "up to date", None),
        state => Check::new(
            "data-science image",
            Status::Note,
            format!("{state} (only needed for `ml: true`)"),
            Some(format!("{build} --ml")),
        ),
    });
    all_ok
}

/// One check per template in the templates folder: its Dockerfile reads,
/// and its image (when built for its current files) keeps the boundary and
/// has a runner that answers.
async fn template_checks(engine: Arc<dyn SandboxEngine>, config: &Config) -> Vec<Check> {
    let found = templates::read_all(config);
    if found.is_empty() {
        return Vec::new();
    }
    let executor = Executor::new(
        engine,
        Arc::new(config.clone()),
        format!("doctor-{}", uuid::Uuid::new_v4()),
    );
    let mut checks = Vec::new();
    for (name, source) in found {
        let title = format!("template {name}");
        let checked = match source {
            Ok(source) => executor
                .templates()
                .check(&source)
                .await
                .map(|built| (source.template.base.language(), built)),
            Err(error) => Err(error),
        };
        checks.push(match checked {
            Ok((language, Some(facts))) => Check::new(
                &title,
                Status::Ok,
                format!(
                    "{language}, built ({:.0} MB), runs as the sandbox user, its runner answers",
                    facts.size_bytes as f64 / 1e6
                ),
                None,
            ),
            Ok((language, None)) => Check::new(
                &title,
                Status::Note,
                format!("{language}, not built for its current files yet: its first use builds it"),
                Some("multilang-sandbox images build".into()),
            ),
            Err(error) => {
                let fix = match &error {
                    TemplateError::ParentMissing { flag, .. } => format!("multilang-sandbox images build{flag}"),
                    TemplateError::Docker(_) => engine_fix(),
                    _ => format!("edit {}", config.templates_dir.join(&name).display()),
                };
                Check::new(&title, Status::Problem, error.to_string(), Some(fix))
            }
        });
    }
    executor.shutdown().await;
    checks
}

/// "up to date", "out of date" (an older build exists) or "missing".
async fn image_state(engine: &dyn SandboxEngine, tag: &str) -> &'static str {
    if engine.image_exists(tag).await.unwrap_or(false) {
        return "up to date";
    }
    let repository = images::repository_of(tag);
    match engine.list_images(repository).await {
        Ok(older) if !older.is_empty() => "out of date",
        _ => "missing",
    }
}

/// Runs `print("ok")` in a fresh Python sandbox, as the server would.
async fn smoke_test(engine: Arc<dyn SandboxEngine>, config: &Config) -> Check {
    let mut config = config.clone();
    config.audit.path = None;
    for size in config.pool_sizes.values_mut() {
        *size = 0;
    }
    let executor = Executor::new(engine, Arc::new(config), format!("doctor-{}", uuid::Uuid::new_v4()));
    let request = ExecuteRequest::stateless(Language::Python, "print('ok')", 30_000);
    let started = Instant::now();
    let result = executor.execute(&request).await;
    let elapsed = started.elapsed();
    executor.shutdown().await;
    match result {
        Ok(Executed::Done(outcome)) if outcome.stdout == "ok\n" => Check::new(
            "sandbox run",
            Status::Ok,
            format!(
                "python printed \"ok\" in a fresh locked-down container ({} ms, cold start)",
                elapsed.as_millis()
            ),
            None,
        ),
        Ok(Executed::Done(outcome)) => Check::new(
            "sandbox run",
            Status::Problem,
            format!(
                "python exited {} with stdout {:?} stderr {:?}",
                outcome.exit_code, outcome.stdout, outcome.stderr
            ),
            Some("multilang-sandbox images build --force".into()),
        ),
        Ok(Executed::Running(progress)) => Check::new(
            "sandbox run",
            Status::Problem,
            format!(
                "python's print('ok') was still running after 30 s as job {}",
                progress.info.job
            ),
            Some("multilang-sandbox images build --force".into()),
        ),
        Err(error) => Check::new(
            "sandbox run",
            Status::Problem,
            error.to_string(),
            Some("multilang-sandbox images build --force".into()),
        ),
    }
}

fn audit_check(config: &Config) -> Check {
    let Some(path) = &config.audit.path else {
        return Check::new(
            "audit log",
            Status::Note,
            "off (MULTILANG_SANDBOX_AUDIT_LOG=off)",
            Some("unset MULTILANG_SANDBOX_AUDIT_LOG to record tool calls".into()),
        );
    };
    let folder = path.parent().unwrap_or(Path::new("."));
    if let Err(problem) = writable_folder(folder) {
        return Check::new(
            "audit log",
            Status::Problem,
            format!("{}: {problem}", folder.display()),
            Some(format!(
                "make {} writable, or set MULTILANG_SANDBOX_AUDIT_LOG to a writable file",
                folder.display()
            )),
        );
    }
    if !path.exists() {
        return Check::new(
            "audit log",
            Status::Ok,
            format!("{} (not written yet; its folder is writable)", path.display()),
            None,
        );
    }
    match AuditLog::new(config.audit.clone()).verify() {
        Ok(report) => match report.first_bad {
            None => Check::new(
                "audit log",
                Status::Ok,
                format!("{}: intact, {} lines", path.display(), report.lines),
                None,
            ),
            Some(bad) => Check::new(
                "audit log",
                Status::Problem,
                format!(
                    "{}: broken at {} line {}: {}",
                    path.display(),
                    bad.file,
                    bad.line,
                    bad.reason
                ),
                Some("keep the log as evidence; run `multilang-sandbox audit verify` for details".into()),
            ),
        },
        Err(error) => Check::new(
            "audit log",
            Status::Problem,
            error.to_string(),
            Some("multilang-sandbox audit verify".into()),
        ),
    }
}

/// Each configured host folder exists and is reached without symbolic links
/// (a folder inside a writable one is already refused when the
/// configuration loads).
fn host_folders_check(config: &Config) -> Check {
    let problems: Vec<String> = config
        .host_folders
        .iter()
        .filter_map(|folder| crate::core::executor::check_host_folder(folder).err())
        .map(|error| error.to_string())
        .collect();
    if problems.is_empty() {
        let names: Vec<&str> = config.host_folders.iter().map(|folder| folder.name.as_str()).collect();
        return Check::new(
            "host folders",
            Status::Ok,
            format!("{} exist, reached without symbolic links", names.join(", ")),
            None,
        );
    }
    Check::new(
        "host folders",
        Status::Problem,
        problems.join("; "),
        Some("fix MULTILANG_SANDBOX_HOST_FOLDERS (or host_folders in the config file)".to_string()),
    )
}

fn folder_check(name: &str, folder: &Path, variable: &str) -> Check {
    match writable_folder(folder) {
        Ok(()) => Check::new(name, Status::Ok, format!("{} is writable", folder.display()), None),
        Err(problem) => Check::new(
            name,
            Status::Problem,
            format!("{}: {problem}", folder.display()),
            Some(format!("make it writable, or set {variable} to a writable folder")),
        ),
    }
}

/// Creates `folder` if needed and proves a file can be written in it.
fn writable_folder(folder: &Path) -> Result<(), String> {
    std::fs::create_dir_all(folder).map_err(|error| format!("cannot create it: {error}"))?;
    let probe = folder.join(format!(".doctor-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|error| format!("cannot write in it: {error}"))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn podman(default_runtime: &str, cgroup_version: &str) -> EngineFacts {
        EngineFacts {
            product: EngineProduct::Podman,
            default_runtime: default_runtime.to_string(),
            cgroup_version: cgroup_version.to_string(),
            memory_limit: true,
            pids_limit: true,
            ..EngineFacts::default()
        }
    }

    #[test]
    fn podman_with_crun_on_cgroup_v1_is_told_to_use_runc() {
        let config = Config::default();
        let checks = podman_checks(&podman("crun", "1"), &config, true);
        assert_eq!(checks.len(), 1, "{checks:?}");
        assert_eq!(checks[0].status, Status::Problem);
        assert!(
            checks[0]
                .fix
                .as_deref()
                .unwrap_or_default()
                .contains("runtime = \"runc\"")
        );
        assert!(podman_checks(&podman("runc", "1"), &config, true).is_empty());
        assert!(podman_checks(&podman("crun", "2"), &config, true).is_empty());
    }

    #[test]
    fn a_remote_podman_cannot_take_our_seccomp_profile() {
        let mut config = Config::default();
        let checks = podman_checks(&podman("runc", "2"), &config, false);
        assert_eq!(checks.len(), 1, "{checks:?}");
        assert!(checks[0].detail.contains("remote"), "{checks:?}");
        config.seccomp = SeccompProfile::EngineDefault;
        assert!(podman_checks(&podman("runc", "2"), &config, false).is_empty());
        let docker = EngineFacts::default();
        assert!(podman_checks(&docker, &Config::default(), false).is_empty());
    }

    #[test]
    fn an_engine_that_would_drop_limits_is_a_problem() {
        let rootless_v1 = EngineFacts {
            rootless: true,
            cgroup_version: "1".to_string(),
            memory_limit: true,
            pids_limit: true,
            ..podman("runc", "1")
        };
        let check = limits_check(&rootless_v1).expect("a problem");
        assert_eq!(check.status, Status::Problem);
        assert!(check.detail.contains("rootless Podman, cgroup v1"), "{check:?}");
        assert!(limits_check(&podman("runc", "1")).is_none());
    }
}
