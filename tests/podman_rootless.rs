//! Rootless Podman, as a user this test creates: on cgroup v1 such an engine
//! cannot enforce a sandbox's memory and process-count limits (Podman would
//! drop them with only a warning in its own log), so `doctor` names the
//! problem and its fix and the server refuses to start sandboxes there,
//! instead of running code without its limits. It adds a user and runs
//! Podman as that user, so it is `#[ignore]`d in a plain `cargo test`;
//! `.ci/podman` runs it (root, Podman and `useradd` needed).

mod common;

use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A user with a rootless Podman API service, removed (with its files and
/// the service) when dropped, whether the test passed or not.
struct RootlessPodman {
    user: String,
    runtime_dir: PathBuf,
    service: Child,
}

impl RootlessPodman {
    fn start() -> Self {
        assert!(
            Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|out| out.stdout == b"0\n"),
            "this test needs root (it adds a user)"
        );
        assert!(
            Command::new("podman")
                .arg("--version")
                .output()
                .is_ok_and(|out| out.status.success()),
            "this test needs podman (`./install.sh --podman`)"
        );
        let user = format!("msb-rootless-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let added = Command::new("useradd").args(["--create-home", &user]).status();
        assert!(added.is_ok_and(|status| status.success()), "useradd {user}");
        let runtime_dir = std::env::temp_dir().join(&user);
        let service = Self::serve(&user, &runtime_dir);
        let mut podman = Self {
            user,
            runtime_dir,
            service,
        };
        podman.wait_until_it_answers();
        podman
    }

    fn serve(user: &str, runtime_dir: &Path) -> Child {
        std::fs::create_dir_all(runtime_dir).expect("runtime folder");
        let owned = Command::new("chown").arg(user).arg(runtime_dir).status();
        assert!(owned.is_ok_and(|status| status.success()), "chown the runtime folder");
        Command::new("runuser")
            .args(["-u", user, "--", "env"])
            .arg(format!("XDG_RUNTIME_DIR={}", runtime_dir.display()))
            .arg(format!("HOME=/home/{user}"))
            .args(["podman", "system", "service", "--time=0"])
            .arg(format!("unix://{}/podman.sock", runtime_dir.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start podman system service as the user")
    }

    fn host(&self) -> String {
        format!("unix://{}/podman.sock", self.runtime_dir.display())
    }

    fn wait_until_it_answers(&mut self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let info = Command::new("podman").args(["--url", &self.host(), "info"]).output();
            if info.is_ok_and(|out| out.status.success()) {
                return;
            }
            if let Ok(Some(status)) = self.service.try_wait() {
                panic!("rootless podman's service ended: {status}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("rootless podman's service did not answer within 30 s");
    }
}

impl Drop for RootlessPodman {
    fn drop(&mut self) {
        let _ = self.service.kill();
        let _ = self.service.wait();
        // The service's helpers (its pause process, conmon) run as the user.
        let _ = Command::new("pkill").args(["-KILL", "-u", &self.user]).status();
        std::thread::sleep(Duration::from_millis(200));
        let _ = Command::new("userdel").args(["--remove", &self.user]).status();
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
    }
}

fn cgroup_v1() -> bool {
    !Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

#[tokio::test]
#[ignore = "adds a user and runs rootless Podman as it; .ci/podman runs it"]
async fn rootless_podman_on_cgroup_v1_gets_no_sandboxes_and_doctor_says_why() {
    let podman = RootlessPodman::start();
    let home = std::env::temp_dir().join(format!("{}-home", podman.user));
    std::fs::create_dir_all(&home).expect("home");
    let doctor = Command::new(env!("CARGO_BIN_EXE_multilang-sandbox"))
        .arg("doctor")
        .env("HOME", &home)
        .env("DOCKER_HOST", podman.host())
        .env("MULTILANG_SANDBOX_LOG", "warn")
        .output()
        .expect("doctor runs");
    let report = String::from_utf8_lossy(&doctor.stdout).to_string();
    let _ = std::fs::remove_dir_all(&home);
    assert!(
        report.contains("rootless"),
        "doctor names the engine rootless:\n{report}"
    );
    if !cgroup_v1() {
        // cgroup v2 lets a rootless engine enforce limits: no problem named.
        assert!(!report.contains("PROBLEM  resource limits"), "{report}");
        return;
    }
    assert!(
        report.contains("PROBLEM  resource limits"),
        "doctor names the limits problem:\n{report}"
    );
    assert!(report.contains("cgroup v2"), "doctor gives the way out:\n{report}");

    let client = start_server_with_env(&[("DOCKER_HOST", &podman.host())]).await;
    let refused = tool_error_text(
        &client,
        "sandbox_execute",
        json!({"language": "bash", "code": "echo hi"}),
    )
    .await;
    assert!(
        refused.contains("cannot enforce memory and process-count limits"),
        "the server refuses and says why: {refused}"
    );
    client.cancel().await.ok();
}
