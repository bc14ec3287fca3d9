//! Server lifecycle with real Docker: a server killed with SIGKILL and
//! started again, two servers at once, a burst of concurrent executes and
//! the pool growing after it.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

fn pool_entry(inspect: &Value, language: &str) -> Value {
    inspect["pool"]
        .as_array()
        .and_then(|pool| pool.iter().find(|entry| entry["language"] == language))
        .cloned()
        .unwrap_or_default()
}

fn pool_idle(inspect: &Value, language: &str) -> u64 {
    pool_entry(inspect, language)["idle"].as_u64().unwrap_or(0)
}

/// Waits until the server's pool holds `count` idle containers for `language`.
async fn wait_for_pool(client: &Client, language: &str, count: u64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let state = inspect(client, "pool").await;
        if pool_idle(&state, language) >= count {
            return state;
        }
        assert!(tokio::time::Instant::now() < deadline, "pool never warmed: {state}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn instance_filter(state: &Value) -> String {
    format!(
        "multilang-sandbox.instance={}",
        state["instance"].as_str().expect("instance id")
    )
}

#[tokio::test]
async fn sessions_survive_a_killed_server_and_its_pool_is_removed() {
    let docker = require_docker().await;
    let (first, pid) = start_server_process(&[(
        "MULTILANG_SANDBOX_POOL_SIZE",
        "python=2,bash=1,javascript=0,typescript=0,go=0,rust=0",
    )])
    .await;
    wait_for_pool(&first, "bash", 1).await;
    let state = wait_for_pool(&first, "python", 2).await;
    let first_instance = instance_filter(&state);
    let name = create_session(&first, "adopt", "python").await;
    execute_in(&first, &name, "python", "x = 41").await;
    let pooled = sandbox_containers(&docker, &[&first_instance, "multilang-sandbox.kind=pool"]).await;
    assert_eq!(pooled.len(), 3, "expected 3 warm containers before the kill");

    kill_nine(pid);
    drop(first);

    // The dead server's warm containers go away on their own (their stdin closed).
    let left = wait_for_none(
        &docker,
        &[&first_instance, "multilang-sandbox.kind=pool"],
        Duration::from_secs(20),
    )
    .await;
    assert!(
        left.is_empty(),
        "the killed server's pool containers are still there: {left:?}"
    );

    let second = start_server_with_env(&[("MULTILANG_SANDBOX_POOL_SIZE", "0")]).await;
    let listed = session(&second, json!({"action": "list"})).await;
    assert!(
        listed["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == name.as_str()),
        "{listed}"
    );
    let result = execute_in(&second, &name, "python", "print(x + 1)").await;
    assert_eq!(result["stdout"], "42\n", "{result}");
    session(&second, json!({"action": "destroy", "name": name})).await;
    second.cancel().await.ok();
}

#[tokio::test]
async fn two_servers_share_sessions_and_keep_their_own_pools() {
    let docker = require_docker().await;
    let sizes = (
        "MULTILANG_SANDBOX_POOL_SIZE",
        "python=1,bash=0,javascript=0,typescript=0,go=0,rust=0",
    );
    let a = start_server_with_env(&[sizes]).await;
    let b = start_server_with_env(&[sizes]).await;
    let a_state = wait_for_pool(&a, "python", 1).await;
    let b_state = wait_for_pool(&b, "python", 1).await;
    assert_ne!(a_state["instance"], b_state["instance"]);

    let name = create_session(&a, "shared", "python").await;
    execute_in(&a, &name, "python", "shared = ['from a']").await;
    let result = execute_in(&b, &name, "python", "shared.append('from b'); print(shared)").await;
    assert_eq!(result["stdout"], "['from a', 'from b']\n", "{result}");
    let result = execute_in(&a, &name, "python", "print(len(shared))").await;
    assert_eq!(result["stdout"], "2\n", "{result}");

    // Each server's stateless executes leave the other's warm containers alone.
    for _ in 0..3 {
        assert_eq!(execute(&b, "python", "print(1)").await["stdout"], "1\n");
    }
    wait_for_pool(&b, "python", 1).await;
    let a_pool = sandbox_containers(&docker, &[&instance_filter(&a_state), "multilang-sandbox.kind=pool"]).await;
    assert_eq!(a_pool.len(), 1, "server A lost its warm container");
    let result = execute(&a, "python", "print('a still works')").await;
    assert_eq!(result["stdout"], "a still works\n");

    session(&b, json!({"action": "destroy", "name": name})).await;
    a.cancel().await.ok();
    b.cancel().await.ok();
    for state in [&a_state, &b_state] {
        let left = wait_for_none(&docker, &[&instance_filter(state)], Duration::from_secs(20)).await;
        assert!(
            left.is_empty(),
            "a server left containers after a clean shutdown: {left:?}"
        );
    }
}

#[tokio::test]
async fn twenty_concurrent_stateless_executes_all_succeed() {
    require_docker().await;
    let client = start_server_with_env(&[(
        "MULTILANG_SANDBOX_POOL_SIZE",
        "python=2,bash=0,javascript=0,typescript=0,go=0,rust=0",
    )])
    .await;
    wait_for_pool(&client, "python", 2).await;
    let runs = (0..20).map(|i| {
        let client = &client;
        async move { execute(client, "python", &format!("print({i} * {i})")).await }
    });
    let results = futures::future::join_all(runs).await;
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result["exit_code"], 0, "execute {i}: {result}");
        assert_eq!(result["stdout"], format!("{}\n", i * i), "execute {i}: {result}");
    }
    let python = pool_entry(&inspect(&client, "pool").await, "python");
    assert_eq!(
        python["hits"].as_u64().unwrap() + python["misses"].as_u64().unwrap(),
        20,
        "{python}"
    );
    assert!(python["hits"].as_u64().unwrap() >= 1, "{python}");

    // The misses grew the pool: it fills up to its new target, says what
    // an idle container weighs, and the next calls back to back are hits.
    let target = python["target"].as_u64().unwrap();
    assert!(target > 2, "the burst's misses did not grow the pool: {python}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let python = loop {
        let python = pool_entry(&inspect(&client, "pool").await, "python");
        if python["idle"].as_u64() >= Some(target) && python["memory_each_mb"].as_f64().is_some() {
            break python;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the grown pool never filled: {python}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(python["idle_memory_mb"].as_f64().unwrap() > 0.0, "{python}");
    let hits_before = python["hits"].as_u64().unwrap();
    let back_to_back = target.min(10);
    for i in 0..back_to_back {
        assert_eq!(
            execute(&client, "python", "print(1)").await["stdout"],
            "1\n",
            "call {i}"
        );
    }
    let python = pool_entry(&inspect(&client, "pool").await, "python");
    assert_eq!(python["hits"].as_u64().unwrap(), hits_before + back_to_back, "{python}");
    client.cancel().await.ok();
}

/// A pool whose memory budget holds nothing beyond its configured size
/// does not grow, however many calls miss.
#[tokio::test]
async fn a_pool_grows_only_as_far_as_its_memory_budget() {
    require_docker().await;
    let client = start_server_with_env(&[
        (
            "MULTILANG_SANDBOX_POOL_SIZE",
            "python=1,bash=0,javascript=0,typescript=0,go=0,rust=0",
        ),
        ("MULTILANG_SANDBOX_POOL_MEMORY_MB", "1"),
    ])
    .await;
    wait_for_pool(&client, "python", 1).await;
    let runs = (0..4).map(|_| execute(&client, "python", "print(1)"));
    for result in futures::future::join_all(runs).await {
        assert_eq!(result["stdout"], "1\n", "{result}");
    }
    let python = pool_entry(&inspect(&client, "pool").await, "python");
    assert!(python["misses"].as_u64().unwrap() >= 3, "{python}");
    assert_eq!(python["target"], 1, "{python}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_destroy_cut_short_by_a_killed_server_is_finished_by_the_next() {
    let docker = require_docker().await;
    let (first, pid) = start_server_process(&[("MULTILANG_SANDBOX_POOL_SIZE", "0")]).await;
    let name = create_session(&first, "cutshort", "python").await;
    let container = format!("multilang-sandbox-session-{name}");
    let id = docker
        .inspect_container(&container, None)
        .await
        .expect("the session's container")
        .id
        .expect("an id");
    let volumes = mounted_volumes(&docker, &id).await;
    kill_nine(pid);
    drop(first);
    // What a destroy leaves when its server dies before the removal: the
    // container under its tombstone name.
    let tombstone = format!("multilang-sandbox-removing-{}", &id[..12]);
    docker
        .rename_container(
            &id,
            bollard::query_parameters::RenameContainerOptionsBuilder::default()
                .name(&tombstone)
                .build(),
        )
        .await
        .expect("rename");

    let second = start_server_with_env(&[("MULTILANG_SANDBOX_POOL_SIZE", "0")]).await;
    let listed = session(&second, json!({"action": "list"})).await;
    assert!(
        !listed["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .any(|listed| listed["name"] == name.as_str()),
        "a destroyed session is not listed: {listed}"
    );
    let gone = eventually(Duration::from_secs(30), || async {
        docker.inspect_container(&id, None).await.is_err()
    })
    .await;
    assert!(gone, "the new server did not remove {tombstone}");
    let volumes_gone = eventually(Duration::from_secs(30), || async {
        session_volumes(&docker, &name).await.is_empty()
    })
    .await;
    assert!(volumes_gone, "its volumes are still there: {volumes:?}");
    second.cancel().await.ok();
}
