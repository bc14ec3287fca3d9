//! Sessions end to end: state that persists per language, files, pause and
//! resume, expiry, timeouts inside a session, serialization, and clear
//! errors. The pool is off here (these tests do not need it).

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

const NO_POOL: (&str, &str) = ("MULTILANG_SANDBOX_POOL_SIZE", "0");

async fn server() -> Client {
    require_docker().await;
    start_server_with_env(&[NO_POOL]).await
}

async fn destroy(client: &Client, name: &str) {
    session(client, json!({"action": "destroy", "name": name})).await;
}

#[tokio::test]
async fn python_state_persists_between_executes() {
    let client = server().await;
    let name = create_session(&client, "py", "python").await;
    let first = execute_in(
        &client,
        &name,
        "python",
        "x = 41\nimport math\ndef double(v):\n    return v * 2",
    )
    .await;
    assert_eq!(first["exit_code"], 0, "{first}");
    let second = execute_in(&client, &name, "python", "print(x + 1, double(math.floor(2.5)))").await;
    assert_eq!(second["stdout"], "42 4\n", "{second}");
    assert_eq!(second["session"], name.as_str());
    destroy(&client, &name).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn javascript_and_typescript_bindings_persist() {
    let client = server().await;
    let js = create_session(&client, "js", "javascript").await;
    execute_in(
        &client,
        &js,
        "javascript",
        "const x = 41;\nlet items = [1, 2];\nfunction sum(a) { return a.reduce((p, c) => p + c, 0) }",
    )
    .await;
    let result = execute_in(&client, &js, "javascript", "console.log(x + 1, sum(items))").await;
    assert_eq!(result["stdout"], "42 3\n", "{result}");
    // Re-running a cell that declares the same const works, as in a notebook.
    let result = execute_in(&client, &js, "javascript", "const x = 7; console.log(x)").await;
    assert_eq!(result["stdout"], "7\n", "{result}");

    let ts = create_session(&client, "ts", "typescript").await;
    execute_in(
        &client,
        &ts,
        "typescript",
        "import { join } from 'path';\ninterface P { n: number }\nconst p: P = { n: 41 };",
    )
    .await;
    let result = execute_in(&client, &ts, "typescript", "console.log(p.n + 1, join('a', 'b'))").await;
    assert_eq!(result["stdout"], "42 a/b\n", "{result}");
    destroy(&client, &js).await;
    destroy(&client, &ts).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn stdin_and_multiline_env_reach_session_kernels() {
    let client = server().await;
    let js = create_session(&client, "jsin", "javascript").await;
    let result = execute_with(
        &client,
        json!({"language": "javascript", "session": js, "stdin": "from stdin",
               "code": "let text = ''; for await (const chunk of process.stdin) text += chunk; console.log(text.toUpperCase())"}),
    )
    .await;
    assert_eq!(result["stdout"], "FROM STDIN\n", "{result}");
    let sh = create_session(&client, "shenv", "bash").await;
    let result = execute_with(
        &client,
        json!({"language": "bash", "session": sh, "code": "printf '%s|' \"$LINES2\"; echo", "env": {"LINES2": "one\ntwo 'quoted'"}}),
    )
    .await;
    assert_eq!(result["stdout"], "one\ntwo 'quoted'|\n", "{result}");
    let result = execute_in(&client, &sh, "bash", "echo next").await;
    assert_eq!(result["stdout"], "next\n", "the session stays in step: {result}");
    destroy(&client, &js).await;
    destroy(&client, &sh).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn bash_exports_and_working_directory_persist() {
    let client = server().await;
    let name = create_session(&client, "sh", "bash").await;
    execute_in(
        &client,
        &name,
        "bash",
        "export A=1\ncd /tmp\ngreet() { echo \"hi $1\"; }",
    )
    .await;
    let result = execute_in(
        &client,
        &name,
        "bash",
        "echo $A $(pwd); greet you; bash -c 'echo child sees $A'",
    )
    .await;
    assert_eq!(result["stdout"], "1 /tmp\nhi you\nchild sees 1\n", "{result}");
    destroy(&client, &name).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn go_and_rust_sessions_keep_their_files() {
    let client = server().await;
    let go = create_session(&client, "go", "go").await;
    let result = execute_in(
        &client,
        &go,
        "go",
        "import \"os\"\nos.WriteFile(\"notes.txt\", []byte(\"from go\"), 0o644)",
    )
    .await;
    assert_eq!(result["exit_code"], 0, "{result}");
    let result = execute_in(
        &client,
        &go,
        "go",
        "import (\n\t\"fmt\"\n\t\"os\"\n)\ndata, err := os.ReadFile(\"notes.txt\")\nfmt.Println(string(data), err)",
    )
    .await;
    assert_eq!(result["stdout"], "from go <nil>\n", "{result}");

    let rust = create_session(&client, "rs", "rust").await;
    execute_in(
        &client,
        &rust,
        "rust",
        "std::fs::write(\"n.txt\", \"from rust\").unwrap();",
    )
    .await;
    let result = execute_in(
        &client,
        &rust,
        "rust",
        "print!(\"{}\", std::fs::read_to_string(\"n.txt\").unwrap());",
    )
    .await;
    assert_eq!(result["stdout"], "from rust", "{result}");
    destroy(&client, &go).await;
    destroy(&client, &rust).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn bash_runs_shell_commands_in_another_languages_session() {
    let client = server().await;
    let name = create_session(&client, "mixed", "python").await;
    execute_in(&client, &name, "python", "open('data.csv', 'w').write('a,b\\n1,2\\n')").await;
    let result = execute_in(&client, &name, "bash", "wc -l < data.csv; ls").await;
    assert_eq!(result["stdout"], "2\ndata.csv\n", "{result}");
    let mismatch = call(
        &client,
        "sandbox_execute",
        json!({"language": "go", "code": "x", "session": name}),
    )
    .await;
    assert_eq!(mismatch.is_error, Some(true));
    assert!(text_of(&mismatch).contains("runs python"), "{}", text_of(&mismatch));
    destroy(&client, &name).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn pause_and_resume_keep_state() {
    let client = server().await;
    let name = create_session(&client, "pause", "python").await;
    execute_in(&client, &name, "python", "counter = 1").await;
    let paused = session(&client, json!({"action": "pause", "name": name})).await;
    assert_eq!(paused["sessions"][0]["state"], "paused", "{paused}");
    // Executing in a paused session resumes it and says so.
    let result = execute_in(&client, &name, "python", "counter += 1\nprint(counter)").await;
    assert_eq!(result["stdout"], "2\n", "{result}");
    assert!(
        result["note"].as_str().unwrap_or_default().contains("resumed"),
        "{result}"
    );
    session(&client, json!({"action": "pause", "name": name})).await;
    let resumed = session(&client, json!({"action": "resume", "name": name})).await;
    assert_eq!(resumed["sessions"][0]["state"], "running", "{resumed}");
    let result = execute_in(&client, &name, "python", "print(counter)").await;
    assert_eq!(result["stdout"], "2\n", "{result}");
    destroy(&client, &name).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_timeout_interrupts_and_the_session_stays_usable() {
    let client = server().await;
    let name = create_session(&client, "timeout", "python").await;
    execute_in(&client, &name, "python", "kept = 'still here'").await;
    let result = execute_with(
        &client,
        json!({"language": "python", "code": "while True: pass", "session": name, "timeout": 1500}),
    )
    .await;
    assert_eq!(result["timed_out"], true, "{result}");
    assert_eq!(result["state_lost"], false, "an interrupt keeps the kernel: {result}");
    let result = execute_in(&client, &name, "python", "print(kept)").await;
    assert_eq!(result["stdout"], "still here\n", "{result}");

    // Code that ignores the interrupt is killed; the result says state was lost.
    let code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)";
    let result = execute_with(
        &client,
        json!({"language": "python", "code": code, "session": name, "timeout": 1000}),
    )
    .await;
    assert_eq!(result["timed_out"], true, "{result}");
    assert_eq!(result["state_lost"], true, "{result}");
    assert!(
        result["note"].as_str().unwrap_or_default().contains("restarted"),
        "{result}"
    );
    let result = execute_in(&client, &name, "python", "print('fresh', 'kept' in globals())").await;
    assert_eq!(result["stdout"], "fresh False\n", "{result}");
    destroy(&client, &name).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn concurrent_executes_in_one_session_are_serialized() {
    let client = server().await;
    let name = create_session(&client, "serial", "python").await;
    execute_in(&client, &name, "python", "log = []").await;
    let code = "import time\nlog.append(len(log))\ntime.sleep(0.5)\nprint(log)";
    let (a, b) = tokio::join!(
        execute_in(&client, &name, "python", code),
        execute_in(&client, &name, "python", code)
    );
    let mut outputs = vec![
        a["stdout"].as_str().unwrap().to_string(),
        b["stdout"].as_str().unwrap().to_string(),
    ];
    outputs.sort();
    assert_eq!(outputs, ["[0, 1]\n", "[0]\n"]);
    destroy(&client, &name).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn short_ttl_sessions_are_garbage_collected() {
    require_docker().await;
    let client = start_server_with_env(&[NO_POOL, ("MULTILANG_SANDBOX_GC_INTERVAL_S", "1")]).await;
    let name = TestSession::adopt(unique_name("ttl"));
    let created = session(
        &client,
        // Long enough to outlast a slow create (Podman's) before the extend.
        json!({"action": "create", "name": name, "language": "bash", "ttl": 5}),
    )
    .await;
    assert!(
        created["sessions"][0]["ttl_left_seconds"].as_u64().unwrap() <= 5,
        "{created}"
    );
    let extended = session(&client, json!({"action": "extend", "name": name, "ttl": 1})).await;
    let expiry = |listed: &serde_json::Value| {
        listed["sessions"][0]["expires_at"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        expiry(&extended) > expiry(&created),
        "the extension moved the expiry: {created} then {extended}"
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let listed = session(&client, json!({"action": "list"})).await;
        let names: Vec<&str> = listed["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        if !names.contains(&name.as_str()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "session {name} was not collected: {listed}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let gone = call(
        &client,
        "sandbox_execute",
        json!({"language": "bash", "code": "echo", "session": name}),
    )
    .await;
    assert_eq!(gone.is_error, Some(true));
    assert!(text_of(&gone).contains("no session named"), "{}", text_of(&gone));
    let docker = require_docker().await;
    // Removed in the background, soon after.
    let left = wait_for_none(
        &docker,
        &[&format!("multilang-sandbox.session={name}")],
        Duration::from_secs(30),
    )
    .await;
    assert!(left.is_empty(), "expired session container left: {left:?}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn bad_session_requests_are_clear_tool_errors() {
    let client = server().await;
    for bad in [
        "a;rm -rf /",
        "x\" --label evil=1",
        "../etc",
        "",
        "-dash",
        "name with space",
    ] {
        let result = call(
            &client,
            "sandbox_session",
            json!({"action": "create", "name": bad, "language": "python"}),
        )
        .await;
        assert_eq!(result.is_error, Some(true), "{bad:?} was accepted");
        assert!(
            text_of(&result).contains("invalid session name"),
            "{bad:?}: {}",
            text_of(&result)
        );
    }
    let result = call(
        &client,
        "sandbox_session",
        json!({"action": "get", "name": "does-not-exist-7"}),
    )
    .await;
    assert_eq!(result.is_error, Some(true));
    assert!(
        text_of(&result).contains("no session named `does-not-exist-7`"),
        "{}",
        text_of(&result)
    );
    let result = call(
        &client,
        "sandbox_session",
        json!({"action": "create", "name": "nolang"}),
    )
    .await;
    assert!(
        text_of(&result).contains("`language` is required"),
        "{}",
        text_of(&result)
    );
    let result = call(&client, "sandbox_session", json!({"action": "get"})).await;
    assert!(text_of(&result).contains("`name` is required"), "{}", text_of(&result));
    let name = create_session(&client, "dup", "bash").await;
    let result = call(
        &client,
        "sandbox_session",
        json!({"action": "create", "name": name, "language": "bash"}),
    )
    .await;
    assert!(text_of(&result).contains("already exists"), "{}", text_of(&result));
    let bad_ttl = TestSession::adopt(unique_name("bad-ttl"));
    let result = call(
        &client,
        "sandbox_session",
        json!({"action": "create", "name": bad_ttl, "language": "bash", "ttl": 0}),
    )
    .await;
    assert!(
        text_of(&result).contains("ttl 0 s is out of range"),
        "{}",
        text_of(&result)
    );
    destroy(&client, &name).await;
    let result = call(
        &client,
        "sandbox_execute",
        json!({"language": "bash", "code": "echo", "session": name}),
    )
    .await;
    assert!(text_of(&result).contains("no session named"), "{}", text_of(&result));
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_destroyed_name_is_free_at_once_and_its_container_goes_later() {
    let docker = require_docker().await;
    let client = start_server_with_env(&[NO_POOL]).await;
    let name = create_session(&client, "again", "python").await;
    execute_in(&client, &name, "python", "left = 'old'").await;
    let container = format!("multilang-sandbox-session-{name}");
    let old = docker
        .inspect_container(&container, None)
        .await
        .expect("the session's container")
        .id
        .expect("an id");
    let old_volumes = mounted_volumes(&docker, &old).await;
    assert_eq!(
        old_volumes.len(),
        4,
        "workspace, packages, outputs, /tmp: {old_volumes:?}"
    );

    destroy(&client, &name).await;
    // No wait: the name is free as soon as destroy answers.
    session(&client, json!({"action": "create", "name": name, "language": "python"})).await;
    let result = execute_in(&client, &name, "python", "print('left' in globals())").await;
    assert_eq!(result["stdout"], "False\n", "a new session, not the old one: {result}");
    let listed = session(&client, json!({"action": "list"})).await;
    let same: Vec<_> = listed["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter(|listed| listed["name"] == name.as_str())
        .collect();
    assert_eq!(same.len(), 1, "the destroyed one is not listed: {listed}");

    // The old container and its volumes go in the background.
    let gone = eventually(Duration::from_secs(30), || async {
        docker.inspect_container(&old, None).await.is_err()
    })
    .await;
    assert!(gone, "the destroyed session's container {old} is still there");
    let volumes_gone = eventually(Duration::from_secs(30), || async {
        let now = session_volumes(&docker, &name).await;
        old_volumes.iter().all(|volume| !now.contains(volume))
    })
    .await;
    assert!(
        volumes_gone,
        "the destroyed session's volumes are still there: {old_volumes:?}"
    );
    assert_eq!(
        session_volumes(&docker, &name).await.len(),
        4,
        "the new session's volumes stay"
    );
    destroy(&client, &name).await;
    client.cancel().await.ok();
}

/// One python spare, no pool, and a default ttl of `ttl` seconds: any
/// server whose config fits a spare claims it, so each test gives its own
/// ttl (part of what a spare must fit), and no other test's server claims
/// its spares.
fn one_spare(ttl: &str) -> [(&str, &str); 3] {
    [
        NO_POOL,
        (
            "MULTILANG_SANDBOX_SESSION_SPARES",
            "python=1,javascript=0,typescript=0,go=0,rust=0,bash=0",
        ),
        ("MULTILANG_SANDBOX_SESSION_TTL_S", ttl),
    ]
}

/// Waits until the server with `instance` (a label filter) has an unclaimed
/// running spare; returns its id.
async fn wait_for_spare(docker: &bollard::Docker, instance: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        for id in sandbox_containers(docker, &[instance, "multilang-sandbox.kind=spare"]).await {
            if let Ok(inspected) = docker.inspect_container(&id, None).await {
                let running = inspected.state.and_then(|state| state.running).unwrap_or(false);
                let unclaimed = inspected
                    .name
                    .is_some_and(|name| name.trim_start_matches('/').starts_with("multilang-sandbox-spare-"));
                if running && unclaimed {
                    return id;
                }
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no spare session was made");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The id of session `name`'s container and its kind label.
async fn session_container(docker: &bollard::Docker, name: &str) -> (String, String) {
    let inspected = docker
        .inspect_container(&format!("multilang-sandbox-session-{name}"), None)
        .await
        .expect("the session's container");
    let kind = inspected
        .config
        .and_then(|config| config.labels)
        .and_then(|labels| labels.get("multilang-sandbox.kind").cloned())
        .unwrap_or_default();
    (inspected.id.expect("an id"), kind)
}

/// Removes the containers of `instance` of kind spare (a killed server's
/// spares) with their volumes.
async fn remove_spares(docker: &bollard::Docker, instance: &str) {
    for id in sandbox_containers(docker, &[instance, "multilang-sandbox.kind=spare"]).await {
        let volumes = mounted_volumes(docker, &id).await;
        let _ = std::process::Command::new("docker").args(["rm", "-f", &id]).output();
        for volume in volumes {
            let _ = std::process::Command::new("docker")
                .args(["volume", "rm", "-f", &volume])
                .output();
        }
    }
}

#[tokio::test]
async fn a_claimed_spare_is_a_session_that_survives_a_killed_server() {
    let docker = require_docker().await;
    let (first, pid) = start_server_process(&one_spare("3601")).await;
    let instance = instance_label(&first).await;
    let spare = wait_for_spare(&docker, &instance).await;
    let name = create_session(&first, "claimed", "python").await;
    let (id, kind) = session_container(&docker, &name).await;
    assert_eq!(
        (id.as_str(), kind.as_str()),
        (spare.as_str(), "spare"),
        "the spare was claimed"
    );
    execute_in(&first, &name, "python", "x = 41").await;
    let got = session(&first, json!({"action": "get", "name": name})).await;
    assert_eq!(got["sessions"][0]["name"], name.as_str(), "{got}");

    // The maker makes another after the claim; killed once it is made, so
    // the test can remove it.
    wait_for_spare(&docker, &instance).await;
    kill_nine(pid);
    drop(first);
    let second = start_server_with_env(&[NO_POOL]).await;
    let listed = session(&second, json!({"action": "list"})).await;
    assert!(
        listed["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .any(|listed| listed["name"] == name.as_str()),
        "{listed}"
    );
    let result = execute_in(&second, &name, "python", "print(x + 1)").await;
    if engine_is_podman(&docker).await {
        // Podman closed the runner's stdin when the killed server's
        // connection ended, so the session ended with it; the next server
        // starts it again and says what was lost.
        assert!(
            result["note"]
                .as_str()
                .unwrap_or_default()
                .contains("variables were lost"),
            "{result}"
        );
    } else {
        assert_eq!(result["stdout"], "42\n", "{result}");
    }
    destroy(&second, &name).await;
    let gone = eventually(Duration::from_secs(30), || async {
        docker.inspect_container(&spare, None).await.is_err()
    })
    .await;
    assert!(gone, "the destroyed claimed spare {spare} is still there");
    second.cancel().await.ok();
    // A killed server's spares stay (for any server's claims): removed here.
    remove_spares(&docker, &instance).await;
}

#[tokio::test]
async fn a_spare_older_than_the_ttl_gives_its_session_the_whole_ttl() {
    let docker = require_docker().await;
    let mut env = one_spare("5").to_vec();
    env.push(("MULTILANG_SANDBOX_GC_INTERVAL_S", "1"));
    let client = start_server_with_env(&env).await;
    let instance = instance_label(&client).await;
    let spare = wait_for_spare(&docker, &instance).await;
    // The spare outlives a session's ttl (5 s) before it is claimed.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let name = create_session(&client, "old-spare", "python").await;
    let (id, _) = session_container(&docker, &name).await;
    assert_eq!(id, spare, "the plain create claimed the spare");
    let got = session(&client, json!({"action": "get", "name": name})).await;
    assert!(
        got["sessions"][0]["ttl_left_seconds"].as_u64().unwrap_or(0) >= 4,
        "the ttl counts from the claim: {got}"
    );
    // Two gc rounds later the session is still there.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let result = execute_in(&client, &name, "python", "print(6 * 7)").await;
    assert_eq!(result["stdout"], "42\n", "{result}");
    destroy(&client, &name).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn no_spare_is_left_after_shutdown() {
    let docker = require_docker().await;
    let client = start_server_with_env(&one_spare("3602")).await;
    let instance = instance_label(&client).await;
    let spare = wait_for_spare(&docker, &instance).await;
    let volumes = mounted_volumes(&docker, &spare).await;
    assert_eq!(volumes.len(), 4, "workspace, packages, outputs, /tmp: {volumes:?}");
    client.cancel().await.ok();
    let left = wait_for_none(
        &docker,
        &[&instance, "multilang-sandbox.kind=spare"],
        Duration::from_secs(30),
    )
    .await;
    assert!(left.is_empty(), "spares left after shutdown: {left:?}");
    let volumes_gone = eventually(Duration::from_secs(30), || async {
        let mut gone = true;
        for volume in &volumes {
            gone &= docker.inspect_volume(volume).await.is_err();
        }
        gone
    })
    .await;
    assert!(volumes_gone, "a spare's volumes are left: {volumes:?}");
}

#[tokio::test]
async fn a_create_with_options_never_claims_a_spare() {
    let docker = require_docker().await;
    let base = std::env::temp_dir().join(unique_name("spare-mount"));
    std::fs::create_dir_all(&base).expect("make a host folder");
    let folders = format!("data={}", base.display());
    let mut env = one_spare("3603").to_vec();
    env.push(("MULTILANG_SANDBOX_HOST_FOLDERS", &folders));
    let client = start_server_with_env(&env).await;
    let instance = instance_label(&client).await;
    let spare = wait_for_spare(&docker, &instance).await;
    let mut asks = vec![json!({"mounts": ["data"]}), json!({"ttl": 77})];
    // Asking for the profile the server is configured with is a plain
    // create (the strict CI pass configures `strict`).
    if std::env::var("MULTILANG_SANDBOX_SECCOMP").as_deref() != Ok("strict") {
        asks.push(json!({"seccomp": "strict"}));
    }
    for ask in asks {
        let name = TestSession::adopt(unique_name("opts"));
        let mut arguments = json!({"action": "create", "name": name, "language": "python"});
        for (key, value) in ask.as_object().expect("options") {
            arguments[key] = value.clone();
        }
        session(&client, arguments).await;
        let (id, kind) = session_container(&docker, &name).await;
        assert_ne!(id, spare, "a create with {ask} claimed the spare");
        assert_eq!(kind, "session", "{ask}");
        destroy(&client, &name).await;
    }
    let name = create_session(&client, "plain", "python").await;
    let (id, _) = session_container(&docker, &name).await;
    assert_eq!(id, spare, "a plain create claims the spare");
    let state = inspect(&client, "sessions").await;
    let python = state["spares"]
        .as_array()
        .and_then(|spares| spares.iter().find(|stats| stats["language"] == "python"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (python["configured"].as_u64(), python["claimed"].as_u64()),
        (Some(1), Some(1)),
        "{state}"
    );
    destroy(&client, &name).await;
    client.cancel().await.ok();
    let _ = std::fs::remove_dir_all(&base);
}

#[tokio::test]
async fn concurrent_creates_claim_a_spare_once() {
    let docker = require_docker().await;
    let client = start_server_with_env(&one_spare("3604")).await;
    // Another server that fits the spare and makes none: it claims too.
    let other = start_server_with_env(&[NO_POOL, ("MULTILANG_SANDBOX_SESSION_TTL_S", "3604")]).await;
    let instance = instance_label(&client).await;
    let spare = wait_for_spare(&docker, &instance).await;
    let names: Vec<TestSession> = (0..6).map(|_| TestSession::adopt(unique_name("race"))).collect();
    let creates = names.iter().enumerate().map(|(index, name)| {
        let server = if index % 2 == 0 { &client } else { &other };
        session(server, json!({"action": "create", "name": name, "language": "python"}))
    });
    futures::future::join_all(creates).await;
    let mut ids = Vec::new();
    for name in &names {
        ids.push(session_container(&docker, name).await.0);
        execute_in(&client, name, "python", &format!("mine = '{name}'")).await;
    }
    let claimed = ids.iter().filter(|id| **id == spare).count();
    assert_eq!(claimed, 1, "the spare went to exactly one create: {ids:?}");
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 6, "six containers: {ids:?}");
    for name in &names {
        let result = execute_in(&client, name, "python", "print(mine)").await;
        assert_eq!(result["stdout"], format!("{name}\n"), "{result}");
        destroy(&client, name).await;
    }
    other.cancel().await.ok();
    client.cancel().await.ok();
}
