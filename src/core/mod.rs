//! Execution core: the runner protocol and the executor that runs one piece
//! of code in a fresh sandbox container.

pub mod executor;
pub mod protocol;

pub use executor::{ExecuteRequest, ExecutionOutcome, Executor};
