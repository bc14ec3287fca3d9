//! A Docker engine reached over ssh (`DOCKER_HOST=ssh://user@host`): an
//! sshd on 127.0.0.1:22 with a throwaway host key and an ssh-agent holding a
//! throwaway client key stand in for the bigger machine. The server runs
//! code and keeps a session through it, and a port in the URL is refused
//! with the way to set it. This test starts an sshd on port 22 and touches
//! the user's `~/.ssh/known_hosts` (restored afterwards), so it is
//! `#[ignore]`d in a plain `cargo test`; `.ci/run` runs it with
//! `-- --ignored` (it needs root, openssh-server and a free port 22).

mod common;

use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

fn shell(script: &str) -> Option<String> {
    let output = Command::new("sh").arg("-c").arg(script).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Everything the test started or changed, undone when dropped (also when
/// the test fails half-way).
struct SshFixture {
    dir: PathBuf,
    ssh_dir: PathBuf,
    ssh_dir_existed: bool,
    known_hosts: Option<Vec<u8>>,
    agent_pid: Option<String>,
}

impl Drop for SshFixture {
    fn drop(&mut self) {
        let dir = self.dir.display();
        shell(&format!("kill $(cat {dir}/sshd.pid) 2>/dev/null"));
        if let Some(pid) = &self.agent_pid {
            shell(&format!("kill {pid} 2>/dev/null"));
        }
        let known_hosts = self.ssh_dir.join("known_hosts");
        match &self.known_hosts {
            Some(content) => {
                let _ = std::fs::write(&known_hosts, content);
            }
            None if self.ssh_dir_existed => {
                let _ = std::fs::remove_file(&known_hosts);
            }
            None => {
                let _ = std::fs::remove_dir_all(&self.ssh_dir);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl SshFixture {
    fn start() -> Self {
        let user = shell("id -un").expect("id -un");
        let home = shell("getent passwd \"$(id -un)\" | cut -d: -f6").expect("the user's home from passwd");
        let ssh_dir = Path::new(&home).join(".ssh");
        let dir = std::env::temp_dir().join(format!("multilang-sandbox-ssh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut fixture = SshFixture {
            ssh_dir_existed: ssh_dir.is_dir(),
            known_hosts: std::fs::read(ssh_dir.join("known_hosts")).ok(),
            ssh_dir,
            dir: dir.clone(),
            agent_pid: None,
        };
        assert_eq!(user, "root", "this test starts an sshd on port 22: run it as root");
        assert!(
            shell("command -v sshd || test -x /usr/sbin/sshd").is_some(),
            "openssh-server is missing (apt-get install openssh-server)"
        );
        assert!(
            shell("(ss -ltn || netstat -ltn) 2>/dev/null | grep -q '127.0.0.1:22 \\|0.0.0.0:22 \\|:::22 '").is_none(),
            "port 22 is taken; stop the sshd there to run this test"
        );
        let d = dir.display();
        shell(&format!(
            "cd {d} && ssh-keygen -q -t ed25519 -N '' -f host_key && ssh-keygen -q -t ed25519 -N '' -f client_key \
             && cp client_key.pub authorized_keys && chmod 600 authorized_keys && mkdir -p /run/sshd"
        ))
        .expect("make ssh keys");
        // No host key entry may linger from an earlier run with another key.
        if fixture.known_hosts.is_some() {
            shell(&format!(
                "ssh-keygen -q -R 127.0.0.1 -f {}/known_hosts >/dev/null 2>&1",
                fixture.ssh_dir.display()
            ));
        }
        shell(&format!(
            "/usr/sbin/sshd -f /dev/null -p 22 -o ListenAddress=127.0.0.1 -o HostKey={d}/host_key \
             -o AuthorizedKeysFile={d}/authorized_keys -o StrictModes=no -o PidFile={d}/sshd.pid \
             -o PermitRootLogin=prohibit-password -o PasswordAuthentication=no -E {d}/sshd.log"
        ))
        .expect("start sshd on 127.0.0.1:22");
        let pid = shell(&format!(
            "eval \"$(ssh-agent -a {d}/agent.sock)\" >/dev/null && SSH_AUTH_SOCK={d}/agent.sock ssh-add -q {d}/client_key && echo $SSH_AGENT_PID"
        ))
        .expect("start an ssh-agent with the client key");
        fixture.agent_pid = Some(pid);
        fixture
    }

    fn agent_socket(&self) -> String {
        format!("{}/agent.sock", self.dir.display())
    }
}

#[tokio::test]
#[ignore = "starts an sshd on port 22 and edits ~/.ssh/known_hosts; run with -- --ignored (CI does)"]
async fn an_ssh_engine_runs_code_and_sessions() {
    require_docker().await;
    let fixture = tokio::task::spawn_blocking(SshFixture::start).await.unwrap();
    let socket = fixture.agent_socket();
    let client = start_server_with_env(&[
        ("DOCKER_HOST", "ssh://root@127.0.0.1"),
        ("SSH_AUTH_SOCK", &socket),
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
    ])
    .await;
    let result = execute(&client, "python", "print(6 * 7)").await;
    assert_eq!(result["stdout"], "42\n", "{result}");
    let name = create_session(&client, "ssh", "python").await;
    execute_in(&client, &name, "python", "x = 'over ssh'").await;
    let again = execute_in(&client, &name, "python", "print(x)").await;
    assert_eq!(again["stdout"], "over ssh\n", "{again}");
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();

    // A port in the URL cannot reach ssh through the transport: refused
    // with the way to set it.
    let client = start_server_with_env(&[
        ("DOCKER_HOST", "ssh://root@127.0.0.1:2222"),
        ("SSH_AUTH_SOCK", &socket),
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
    ])
    .await;
    let error = tool_error_text(
        &client,
        "sandbox_execute",
        json!({"language": "bash", "code": "echo 1"}),
    )
    .await;
    assert!(
        error.contains("~/.ssh/config") && error.contains("Port 2222"),
        "{error}"
    );
    client.cancel().await.ok();
    tokio::task::spawn_blocking(move || drop(fixture)).await.unwrap();
}
