//! Execution core: the runner protocol and connections, the launcher that
//! starts sandbox containers, the warm pool, sessions, and the executor that
//! ties them together.

pub mod artifacts;
pub mod background;
pub mod cache;
pub mod connection;
pub mod egress;
pub mod error;
pub mod executor;
pub mod files;
pub mod jobs;
pub mod launcher;
pub mod pool;
pub mod protocol;
pub mod run;
pub mod session;
pub mod session_store;
pub mod templates;
pub mod watch;

pub use cache::{CacheEntry, CacheStats};
pub use executor::Executor;
pub use pool::PoolLanguageStats;
pub use run::{ExecuteRequest, ExecutionOutcome};
pub use session::SessionInfo;
pub use watch::{Update, Watch};
