//! Security layers around the container boundary: seccomp profiles, the
//! tamper-evident audit log, and the code policy (a tripwire, not a wall).

pub mod audit;
pub mod policy;
pub mod seccomp;
