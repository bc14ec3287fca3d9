//! Session snapshots end to end, against real Docker: a snapshot holds
//! files and (rebuilt by replay) variables in every language with an
//! interpreter; restore rolls a session back in place; fork makes a second
//! session that diverges from the first; snapshots outlive the server that
//! took them; replays that fail are reported; bad input is refused with
//! the fix named. The pool is off (these tests do not need it).

mod common;

use common::*;
use serde_json::{Value, json};

const NO_POOL: (&str, &str) = ("MULTILANG_SANDBOX_POOL_SIZE", "0");

async fn server() -> Client {
    require_docker().await;
    start_server_with_env(&[NO_POOL]).await
}

/// Runs `code` in the session and checks it succeeded; returns its stdout.
async fn run(client: &Client, session: &str, language: &str, code: &str) -> String {
    let result = execute_in(client, session, language, code).await;
    assert_eq!(result["exit_code"], 0, "{language} in {session}: {code}\n{result}");
    result["stdout"].as_str().unwrap_or_default().to_string()
}

async fn snapshot(client: &Client, name: &str, snapshot: &str) -> Value {
    session(
        client,
        json!({"action": "snapshot", "name": name, "snapshot": snapshot}),
    )
    .await
}

async fn restore(client: &Client, name: &str, snapshot: &str) -> Value {
    session(client, json!({"action": "restore", "name": name, "snapshot": snapshot})).await
}

/// How one language defines, spoils and reads back a variable and a file.
struct Case {
    language: &'static str,
    define: &'static str,
    spoil: &'static str,
    read: &'static str,
    /// Changes the variable in a fork only.
    diverge: &'static str,
}

const CASES: [Case; 4] = [
    Case {
        language: "python",
        define: "x = 41\nitems = [1, 2]\nopen('notes.txt', 'w').write('kept')",
        spoil: "import os\nx = 0\nitems = []\nos.remove('notes.txt')",
        read: "print(x + 1, sum(items), open('notes.txt').read())",
        diverge: "x = 99",
    },
    Case {
        language: "javascript",
        define: "var x = 41; let items = [1, 2]; require('fs').writeFileSync('notes.txt', 'kept');",
        spoil: "x = 0; items = []; require('fs').unlinkSync('notes.txt');",
        read: "console.log(x + 1, items.reduce((a, b) => a + b, 0), require('fs').readFileSync('notes.txt', 'utf8'))",
        diverge: "x = 99;",
    },
    Case {
        language: "typescript",
        define: "import { writeFileSync } from 'fs';\nlet x: number = 41;\nlet items: number[] = [1, 2];\nwriteFileSync('notes.txt', 'kept');",
        spoil: "import { unlinkSync } from 'fs';\nx = 0;\nitems = [];\nunlinkSync('notes.txt');",
        read: "import { readFileSync } from 'fs';\nconsole.log(x + 1, items.reduce((a: number, b: number) => a + b, 0), readFileSync('notes.txt', 'utf8'));",
        diverge: "x = 99;",
    },
    Case {
        language: "bash",
        define: "x=41; items=(1 2); echo -n kept > notes.txt",
        spoil: "x=0; items=(); rm notes.txt",
        read: "echo $((x + 1)) $((items[0] + items[1])) $(cat notes.txt)",
        diverge: "x=99",
    },
];

#[tokio::test]
async fn restore_brings_back_files_and_variables_in_every_interpreted_language() {
    let client = server().await;
    for case in &CASES {
        let name = create_session(&client, &format!("snap-{}", case.language), case.language).await;
        run(&client, &name, case.language, case.define).await;
        let expected = run(&client, &name, case.language, case.read).await;
        assert_eq!(expected.trim(), "42 3 kept", "{}", case.language);
        let taken = snapshot(&client, &name, "before").await;
        assert_eq!(taken["snapshots"][0]["name"], "before", "{taken}");
        assert!(taken["snapshots"][0]["cells"].as_u64().unwrap_or(0) >= 2, "{taken}");

        run(&client, &name, case.language, case.spoil).await;
        let restored = restore(&client, &name, "before").await;
        let replay = &restored["replay"];
        assert!(replay["replayed"].as_u64().unwrap_or(0) >= 2, "{restored}");
        assert!(replay.get("failed").is_none(), "{restored}");
        assert_eq!(
            run(&client, &name, case.language, case.read).await,
            expected,
            "{}: {restored}",
            case.language
        );

        // A fork of the snapshot and the session now diverge.
        let fork = TestSession::adopt(unique_name(&format!("fork-{}", case.language)));
        let forked = session(
            &client,
            json!({"action": "fork", "name": name, "snapshot": "before", "new_name": fork}),
        )
        .await;
        assert_eq!(forked["sessions"][0]["name"], fork.as_str(), "{forked}");
        assert_eq!(run(&client, &fork, case.language, case.read).await, expected);
        run(&client, &fork, case.language, case.diverge).await;
        run(&client, &name, case.language, case.spoil).await;
        let in_fork = run(&client, &fork, case.language, case.read).await;
        assert_eq!(in_fork.trim(), "100 3 kept", "{}: the fork's own change", case.language);
        let in_source = execute_in(&client, &name, case.language, case.read).await;
        assert_ne!(
            in_source["stdout"],
            expected.as_str(),
            "{}: the source was spoiled: {in_source}",
            case.language
        );
        assert!(
            in_source["stderr"].as_str().unwrap_or_default().contains("notes.txt"),
            "{}: the source lost its file: {in_source}",
            case.language
        );
        session(&client, json!({"action": "destroy", "name": fork})).await;
        session(&client, json!({"action": "destroy", "name": name, "snapshots": true})).await;
    }
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_snapshot_outlives_the_server_that_took_it() {
    require_docker().await;
    let (first, pid) = start_server_process(&[NO_POOL]).await;
    let name = create_session(&first, "snap-kill", "python").await;
    run(
        &first,
        &name,
        "python",
        "import random\nrandom.seed(7)\nvalue = random.random()",
    )
    .await;
    let before = run(&first, &name, "python", "print(value)").await;
    snapshot(&first, &name, "kept").await;
    kill_nine(pid);
    drop(first);

    let second = server().await;
    let listed = session(&second, json!({"action": "snapshots", "name": name})).await;
    assert_eq!(listed["snapshots"][0]["name"], "kept", "{listed}");
    assert!(listed["snapshots"][0]["size_bytes"].is_u64(), "{listed}");
    run(&second, &name, "python", "value = None").await;
    restore(&second, &name, "kept").await;
    assert_eq!(run(&second, &name, "python", "print(value)").await, before);
    session(&second, json!({"action": "destroy", "name": name, "snapshots": true})).await;
    second.cancel().await.ok();
}

#[tokio::test]
async fn restore_rolls_back_packages_installed_after_the_snapshot() {
    let client = server().await;
    let name = create_session(&client, "snap-pkg", "python").await;
    run(&client, &name, "python", "kept = 41").await;
    snapshot(&client, &name, "no-packages").await;
    let installed = call(
        &client,
        "sandbox_install",
        json!({"session": name, "packages": ["tabulate"]}),
    )
    .await;
    assert_ne!(installed.is_error, Some(true), "{}", text_of(&installed));
    run(&client, &name, "python", "import tabulate").await;

    restore(&client, &name, "no-packages").await;
    let result = execute_in(&client, &name, "python", "print(kept + 1)\nimport tabulate").await;
    assert_eq!(result["stdout"], "42\n", "{result}");
    assert!(
        result["stderr"]
            .as_str()
            .unwrap_or_default()
            .contains("No module named 'tabulate'"),
        "the package installed after the snapshot is gone: {result}"
    );
    session(&client, json!({"action": "destroy", "name": name, "snapshots": true})).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_replayed_cell_that_fails_now_is_reported() {
    let client = server().await;
    let name = create_session(&client, "snap-fail", "python").await;
    // The file comes from outside the log (an upload), and a later cell
    // deletes it.
    let written = call(
        &client,
        "sandbox_file_ops",
        json!({"session": name, "operation": "write", "path": "input.txt", "content": "data"}),
    )
    .await;
    assert_ne!(written.is_error, Some(true), "{}", text_of(&written));
    run(&client, &name, "python", "count = 3").await;
    run(&client, &name, "python", "text = open('input.txt').read()").await;
    run(&client, &name, "python", "import os\nos.remove('input.txt')").await;
    let failing = execute_in(&client, &name, "python", "raise ValueError('first time')").await;
    assert_ne!(failing["exit_code"], 0);
    snapshot(&client, &name, "after-remove").await;

    // Replayed against the snapshot's files (no input.txt), the read fails.
    let restored = restore(&client, &name, "after-remove").await;
    let replay = &restored["replay"];
    assert_eq!(replay["skipped"], 1, "{restored}");
    assert_eq!(replay["replayed"], 3, "{restored}");
    let failed = replay["failed"].as_array().expect("a failed cell is listed");
    assert!(
        failed
            .iter()
            .any(|cell| cell["cell"] == 1 && cell["stderr"].as_str().unwrap_or_default().contains("input.txt")),
        "{restored}"
    );
    assert!(
        restored["message"].as_str().unwrap_or_default().contains("failed now"),
        "{restored}"
    );
    // What the other cells set is back; the file stays deleted, as in the snapshot.
    assert_eq!(run(&client, &name, "python", "print(count)").await, "3\n");
    let missing = execute_in(&client, &name, "python", "print(text)").await;
    assert!(
        missing["stderr"].as_str().unwrap_or_default().contains("NameError"),
        "{missing}"
    );
    session(&client, json!({"action": "destroy", "name": name, "snapshots": true})).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn go_and_rust_sessions_keep_their_files_and_build_caches() {
    let client = server().await;
    for (language, code, cache) in [
        (
            "go",
            "package main\nimport \"os\"\nfunc main() { os.WriteFile(\"notes.txt\", []byte(\"kept\"), 0o644) }",
            "/tmp/gocache",
        ),
        (
            "rust",
            "fn main() { std::fs::write(\"notes.txt\", \"kept\").unwrap(); }",
            "/tmp/rust-incremental",
        ),
    ] {
        let name = create_session(&client, &format!("snap-{language}"), language).await;
        run(&client, &name, language, code).await;
        let count = format!("find {cache} -type f | wc -l");
        let cached = run(&client, &name, "bash", &count).await;
        assert_ne!(cached.trim(), "0", "{language}: the build filled its cache");
        run(&client, &name, "bash", "echo -n scratch > /tmp/scratch.txt").await;
        let taken = snapshot(&client, &name, "files").await;
        assert_eq!(taken["snapshots"][0]["cells"], 0, "{taken}");
        run(
            &client,
            &name,
            "bash",
            &format!("rm -r notes.txt /tmp/scratch.txt {cache} && echo -n other > extra.txt"),
        )
        .await;
        let restored = restore(&client, &name, "files").await;
        assert!(restored.get("replay").is_none(), "{restored}");
        assert_eq!(
            run(&client, &name, "bash", "cat notes.txt /tmp/scratch.txt; ls").await,
            "keptscratchnotes.txt\n"
        );
        assert_eq!(
            run(&client, &name, "bash", &count).await,
            cached,
            "{language}: its build cache is back"
        );
        session(&client, json!({"action": "destroy", "name": name, "snapshots": true})).await;
    }
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_50_mb_workspace_round_trips_byte_exact() {
    let client = server().await;
    let name = create_session(&client, "snap-big", "python").await;
    let digest = "import hashlib\nprint(hashlib.sha256(open('big.bin', 'rb').read()).hexdigest())";
    run(
        &client,
        &name,
        "python",
        "import os\nwith open('big.bin', 'wb') as f:\n    f.write(os.urandom(50 * 1024 * 1024))",
    )
    .await;
    let original = run(&client, &name, "python", digest).await;
    let taken = snapshot(&client, &name, "big").await;
    assert!(
        taken["snapshots"][0]["size_bytes"].as_u64().unwrap_or(0) >= 50 * 1024 * 1024,
        "{taken}"
    );
    run(&client, &name, "python", "open('big.bin', 'r+b').write(b'spoiled')").await;
    assert_ne!(run(&client, &name, "python", digest).await, original);
    restore(&client, &name, "big").await;
    assert_eq!(run(&client, &name, "python", digest).await, original);

    let fork = TestSession::adopt(unique_name("fork-big"));
    session(&client, json!({"action": "fork", "name": name, "new_name": fork})).await;
    assert_eq!(run(&client, &fork, "python", digest).await, original);
    session(&client, json!({"action": "destroy", "name": fork})).await;
    session(&client, json!({"action": "destroy", "name": name, "snapshots": true})).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_paused_session_is_snapshotted_and_stays_paused() {
    let client = server().await;
    let name = create_session(&client, "snap-paused", "python").await;
    run(&client, &name, "python", "x = 41").await;
    session(&client, json!({"action": "pause", "name": name})).await;
    snapshot(&client, &name, "paused").await;
    let got = session(&client, json!({"action": "get", "name": name})).await;
    assert_eq!(got["sessions"][0]["state"], "paused", "{got}");
    run(&client, &name, "python", "x = 0").await;
    restore(&client, &name, "paused").await;
    assert_eq!(run(&client, &name, "python", "print(x + 1)").await, "42\n");
    session(&client, json!({"action": "destroy", "name": name, "snapshots": true})).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn bad_snapshot_requests_name_the_fix() {
    let client = server().await;
    let name = create_session(&client, "snap-bad", "python").await;
    let other = create_session(&client, "snap-other", "javascript").await;
    let error = |arguments: Value| {
        let client = &client;
        async move { tool_error_text(client, "sandbox_session", arguments).await }
    };
    let text = error(json!({"action": "restore", "name": name, "snapshot": "nope"})).await;
    assert!(
        text.contains("has no snapshot named `nope`") && text.contains("snapshots"),
        "{text}"
    );
    let text = error(json!({"action": "restore", "name": name})).await;
    assert!(text.contains("`snapshot` is required"), "{text}");
    let text = error(json!({"action": "snapshot", "name": name, "snapshot": "a/b"})).await;
    assert!(text.contains("invalid snapshot name"), "{text}");
    let text = error(json!({"action": "snapshot", "name": "missing-session-xyz"})).await;
    assert!(text.contains("no session named"), "{text}");

    snapshot(&client, &name, "one").await;
    let text = error(json!({"action": "snapshot", "name": name, "snapshot": "one"})).await;
    assert!(text.contains("already has a snapshot named `one`"), "{text}");
    let text = error(json!({"action": "fork", "name": name, "snapshot": "one"})).await;
    assert!(text.contains("`new_name` is required"), "{text}");
    let text = error(json!({"action": "fork", "name": name, "snapshot": "one", "new_name": other})).await;
    assert!(text.contains("already exists"), "{text}");

    // A generated name, listed, deleted.
    let taken = session(&client, json!({"action": "snapshot", "name": name})).await;
    let generated = taken["snapshots"][0]["name"].as_str().expect("a name").to_string();
    assert!(generated.starts_with("snap-"), "{taken}");
    let listed = session(&client, json!({"action": "snapshots", "name": name})).await;
    assert_eq!(listed["snapshots"].as_array().map(Vec::len), Some(2), "{listed}");
    session(
        &client,
        json!({"action": "delete_snapshot", "name": name, "snapshot": generated}),
    )
    .await;
    let text = error(json!({"action": "delete_snapshot", "name": name, "snapshot": generated})).await;
    assert!(text.contains("has no snapshot named"), "{text}");

    // Destroying keeps snapshots by default; they can still be forked.
    let destroyed = session(&client, json!({"action": "destroy", "name": name})).await;
    assert!(
        destroyed["message"]
            .as_str()
            .unwrap_or_default()
            .contains("1 snapshot(s) are kept"),
        "{destroyed}"
    );
    let fork = TestSession::adopt(unique_name("fork-of-gone"));
    session(
        &client,
        json!({"action": "fork", "name": name, "snapshot": "one", "new_name": fork}),
    )
    .await;
    session(&client, json!({"action": "destroy", "name": fork})).await;
    // A session of another language under the old name cannot take it.
    session(
        &client,
        json!({"action": "create", "name": name, "language": "javascript"}),
    )
    .await;
    let text = error(json!({"action": "restore", "name": name, "snapshot": "one"})).await;
    assert!(text.contains("python session") && text.contains("fork it"), "{text}");
    session(&client, json!({"action": "destroy", "name": name, "snapshots": true})).await;
    let listed = session(&client, json!({"action": "snapshots", "name": name})).await;
    assert!(listed.get("snapshots").is_none(), "{listed}");

    // A running background job holds the session's state: refused.
    let started = call(
        &client,
        "sandbox_execute",
        json!({"language": "javascript", "code": "await new Promise(r => setTimeout(r, 60000))", "session": other, "background": true, "timeout": 120000}),
    )
    .await;
    let job = started
        .structured_content
        .as_ref()
        .and_then(|content| content["job"]["job"].as_str().map(String::from));
    let text = error(json!({"action": "snapshot", "name": other})).await;
    assert!(
        text.contains("background job runs") && text.contains("cancel"),
        "{text} ({job:?})"
    );
    if let Some(job) = job {
        call(&client, "sandbox_job", json!({"action": "cancel", "job": job})).await;
    }
    session(&client, json!({"action": "destroy", "name": other})).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_snapshot_copies_links_as_links_and_a_restore_ends_what_the_code_left() {
    let client = server().await;
    let name = create_session(&client, "snap-links", "bash").await;
    run(
        &client,
        &name,
        "bash",
        "ln -s /etc/shadow shadow-link; ln -s / root-link",
    )
    .await;
    // A cell that fails is not replayed: the process it left is not
    // started again.
    let left = execute_in(&client, &name, "bash", "(setsid sleep 1000 >/dev/null 2>&1 &); false").await;
    assert_ne!(left["exit_code"], 0, "{left}");
    snapshot(&client, &name, "links").await;
    assert!(run(&client, &name, "bash", "ps -eo args").await.contains("sleep 1000"));
    restore(&client, &name, "links").await;
    let listed = run(&client, &name, "bash", "readlink shadow-link root-link; ps -eo args").await;
    assert!(
        listed.starts_with("/etc/shadow\n/\n"),
        "the links came back as links: {listed}"
    );
    assert!(!listed.contains("sleep 1000"), "the left process ended: {listed}");
    let read = execute_in(&client, &name, "bash", "cat shadow-link").await;
    assert!(
        read["stderr"]
            .as_str()
            .unwrap_or_default()
            .contains("Permission denied"),
        "{read}"
    );
    session(&client, json!({"action": "destroy", "name": name, "snapshots": true})).await;
    client.cancel().await.ok();
}
