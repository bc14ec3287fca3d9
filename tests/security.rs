//! Seccomp profiles: the default `standard` profile refuses the dangerous
//! system calls, `strict` refuses more, a session may tighten the server's
//! profile but never loosen it, and the profile really is what the engine
//! applies (a permissive server lets through what standard refuses).

mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Python that calls each system call with zero arguments and prints
/// `name errno` per line (the numbers are per architecture).
const PROBE: &str = r#"
import ctypes, platform
libc = ctypes.CDLL(None, use_errno=True)
table = {
    "x86_64": {"mount": 165, "umount2": 166, "unshare": 272, "setns": 308, "ptrace": 101,
               "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321,
               "perf_event_open": 298, "userfaultfd": 323, "kexec_load": 246,
               "init_module": 175, "delete_module": 176, "reboot": 169, "swapon": 167,
               "swapoff": 168, "pivot_root": 155, "acct": 163, "open_by_handle_at": 304,
               "io_uring_setup": 425, "clone3": 435},
    "aarch64": {"mount": 40, "umount2": 39, "unshare": 97, "setns": 268, "ptrace": 117,
                "keyctl": 219, "add_key": 217, "request_key": 218, "bpf": 280,
                "perf_event_open": 241, "userfaultfd": 282, "kexec_load": 104,
                "init_module": 105, "delete_module": 106, "reboot": 142, "swapon": 224,
                "swapoff": 225, "pivot_root": 41, "acct": 89, "open_by_handle_at": 265,
                "io_uring_setup": 425, "clone3": 435},
}[platform.machine()]
for name, number in sorted(table.items()):
    ctypes.set_errno(0)
    libc.syscall(number, 0, 0, 0, 0, 0)
    print(name, ctypes.get_errno())
"#;

fn errnos(result: &Value) -> BTreeMap<String, i64> {
    result["stdout"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (name, errno) = line.split_once(' ')?;
            Some((name.to_string(), errno.parse().ok()?))
        })
        .collect()
}

/// `personality(0xffffffff)` queries the execution domain (allowed by
/// standard, refused by strict); `socket(AF_PACKET)` needs a capability under
/// standard (EPERM) and is an unsupported family under strict (EAFNOSUPPORT).
const STRICT_PROBE: &str = r#"
import ctypes, socket
libc = ctypes.CDLL(None, use_errno=True)
ctypes.set_errno(0)
print("personality", libc.personality(0xffffffff), ctypes.get_errno())
try:
    socket.socket(17, socket.SOCK_RAW)
except OSError as error:
    print("packet", error.errno)
"#;

#[tokio::test]
async fn standard_profile_refuses_dangerous_system_calls() {
    require_docker().await;
    let client = start_server_with_env(&[
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_SECCOMP", "standard"),
    ])
    .await;
    let result = execute(&client, "python", PROBE).await;
    let found = errnos(&result);
    assert_eq!(found.len(), 22, "{result}");
    for (name, errno) in &found {
        let expected = if name == "clone3" { 38 } else { 1 };
        assert_eq!(
            *errno, expected,
            "{name} should be refused by the standard profile: {result}"
        );
    }
    let name = create_session(&client, "seccomp", "python").await;
    let state = session(&client, json!({"action": "get", "name": name})).await;
    assert_eq!(state["sessions"][0]["seccomp"], "standard");
    let in_session = execute_in(&client, &name, "python", PROBE).await;
    assert_eq!(errnos(&in_session), found, "sessions run under the same profile");
    let strict_probe = execute_in(&client, &name, "python", STRICT_PROBE).await;
    assert_eq!(strict_probe["stdout"], "personality 0 0\npacket 1\n", "{strict_probe}");
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
}

#[tokio::test]
async fn sessions_may_tighten_the_profile_but_not_loosen_it() {
    require_docker().await;
    let client = start_server_with_env(&[
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_SECCOMP", "standard"),
    ])
    .await;
    let name = TestSession::adopt(unique_name("strict"));
    let created = session(
        &client,
        json!({"action": "create", "name": name, "language": "python", "seccomp": "strict"}),
    )
    .await;
    assert_eq!(created["sessions"][0]["seccomp"], "strict");
    let result = execute_in(&client, &name, "python", STRICT_PROBE).await;
    assert_eq!(result["stdout"], "personality -1 1\npacket 97\n", "{result}");
    let ok = execute_in(
        &client,
        &name,
        "python",
        "import subprocess\nprint(subprocess.run(['echo', 'fine'], capture_output=True, text=True).stdout, end='')",
    )
    .await;
    assert_eq!(ok["stdout"], "fine\n", "{ok}");
    session(&client, json!({"action": "destroy", "name": name})).await;

    for (asked, expected) in [("permissive", "weaker"), ("lax", "unknown seccomp profile")] {
        let loosen = TestSession::adopt(unique_name("loosen"));
        let refused = tool_error_text(
            &client,
            "sandbox_session",
            json!({"action": "create", "name": loosen, "language": "python", "seccomp": asked}),
        )
        .await;
        assert!(refused.contains(expected), "{refused}");
    }
    client.cancel().await.ok();
}

#[tokio::test]
async fn the_configured_profile_is_what_the_engine_applies() {
    require_docker().await;
    let client = start_server_with_env(&[
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_SECCOMP", "permissive"),
    ])
    .await;
    let found = errnos(&execute(&client, "python", PROBE).await);
    // Permissive lets io_uring and keyrings through (the kernel itself then
    // rejects the zero arguments), and still refuses mounts and modules.
    assert_ne!(found["io_uring_setup"], 1, "{found:?}");
    assert_ne!(found["keyctl"], 1, "{found:?}");
    assert_eq!(found["mount"], 1, "{found:?}");
    assert_eq!(found["init_module"], 1, "{found:?}");
    client.cancel().await.ok();
}

#[tokio::test]
async fn a_configured_runtime_the_engine_lacks_is_a_clear_error() {
    let docker = require_docker().await;
    // Podman ignores a runtime named per container: the server refuses any.
    let fix = if engine_is_podman(&docker).await {
        "containers.conf"
    } else {
        "daemon.json"
    };
    let client = start_server_with_env(&[
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
        ("MULTILANG_SANDBOX_RUNTIME", "no-such-runtime"),
    ])
    .await;
    let text = tool_error_text(
        &client,
        "sandbox_execute",
        json!({"language": "python", "code": "print(1)"}),
    )
    .await;
    assert!(text.contains("no-such-runtime") && text.contains(fix), "{text}");
    client.cancel().await.ok();
}
