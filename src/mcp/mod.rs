//! The MCP surface: seven tools as thin adapters (parse arguments, call the
//! core, shape the result), and session files as resources. Nothing here
//! talks to Docker directly.

pub mod client_limits;
pub mod elicitation;
pub mod http;
pub mod message_check;
pub mod progress;
pub mod resources;
mod server;
pub mod stdio;
pub mod tasks;
pub mod tools;

pub use server::SandboxServer;
