//! Files and artifacts: sandbox_file_ops round trips through the session's
//! runner (text and binary, in running and paused sessions), escapes refused,
//! size caps, and files written to /outputs returned with the result
//! (matplotlib plots as PNG image content).

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

async fn file_op(client: &Client, arguments: Value) -> Value {
    let result = call(client, "sandbox_file_ops", arguments.clone()).await;
    assert_ne!(
        result.is_error,
        Some(true),
        "sandbox_file_ops {arguments} failed: {}",
        text_of(&result)
    );
    result.structured_content.expect("structured result")
}

async fn file_error(client: &Client, arguments: Value) -> String {
    tool_error_text(client, "sandbox_file_ops", arguments).await
}

fn names(listing: &Value) -> Vec<String> {
    listing["entries"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| e["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn text_and_binary_files_round_trip() {
    let client = start_server().await;
    let name = create_session(&client, "files", "python").await;
    let written = file_op(
        &client,
        json!({"session": name, "operation": "write", "path": "data/notes.txt", "content": "héllo\nwörld\n"}),
    )
    .await;
    assert_eq!(written["path"], "/workspace/data/notes.txt");
    let read = file_op(
        &client,
        json!({"session": name, "operation": "read", "path": "data/notes.txt"}),
    )
    .await;
    assert_eq!(read["content"], "héllo\nwörld\n");

    let bytes: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let encoded = STANDARD.encode(&bytes);
    file_op(&client, json!({"session": name, "operation": "write", "path": "/workspace/blob.bin", "content": encoded, "encoding": "base64"})).await;
    let read = file_op(
        &client,
        json!({"session": name, "operation": "read", "path": "blob.bin", "encoding": "base64"}),
    )
    .await;
    let back = STANDARD.decode(read["content"].as_str().unwrap()).unwrap();
    assert_eq!(Sha256::digest(&back), Sha256::digest(&bytes), "binary content changed");
    let refused = file_error(
        &client,
        json!({"session": name, "operation": "read", "path": "blob.bin"}),
    )
    .await;
    assert!(refused.contains("not UTF-8") && refused.contains("base64"), "{refused}");

    // Code sees files written through file_ops, and the reverse.
    let result = execute_in(
        &client,
        &name,
        "python",
        "print(open('data/notes.txt').read().split()[1])\nopen('from_code.csv', 'w').write('a,b\\n1,2\\n')",
    )
    .await;
    assert_eq!(result["stdout"], "wörld\n", "{result}");
    let read = file_op(
        &client,
        json!({"session": name, "operation": "read", "path": "from_code.csv"}),
    )
    .await;
    assert_eq!(read["content"], "a,b\n1,2\n");
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn list_mkdir_and_delete() {
    let client = start_server().await;
    let name = create_session(&client, "tree", "bash").await;
    file_op(&client, json!({"session": name, "operation": "mkdir", "path": "a/b/c"})).await;
    file_op(
        &client,
        json!({"session": name, "operation": "write", "path": "a/b/file.txt", "content": "12345"}),
    )
    .await;
    let listing = file_op(&client, json!({"session": name, "operation": "list", "path": "a/b"})).await;
    assert_eq!(names(&listing), ["c", "file.txt"]);
    let file = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "file.txt")
        .unwrap()
        .clone();
    assert_eq!(file["kind"], "file");
    assert_eq!(file["size"], 5);
    assert!(file["modified"].as_str().unwrap().ends_with('Z'));
    let result = execute_in(
        &client,
        &name,
        "bash",
        "ls -ld a/b/c | cut -c1; stat -c %U a/b/file.txt",
    )
    .await;
    assert_eq!(result["stdout"], "d\nsandbox\n", "{result}");
    // A folder code made private keeps its mode when file_ops writes into it,
    // mkdir never replaces a file, and deleting a link removes the link only.
    execute_in(
        &client,
        &name,
        "bash",
        "mkdir -m 700 private && echo keep > a/b/kept.txt && ln -s a/b linked",
    )
    .await;
    file_op(
        &client,
        json!({"session": name, "operation": "write", "path": "private/x.txt", "content": "x"}),
    )
    .await;
    let refused = file_error(
        &client,
        json!({"session": name, "operation": "mkdir", "path": "a/b/file.txt"}),
    )
    .await;
    assert!(refused.contains("not a folder"), "{refused}");
    file_op(
        &client,
        json!({"session": name, "operation": "delete", "path": "linked"}),
    )
    .await;
    let result = execute_in(
        &client,
        &name,
        "bash",
        "stat -c %a private; cat a/b/file.txt; echo; cat a/b/kept.txt; test -e linked || echo link-gone",
    )
    .await;
    assert_eq!(result["stdout"], "700\n12345\nkeep\nlink-gone\n", "{result}");
    file_op(&client, json!({"session": name, "operation": "delete", "path": "a"})).await;
    let listing = file_op(&client, json!({"session": name, "operation": "list", "path": "."})).await;
    assert!(!names(&listing).contains(&"a".to_string()), "{listing}");
    let missing = file_error(
        &client,
        json!({"session": name, "operation": "read", "path": "a/b/file.txt"}),
    )
    .await;
    assert!(missing.contains("does not exist"), "{missing}");
    let root = file_error(
        &client,
        json!({"session": name, "operation": "delete", "path": "/workspace"}),
    )
    .await;
    assert!(root.contains("cannot be deleted"), "{root}");
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn escapes_are_refused() {
    let client = start_server().await;
    let name = create_session(&client, "escape", "bash").await;
    for path in [
        "../etc/passwd",
        "data/../../etc/passwd",
        "/etc/passwd",
        "/tmp/x",
        "/workspace/../etc/shadow",
    ] {
        let refused = file_error(&client, json!({"session": name, "operation": "read", "path": path})).await;
        assert!(
            refused.contains("`..`") || refused.contains("outside"),
            "{path}: {refused}"
        );
    }
    execute_in(&client, &name, "bash", "mkdir -p data && echo inside > data/x.txt && ln -s /etc etc_link && ln -s data inner_link && ln -s ../../etc/passwd data/up").await;
    let refused = file_error(
        &client,
        json!({"session": name, "operation": "read", "path": "etc_link/passwd"}),
    )
    .await;
    assert!(refused.contains("symbolic link"), "{refused}");
    let refused = file_error(
        &client,
        json!({"session": name, "operation": "write", "path": "etc_link/evil", "content": "x"}),
    )
    .await;
    assert!(refused.contains("symbolic link"), "{refused}");
    let refused = file_error(
        &client,
        json!({"session": name, "operation": "read", "path": "data/up"}),
    )
    .await;
    assert!(refused.contains("symbolic link"), "{refused}");
    // A link that stays inside the workspace is followed.
    let read = file_op(
        &client,
        json!({"session": name, "operation": "read", "path": "inner_link/x.txt"}),
    )
    .await;
    assert_eq!(read["content"], "inside\n");
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn size_caps_and_paused_sessions() {
    require_docker().await;
    let client = start_server_with_env(&[
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_MAX_FILE_BYTES", "100000"),
    ])
    .await;
    let name = create_session(&client, "caps", "python").await;
    let big = "x".repeat(150_000);
    let refused = file_error(
        &client,
        json!({"session": name, "operation": "write", "path": "big.txt", "content": big}),
    )
    .await;
    assert!(refused.contains("over the 100000-byte limit"), "{refused}");
    execute_in(
        &client,
        &name,
        "python",
        "open('made_by_code.txt', 'w').write('y' * 150000)",
    )
    .await;
    let refused = file_error(
        &client,
        json!({"session": name, "operation": "read", "path": "made_by_code.txt"}),
    )
    .await;
    assert!(refused.contains("over the 100000-byte limit"), "{refused}");

    session(&client, json!({"action": "pause", "name": name})).await;
    file_op(
        &client,
        json!({"session": name, "operation": "write", "path": "while_paused.txt", "content": "frozen"}),
    )
    .await;
    let read = file_op(
        &client,
        json!({"session": name, "operation": "read", "path": "while_paused.txt"}),
    )
    .await;
    assert_eq!(read["content"], "frozen");
    file_op(
        &client,
        json!({"session": name, "operation": "delete", "path": "while_paused.txt"}),
    )
    .await;
    let state = session(&client, json!({"action": "get", "name": name})).await;
    assert_eq!(
        state["sessions"][0]["state"], "paused",
        "file operations keep a session paused: {state}"
    );
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn outputs_come_back_as_artifacts_and_plots_as_png_images() {
    let client = start_server().await;
    let code = "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9, 16])\nplt.title('squares')\nplt.show()\nplt.figure()\nplt.bar(['a', 'b'], [3, 5])\nopen('/outputs/report.csv', 'w').write('k,v\\n')";
    let result = call(
        &client,
        "sandbox_execute",
        json!({"language": "python", "code": code, "ml": true}),
    )
    .await;
    assert_ne!(result.is_error, Some(true), "{}", text_of(&result));
    let images: Vec<(String, Vec<u8>)> = result
        .content
        .iter()
        .filter_map(|content| content.as_image())
        .map(|image| {
            (
                image.mime_type.clone(),
                STANDARD.decode(&image.data).expect("base64 image"),
            )
        })
        .collect();
    assert_eq!(
        images.len(),
        2,
        "the shown figure and the one left open: {}",
        text_of(&result)
    );
    for (mime, bytes) in &images {
        assert_eq!(mime, "image/png");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        // IHDR: width and height of matplotlib's default 6.4 x 4.8 in figure at 100 dpi.
        let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((width, height), (640, 480), "unexpected plot size");
        assert!(bytes.len() > 3_000, "suspiciously small plot: {} bytes", bytes.len());
    }
    // Each figure also comes as text, read from the figure: for models
    // whose client drops images.
    let text = text_of(&result);
    for expected in [
        "figure 6.4x4.8 in, 1 axes",
        "axes 1 \"squares\": x (linear,",
        "line: 4 points, x 0 to 3, y 1 to 16",
        "bars: 2, heights 3 to 5 (a=3, b=5)",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from: {text}");
    }
    let artifacts = result.structured_content.unwrap()["artifacts"].clone();
    let described = artifacts
        .as_array()
        .unwrap()
        .iter()
        .filter(|artifact| {
            artifact["description"]
                .as_str()
                .is_some_and(|text| text.contains("axes 1"))
        })
        .count();
    assert_eq!(described, 2, "{artifacts}");
    let csv = artifacts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == "/outputs/report.csv")
        .cloned()
        .unwrap();
    assert_eq!(csv["returned"], false);
    let svg = call(
        &client,
        "sandbox_execute",
        json!({"language": "bash", "code": "echo '<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"4\" height=\"4\"/>' > /outputs/dot.svg; printf 'not a png' > /outputs/fake.png"}),
    )
    .await;
    let resource = svg
        .content
        .iter()
        .find_map(|content| content.as_resource())
        .unwrap_or_else(|| panic!("the SVG comes back as an embedded resource: {}", text_of(&svg)));
    let text = serde_json::to_value(&resource.resource).unwrap();
    assert_eq!(text["mimeType"], "image/svg+xml");
    assert!(text["text"].as_str().unwrap().contains("<svg"));
    assert!(
        svg.content.iter().all(|content| content.as_image().is_none()),
        "a file that is not a PNG is not sent as one"
    );
    assert_eq!(csv["mime"], "text/csv");
    assert_eq!(csv["size"], 4);

    // In a session, /outputs files can be read back with sandbox_file_ops.
    let name = create_session(&client, "out", "python").await;
    let result = execute_in(&client, &name, "python", "open('/outputs/table.txt', 'w').write('t')").await;
    assert!(
        result["note"].as_str().unwrap_or_default().contains("sandbox_file_ops"),
        "{result}"
    );
    let read = file_op(
        &client,
        json!({"session": name, "operation": "read", "path": "/outputs/table.txt"}),
    )
    .await;
    assert_eq!(read["content"], "t");
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn host_folders_are_mounted_read_only_unless_configured_writable() {
    require_docker().await;
    let base = std::env::temp_dir().join(format!("multilang-sandbox-host-{}", uuid::Uuid::new_v4().simple()));
    let data = base.join("data");
    let out = base.join("out");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(data.join("input.csv"), "a,b\n1,2\n").unwrap();
    // The sandbox user (uid 1000) must be able to write the read-write folder.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let folders = format!(
        "data={},out={}:rw,gone={}",
        data.display(),
        out.display(),
        base.join("missing").display()
    );
    let client = start_server_with_env(&[
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_HOST_FOLDERS", &folders),
    ])
    .await;

    // Refused creates; the guards remove a session a regression would leave.
    let unknown = TestSession::adopt(unique_name("mnt-unknown"));
    let text = tool_error_text(
        &client,
        "sandbox_session",
        json!({"action": "create", "name": unknown, "language": "python", "mounts": ["secrets"]}),
    )
    .await;
    assert!(text.contains("`secrets`") && text.contains("data, out, gone"), "{text}");
    let missing_folder = TestSession::adopt(unique_name("mnt-missing"));
    let missing = tool_error_text(
        &client,
        "sandbox_session",
        json!({"action": "create", "name": missing_folder, "language": "python", "mounts": ["gone"]}),
    )
    .await;
    assert!(missing.contains("does not exist"), "{missing}");

    let name = TestSession::adopt(unique_name("mnt"));
    let created = session(
        &client,
        json!({"action": "create", "name": name, "language": "python", "mounts": ["data", "out"]}),
    )
    .await;
    let mounts = created["sessions"][0]["mounts"].as_array().unwrap().clone();
    assert_eq!(mounts.len(), 2, "{created}");
    assert_eq!(mounts[0]["path"], "/mnt/data");
    assert_eq!(mounts[0]["writable"], false);
    assert_eq!(mounts[1]["writable"], true);

    let code = "print(open('/mnt/data/input.csv').read().splitlines()[1])\n\
try:\n    open('/mnt/data/new.txt', 'w')\nexcept OSError as error:\n    print('refused', error.errno)\n\
open('/mnt/out/result.txt', 'w').write('42')\n\
import os\nprint(sorted(os.listdir('/mnt')))";
    let result = execute_in(&client, &name, "python", code).await;
    assert_eq!(result["stdout"], "1,2\nrefused 30\n['data', 'out']\n", "{result}");
    assert_eq!(std::fs::read_to_string(out.join("result.txt")).unwrap(), "42");
    assert!(!data.join("new.txt").exists());

    let listing = file_op(
        &client,
        json!({"session": name, "operation": "list", "path": "/mnt/data"}),
    )
    .await;
    assert_eq!(names(&listing), ["input.csv"]);
    let refused = file_error(
        &client,
        json!({"session": name, "operation": "write", "path": "/mnt/data/evil.txt", "content": "x"}),
    )
    .await;
    assert!(refused.contains("read-only"), "{refused}");
    let refused = file_error(
        &client,
        json!({"session": name, "operation": "delete", "path": "/mnt/data/input.csv"}),
    )
    .await;
    assert!(refused.contains("read-only"), "{refused}");
    assert!(data.join("input.csv").exists());
    file_op(
        &client,
        json!({"session": name, "operation": "write", "path": "/mnt/out/notes/n.txt", "content": "from file_ops"}),
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(out.join("notes/n.txt")).unwrap(),
        "from file_ops"
    );
    let read = file_op(
        &client,
        json!({"session": name, "operation": "read", "path": "/mnt/out/result.txt"}),
    )
    .await;
    assert_eq!(read["content"], "42");
    for path in ["/mnt", "/mnt/../etc/passwd", "/mnt/gone"] {
        file_error(&client, json!({"session": name, "operation": "list", "path": path})).await;
    }
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
    let _ = std::fs::remove_dir_all(&base);
}
