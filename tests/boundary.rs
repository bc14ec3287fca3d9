//! The hostile suite, part two: attacks on the boundary between the code
//! and the server, as a hostile review tried them. File operations raced
//! with symbolic links, the runner's channel opened through /proc, forged
//! results, host folders widened by links, session volumes that collide,
//! a terabyte sparse file listed, a kernel that closed its output. Each test
//! checks the attack really ran (so it cannot pass by doing nothing) and
//! that the boundary held. Counts are summarized in SECURITY.md.

mod common;

use common::*;
use serde_json::{Value, json};

async fn run_in(client: &Client, name: &str, code: &str) -> Value {
    execute_in(client, name, "python", code).await
}

async fn file_call(client: &Client, arguments: Value) -> rmcp::model::CallToolResult {
    call(client, "sandbox_file_ops", arguments).await
}

#[tokio::test]
async fn file_operations_raced_with_symbolic_links_stay_inside_the_folders() {
    let client = start_server().await;
    let name = create_session(&client, "race", "python").await;
    let marker = format!("msb-race-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    // A daemon swaps each path with a link out of the folders, as fast as it can.
    let daemon = format!(
        r#"import subprocess, sys
code = r'''
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
os.chdir("/workspace")
open("swap", "w").write("plain\n")
os.symlink("/etc/shadow", "swap.link")
open("wswap", "w").write("w\n")
os.symlink("/etc/{marker}", "wswap.link")
exchange = libc.renameat2(-100, b"swap", -100, b"swap.link", 2) == 0
while exchange:
    libc.renameat2(-100, b"swap", -100, b"swap.link", 2)
    libc.renameat2(-100, b"wswap", -100, b"wswap.link", 2)
# Without RENAME_EXCHANGE (gVisor): rename a fresh link, then a fresh file, over each.
while True:
    for name, target in (("swap", "/etc/shadow"), ("wswap", "/etc/{marker}")):
        os.symlink(target, name + ".l")
        os.rename(name + ".l", name)
        with open(name + ".f", "w") as handle:
            handle.write("plain\n" if name == "swap" else "w\n")
        os.rename(name + ".f", name)
'''
subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stderr=open("/tmp/daemon.err", "w"))
import os, time
kinds, deadline = set(), time.monotonic() + 10
while len(kinds) < 2 and time.monotonic() < deadline:
    try:
        kinds.add(os.path.islink("/workspace/swap"))
    except OSError:
        pass
print(sorted(kinds))
if len(kinds) < 2:
    print(open("/tmp/daemon.err").read())"#
    );
    let started = run_in(&client, &name, &daemon).await;
    assert_eq!(
        started["stdout"], "[False, True]\n",
        "the swapping daemon must be running: {started}"
    );
    let (mut read_plain, mut refused) = (0, 0);
    for _ in 0..150 {
        let result = file_call(&client, json!({"session": name, "operation": "read", "path": "swap"})).await;
        let text = text_of(&result);
        assert!(
            !text.contains("root:"),
            "a read followed the link to /etc/shadow: {text}"
        );
        if result.is_error == Some(true) {
            refused += 1;
        } else {
            assert!(text.ends_with("plain\n"), "{text}");
            read_plain += 1;
        }
    }
    assert!(
        read_plain > 0,
        "no read of the regular file succeeded ({refused} refused)"
    );
    for _ in 0..60 {
        file_call(
            &client,
            json!({"session": name, "operation": "write", "path": "wswap", "content": "pwned"}),
        )
        .await;
    }
    let check = run_in(
        &client,
        &name,
        &format!("import os\nprint(os.path.lexists('/etc/{marker}'))"),
    )
    .await;
    assert_eq!(
        check["stdout"], "False\n",
        "a write landed in the read-only root: {check}"
    );
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
}

/// Code that looks for the runner's processes and tries to open their
/// stream, memory and environment through /proc.
const PROC_PROBE: &str = r#"import os
runners = []
for pid in os.listdir('/proc'):
    if not pid.isdigit() or int(pid) == os.getpid():
        continue
    try:
        command = open('/proc/%s/cmdline' % pid, 'rb').read()
    except OSError:
        continue
    if b'runner.py' in command and b'--python-kernel' not in command:
        runners.append(pid)
print('runners', len(runners), 'pid1', '1' in runners)
for pid in runners:
    # Started with -E -s: no installed package can shadow what it imports.
    if b'\x00-E\x00-s\x00' not in open('/proc/%s/cmdline' % pid, 'rb').read():
        print('runner', pid, 'reads PYTHONPATH')
for pid in runners:
    for what, mode in (('fd/0', 'rb'), ('fd/1', 'wb'), ('environ', 'rb'), ('mem', 'rb')):
        try:
            open('/proc/%s/%s' % (pid, what), mode).close()
            print('opened', pid, what)
        except OSError:
            pass
    try:
        os.listdir('/proc/%s/fd' % pid)
        print('listed', pid)
    except OSError:
        pass
"#;

#[tokio::test]
async fn code_cannot_reach_the_runners_channel_through_proc() {
    let client = start_server().await;
    let stateless = execute_with(&client, json!({"language": "python", "code": PROC_PROBE})).await;
    // PID 1 (the reaper) and the runner it forked both hold the stream.
    // gVisor's /proc (Debian's runsc 2022-12-19) ignores the dumpable flag:
    // there the code reaches its own sandbox's stream, as SECURITY.md says,
    // and only the probe's run is checked.
    let gvisor = gvisor();
    let held = |result: &Value| {
        let stdout = result["stdout"].as_str().unwrap_or_default();
        if gvisor {
            stdout.starts_with("runners 2 pid1 True\n")
        } else {
            stdout == "runners 2 pid1 True\n"
        }
    };
    assert!(held(&stateless), "{stateless}");

    let name = create_session(&client, "proc", "python").await;
    let in_session = run_in(&client, &name, PROC_PROBE).await;
    assert!(held(&in_session), "{in_session}");
    // A daemon left by one cell cannot read the next cell's request either.
    let daemon = "import subprocess, sys\n\
subprocess.Popen([sys.executable, '-c', 'import time\\nwhile True: time.sleep(1)'], start_new_session=True)\n\
print('left')";
    assert_eq!(run_in(&client, &name, daemon).await["stdout"], "left\n");
    let secret = execute_with(
        &client,
        json!({"language": "python", "session": name, "code": "import os\nprint(os.environ['TOKEN'])",
                   "env": {"TOKEN": "s3cret"}}),
    )
    .await;
    assert_eq!(secret["stdout"], "s3cret\n", "{secret}");
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn listing_a_terabyte_sparse_file_costs_nothing() {
    let client = start_server().await;
    let name = create_session(&client, "sparse", "python").await;
    let made = run_in(
        &client,
        &name,
        "import os\nos.makedirs('big')\nwith open('big/sparse.bin', 'wb') as f:\n    f.truncate(1 << 40)\nprint(os.path.getsize('big/sparse.bin'))",
    )
    .await;
    assert_eq!(made["stdout"], "1099511627776\n", "{made}");
    let listing = file_call(&client, json!({"session": name, "operation": "list", "path": "big"})).await;
    assert_ne!(listing.is_error, Some(true), "{}", text_of(&listing));
    let entries = listing.structured_content.expect("structured listing")["entries"].clone();
    assert_eq!(entries[0]["size"], 1u64 << 40, "{entries}");
    let read = file_call(
        &client,
        json!({"session": name, "operation": "read", "path": "big/sparse.bin"}),
    )
    .await;
    assert_eq!(read.is_error, Some(true));
    assert!(text_of(&read).contains("over the"), "{}", text_of(&read));
    // The session still answers at once.
    assert_eq!(run_in(&client, &name, "print('ok')").await["stdout"], "ok\n");
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_kernel_whose_output_was_closed_says_so_and_recovers() {
    let client = start_server().await;
    let name = create_session(&client, "closed", "python").await;
    let closed = run_in(
        &client,
        &name,
        "import os\nprint('before', flush=True)\nos.close(1)\nos.close(2)",
    )
    .await;
    let note = closed["note"].as_str().unwrap_or_default();
    assert!(note.contains("closed stdout and stderr"), "{closed}");
    let next = run_in(&client, &name, "print('back')").await;
    assert_eq!(next["stdout"], "back\n", "{next}");
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn session_names_never_share_or_squat_volumes() {
    let docker = require_docker().await;
    let client = start_server().await;
    let base = format!("vol-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    // Each pair collided before: `x` then `x-outputs`, `y-packages` then `y`.
    let names = [
        base.clone(),
        format!("{base}-outputs"),
        format!("{base}y-packages"),
        format!("{base}y"),
    ];
    let _guards: Vec<TestSession> = names.iter().map(TestSession::adopt).collect();
    for name in &names {
        session(&client, json!({"action": "create", "name": name, "language": "bash"})).await;
    }
    for name in &names {
        let result = execute_in(
            &client,
            name,
            "bash",
            &format!("echo {name} > /workspace/me; cat /workspace/me"),
        )
        .await;
        assert_eq!(result["stdout"], format!("{name}\n"), "{result}");
    }
    for name in &names {
        session(&client, json!({"action": "destroy", "name": name})).await;
    }
    // Destroy answers at once; the volumes go in the background.
    let list = || async {
        let options = bollard::query_parameters::ListVolumesOptionsBuilder::default()
            .filters(&std::collections::HashMap::from([(
                "name".to_string(),
                vec![format!("multilang-sandbox-session-{base}")],
            )]))
            .build();
        docker
            .list_volumes(Some(options))
            .await
            .expect("cannot list volumes")
            .volumes
            .unwrap_or_default()
    };
    let gone = eventually(std::time::Duration::from_secs(30), || async { list().await.is_empty() }).await;
    assert!(
        gone,
        "volumes left behind: {:?}",
        list().await.iter().map(|volume| &volume.name).collect::<Vec<_>>()
    );
    client.cancel().await.ok();
}

#[tokio::test]
async fn host_folders_reached_through_links_or_nested_in_writable_ones_are_refused() {
    require_docker().await;
    let base = std::env::temp_dir().join(format!("msb-links-{}", uuid::Uuid::new_v4().simple()));
    let project = base.join("proj");
    std::fs::create_dir_all(project.join("inner")).expect("make folders");
    let secret = base.join("secret");
    std::fs::create_dir_all(&secret).expect("make folders");
    std::fs::write(secret.join("key"), "host secret").expect("write");
    // The nested configuration the review used to widen `inner` to any host folder.
    let nested = format!(
        "proj={}:rw,inner={}",
        project.display(),
        project.join("inner").display()
    );
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_multilang-sandbox"))
        .args(["config", "show"])
        .env("MULTILANG_SANDBOX_HOST_FOLDERS", &nested)
        .output()
        .expect("run config show");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "a nested writable configuration was accepted"
    );
    assert!(said.contains("lies inside the writable folder `proj`"), "{said}");

    // A folder whose configured path is a link (as a planted one would be).
    let link = base.join("link");
    std::os::unix::fs::symlink(&secret, &link).expect("make link");
    let folders = format!("proj={}:rw,linked={}", project.display(), link.display());
    let client = start_server_with_env(&[
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_HOST_FOLDERS", &folders),
    ])
    .await;
    let name = TestSession::adopt(unique_name("lnk"));
    let text = tool_error_text(
        &client,
        "sandbox_session",
        json!({"action": "create", "name": name, "language": "python", "mounts": ["linked"]}),
    )
    .await;
    assert!(
        text.contains("symbolic link") && text.contains(&secret.display().to_string()),
        "{text}"
    );
    client.cancel().await.ok();
    let _ = std::fs::remove_dir_all(&base);
}
