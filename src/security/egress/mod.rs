//! Network egress policy (issue #14): which hosts a sandbox may reach and
//! which addresses the egress proxy may connect to. This module is the pure
//! decision core: no Docker, no I/O, no configuration reading.
//!
//! The design around it:
//! - **Why a proxy.** A sandbox with network grants joins an internal Docker
//!   network of its own (`--internal`: no route out, and sessions cannot see
//!   each other). The only service it can reach there is the egress proxy,
//!   one container per engine (so a remote engine works), attached to every
//!   session's internal network and to a normal bridge for the way out. Code
//!   reaches the outside only through it (`HTTP_PROXY`/`HTTPS_PROXY`, which
//!   pip, npm, cargo, git and curl honour): HTTPS as a `CONNECT` tunnel
//!   without TLS interception, plain HTTP forwarded with its host checked.
//!   A refusal is an HTTP 403 with a one-line reason.
//! - **Identity.** The proxy reports each connection's source address and the
//!   proxy address it arrived on (each session's network has its own), and
//!   the server maps that to a session. Code runs with every capability
//!   dropped (no `NET_RAW`, no `NET_ADMIN`), so it cannot forge its source
//!   address and never gains another session's grants.
//! - **Who decides.** The server, per connection ([`Policy::decide`]): the
//!   session's grants, then `egress.allow` (the user's standing list), then
//!   the user when asking is possible (MCP elicitation), else a refusal that
//!   names the config key. A model requests hosts with `network: [...]`;
//!   [`Policy::review`] says which requests `egress.allow` covers.
//! - **DNS.** Sandboxes resolve no outside names (DNS is an exfiltration
//!   channel). The proxy resolves, and only once the host is allowed: a
//!   refused host is refused before any lookup. IP literals are reachable
//!   only when granted as that same literal ([`HostPattern`]).
//! - **Address classes.** Whatever an allowed name resolves to is checked
//!   again ([`destination_allowed`]), which stops DNS rebinding: only global
//!   unicast passes by itself; private, link-local (cloud metadata at
//!   169.254.169.254), CGNAT, unique local, documentation and reserved
//!   addresses pass only when `egress.allow_private` names them; loopback,
//!   unspecified, broadcast and multicast never. IPv6 forms that carry an
//!   IPv4 address are judged as that address ([`AddressClass`]).
//! - **What the engine does** (Docker 20.10, tried by hand on this project's
//!   machines): on an `--internal` network a container with every capability
//!   dropped reaches the proxy at the proxy's address on that network, and
//!   the proxy sees the container's own source address; a direct connection
//!   to an outside address times out; the engine's embedded resolver
//!   (`127.0.0.11`, the only `nameserver` in the container) answers names of
//!   containers on that network but no outside names, also to a raw UDP
//!   query. But the host itself owns the network's gateway address, so a
//!   service on the host listening on every address is reachable from the
//!   sandbox there: session networks must be created with
//!   `com.docker.network.bridge.inhibit_ipv4=true` (the bridge gets no host
//!   address; the host was then unreachable at every bridge address while
//!   the proxy still answered).

mod address;
mod allowance;
mod grants;
mod parse;
mod pattern;

#[cfg(test)]
mod tests;

pub use address::{AddressClass, embedded_ipv4};
pub use allowance::{AllowanceError, PrivateAllowance, PrivateEntry, Refusal, destination_allowed};
pub use grants::{Decision, Policy, Review, Rule, Verdict};
pub use parse::PatternError;
pub use pattern::{DEFAULT_PORTS, Host, HostPattern, HostSpec};

/// The config key of the host patterns the model may use.
pub const ALLOW_KEY: &str = "egress.allow";
/// Its environment variable.
pub const ALLOW_ENV: &str = "MULTILANG_SANDBOX_EGRESS_ALLOW";
/// The config key of the non-global networks and hosts the proxy may reach.
pub const ALLOW_PRIVATE_KEY: &str = "egress.allow_private";
/// The config key of whether the user is asked about other hosts.
pub const ASK_KEY: &str = "egress.ask";
/// The config key of the per-sandbox byte budget.
pub const BUDGET_KEY: &str = "egress.budget_mb";
/// The config key of the per-sandbox connection cap.
pub const CONNECTIONS_KEY: &str = "egress.max_connections";
