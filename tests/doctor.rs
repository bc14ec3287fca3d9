//! `multilang-sandbox doctor` through the real binary: healthy on a working
//! machine (exit 0), and naming the problem and its fix when the engine is
//! unreachable or a client configuration points at a missing binary. (The
//! engine actually stopped is checked in `engine_restart.rs`.)

mod common;

use common::*;
use std::path::PathBuf;
use std::process::{Command, Output};

fn home(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("multilang-sandbox-doctor-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp home");
    dir
}

/// Runs `doctor` with `home` as HOME and nothing else of the user's.
fn doctor(home: &PathBuf, env: &[(&str, &str)]) -> (Output, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_multilang-sandbox"));
    command
        .arg("doctor")
        .env("HOME", home)
        .env("MULTILANG_SANDBOX_LOG", "warn");
    for (key, _) in std::env::vars() {
        if key.starts_with("MULTILANG_SANDBOX_") && key != "MULTILANG_SANDBOX_SECCOMP" || key.starts_with("XDG_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("doctor runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    (output, stdout)
}

#[tokio::test]
async fn doctor_is_healthy_on_a_working_machine() {
    require_docker().await;
    let home = home("healthy");
    let (output, stdout) = doctor(&home, &[]);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    for line in [
        "ok       Docker engine",
        "ok       seccomp",
        "ok       sandbox images",
        "ok       sandbox run",
        "ok       audit log",
        "All is well.",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("PROBLEM"), "{stdout}");
    std::fs::remove_dir_all(&home).ok();
}

#[test]
fn doctor_names_an_unreachable_engine_and_a_broken_client_config_with_fixes() {
    let home = home("broken");
    std::fs::create_dir_all(home.join(".lmstudio")).unwrap();
    std::fs::write(
        home.join(".lmstudio/mcp.json"),
        r#"{"mcpServers": {"multilang-sandbox": {"command": "/nonexistent/bin/multilang-sandbox"}}}"#,
    )
    .unwrap();
    let (output, stdout) = doctor(&home, &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("PROBLEM  Docker engine"), "{stdout}");
    assert!(stdout.contains("fix: start Docker"), "{stdout}");
    assert!(stdout.contains("PROBLEM  client: LM Studio"), "{stdout}");
    assert!(stdout.contains("fix: rerun ./install.sh"), "{stdout}");
    assert!(stdout.contains("2 problems."), "{stdout}");
    std::fs::remove_dir_all(&home).ok();
}

#[test]
fn doctor_names_host_folders_that_are_links_or_nested_in_writable_ones() {
    let home = home("folders");
    let real = home.join("real");
    std::fs::create_dir_all(&real).unwrap();
    let link = home.join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let folders = format!("good={},linked={}", real.display(), link.display());
    let (output, stdout) = doctor(&home, &[("MULTILANG_SANDBOX_HOST_FOLDERS", &folders)]);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("PROBLEM  host folders"), "{stdout}");
    assert!(
        stdout.contains("`linked`") && stdout.contains("symbolic link") && !stdout.contains("`good`"),
        "{stdout}"
    );
    // A folder inside a writable one is refused before any check runs.
    let nested = format!("out={}:rw,inner={}", home.display(), real.display());
    let (output, stdout) = doctor(&home, &[("MULTILANG_SANDBOX_HOST_FOLDERS", &nested)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stdout}");
    assert!(stderr.contains("lies inside the writable folder `out`"), "{stderr}");
    std::fs::remove_dir_all(&home).ok();
}
