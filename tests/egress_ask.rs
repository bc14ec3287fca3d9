//! Asking the user about a host outside a sandbox's grants (issue #14,
//! MCP elicitation) with rmcp's client: allow once, allow for the sandbox,
//! allow always (added to `egress.allow` in the config file), decline, no
//! answer within `egress.ask_timeout_s`, and a client without the
//! capability.

mod common;

use common::origin::{Origin, note, python_fetch, stdout};
use common::{
    TestSession, execute_with, require_docker, session, start_server_process, start_server_with_handler, unique_name,
};
use rmcp::model::{
    ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult, ElicitationAction, ErrorData, Implementation,
};
use rmcp::service::RequestContext;
use rmcp::{ClientHandler, RoleClient};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the test's user answers, in order.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Accept(&'static str),
    Decline,
    Silent,
}

#[derive(Clone, Default)]
struct User {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    questions: Arc<Mutex<Vec<String>>>,
}

impl User {
    fn will(&self, answer: Answer) {
        self.answers.lock().unwrap().push_back(answer);
    }

    fn questions(&self) -> Vec<String> {
        self.questions.lock().unwrap().clone()
    }
}

impl ClientHandler for User {
    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let ElicitRequestParams::FormElicitationParams {
            message,
            requested_schema,
            ..
        } = request
        else {
            return Err(ErrorData::invalid_params("only forms are expected", None));
        };
        let schema = serde_json::to_value(&requested_schema).unwrap_or_default();
        self.questions.lock().unwrap().push(format!("{message} {schema}"));
        let answer = self.answers.lock().unwrap().pop_front().unwrap_or(Answer::Decline);
        match answer {
            Answer::Accept(choice) => {
                Ok(ElicitResult::new(ElicitationAction::Accept).with_content(json!({"allow": choice})))
            }
            Answer::Decline => Ok(ElicitResult::new(ElicitationAction::Decline)),
            Answer::Silent => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(ElicitResult::new(ElicitationAction::Decline))
            }
        }
    }

    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        capabilities.elicitation = Some(Default::default());
        ClientConfig::new(capabilities, Implementation::new("egress-ask-test", "1.0"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_is_asked_about_hosts_outside_the_grants() {
    require_docker().await;
    let origin = Origin::start();
    // The origin is not in egress.allow: reaching it needs the user's yes
    // (allow_private only lets the proxy connect to its private address).
    let env = [
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_EGRESS_ALLOW_PRIVATE", origin.address.as_str()),
        ("MULTILANG_SANDBOX_EGRESS_ASK_TIMEOUT_S", "3"),
    ];
    let user = User::default();
    let (client, _) = start_server_with_handler(user.clone(), &env).await;
    let once = TestSession::adopt(unique_name("ask-once"));
    session(
        &client,
        json!({"action": "create", "name": once, "language": "python", "network": []}),
    )
    .await;
    let run = |name: &TestSession| json!({"language": "python", "session": name.as_str(), "code": python_fetch(&origin.url())});
    let host = format!("{}:8080", origin.address);

    // Allow once: this connection, and the next one is asked again.
    user.will(Answer::Accept("once"));
    let first = execute_with(&client, run(&once)).await;
    assert_eq!(stdout(&first).trim(), "status 200 origin-says-hello", "{first}");
    let questions = user.questions();
    assert_eq!(questions.len(), 1, "{questions:?}");
    assert!(
        questions[0].contains(&format!("session `{once}`")) && questions[0].contains(&host),
        "{questions:?}"
    );
    assert!(
        questions[0].contains("\"once\"") && questions[0].contains("\"sandbox\""),
        "{questions:?}"
    );
    // Decline.
    user.will(Answer::Decline);
    let declined = execute_with(&client, run(&once)).await;
    assert!(stdout(&declined).starts_with("status 403"), "{declined}");
    assert!(stdout(&declined).contains("the user declined it"), "{declined}");
    assert!(note(&declined).contains(&host), "{declined}");
    assert_eq!(user.questions().len(), 2);
    // No answer within egress.ask_timeout_s.
    user.will(Answer::Silent);
    let silent = execute_with(&client, run(&once)).await;
    assert!(stdout(&silent).contains("did not answer within 3 s"), "{silent}");

    // Allow for the sandbox: granted from then on, without asking, and
    // listed with the session.
    let kept = TestSession::adopt(unique_name("ask-kept"));
    session(
        &client,
        json!({"action": "create", "name": kept, "language": "python", "network": []}),
    )
    .await;
    user.will(Answer::Accept("sandbox"));
    let asked = user.questions().len();
    let approved = execute_with(&client, run(&kept)).await;
    assert_eq!(stdout(&approved).trim(), "status 200 origin-says-hello", "{approved}");
    let again = execute_with(&client, run(&kept)).await;
    assert_eq!(stdout(&again).trim(), "status 200 origin-says-hello", "{again}");
    assert_eq!(
        user.questions().len(),
        asked + 1,
        "asked again after allowing for the sandbox"
    );
    let got = session(&client, json!({"action": "get", "name": kept})).await;
    assert_eq!(got["sessions"][0]["network"], json!([host]), "{got}");
    // The other session did not gain it.
    user.will(Answer::Decline);
    let other = execute_with(&client, run(&once)).await;
    assert!(stdout(&other).starts_with("status 403"), "{other}");

    // A client without elicitation: refused at once, with the note.
    let (plain, _) = start_server_process(&env).await;
    let unasked = execute_with(&plain, run(&once)).await;
    assert!(stdout(&unasked).starts_with("status 403"), "{unasked}");
    assert!(note(&unasked).contains("egress.allow"), "{unasked}");
    drop(plain);
    drop(client);
}

/// The config file's text once `part` is in it (the server writes it just
/// after it lets the connection through).
async fn file_with(path: &std::path::Path, part: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(part) || tokio::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The audit log's egress events for `session`.
fn egress_events(session: &str) -> Vec<Value> {
    let audit = std::fs::read_to_string(common::test_audit_log()).unwrap_or_default();
    audit
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["type"] == "egress" && event["session"] == json!(session))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_adds_the_host_to_the_config_file_and_to_this_server() {
    require_docker().await;
    let origin = Origin::start();
    let folder = std::env::temp_dir().join(unique_name("ask-always-config"));
    std::fs::create_dir_all(&folder).unwrap();
    let config = folder.join("config.toml");
    let users_own = "# the user's own file\nmemory_mb = 512 # kept as written\n";
    std::fs::write(&config, users_own).unwrap();
    let config_text = config.display().to_string();
    let env = [
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_EGRESS_ALLOW_PRIVATE", origin.address.as_str()),
        ("MULTILANG_SANDBOX_CONFIG", config_text.as_str()),
    ];
    let user = User::default();
    let (client, _) = start_server_with_handler(user.clone(), &env).await;
    let host = origin.allow();
    let run = |name: &TestSession| json!({"language": "python", "session": name.as_str(), "code": python_fetch(&origin.url())});

    // Always: the question names the file, the host is reached now.
    let first = TestSession::adopt(unique_name("ask-always"));
    session(
        &client,
        json!({"action": "create", "name": first, "language": "python", "network": []}),
    )
    .await;
    user.will(Answer::Accept("always"));
    let reached = execute_with(&client, run(&first)).await;
    assert_eq!(stdout(&reached).trim(), "status 200 origin-says-hello", "{reached}");
    let questions = user.questions();
    assert_eq!(questions.len(), 1, "{questions:?}");
    assert!(
        questions[0].contains("\"always\"")
            && questions[0].contains(&format!(
                "add `{host}` to egress.allow in the config file {config_text}"
            )),
        "{questions:?}"
    );
    // The config file has it, the user's lines as they were.
    let text = file_with(&config, &host).await;
    assert_eq!(text, format!("{users_own}\n[egress]\nallow = [\"{host}\"]\n"));
    // The sandbox holds it, as with "sandbox"; the audit says who allowed it.
    let got = session(&client, json!({"action": "get", "name": first})).await;
    assert_eq!(got["sessions"][0]["network"], json!([host]), "{got}");
    let events = egress_events(first.as_str());
    assert!(
        events
            .iter()
            .any(|event| event["allowed"] == json!(true) && event["rule"] == "the user (always)"),
        "{events:?}"
    );

    // A later session that requests it is granted, and reaches it, unasked.
    let later = TestSession::adopt(unique_name("ask-later"));
    session(
        &client,
        json!({"action": "create", "name": later, "language": "python", "network": [host]}),
    )
    .await;
    let unasked = execute_with(&client, run(&later)).await;
    assert_eq!(stdout(&unasked).trim(), "status 200 origin-says-hello", "{unasked}");
    assert_eq!(user.questions().len(), 1, "asked again after allowing always");
    drop(client);
    std::fs::remove_dir_all(&folder).unwrap();
}
