//! Asking the user, through the MCP client's elicitation, whether a
//! sandbox may reach a host outside its grants (issue #14): the form (allow
//! once, or for the sandbox; declining refuses) and how each answer, and
//! no answer, becomes an [`Approval`].

use crate::core::egress::{Approval, Asker, Question, UserAsker};
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
                requested_schema: form(),
            };
            match peer.create_elicitation_with_timeout(params, Some(limit)).await {
                Ok(result) => match result.action {
                    ElicitationAction::Accept => {
                        let chosen = result.content.as_ref().and_then(|content| content[FIELD].as_str());
                        match chosen {
                            Some(ONCE) => Approval::Once,
                            Some(FOR_SANDBOX) => Approval::ForSandbox,
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

/// `{allow: "once" | "sandbox"}`, with titles the client shows.
fn form() -> ElicitationSchema {
    let values = || vec![ONCE.to_string(), FOR_SANDBOX.to_string()];
    let titles = vec![
        "Allow this connection once".to_string(),
        "Allow this host and port for the rest of this sandbox's life".to_string(),
    ];
    // Two titles for two values: the titled form always builds.
    let choices = EnumSchema::builder(values())
        .enum_titles(titles)
        .unwrap_or_else(|_| EnumSchema::builder(values()))
        .description("How long to allow it")
        .build();
    ElicitationSchema::builder()
        .required_enum_schema(FIELD, choices)
        .build_unchecked()
}
