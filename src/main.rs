//! Command line of multilang-sandbox: `serve` (the stdio MCP server, the
//! default) and `images build`. Stdout belongs to the MCP protocol in serve
//! mode; every log line goes to stderr.

use clap::{Parser, Subcommand};
use multilang_sandbox::config::Config;
use multilang_sandbox::core::Executor;
use multilang_sandbox::docker::DockerEngine;
use multilang_sandbox::images::ImageBuilder;
use multilang_sandbox::mcp::SandboxServer;
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
    /// Serve MCP over stdin/stdout (what MCP clients start; the default).
    Serve,
    /// Manage the sandbox images.
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Build the sandbox images that are missing or out of date.
    Build {
        /// Rebuild every image even when it is up to date.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => Arc::new(config),
        Err(error) => {
            eprintln!("multilang-sandbox: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("multilang-sandbox: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Images {
                command: ImagesCommand::Build { force },
            } => build_images(&config, force).await,
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
    let filter = EnvFilter::try_from_env("MULTILANG_SANDBOX_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

async fn serve(config: Arc<Config>) -> Result<(), String> {
    let instance_id = uuid::Uuid::new_v4().to_string();
    tracing::info!(instance = %instance_id, version = env!("CARGO_PKG_VERSION"), "multilang-sandbox starting");
    let engine = Arc::new(DockerEngine::new());
    let executor = Arc::new(Executor::new(engine, config, instance_id.clone()));
    executor.start_background_tasks();
    let server = SandboxServer::new(executor.clone(), instance_id);
    let service = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|error| format!("MCP session failed to start: {error}"))?;
    let reason = service.waiting().await;
    tracing::info!(?reason, "MCP session ended");
    executor.shutdown().await;
    Ok(())
}

async fn build_images(config: &Config, force: bool) -> Result<(), String> {
    let engine = DockerEngine::new();
    let engine_description = engine.describe().await.map_err(|e| e.to_string())?;
    eprintln!("Building sandbox images on {engine_description}");
    let report = ImageBuilder::new(&engine, config)
        .build_all(force)
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "Images ready: {} built, {} already up to date.",
        report.built.len(),
        report.up_to_date.len()
    );
    Ok(())
}
