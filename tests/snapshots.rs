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
