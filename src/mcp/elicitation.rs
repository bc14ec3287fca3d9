//! Asking the user, through the MCP client's elicitation, whether a
//! sandbox may reach a host outside its grants (issue #14): the form (allow
//! once, for the sandbox, or always, which adds the host to `egress.allow`
//! in the config file it names; declining refuses) and how each answer,
//! and no answer, becomes an [`Approval`]. Only the user's answer through
//! the client chooses "always"; nothing a model sends can.

use crate::core::egress::{Approval, Asker, Question, UserAsker};
use crate::security::egress::ALLOW_ENV;
use futures::future::BoxFuture;
use rmcp::RoleServer;
use rmcp::model::{ElicitRequestParams, ElicitationAction, ElicitationSchema, EnumSchema};
use rmcp::service::{ElicitationMode, Peer, ServiceError};
use std::sync::Arc;
use std::time::Duration;

/// The form's one field.
const FIELD: &str = "allow";
const ONCE: &str = "once";
const FOR_SANDBOX: &str = "sandbox";
const ALWAYS: &str = "always";

/// Asks the user through one connected client.
pub struct ClientAsker {
    peer: Peer<RoleServer>,
}

impl ClientAsker {
    /// The asker of the client behind `peer`, when it declared form
    /// elicitation (none otherwise: its calls get refusals and notes).
    pub fn for_client(peer: &Peer<RoleServer>) -> UserAsker {
        if !peer.supported_elicitation_modes().contains(&ElicitationMode::Form) {
            return UserAsker(None);
        }
        UserAsker(Some(Arc::new(ClientAsker { peer: peer.clone() })))
    }
}

impl Asker for ClientAsker {
    fn ask(&self, question: Question, limit: Duration) -> BoxFuture<'static, Approval> {
        let peer = self.peer.clone();
        Box::pin(async move {
            let params = ElicitRequestParams::FormElicitationParams {
                meta: None,
                message: question.text(),
                requested_schema: form(&question),
            };
            match peer.create_elicitation_with_timeout(params, Some(limit)).await {
                Ok(result) => match result.action {
                    ElicitationAction::Accept => {
                        let chosen = result.content.as_ref().and_then(|content| content[FIELD].as_str());
                        match chosen {
                            Some(ONCE) => Approval::Once,
                            Some(FOR_SANDBOX) => Approval::ForSandbox,
                            Some(ALWAYS) if always_offered(&question) => Approval::Always,
                            _ => Approval::Refused("the user's answer named no choice".into()),
                        }
                    }
                    ElicitationAction::Decline => Approval::Refused("the user declined it".into()),
                    _ => Approval::Refused("the user dismissed the question".into()),
                },
                Err(ServiceError::Timeout { .. }) => {
                    Approval::Refused(format!("the user did not answer within {} s", limit.as_secs()))
                }
                Err(error) => Approval::Refused(format!("the client could not ask the user ({error})")),
            }
        })
    }
}

/// "Always" is offered when the server knows its config file.
fn always_offered(question: &Question) -> bool {
    question.config.is_some() && question.always_pattern().is_some()
}

/// `{allow: "once" | "sandbox" | "always"}`, with titles the client shows
/// and a description naming what "always" writes where.
fn form(question: &Question) -> ElicitationSchema {
    let mut values = vec![ONCE.to_string(), FOR_SANDBOX.to_string()];
    let mut titles = vec![
        "Allow this connection once".to_string(),
        "Allow this host and port for the rest of this sandbox's life".to_string(),
    ];
    let mut description = "How long to allow it".to_string();
    if let (Some(file), Some(pattern)) = (question.config.as_ref(), question.always_pattern()) {
        let path = file.path.display();
        values.push(ALWAYS.to_string());
        titles.push(format!(
            "Always: allow it, and add `{pattern}` to egress.allow in the config file {path}"
        ));
        description = format!(
            "How long to allow it. \"Always\" allows it for this sandbox now and adds `{pattern}` to egress.allow \
             in the config file {path} (created if missing), so any sandbox may request it without asking, \
             in this server and after restarts; remove it from that file to undo"
        );
        if file.allow_overridden {
            description.push_str(&format!(
                ". Note: {ALLOW_ENV} is set and overrides that file's egress.allow at the next start"
            ));
        }
    }
    // As many titles as values: the titled form always builds.
    let choices = EnumSchema::builder(values.clone())
        .enum_titles(titles)
        .unwrap_or_else(|_| EnumSchema::builder(values))
        .description(description)
        .build();
    ElicitationSchema::builder()
        .required_enum_schema(FIELD, choices)
        .build_unchecked()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileOrigin;
    use crate::core::egress::Owner;

    fn question(config: Option<FileOrigin>, port: u16) -> Question {
        Question {
            owner: Owner::Session("calc".into()),
            host: "api.example.org".into(),
            port,
            config,
        }
    }

    #[test]
    fn always_is_offered_naming_the_config_file_and_what_it_adds() {
        let file = FileOrigin {
            path: "/home/u/.config/multilang-sandbox/config.toml".into(),
            allow_overridden: false,
        };
        let schema = serde_json::to_string(&form(&question(Some(file.clone()), 8443))).unwrap();
        for part in [
            "\"once\"",
            "\"sandbox\"",
            "\"always\"",
            "add `api.example.org:8443` to egress.allow in the config file /home/u/.config/multilang-sandbox/config.toml",
        ] {
            assert!(schema.contains(part), "{part} in {schema}");
        }
        assert!(!schema.contains(ALLOW_ENV), "{schema}");
        let overridden = FileOrigin {
            allow_overridden: true,
            ..file
        };
        let schema = serde_json::to_string(&form(&question(Some(overridden), 443))).unwrap();
        assert!(schema.contains("add `api.example.org` to egress.allow"), "{schema}");
        assert!(
            schema.contains(&format!("{ALLOW_ENV} is set and overrides")),
            "{schema}"
        );
        // No config file known: no "always".
        let schema = serde_json::to_string(&form(&question(None, 443))).unwrap();
        assert!(schema.contains("\"sandbox\"") && !schema.contains("always"), "{schema}");
    }
}
