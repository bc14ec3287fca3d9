//! Packages: installs into sessions, the SHA-256 package cache, npm from
//! JavaScript, refused specs, and failed installs that leave nothing behind.
//! Installs reach PyPI, npm and crates.io from inside install containers,
//! through the egress proxy (the registries each manager is configured for
//! in the image; tests/install_egress.rs checks the audit).

mod common;

use common::*;
use serde_json::{Value, json};

/// A pip spec that installs `six` but is unique to this test run, so the
/// first request is a cache miss whatever ran before.
fn unique_six() -> String {
    format!("six!=0.0.{}", uuid::Uuid::new_v4().as_u128() % 1_000_000_000)
}

async fn install(client: &Client, arguments: Value) -> Value {
    let result = call(client, "sandbox_install", arguments.clone()).await;
    assert_ne!(
        result.is_error,
        Some(true),
        "sandbox_install {arguments} failed: {}",
        text_of(&result)
    );
    result.structured_content.expect("structured result")
}

async fn cache_images(docker: &bollard::Docker, language: &str) -> Vec<String> {
    let options = bollard::query_parameters::ListImagesOptionsBuilder::default()
        .filters(&std::collections::HashMap::from([(
            "reference".to_string(),
            vec![format!("multilang-sandbox-cache/{language}")],
        )]))
        .build();
    docker
        .list_images(Some(options))
        .await
        .expect("list images")
        .into_iter()
        .map(|image| image.id)
        .collect()
}

#[tokio::test]
async fn a_session_gets_a_package_and_keeps_its_state() {
    let client = start_server().await;
    let name = create_session(&client, "pip", "python").await;
    execute_in(&client, &name, "python", "kept = 41").await;
    let installed = install(&client, json!({"session": name, "packages": ["tabulate"]})).await;
    assert_eq!(installed["packages"], json!(["tabulate"]));
    assert!(
        installed["output"].as_str().unwrap().contains("tabulate"),
        "{installed}"
    );
    let result = execute_in(
        &client,
        &name,
        "python",
        "import tabulate\nprint(kept + 1, tabulate.tabulate([[1, 2]], tablefmt='plain'))",
    )
    .await;
    assert_eq!(result["stdout"], "42 1  2\n", "{result}");
    // The session's own code still has no network.
    let result = execute_in(&client, &name, "python", "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 443), timeout=2)\n    print('connected')\nexcept OSError as error:\n    print('no network')").await;
    assert_eq!(result["stdout"], "no network\n", "{result}");
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn the_second_session_with_the_same_packages_is_a_cache_hit() {
    let client = start_server().await;
    let six = unique_six();
    let (_first_session, first) = create_session_with(&client, "cache-a", &six).await;
    assert!(
        first["message"].as_str().unwrap().contains("were installed and cached"),
        "{first}"
    );
    let before = inspect(&client, "cache").await["cache"].clone();
    let (_second_session, second) = create_session_with(&client, "cache-b", &six).await;
    assert!(
        second["message"].as_str().unwrap().contains("came from the cache"),
        "{second}"
    );
    let after = inspect(&client, "cache").await["cache"].clone();
    assert_eq!(after["misses"], before["misses"], "a hit must not install: {after}");
    assert_eq!(after["hits"].as_u64().unwrap(), before["hits"].as_u64().unwrap() + 1);
    for created in [&first, &second] {
        let name = created["sessions"][0]["name"].as_str().unwrap().to_string();
        let result = execute_in(&client, &name, "python", "import six\nprint(six.PY3)").await;
        assert_eq!(result["stdout"], "True\n", "{result}");
        session(&client, json!({"action": "destroy", "name": name})).await;
    }
    // Without a session, the same set reports a hit too.
    let prepared = install(&client, json!({"language": "python", "packages": [six]})).await;
    assert_eq!(prepared["cache_hit"], true, "{prepared}");
    client.cancel().await.ok();
}

/// Creates a session with `package`; returns the guard and the answer.
async fn create_session_with(client: &Client, prefix: &str, package: &str) -> (TestSession, Value) {
    let name = TestSession::adopt(unique_name(prefix));
    let created = session(
        client,
        json!({"action": "create", "name": name, "language": "python", "packages": [package]}),
    )
    .await;
    (name, created)
}

#[tokio::test]
async fn javascript_uses_an_npm_package() {
    let client = start_server().await;
    let code = "const _ = require('lodash');\nconsole.log(JSON.stringify(_.chunk([1, 2, 3, 4, 5], 2)))";
    let result = execute_with(
        &client,
        json!({"language": "javascript", "code": code, "packages": ["lodash@4"]}),
    )
    .await;
    assert_eq!(result["stdout"], "[[1,2],[3,4],[5]]\n", "{result}");
    let module = "import _ from 'lodash';\nconsole.log(_.kebabCase('Hello World'))";
    let result = execute_with(
        &client,
        json!({"language": "javascript", "code": module, "packages": ["lodash@4"]}),
    )
    .await;
    assert_eq!(result["stdout"], "hello-world\n", "{result}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn injected_specs_are_refused_before_anything_runs() {
    let client = start_server().await;
    for spec in [
        "six; rm -rf /",
        "--index-url=http://example.invalid/simple",
        "-e .",
        "$(id)",
        "git+https://example.invalid/x.git",
    ] {
        let result = call(
            &client,
            "sandbox_install",
            json!({"language": "python", "packages": [spec]}),
        )
        .await;
        assert_eq!(result.is_error, Some(true), "{spec:?} was accepted");
        assert!(
            text_of(&result).contains("is refused"),
            "{spec:?}: {}",
            text_of(&result)
        );
    }
    let result = call(
        &client,
        "sandbox_execute",
        json!({"language": "python", "code": "print(1)", "packages": ["six && id"]}),
    )
    .await;
    assert!(text_of(&result).contains("is refused"), "{}", text_of(&result));
    client.cancel().await.ok();
}

#[tokio::test]
async fn an_unknown_package_reports_the_managers_error_and_leaves_no_image() {
    let docker = require_docker().await;
    let client = start_server().await;
    let before = cache_images(&docker, "python").await;
    let missing = format!("no-such-package-{}", uuid::Uuid::new_v4().simple());
    let result = call(
        &client,
        "sandbox_install",
        json!({"language": "python", "packages": [missing]}),
    )
    .await;
    assert_eq!(result.is_error, Some(true));
    let text = text_of(&result);
    assert!(text.contains("pip could not install"), "{text}");
    assert!(
        text.contains("No matching distribution found"),
        "pip's own message is shown: {text}"
    );
    assert_eq!(
        cache_images(&docker, "python").await,
        before,
        "a failed install left a cache image"
    );
    let ours = instance_label(&client).await;
    let left = wait_for_none(
        &docker,
        &[&ours, "multilang-sandbox.kind=install"],
        std::time::Duration::from_secs(10),
    )
    .await;
    assert!(left.is_empty(), "install containers left: {left:?}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn the_data_science_image_runs_numpy_and_pandas() {
    let client = start_server().await;
    let code = "import numpy as np, pandas as pd\nframe = pd.DataFrame({'x': np.arange(4)})\nprint(int(frame.x.sum()))";
    let result = call(
        &client,
        "sandbox_execute",
        json!({"language": "python", "code": code, "ml": true}),
    )
    .await;
    assert_ne!(
        result.is_error,
        Some(true),
        "this test needs the data-science image: run `multilang-sandbox images build --ml` (./install.sh does): {}",
        text_of(&result)
    );
    assert_eq!(result.structured_content.unwrap()["stdout"], "6\n");
    let refused = call(
        &client,
        "sandbox_execute",
        json!({"language": "javascript", "code": "1", "ml": true}),
    )
    .await;
    assert!(text_of(&refused).contains("Python only"), "{}", text_of(&refused));
    client.cancel().await.ok();
}

#[tokio::test]
async fn without_the_data_science_image_the_error_names_the_build_command() {
    let client = start_server_with_env(&[("MULTILANG_SANDBOX_IMAGE_PREFIX", "multilang-sandbox-absent")]).await;
    let result = call(
        &client,
        "sandbox_execute",
        json!({"language": "python", "code": "1", "ml": true}),
    )
    .await;
    assert_eq!(result.is_error, Some(true));
    assert!(
        text_of(&result).contains("multilang-sandbox images build --ml"),
        "{}",
        text_of(&result)
    );
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_rust_session_links_an_installed_crate() {
    let client = start_server().await;
    let name = create_session(&client, "crate", "rust").await;
    let installed = install(&client, json!({"session": name, "packages": ["itoa@1"]})).await;
    assert!(
        installed["output"].as_str().unwrap().contains("crates ready: itoa"),
        "{installed}"
    );
    let code = "let mut buffer = itoa::Buffer::new();\nprintln!(\"{}\", buffer.format(1234567u64));";
    let result = execute_in(&client, &name, "rust", code).await;
    assert_eq!(result["stdout"], "1234567\n", "{result}");
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
}
