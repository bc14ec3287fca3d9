//! How long known clients let a tool call run before they give up on it,
//! so that an execute becomes a job before its client cuts it. No client
//! declares its request timeout in the protocol today, so this is a table
//! of the clients we know, by the name they give at `initialize`.

use rmcp::RoleServer;
use rmcp::service::RequestContext;
use std::time::Duration;

/// Time between turning an execute into a job and the client's own limit:
/// the answer must travel and the client's clock started earlier.
const MARGIN: Duration = Duration::from_secs(15);

/// Clients whose request timeout is known: the `clientInfo.name` they send
/// (compared without case) and their limit.
const KNOWN: &[(&str, Duration)] = &[
    // Claude Desktop cancels a tool call after about a minute.
    ("claude-ai", Duration::from_secs(60)),
    // The MCP Inspector (CLI, web and terminal clients) keeps the
    // TypeScript SDK's default request timeout, 60 s.
    ("inspector-cli", Duration::from_secs(60)),
    ("mcp-inspector", Duration::from_secs(60)),
    ("mcp inspector", Duration::from_secs(60)),
    ("mcp-inspector-tui", Duration::from_secs(60)),
];

/// The name the client of this call gave at `initialize`.
pub fn client_name(context: &RequestContext<RoleServer>) -> Option<String> {
    context.peer.peer_info().map(|info| info.client_info.name.clone())
}

/// The request timeout of the client called `name`, when known.
pub fn known_limit(name: &str) -> Option<Duration> {
    KNOWN
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|(_, limit)| *limit)
}

/// The detach deadline for a call from the client called `client`:
/// `asked` (the call's own `detach_after`) or else `configured`, and for a
/// client with a known limit never later than that limit allows. Zero
/// stays zero: the call, or the user, chose to wait to the end.
pub fn detach_after(asked: Option<Duration>, configured: Duration, client: Option<&str>) -> Duration {
    let chosen = asked.unwrap_or(configured);
    match client.and_then(known_limit) {
        Some(limit) if !chosen.is_zero() => chosen.min(limit.saturating_sub(MARGIN).max(Duration::from_secs(1))),
        _ => chosen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_clients_bring_the_deadline_under_their_limit() {
        let s = Duration::from_secs;
        assert_eq!(detach_after(None, s(45), Some("claude-ai")), s(45));
        assert_eq!(detach_after(None, s(120), Some("Claude-AI")), s(45));
        assert_eq!(detach_after(Some(s(100)), s(45), Some("inspector-cli")), s(45));
        assert_eq!(detach_after(Some(s(3)), s(45), Some("claude-ai")), s(3));
        // 0, the call's or the user's, waits to the end.
        assert_eq!(detach_after(None, s(0), Some("claude-ai")), s(0));
        assert_eq!(detach_after(Some(s(0)), s(45), Some("claude-ai")), s(0));
        assert_eq!(detach_after(None, s(120), Some("some-other-client")), s(120));
        assert_eq!(detach_after(None, s(120), None), s(120));
    }
}
