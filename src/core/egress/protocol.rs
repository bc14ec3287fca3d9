//! The messages between the server and the egress proxy (protocol v1,
//! specified in `images/egress/egress_proxy.py`'s docstring): newline-
//! delimited JSON over the proxy container's attached stdin and stdout.

use serde::{Deserialize, Serialize};

/// The protocol version this server speaks.
pub const PROTOCOL: u32 = 1;

/// What the proxy sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProxyMessage {
    /// Listening; sent once.
    Ready { protocol: u32, listen: String },
    /// A new connection's request, before any name lookup.
    Ask(Ask),
    /// A connection ended (once for every ask).
    Closed(Closed),
}

/// "May the sandbox at `client`, which reached the proxy at `via`, open
/// `host:port`?"
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Ask {
    pub id: String,
    pub client: String,
    pub via: String,
    pub method: String,
    pub host: String,
    pub port: u16,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Closed {
    pub id: String,
    pub session: Option<String>,
    pub host: String,
    pub port: u16,
    /// The last address tried or refused (none when nothing resolved).
    pub address: Option<String>,
    /// The decision and the address check let it through and the origin
    /// was connected.
    pub allowed: bool,
    /// Why it was refused or cut; none when it ended normally.
    pub reason: Option<String>,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration_ms: u64,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The networks and addresses the proxy may reach although they are
    /// not global, and how long a connection waits for its decision.
    Configure {
        allow_private: Vec<String>,
        ask_timeout_ms: u64,
    },
    Decision(DecisionMessage),
}

/// The answer to one [`Ask`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionMessage {
    pub id: String,
    pub allow: bool,
    /// Who the connection is counted against (an allowed one always has it).
    pub session: Option<String>,
    /// The session's remaining byte budget (allowed connections only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_bytes: Option<u64>,
    /// The host matched a host entry of `egress.allow_private`: it may
    /// resolve to a non-global address.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
    /// One line, shown to the program in the proxy's 403 (refusals only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The ask's host and port, repeated so the proxy refuses a decision
    /// meant for another connection.
    pub host: String,
    pub port: u16,
}

impl ServerMessage {
    /// The message as one line of JSON (without the newline).
    pub fn to_line(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn proxy_messages_read_as_the_proxy_writes_them() {
        let ask: ProxyMessage = serde_json::from_value(json!({"type": "ask", "id": "c-1f2e3d4c-17",
            "client": "172.30.0.3", "via": "172.30.0.2", "method": "CONNECT", "host": "api.github.com",
            "port": 443}))
        .unwrap();
        assert!(matches!(ask, ProxyMessage::Ask(Ask { port: 443, .. })));
        let closed: ProxyMessage = serde_json::from_value(json!({"type": "closed", "id": "c-1", "session": null,
            "host": "example.com", "port": 443, "address": null, "allowed": false, "reason": "refused",
            "bytes_up": 0, "bytes_down": 0, "duration_ms": 3}))
        .unwrap();
        assert!(matches!(closed, ProxyMessage::Closed(Closed { allowed: false, .. })));
        let ready: ProxyMessage =
            serde_json::from_value(json!({"type": "ready", "protocol": 1, "listen": "0.0.0.0:3128"})).unwrap();
        assert_eq!(
            ready,
            ProxyMessage::Ready {
                protocol: 1,
                listen: "0.0.0.0:3128".into()
            }
        );
    }

    #[test]
    fn decisions_carry_only_the_fields_that_apply() {
        let allow = ServerMessage::Decision(DecisionMessage {
            id: "c-1".into(),
            allow: true,
            session: Some("calc".into()),
            budget_bytes: Some(10),
            private: false,
            reason: None,
            host: "example.org".into(),
            port: 443,
        });
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&allow.to_line()).unwrap(),
            json!({"type": "decision", "id": "c-1", "allow": true, "session": "calc", "budget_bytes": 10,
                "host": "example.org", "port": 443})
        );
        let configure = ServerMessage::Configure {
            allow_private: vec!["10.9.0.0/16".into()],
            ask_timeout_ms: 60_000,
        };
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&configure.to_line()).unwrap(),
            json!({"type": "configure", "allow_private": ["10.9.0.0/16"], "ask_timeout_ms": 60000})
        );
    }
}
