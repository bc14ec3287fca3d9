//! Security layers around the container boundary: seccomp profiles, the
//! tamper-evident audit log, the code policy (a tripwire, not a wall), and
//! the network egress policy.

pub mod audit;
pub mod egress;
pub mod policy;
pub mod seccomp;
