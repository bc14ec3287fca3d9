//! Security layers around the container boundary: seccomp profiles.

pub mod seccomp;
