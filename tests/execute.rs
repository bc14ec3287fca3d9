//! `sandbox_execute` end to end: the real binary, rmcp's client, real Docker,
//! every language.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn python_runs_and_prints() {
    let client = start_server().await;
    let result = execute(
        &client,
        "python",
        "import sys\nprint(sum(range(101)), sys.version_info[:2])",
    )
    .await;
    assert_eq!(result["stdout"], "5050 (3, 13)\n", "{result}");
    assert_eq!(result["exit_code"], 0);
    assert_eq!(result["language"], "python");
    assert_eq!(result["timed_out"], false);
    assert_eq!(result["truncated"], false);
    client.cancel().await.ok();
}

#[tokio::test]
async fn javascript_runs_commonjs_and_modules() {
    let client = start_server().await;
    let result = execute(
        &client,
        "javascript",
        "const os = require('os');\nconsole.log([1,2,3].map(x => x * 2).join(','), typeof os.cpus)",
    )
    .await;
    assert_eq!(result["stdout"], "2,4,6 function\n", "{result}");
    let result = execute(&client, "js", "import { createHash } from 'node:crypto';\nconsole.log(createHash('sha256').update('abc').digest('hex').slice(0, 8))").await;
    assert_eq!(result["stdout"], "ba7816bf\n", "{result}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn typescript_strips_types_and_runs() {
    let client = start_server().await;
    let code = "interface Point { x: number; y: number }\nfunction norm(p: Point): number { return Math.hypot(p.x, p.y); }\nconst p: Point = { x: 3, y: 4 };\nconsole.log(`norm=${norm(p)}`);";
    let result = execute(&client, "typescript", code).await;
    assert_eq!(result["stdout"], "norm=5\n", "{result}");
    assert_eq!(result["exit_code"], 0);
    client.cancel().await.ok();
}

/// The runner keeps esbuild running as a service in a TypeScript container
/// and strips each program's types through it (its messages name the file
/// as it was given, esbuild's command line relative to the working folder);
/// a session whose service died goes on with esbuild itself; a stateless
/// program runs in strict mode whether it is emitted as CommonJS or as an
/// ES module.
#[tokio::test]
async fn typescript_types_are_stripped_by_the_runners_esbuild_service() {
    let client = start_server().await;
    let ts_session = create_session(&client, "ts-service", "typescript").await;
    let find = "import { readdirSync, readFileSync } from 'node:fs';\n\
        const service = readdirSync('/proc').filter((p) => /^\\d+$/.test(p)).find((p) => {\n\
          try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('\\0--service=') } catch { return false }\n\
        });\n\
        console.log(service !== undefined)";
    let result = execute_in(&client, &ts_session, "typescript", find).await;
    assert_eq!(
        result["stdout"], "true\n",
        "no esbuild service in the container: {result}"
    );
    let result = execute_in(&client, &ts_session, "typescript", "const broken: number = (1 +;").await;
    assert_ne!(result["exit_code"], 0, "{result}");
    assert_eq!(result["phase"], "build", "{result}");
    let stderr = result["stderr"].as_str().unwrap_or_default();
    assert!(
        stderr.contains("[ERROR]") && stderr.contains("    /tmp/run/cell.ts:1:"),
        "not the service: {result}"
    );
    let result = execute_in(
        &client,
        &ts_session,
        "typescript",
        "const fine: number = 1; console.log(fine)",
    )
    .await;
    assert_eq!(result["stdout"], "1\n", "the session after a failed build: {result}");
    // A cell that kills the service: the next cells run esbuild itself.
    execute_in(
        &client,
        &ts_session,
        "typescript",
        "process.kill(Number(service), 'SIGKILL')",
    )
    .await;
    let result = execute_in(
        &client,
        &ts_session,
        "typescript",
        "const after: number = 2; console.log(after)",
    )
    .await;
    assert_eq!(result["stdout"], "2\n", "a cell after the service died: {result}");
    let result = execute_in(&client, &ts_session, "typescript", "const broken: number = (1 +;").await;
    let stderr = result["stderr"].as_str().unwrap_or_default();
    assert!(stderr.contains("../tmp/run/cell.ts:1:"), "not esbuild itself: {result}");
    session(&client, json!({"action": "destroy", "name": &*ts_session})).await;

    for (code, emitted) in [
        ("enum E { A, B }\nundeclared = E.B; console.log('sloppy')", "CommonJS"),
        (
            "enum E { A, B }\nundeclared = await Promise.resolve(E.B); console.log('sloppy')",
            "ES module",
        ),
    ] {
        let result = execute(&client, "typescript", code).await;
        assert_eq!(result["exit_code"], 1, "{emitted}: {result}");
        let stderr = result["stderr"].as_str().unwrap_or_default();
        assert!(
            stderr.contains("ReferenceError: undeclared is not defined"),
            "{emitted}: {result}"
        );
    }
    client.cancel().await.ok();
}

/// Stateless JavaScript and TypeScript run in a `node` the pooled container
/// started ahead of the call; the program must not tell the difference from
/// `node main.js`: its own main module and argv, the request's env, stdin
/// and working directory, Node's exit codes. An env Node reads while it
/// starts (NODE_OPTIONS) gets a fresh `node`, so it still applies.
#[tokio::test]
async fn stateless_node_programs_run_as_their_own_process() {
    require_docker().await;
    let pool_sizes = "python=0,go=0,rust=0,bash=0,javascript=1,typescript=1";
    let client = start_server_with_env(&[("MULTILANG_SANDBOX_POOL_SIZE", pool_sizes)]).await;
    // The first call is a pool hit: its node was started before it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let pool = inspect(&client, "pool").await;
        let idle = pool["pool"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|language| language["language"] == "javascript" && language["idle"].as_u64().unwrap_or(0) > 0);
        if idle {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the javascript pool never filled: {pool}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let code = "let input = '';\nprocess.stdin.on('data', (c) => (input += c)).on('end', () => {\n  console.log(JSON.stringify([require.main === module, process.argv.length, process.env.GREETING, process.cwd(), input]));\n  process.exitCode = 4;\n});";
    let arguments = json!({"language": "javascript", "code": code, "env": {"GREETING": "hi"}, "stdin": "from stdin"});
    let result = execute_with(&client, arguments).await;
    assert_eq!(
        result["stdout"], "[true,2,\"hi\",\"/workspace\",\"from stdin\"]\n",
        "{result}"
    );
    assert_eq!(result["exit_code"], 4, "{result}");
    let result = execute(
        &client,
        "typescript",
        "const n: number = 6 * 7;\nthrow new Error(`boom ${n}`);",
    )
    .await;
    assert_eq!(result["exit_code"], 1, "{result}");
    let stderr = result["stderr"].as_str().unwrap_or_default();
    assert!(
        stderr.contains("Error: boom 42") && !stderr.contains("/opt/sandbox"),
        "{result}"
    );
    let arguments = json!({
        "language": "javascript",
        "code": "console.log(process.execArgv.length, process.argv.length)",
        "env": {"NODE_OPTIONS": "--require=/opt/sandbox/node-proxy.js --max-old-space-size=100"},
    });
    let result = execute_with(&client, arguments).await;
    assert_eq!(result["stdout"], "0 2\n", "{result}");
    let arguments = json!({
        "language": "javascript",
        "code": "console.log(require('v8').getHeapStatistics().heap_size_limit < 200 * 1024 * 1024)",
        "env": {"NODE_OPTIONS": "--require=/opt/sandbox/node-proxy.js --max-old-space-size=100"},
    });
    let result = execute_with(&client, arguments).await;
    assert_eq!(result["stdout"], "true\n", "NODE_OPTIONS must apply: {result}");
    let pool = inspect(&client, "pool").await;
    let hits: u64 = pool["pool"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|language| ["javascript", "typescript"].contains(&language["language"].as_str().unwrap_or_default()))
        .map(|language| language["hits"].as_u64().unwrap_or(0))
        .sum();
    assert!(hits >= 1, "no pool hit for javascript or typescript: {pool}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn go_runs_whole_programs_and_wrapped_snippets() {
    let client = start_server().await;
    let program = "package main\n\nimport \"fmt\"\n\nfunc main() {\n\ttotal := 0\n\tfor i := 1; i <= 10; i++ { total += i }\n\tfmt.Println(\"total\", total)\n}\n";
    let result = execute(&client, "go", program).await;
    assert_eq!(result["stdout"], "total 55\n", "{result}");
    let snippet = "import (\n\t\"fmt\"\n\t\"strings\"\n)\nfmt.Println(strings.Repeat(\"ab\", 3))";
    let result = execute(&client, "go", snippet).await;
    assert_eq!(result["stdout"], "ababab\n", "{result}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn rust_runs_whole_programs_and_wrapped_snippets() {
    let client = start_server().await;
    let program = "fn fib(n: u64) -> u64 { if n < 2 { n } else { fib(n - 1) + fib(n - 2) } }\nfn main() { println!(\"fib(20) = {}\", fib(20)); }";
    let result = execute(&client, "rust", program).await;
    assert_eq!(result["stdout"], "fib(20) = 6765\n", "{result}");
    let snippet = "use std::collections::BTreeMap;\nlet mut m = BTreeMap::new();\nm.insert(\"b\", 2);\nm.insert(\"a\", 1);\nprintln!(\"{:?}\", m);";
    let result = execute(&client, "rs", snippet).await;
    assert_eq!(result["stdout"], "{\"a\": 1, \"b\": 2}\n", "{result}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn bash_runs_as_the_unprivileged_user_without_network() {
    let client = start_server().await;
    let code = "echo $((6 * 7)); id -u; seq 1 5 | paste -sd+ | bc; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '";
    let result = execute(&client, "bash", code).await;
    assert_eq!(result["stdout"], "42\n1000\n15\nlo ", "{result}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn stdin_and_env_reach_the_program() {
    let client = start_server().await;
    let result = execute_with(
        &client,
        json!({
            "language": "python",
            "code": "import os, sys\nprint(os.environ['GREETING'], sys.stdin.read().upper())",
            "stdin": "from stdin",
            "env": {"GREETING": "hello"}
        }),
    )
    .await;
    assert_eq!(result["stdout"], "hello FROM STDIN\n", "{result}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn compile_errors_report_the_compiler_message() {
    let client = start_server().await;
    let result = execute(&client, "go", "package main\nfunc main() { undefinedThing() }").await;
    assert_ne!(result["exit_code"], 0, "{result}");
    assert_eq!(result["phase"], "build");
    assert!(
        result["stderr"].as_str().unwrap().contains("undefined: undefinedThing"),
        "{result}"
    );

    let call = call(
        &client,
        "sandbox_execute",
        json!({"language": "rust", "code": "fn main() { let x: i32 = \"text\"; }"}),
    )
    .await;
    assert_eq!(call.is_error, Some(true));
    let result = call.structured_content.clone().expect("structured result");
    assert_ne!(result["exit_code"], 0, "{result}");
    assert_eq!(result["phase"], "build");
    // rustc's rendered messages (the runner asks it for JSON to find the
    // `use` lines it suggests), and no note of imports added.
    let stderr = result["stderr"].as_str().unwrap();
    assert!(stderr.starts_with("error[E0308]: mismatched types\n"), "{result}");
    assert!(stderr.contains("--> /tmp/run/main.rs:1:"), "{result}");
    assert!(!stderr.contains("\"$message_type\""), "{result}");
    assert!(result["note"].as_str().unwrap_or("").is_empty(), "{result}");
    assert!(text_of(&call).contains("compilation failed"));
    client.cancel().await.ok();
}

#[tokio::test]
async fn python_exceptions_return_the_traceback() {
    let client = start_server().await;
    let call = call(
        &client,
        "sandbox_execute",
        json!({"language": "python", "code": "def f():\n    return 1 / 0\nf()"}),
    )
    .await;
    assert_eq!(call.is_error, Some(true), "a failing program is a tool error");
    let result = call.structured_content.expect("structured result");
    assert_eq!(result["exit_code"], 1);
    let stderr = result["stderr"].as_str().unwrap();
    assert!(stderr.contains("Traceback (most recent call last)"), "{stderr}");
    assert!(stderr.contains("ZeroDivisionError: division by zero"), "{stderr}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn the_filesystem_is_read_only_outside_the_workspace() {
    let client = start_server().await;
    let code = "touch /etc/x 2>/dev/null && echo root-writable || echo root-read-only\necho data > /workspace/f && cat /workspace/f\necho tmp > /tmp/t && cat /tmp/t";
    let result = execute(&client, "bash", code).await;
    assert_eq!(result["stdout"], "root-read-only\ndata\ntmp\n", "{result}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn programs_behave_as_if_run_as_a_file() {
    let client = start_server().await;
    // Pickling classes defined by the code works (a real __main__ module),
    // and threads the code starts finish before the result.
    let code = "import pickle, threading, time\nclass Point:\n    pass\nprint(len(pickle.dumps(Point())) > 0)\ndef later():\n    time.sleep(0.3)\n    print('thread done')\nthreading.Thread(target=later).start()";
    let result = execute(&client, "python", code).await;
    assert_eq!(result["stdout"], "True\nthread done\n", "{result}");
    // A program that closes its output keeps running to its own exit code.
    let result = execute(&client, "bash", "exec >/dev/null 2>&1\nsleep 0.5\nexit 3").await;
    assert_eq!(result["exit_code"], 3, "{result}");
    assert!(result.get("note").is_none(), "{result}");
    // Output is cut on a character boundary.
    let result = execute_with(&client, json!({"language": "python", "code": "print('é' * 2_000_000)"})).await;
    assert_eq!(result["truncated"], true);
    assert!(
        !result["stdout"].as_str().unwrap().contains('\u{FFFD}'),
        "a character was split"
    );
    client.cancel().await.ok();
}

#[tokio::test]
async fn unknown_language_is_a_clear_tool_error() {
    let client = start_server().await;
    let result = call(
        &client,
        "sandbox_execute",
        json!({"language": "cobol", "code": "DISPLAY 'HI'."}),
    )
    .await;
    assert_eq!(result.is_error, Some(true));
    let text = text_of(&result);
    assert!(text.contains("unknown language `cobol`"), "{text}");
    assert!(
        text.contains("python, javascript, typescript, go, rust, bash"),
        "{text}"
    );
    client.cancel().await.ok();
}

#[tokio::test]
async fn bad_timeout_and_env_are_clear_tool_errors() {
    let client = start_server().await;
    let result = call(
        &client,
        "sandbox_execute",
        json!({"language": "python", "code": "print(1)", "timeout": 0}),
    )
    .await;
    assert_eq!(result.is_error, Some(true));
    assert!(
        text_of(&result).contains("use 1 to 600000 milliseconds"),
        "{}",
        text_of(&result)
    );
    let result = call(
        &client,
        "sandbox_execute",
        json!({"language": "python", "code": "print(1)", "env": {"A=B": "x"}}),
    )
    .await;
    assert_eq!(result.is_error, Some(true));
    assert!(text_of(&result).contains("`A=B` is invalid"), "{}", text_of(&result));
    client.cancel().await.ok();
}
