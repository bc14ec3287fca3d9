//! The hostile suite: code a prompt-injected model might send, and
//! malformed traffic a broken client might send. Each test says what is
//! tried and checks what held: the limits, the missing network, the
//! read-only root, the seccomp profile, the server's survival. Counts are
//! summarized in SECURITY.md.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

async fn run(client: &Client, language: &str, code: &str, timeout_ms: u64) -> Value {
    execute_with(
        client,
        json!({"language": language, "code": code, "timeout": timeout_ms}),
    )
    .await
}

async fn still_answers(client: &Client) {
    let started = Instant::now();
    let result = execute(client, "bash", "echo alive").await;
    assert_eq!(result["stdout"], "alive\n", "{result}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the server took {:?} to answer",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_fork_bomb_hits_the_process_limit_and_the_server_stays_responsive() {
    let docker = require_docker().await;
    let client = start_server().await;
    let ours = instance_label(&client).await;
    if gvisor() {
        // gVisor runs the code's processes inside its own kernel, which the
        // engine's pids limit (cgroup v1) does not reach: a bomb grows
        // until the memory limit ends the whole sandbox. Contained all the
        // same: the call says the sandbox stopped, the server answers, and
        // nothing is left behind.
        // The shell stays while its bomb grows: otherwise it exits 0 at
        // once and the runner ends the step (killing the group) before a
        // bomb slowed down by gVisor (or a busy machine) reaches any limit,
        // and nothing is tested.
        for (language, code) in [
            ("bash", ":(){ :|:& };:; sleep 60"),
            ("python", "import os\nwhile True:\n    os.fork()"),
        ] {
            let result = call(
                &client,
                "sandbox_execute",
                json!({"language": language, "code": code, "timeout": 10_000}),
            )
            .await;
            let text = text_of(&result);
            let stopped = result.is_error == Some(true) && text.contains("stopped before answering");
            let limited = text.contains("Resource temporarily unavailable") || text.contains("Timed out");
            assert!(stopped || limited, "{language}: {text}");
        }
        still_answers(&client).await;
        let left = wait_for_none(&docker, &[&ours], Duration::from_secs(30)).await;
        assert!(left.is_empty(), "containers left behind: {left:?}");
        client.cancel().await.ok();
        return;
    }
    // As above, the shell stays while the bomb grows, so a busy machine
    // cannot end the step before the bomb meets the limit.
    let result = run(&client, "bash", ":(){ :|:& };:; sleep 2", 5000).await;
    let stderr = result["stderr"].as_str().unwrap_or_default();
    assert!(
        stderr.contains("Resource temporarily unavailable"),
        "the bomb should run into the process limit: {result}"
    );
    let python = run(
        &client,
        "python",
        "import os\ncount = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            import time; time.sleep(30)\n        count += 1\nexcept OSError as error:\n    print('stopped at', count, 'children:', error.strerror)",
        10_000,
    )
    .await;
    let stdout = python["stdout"].as_str().unwrap_or_default();
    assert!(stdout.contains("stopped at"), "{python}");
    let count: u64 = stdout
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(count < 256, "the pids limit (256) should stop the forks, got {count}");
    still_answers(&client).await;
    let left = wait_for_none(&docker, &[&ours], Duration::from_secs(20)).await;
    assert!(left.is_empty(), "containers left behind: {left:?}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn disk_fills_stop_at_their_size_limits() {
    require_docker().await;
    let client = start_server_with_env(&[
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_TMPFS_MB", "64"),
    ])
    .await;
    let code = "for dir in /tmp /workspace /outputs; do \
                  dd if=/dev/zero of=$dir/fill bs=1M count=200 2>/dev/null; \
                  echo \"$dir $(( $(wc -c < $dir/fill) / 1048576 ))\"; \
                done";
    let result = run(&client, "bash", code, 20_000).await;
    let stdout = result["stdout"].as_str().unwrap_or_default();
    for line in stdout.lines() {
        let megabytes: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(999);
        assert!(megabytes <= 64, "{line}: the fill should stop at 64 MiB");
    }
    assert_eq!(stdout.lines().count(), 3, "{result}");
    client.cancel().await.ok();
    // In a session /tmp and /outputs are bounded by the tmpfs size,
    // /workspace by the session storage size, and code cannot write into the
    // (disk-backed) packages volume at all.
    let client = start_server_with_env(&[
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_TMPFS_MB", "64"),
        ("MULTILANG_SANDBOX_SESSION_STORAGE_MB", "96"),
        ("MULTILANG_SANDBOX_MEMORY_MB", "192"),
    ])
    .await;
    let name = create_session(&client, "fill", "bash").await;
    let code = "for dir in /tmp /outputs /workspace /packages/session; do \
                  dd if=/dev/zero of=$dir/fill bs=1M count=300 2>/dev/null; \
                  echo \"$dir $(( $(wc -c < $dir/fill 2>/dev/null || echo 0) / 1048576 ))\"; \
                done; rm -f /outputs/fill /tmp/fill";
    let result = execute_in(&client, &name, "bash", code).await;
    let stdout = result["stdout"].as_str().unwrap_or_default();
    let sizes: Vec<(String, u64)> = stdout
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(dir, size)| (dir.to_string(), size.trim().parse().unwrap_or(999)))
        .collect();
    let expected = [
        ("/tmp", 64),
        ("/outputs", 64),
        ("/workspace", 96),
        ("/packages/session", 0),
    ];
    assert_eq!(sizes.len(), expected.len(), "{result}");
    for ((dir, size), (expected_dir, limit)) in sizes.iter().zip(expected) {
        assert_eq!(dir, expected_dir, "{result}");
        // Full up to the limit (less what the runner keeps in /tmp), never past it.
        assert!(
            *size <= limit && *size + 4 >= limit,
            "{dir} took {size} MiB, limit {limit}: {result}"
        );
    }
    // The full workspace (96 MiB) did not cost the programs their memory:
    // 140 MiB more fits only because the session's limit is 192 + 96 MiB
    // (without the growth, 96 + 140 > 192).
    let result = execute_in(
        &client,
        &name,
        "bash",
        "python3 -c 'x = bytearray(140 * 1024 * 1024); print(len(x) // 1048576)'",
    )
    .await;
    assert_eq!(result["stdout"].as_str().map(str::trim), Some("140"), "{result}");
    session(&client, json!({"action": "destroy", "name": name})).await;
    still_answers(&client).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn sleeping_code_times_out() {
    require_docker().await;
    let client = start_server().await;
    let started = Instant::now();
    let result = run(&client, "bash", "sleep 600", 2000).await;
    assert_eq!(result["timed_out"], true, "{result}");
    assert!(started.elapsed() < Duration::from_secs(15));
    let result = run(&client, "javascript", "setInterval(() => {}, 1000)", 2000).await;
    assert_eq!(result["timed_out"], true, "{result}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn there_is_no_network() {
    require_docker().await;
    let client = start_server().await;
    let code = r#"import socket
for target in [('1.1.1.1', 53), ('8.8.8.8', 443)]:
    try:
        socket.create_connection(target, timeout=3)
        print('connected', target)
    except OSError as error:
        print('refused', error.errno)
try:
    socket.getaddrinfo('example.com', 443)
    print('resolved')
except OSError:
    print('no dns')
print(sorted(name for _, name in socket.if_nameindex()))"#;
    let result = run(&client, "python", code, 20_000).await;
    let stdout = result["stdout"].as_str().unwrap_or_default();
    assert!(
        !stdout.contains("connected") && !stdout.contains("resolved"),
        "{result}"
    );
    assert_eq!(stdout.matches("refused").count(), 2, "{result}");
    assert!(stdout.contains("no dns"), "{result}");
    assert!(stdout.trim_end().ends_with("['lo']"), "only loopback: {result}");
    let result = run(
        &client,
        "bash",
        "(echo > /dev/tcp/1.1.1.1/80) 2>/dev/null && echo open || echo closed",
        10_000,
    )
    .await;
    assert_eq!(result["stdout"], "closed\n", "{result}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn privileged_operations_are_refused() {
    require_docker().await;
    let client = start_server().await;
    let code = "mount -t tmpfs none /mnt 2>/dev/null && echo mounted || echo no-mount\n\
unshare -r true 2>/dev/null && echo unshared || echo no-unshare\n\
unshare -n true 2>/dev/null && echo netns || echo no-netns\n\
chroot / true 2>/dev/null && echo chrooted || echo no-chroot\n\
su -c true 2>/dev/null </dev/null && echo root || echo no-root\n\
for path in /etc/evil /usr/bin/evil /evil; do touch $path 2>/dev/null && echo wrote-$path || echo read-only; done\n\
id -u; grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status | awk '{print $2}' | sort -u\n\
grep NoNewPrivs /proc/self/status | awk '{print $2}'\n\
grep Seccomp: /proc/self/status | awk '{print $2}'";
    let result = run(&client, "bash", code, 20_000).await;
    // Under gVisor the container's seccomp profile is not loaded (runsc
    // 2022-12-19's --oci-seccomp breaks thread creation under it), so
    // `unshare -r` makes a user namespace inside gVisor's own kernel, which
    // gives nothing on the host; its /proc has no NoNewPrivs line.
    let expected = if gvisor() {
        "no-mount\nunshared\nno-netns\nno-chroot\nno-root\nread-only\nread-only\nread-only\n1000\n0000000000000000\n0\n"
    } else {
        "no-mount\nno-unshare\nno-netns\nno-chroot\nno-root\nread-only\nread-only\nread-only\n1000\n0000000000000000\n1\n2\n"
    };
    assert_eq!(result["stdout"], expected, "{result}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn host_files_and_processes_are_not_visible() {
    require_docker().await;
    let client = start_server().await;
    let marker = std::env::temp_dir().join(format!("host-marker-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&marker, "secret").unwrap();
    let code = format!(
        "test -e {} && echo sees-host-tmp || echo no-host-tmp\n\
         test -e /var/run/docker.sock -o -e /run/docker.sock && echo socket || echo no-socket\n\
         test -e {} && echo host-source || echo no-host-source\n\
         ps -e --no-headers | wc -l",
        marker.display(),
        env!("CARGO_MANIFEST_DIR")
    );
    let result = run(&client, "bash", &code, 10_000).await;
    let stdout = result["stdout"].as_str().unwrap_or_default().to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[..3], ["no-host-tmp", "no-socket", "no-host-source"], "{result}");
    let processes: u32 = lines[3].trim().parse().unwrap_or(999);
    assert!(processes < 10, "only the sandbox's own processes: {result}");
    std::fs::remove_file(marker).ok();
    client.cancel().await.ok();
}

#[tokio::test]
async fn session_names_with_shell_or_label_syntax_are_refused() {
    require_docker().await;
    let client = start_server().await;
    let long = "a".repeat(64);
    for name in [
        "a;rm -rf /",
        "$(id)",
        "`id`",
        "x\ny",
        "../etc",
        "a=b,c=d",
        "name with space",
        "-leading-dash",
        "ünïcode",
        long.as_str(),
        "",
    ] {
        let text = tool_error_text(
            &client,
            "sandbox_session",
            json!({"action": "create", "name": name, "language": "bash"}),
        )
        .await;
        assert!(
            text.contains("invalid session name") || text.contains("`name` is required"),
            "{name:?}: {text}"
        );
    }
    client.cancel().await.ok();
}

#[tokio::test]
async fn destroying_a_session_during_an_execute_ends_both_cleanly() {
    let docker = require_docker().await;
    let client = std::sync::Arc::new(start_server().await);
    let name = create_session(&client, "busy", "python").await;
    let runner = {
        let client = client.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            call(
                &client,
                "sandbox_execute",
                json!({"language": "python", "code": "import time\nopen('started', 'w').close()\ntime.sleep(60)", "session": name, "timeout": 90000}),
            )
            .await
        })
    };
    // Wait until the code is really running (file operations work meanwhile).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = call(
            &client,
            "sandbox_file_ops",
            json!({"session": name, "operation": "read", "path": "started"}),
        )
        .await;
        if probe.is_error != Some(true) {
            break;
        }
        assert!(Instant::now() < deadline, "the execute never started");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = Instant::now();
    session(&client, json!({"action": "destroy", "name": name})).await;
    let execute = tokio::time::timeout(Duration::from_secs(30), runner)
        .await
        .expect("the execute returns once its session is gone")
        .expect("the execute task did not panic");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(execute.is_error, Some(true), "{}", text_of(&execute));
    // Destroy answers at once; the container is removed in the background.
    let left = wait_for_none(
        &docker,
        &[&format!("multilang-sandbox.session={name}")],
        Duration::from_secs(30),
    )
    .await;
    assert!(left.is_empty(), "{left:?}");
    still_answers(&client).await;
    if let Ok(client) = std::sync::Arc::try_unwrap(client) {
        client.cancel().await.ok();
    }
}

/// Raw JSON-RPC over the binary's stdio, without an MCP client library.
#[tokio::test]
async fn huge_and_malformed_messages_get_errors_and_the_server_survives() {
    require_docker().await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_multilang-sandbox"))
        .env("MULTILANG_SANDBOX_LOG", "error")
        .env("MULTILANG_SANDBOX_POOL_SIZE", "0")
        .env("MULTILANG_SANDBOX_SESSION_SPARES", "0")
        .env("MULTILANG_SANDBOX_AUDIT_LOG", test_audit_log())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the server");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut reply = async || -> Value {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(60), stdout.read_line(&mut line))
            .await
            .expect("the server answers")
            .expect("read a reply");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"))
    };
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "hostile", "version": "1"}}});
    stdin.write_all(format!("{initialize}\n").as_bytes()).await.unwrap();
    assert_eq!(reply().await["id"], 1);
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
        .await
        .unwrap();

    stdin.write_all(b"{this is not json\n").await.unwrap();
    let parse_error = reply().await;
    assert_eq!(parse_error["error"]["code"], -32700, "{parse_error}");

    let huge = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "sandbox_execute", "arguments": {"language": "python", "code": format!("print(len('{}'))", "x".repeat(20 * 1024 * 1024))}}});
    stdin.write_all(format!("{huge}\n").as_bytes()).await.unwrap();
    let too_large = reply().await;
    assert_eq!(too_large["id"], 2, "{too_large}");
    assert_eq!(too_large["error"]["code"], -32600);
    assert!(too_large["error"]["message"].as_str().unwrap().contains("too large"));

    let ok = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "sandbox_execute", "arguments": {"language": "python", "code": "print(6 * 7)"}}});
    stdin.write_all(format!("{ok}\n").as_bytes()).await.unwrap();
    let answer = reply().await;
    assert_eq!(answer["id"], 3);
    assert_eq!(answer["result"]["structuredContent"]["stdout"], "42\n", "{answer}");
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the server exits when stdin closes")
        .unwrap();
    assert!(status.success(), "{status}");
}
