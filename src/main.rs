//! Command line of multilang-sandbox: `serve` (the stdio MCP server, the
//! default) and `images build`. Stdout belongs to the MCP protocol in serve
//! mode; every log line goes to stderr.

use clap::{Parser, Subcommand};
use multilang_sandbox::config::Config;
use multilang_sandbox::core::Executor;
use multilang_sandbox::docker::DockerEngine;
use multilang_sandbox::images::ImageBuilder;
use multilang_sandbox::images::templates::{self, TemplateBase};
use multilang_sandbox::mcp::tasks::TaskRegistry;
use multilang_sandbox::mcp::{SandboxServer, http};
use multilang_sandbox::security::audit::{AuditEvent, AuditLog};
use multilang_sandbox::security::policy::{self, PolicyMode};
use rmcp::ServiceExt;
use std::process::ExitCode;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "multilang-sandbox",
    version,
    about = "MCP server that runs code in Docker sandboxes"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP over stdin/stdout (what MCP clients start; the default),
    /// or over streamable HTTP with --http.
    Serve {
        /// Serve MCP over HTTP at http://ADDRESS/mcp instead of stdio
        /// [default address: 127.0.0.1:8765]. Clients must send
        /// `Authorization: Bearer $MULTILANG_SANDBOX_HTTP_TOKEN`.
        #[arg(long, value_name = "ADDRESS", num_args = 0..=1, default_missing_value = http::DEFAULT_ADDRESS)]
        http: Option<std::net::SocketAddr>,
        /// Serve HTTP without a token (development only; loopback addresses only).
        #[arg(long, requires = "http")]
        no_auth: bool,
    },
    /// Manage the sandbox images.
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
    /// Manage the package cache (images of installed package sets).
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// The tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Check Docker, the images, seccomp, the runtime, the audit log and the
    /// MCP client configurations; print each problem with its fix. Exits 0
    /// only when all is well.
    Doctor,
    /// The configuration (config file and MULTILANG_SANDBOX_* variables).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration as TOML, each value with where it
    /// came from (environment, config file or default).
    Show,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain; exits non-zero and names the first bad line
    /// when any line was edited, removed or reordered.
    Verify,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Remove cached package images beyond the newest N per language, then
    /// the oldest until the total fits the size bound.
    Prune {
        /// Newest images to keep per language [default: MULTILANG_SANDBOX_CACHE_KEEP or 5].
        #[arg(long)]
        keep: Option<usize>,
        /// Total size bound in MiB [default: MULTILANG_SANDBOX_CACHE_MAX_MB or 10240].
        #[arg(long)]
        max_mb: Option<u64>,
    },
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Build the sandbox images that are missing or out of date, then the user's templates.
    Build {
        /// Rebuild every image even when it is up to date.
        #[arg(long)]
        force: bool,
        /// Also build the large data-science Python image (`ml: true`).
        #[arg(long)]
        ml: bool,
    },
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let loaded = match Config::load(&|key| std::env::var(key).ok()) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("multilang-sandbox: {error}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Config {
        command: ConfigCommand::Show,
    }) = cli.command
    {
        print!("{}", loaded.render());
        return ExitCode::SUCCESS;
    }
    let config = Arc::new(loaded.config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("multilang-sandbox: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve {
            http: None,
            no_auth: false,
        }) {
            Command::Serve { http: None, .. } => serve(config).await,
            Command::Serve {
                http: Some(address),
                no_auth,
            } => {
                let longest_call = std::time::Duration::from_millis(config.max_timeout_ms)
                    .max(multilang_sandbox::core::cache::INSTALL_TIMEOUT);
                let options = http::HttpOptions {
                    address,
                    token: std::env::var(http::TOKEN_VARIABLE)
                        .ok()
                        .map(|token| token.trim().to_string())
                        .filter(|token| !token.is_empty()),
                    no_auth,
                    session_idle: longest_call + std::time::Duration::from_secs(5 * 60),
                };
                serve_over_http(config, options).await
            }
            Command::Images {
                command: ImagesCommand::Build { force, ml },
            } => build_images(config.clone(), force, ml).await,
            Command::Cache {
                command: CacheCommand::Prune { keep, max_mb },
            } => prune_cache(config, keep, max_mb).await,
            Command::Audit {
                command: AuditCommand::Verify,
            } => verify_audit(&config),
            Command::Config { .. } => Ok(()),
            Command::Doctor => run_doctor(&config).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("multilang-sandbox: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = EnvFilter::try_from_env("MULTILANG_SANDBOX_LOG").unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

/// Creates the executor, records the start and starts background work.
fn start_executor(config: &Arc<Config>, transport: &str) -> (Arc<Executor>, String) {
    let instance_id = uuid::Uuid::new_v4().to_string();
    tracing::info!(instance = %instance_id, version = env!("CARGO_PKG_VERSION"), transport, "multilang-sandbox starting");
    if config.policy != PolicyMode::Off {
        // Otherwise the first execute would compile the code policy's rules.
        policy::compile();
    }
    let engine = Arc::new(DockerEngine::new(&config.state_dir));
    let executor = Arc::new(Executor::new(engine, config.clone(), instance_id.clone()));
    executor.audit().record(AuditEvent::ServerStart {
        instance: instance_id.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        transport: transport.to_string(),
        seccomp: config.seccomp.name(),
        policy: config.policy.name().to_string(),
        pid: std::process::id(),
    });
    executor.start_background_tasks();
    (executor, instance_id)
}

/// Stops background work, removes idle pooled containers, records the stop.
async fn stop_executor(executor: &Executor, instance_id: &str) {
    executor.shutdown().await;
    executor.audit().record(AuditEvent::ServerStop {
        instance: instance_id.to_string(),
    });
    executor.audit().flush();
}

async fn serve_over_http(config: Arc<Config>, options: http::HttpOptions) -> Result<(), String> {
    options.validate().map_err(|error| error.to_string())?;
    let (executor, instance_id) = start_executor(&config, "http");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        signal.cancel();
    });
    let tasks = TaskRegistry::new(config.jobs.keep);
    let stopped_tasks = tasks.clone();
    let make_server = {
        let executor = executor.clone();
        let instance_id = instance_id.clone();
        move || SandboxServer::new(executor.clone(), instance_id.clone(), tasks.clone())
    };
    let served = http::serve_http(options, make_server, shutdown).await;
    stopped_tasks.shutdown();
    stop_executor(&executor, &instance_id).await;
    served.map_err(|error| error.to_string())
}

/// Ctrl-C or SIGTERM.
async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut terminate) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn serve(config: Arc<Config>) -> Result<(), String> {
    let (executor, instance_id) = start_executor(&config, "stdio");
    let stopped_instance = instance_id.clone();
    let tasks = TaskRegistry::new(config.jobs.keep);
    let server = SandboxServer::new(executor.clone(), instance_id, tasks.clone());
    let front = multilang_sandbox::mcp::stdio::front(tokio::io::stdin(), tokio::io::stdout());
    let service = server
        .serve((front.rmcp_reads, front.rmcp_writes))
        .await
        .map_err(|error| format!("MCP session failed to start: {error}"))?;
    let reason = service.waiting().await;
    tracing::info!(?reason, "MCP session ended");
    tasks.shutdown();
    // rmcp has dropped its writer: let the last replies reach stdout.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), front.output_task).await;
    stop_executor(&executor, &stopped_instance).await;
    Ok(())
}

async fn run_doctor(config: &Config) -> Result<(), String> {
    let binary = std::env::current_exe()
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| "multilang-sandbox".into());
    let report = multilang_sandbox::doctor::run(config, &binary).await;
    print!("{}", report.render());
    if report.healthy() {
        Ok(())
    } else {
        Err("doctor found problems (see above)".into())
    }
}

fn verify_audit(config: &Config) -> Result<(), String> {
    let Some(path) = config.audit.path.as_ref() else {
        return Err("the audit log is off (MULTILANG_SANDBOX_AUDIT_LOG=off); nothing to verify".into());
    };
    let log = AuditLog::new(config.audit.clone());
    let report = log.verify().map_err(|error| error.to_string())?;
    match report.first_bad {
        None => {
            eprintln!(
                "audit log {}: intact, {} lines in {} file(s), sequence {} to {}",
                path.display(),
                report.lines,
                report.files.len(),
                report.first_seq.unwrap_or(0),
                report.last_seq.unwrap_or(0)
            );
            Ok(())
        }
        Some(bad) => Err(format!(
            "audit log is BROKEN at {} line {}: {}",
            bad.file, bad.line, bad.reason
        )),
    }
}

async fn build_images(config: Arc<Config>, force: bool, ml: bool) -> Result<(), String> {
    let engine = Arc::new(DockerEngine::new(&config.state_dir));
    let engine_description = engine.describe().await.map_err(|e| e.to_string())?;
    eprintln!("Building sandbox images on {engine_description}");
    let found = templates::read_all(&config);
    // A template on the data-science image needs it built first.
    let ml = ml
        || found
            .iter()
            .any(|(_, source)| matches!(source, Ok(source) if source.template.base == TemplateBase::PythonMl));
    let report = ImageBuilder::new(engine.as_ref(), &config)
        .build_all(force, ml)
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "Images ready: {} built, {} already up to date.",
        report.built.len(),
        report.up_to_date.len()
    );
    if found.is_empty() {
        return Ok(());
    }
    eprintln!("Templates in {}:", config.templates_dir.display());
    let executor = Executor::new(engine, config.clone(), uuid::Uuid::new_v4().to_string());
    let mut failed = 0;
    for (name, source) in found {
        let built = match source {
            Ok(source) => executor
                .templates()
                .ensure_built(&source, force, |step| eprintln!("  {name:<11} {step}"))
                .await
                .map(|took| (source.tag, took)),
            Err(error) => Err(error),
        };
        match built {
            Ok((tag, Some(took))) => eprintln!("  {name:<11} built {tag} in {took:.1?}"),
            Ok((tag, None)) => eprintln!("  {name:<11} up to date ({tag})"),
            Err(error) => {
                failed += 1;
                eprintln!("  {name:<11} FAILED: {error}");
            }
        }
    }
    executor.shutdown().await;
    if failed > 0 {
        return Err(format!("{failed} template(s) could not be built (see above)"));
    }
    Ok(())
}

async fn prune_cache(config: Arc<Config>, keep: Option<usize>, max_mb: Option<u64>) -> Result<(), String> {
    let keep = keep.unwrap_or(config.cache_keep_per_language);
    let max_bytes = (max_mb.unwrap_or(config.cache_max_mb) * 1024 * 1024) as i64;
    let engine = Arc::new(DockerEngine::new(&config.state_dir));
    let executor = Executor::new(engine, config, uuid::Uuid::new_v4().to_string());
    let removed = executor
        .cache()
        .prune(keep, max_bytes)
        .await
        .map_err(|e| e.to_string())?;
    let stats = executor.cache().stats().await.map_err(|e| e.to_string())?;
    for entry in &removed {
        eprintln!(
            "removed {} ({}: {})",
            entry.image,
            entry.language,
            entry.packages.join(" ")
        );
    }
    eprintln!(
        "Removed {} cached image(s); {} left, {:.1} MB.",
        removed.len(),
        stats.images,
        stats.total_size_bytes as f64 / 1e6
    );
    Ok(())
}
