//! Session files as MCP resources, through the real binary and Docker: the
//! template, `resources/list` showing a session's /outputs, `resources/read`
//! returning text and binary content exactly, clear errors for escapes,
//! unknown sessions and files over the size cap, resource links for the
//! files an execute could not attach, and `notifications/resources/updated`
//! for a subscribed file.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use rmcp::model::{
    ReadResourceRequestParams, ResourceContents, ResourceUpdatedNotificationParam, SubscribeRequestParams,
};
use rmcp::service::{NotificationContext, ServiceError};
use rmcp::{ClientHandler, RoleClient};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A client that keeps the resource updates it is sent.
#[derive(Clone, Default)]
struct Watcher {
    updated: Arc<Mutex<Vec<String>>>,
}

impl ClientHandler for Watcher {
    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.updated.lock().unwrap().push(params.uri);
    }
}

const LIMIT: Duration = Duration::from_secs(60);

async fn read(client: &rmcp::Peer<RoleClient>, uri: &str) -> Result<ResourceContents, ServiceError> {
    let result = tokio::time::timeout(LIMIT, client.read_resource(ReadResourceRequestParams::new(uri)))
        .await
        .expect("resources/read answers in time")?;
    assert_eq!(result.contents.len(), 1, "{result:?}");
    Ok(result.contents.into_iter().next().unwrap())
}

async fn read_error(client: &rmcp::Peer<RoleClient>, uri: &str) -> String {
    match read(client, uri).await {
        Ok(contents) => panic!("{uri} should be refused, got {contents:?}"),
        Err(error) => error.to_string(),
    }
}

/// A 1x1 PNG, as bytes.
const PNG_HEX: &str = "89504e470d0a1a0a0000000d4948445200000001000000010806000000\
1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082";

fn png() -> Vec<u8> {
    (0..PNG_HEX.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&PNG_HEX[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn session_files_are_resources() {
    require_docker().await;
    let watcher = Watcher::default();
    let (client, _) = start_server_with_handler(
        watcher.clone(),
        &[
            ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
            ("MULTILANG_SANDBOX_MAX_ARTIFACTS", "1"),
            ("MULTILANG_SANDBOX_MAX_FILE_BYTES", "100000"),
        ],
    )
    .await;
    let name = create_session(&client, "resources", "python").await;
    let session = name.as_str();

    let templates = tokio::time::timeout(LIMIT, client.list_all_resource_templates())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(templates.len(), 1, "{templates:?}");
    assert_eq!(templates[0].uri_template, "sandbox://sessions/{name}/{+path}");

    // One execute writes four files; only one artifact is returned (the
    // count cap is 1), the others come as links.
    let code = format!(
        "import pathlib\n\
         out = pathlib.Path('/outputs')\n\
         (out / 'a-notes.txt').write_text('héllo\\nwörld\\n')\n\
         (out / 'b-dot.png').write_bytes(bytes.fromhex('{PNG_HEX}'))\n\
         (out / 'c-table.csv').write_text('x,y\\n1,2\\n')\n\
         (out / 'd-big.bin').write_bytes(bytes(200000))\n\
         print('written')"
    );
    let result = call(
        &client,
        "sandbox_execute",
        json!({"language": "python", "code": code, "session": session}),
    )
    .await;
    let text = text_of(&result);
    assert_ne!(result.is_error, Some(true), "{text}");
    let links: Vec<(String, Option<String>)> = result
        .content
        .iter()
        .filter_map(|block| block.as_resource_link())
        .map(|link| (link.uri.clone(), link.mime_type.clone()))
        .collect();
    let uri = |file: &str| format!("sandbox://sessions/{session}/outputs/{file}");
    assert_eq!(
        links,
        [
            (uri("a-notes.txt"), Some("text/plain".to_string())),
            (uri("b-dot.png"), Some("image/png".to_string())),
            (uri("c-table.csv"), Some("text/csv".to_string())),
            (uri("d-big.bin"), Some("application/octet-stream".to_string())),
        ],
        "the one reported file (a text file, not attached) and the three beyond the cap are linked: {text}"
    );
    assert!(text.contains("linked as resources"), "{text}");

    // resources/list shows the session's /outputs with types and sizes.
    let listed = tokio::time::timeout(LIMIT, client.list_all_resources())
        .await
        .unwrap()
        .unwrap();
    let mine: Vec<_> = listed
        .iter()
        .filter(|resource| resource.uri.starts_with(&format!("sandbox://sessions/{session}/")))
        .collect();
    assert_eq!(mine.len(), 4, "{mine:?}");
    let png_entry = mine
        .iter()
        .find(|r| r.uri == uri("b-dot.png"))
        .expect("the PNG is listed");
    assert_eq!(png_entry.name, "b-dot.png");
    assert_eq!(png_entry.mime_type.as_deref(), Some("image/png"));
    assert_eq!(png_entry.size, Some(png().len() as u64));

    // Text comes back as text, binary as base64, both exactly.
    match read(&client, &uri("a-notes.txt")).await.unwrap() {
        ResourceContents::TextResourceContents { text, mime_type, .. } => {
            assert_eq!(text, "héllo\nwörld\n");
            assert_eq!(mime_type.as_deref(), Some("text/plain"));
        }
        other => panic!("expected text, got {other:?}"),
    }
    match read(&client, &uri("b-dot.png")).await.unwrap() {
        ResourceContents::BlobResourceContents { blob, mime_type, .. } => {
            assert_eq!(STANDARD.decode(blob).unwrap(), png());
            assert_eq!(mime_type.as_deref(), Some("image/png"));
        }
        other => panic!("expected a blob, got {other:?}"),
    }
    // A link from the result reads like any resource; the workspace too.
    execute_in(&client, session, "bash", "printf 'id\\n7\\n' > /workspace/data.csv").await;
    match read(&client, &format!("sandbox://sessions/{session}/workspace/data.csv"))
        .await
        .unwrap()
    {
        ResourceContents::TextResourceContents { text, .. } => assert_eq!(text, "id\n7\n"),
        other => panic!("expected text, got {other:?}"),
    }

    // Escapes, unknown sessions, other URIs and files over the cap are refused clearly.
    for escape in ["outputs/../../etc/passwd", "outputs/%2E%2E/%2E%2E/etc/passwd"] {
        let error = read_error(&client, &format!("sandbox://sessions/{session}/{escape}")).await;
        assert!(error.contains("`..`"), "{escape}: {error}");
    }
    let error = read_error(&client, &format!("sandbox://sessions/{session}/etc/passwd")).await;
    assert!(error.contains("outside the session's folders"), "{error}");
    execute_in(&client, session, "bash", "ln -s /etc/passwd /outputs/link").await;
    let error = read_error(&client, &uri("link")).await;
    assert!(error.contains("symbolic link"), "{error}");
    let error = read_error(&client, "sandbox://sessions/no-such-session-xyz/outputs/a.txt").await;
    assert!(
        error.contains("no session named `no-such-session-xyz`") && error.contains("resources/list"),
        "{error}"
    );
    let error = read_error(&client, "file:///etc/passwd").await;
    assert!(error.contains("sandbox://sessions/<session>/<path>"), "{error}");
    let error = read_error(&client, &uri("d-big.bin")).await;
    assert!(
        error.contains("200000 bytes") && error.contains("100000-byte limit"),
        "{error}"
    );
    let error = read_error(&client, &uri("missing.txt")).await;
    assert!(error.contains("does not exist"), "{error}");

    // A subscribed file changed by an execute is announced.
    #[allow(deprecated)]
    let subscribed = client.subscribe(SubscribeRequestParams::new(uri("c-table.csv"))).await;
    subscribed.expect("resources/subscribe is accepted");
    execute_in(
        &client,
        session,
        "python",
        "open('/outputs/c-table.csv', 'w').write('x\\n3\\n')",
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while watcher.updated.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(*watcher.updated.lock().unwrap(), [uri("c-table.csv")]);
    match read(&client, &uri("c-table.csv")).await.unwrap() {
        ResourceContents::TextResourceContents { text, .. } => assert_eq!(text, "x\n3\n"),
        other => panic!("expected text, got {other:?}"),
    }
}
