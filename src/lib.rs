//! multilang-sandbox: an MCP server that runs Python, JavaScript, TypeScript,
//! Go, Rust and Bash inside locked-down Docker containers.
//!
//! Layers, top to bottom: [`mcp`] (the six tools) → [`core`] (execution) →
//! [`runtime`] (one module per language) → [`docker`] (the only module that
//! talks to the Docker engine). [`images`] builds the sandbox images.
//!
//! Locks: state shared between tasks sits behind `parking_lot::Mutex`,
//! held for a few field updates and never across an `.await`; it does not
//! poison, so a panic elsewhere never turns every later call into one.
//! A lock held across an `.await` (a session's turn, the engine client, a
//! runner stream's writer) is a `tokio::sync::Mutex`.

pub mod atomic_file;
pub mod clock;
pub mod config;
pub mod core;
pub mod docker;
pub mod doctor;
pub mod images;
pub mod mcp;
pub mod runtime;
pub mod security;
