//! Installs go through the egress proxy (issue #14, item 5), with real
//! Docker and the real binary: an install reaches only the registries its
//! package manager is configured for in the image (found there at run
//! time), every connection is audited as the install's, allowed by the
//! install rule; an image whose package manager names no registry the
//! install may reach fails the install with what to check, and the install
//! gets no network at all. (That nothing else is reachable is the ledger's
//! rule, unit-tested in core/egress/ledger/tests.rs: a package spec cannot
//! name a host.)

mod common;

use common::origin::{docker, pip_index_hosts};
use common::{call, instance_label, require_docker, start_server, start_server_with_env, text_of};
use multilang_sandbox::config::Config;
use multilang_sandbox::images::{self, EGRESS};
use multilang_sandbox::runtime::Language;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The egress events of this server's installs, through `sandbox_security`.
async fn egress_events(client: &common::Client) -> Vec<Value> {
    let instance = instance_label(client).await;
    let instance = instance.trim_start_matches("multilang-sandbox.instance=").to_string();
    let result = call(
        client,
        "sandbox_security",
        json!({"action": "events", "type": "egress", "count": 1000}),
    )
    .await;
    assert_ne!(result.is_error, Some(true), "{}", text_of(&result));
    let output = result.structured_content.expect("structured result");
    output["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|event| event["instance"] == instance.as_str())
        .collect()
}

/// Removes Docker images when dropped (the test's own, even on failure).
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for image in &self.0 {
            let _ = std::process::Command::new("timeout")
                .args(["60", "docker", "rmi", "-f", image])
                .output();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_reaches_only_the_registries_found_in_its_image_through_the_proxy() {
    let hosts = pip_index_hosts().into_iter().collect::<BTreeSet<String>>();
    assert!(!hosts.is_empty(), "pip names no index host");
    let client = start_server().await;
    // Unique to this run: a cache miss, so the install really runs.
    let six = format!("six!=0.0.{}", uuid::Uuid::new_v4().as_u128() % 1_000_000_000);
    let result = call(
        &client,
        "sandbox_install",
        json!({"language": "python", "packages": [six]}),
    )
    .await;
    assert_ne!(result.is_error, Some(true), "install failed: {}", text_of(&result));
    let installed = result.structured_content.expect("structured result");
    let _cached = Images(vec![installed["image"].as_str().expect("cached image").to_string()]);
    assert_eq!(installed["cache_hit"], false, "{installed}");

    let events = egress_events(&client).await;
    assert!(!events.is_empty(), "the install made no connection through the proxy");
    let installs: BTreeSet<&str> = events.iter().filter_map(|event| event["install"].as_str()).collect();
    assert_eq!(installs.len(), 1, "every connection is the one install's: {events:#?}");
    for event in &events {
        let host = event["host"].as_str().unwrap_or_default();
        assert!(
            hosts.contains(host),
            "{host} is not a registry pip is configured for: {event}"
        );
        assert_eq!(event["allowed"], true, "{event}");
        assert!(event["session"].is_null(), "{event}");
        let rule = event["rule"].as_str().unwrap_or_default();
        assert_eq!(rule, format!("install registry `{host}:{}`", event["port"]), "{event}");
        // The proxy resolved the name and connected: the install went
        // through it, not around it.
        assert!(event["address"].is_string(), "{event}");
    }
    assert!(
        events.iter().any(|event| event["bytes_down"].as_u64() > Some(0)),
        "nothing was downloaded through the proxy: {events:#?}"
    );
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_whose_package_manager_names_no_reachable_registry_fails_the_install_without_network() {
    require_docker().await;
    let config = Config::from_env().expect("configuration");
    let python = images::tag_for(Language::Python, &config);
    let egress = images::tag(&EGRESS, &config);
    // A copy of the images under a prefix of this test's, whose pip is
    // configured for an index named by its IP address only: never a
    // registry an install may reach.
    let prefix = format!(
        "multilang-sandbox-test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let retag = |image: &str| image.replacen(&config.image_prefix, &prefix, 1);
    let made = Images(vec![retag(&python), retag(&egress)]);
    let container = docker(&["create", &python]);
    let committed = std::process::Command::new("timeout")
        .args(["60", "docker", "commit", "--change"])
        .arg("ENV PIP_INDEX_URL=https://192.0.2.10/simple")
        .args([container.as_str(), made.0[0].as_str()])
        .output()
        .expect("docker commit");
    docker(&["rm", "-f", &container]);
    assert!(
        committed.status.success(),
        "{}",
        String::from_utf8_lossy(&committed.stderr)
    );
    docker(&["tag", &egress, &made.0[1]]);

    let client = start_server_with_env(&[
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_IMAGE_PREFIX", prefix.as_str()),
    ])
    .await;
    let result = call(
        &client,
        "sandbox_install",
        json!({"language": "python", "packages": ["six"]}),
    )
    .await;
    assert_eq!(result.is_error, Some(true), "{}", text_of(&result));
    let text = text_of(&result);
    for part in [
        "registries pip is configured to use",
        "192.0.2.10",
        "IP address",
        "pip config list",
    ] {
        assert!(text.contains(part), "`{part}` missing from: {text}");
    }
    assert!(
        egress_events(&client).await.is_empty(),
        "the install reached for the network"
    );
    client.cancel().await.ok();
}
