//! The Docker engine restarted under a live session: the server reconnects,
//! the session's container is started again, and the result says what was
//! lost (variables; files kept in memory) and what was kept (files on disk,
//! packages), and `doctor` run while the engine is down names the problem
//! and its fix. This test restarts the
//! machine's Docker engine, so it is `#[ignore]`d in a plain `cargo test`;
//! `.ci/run` runs it on its own with `-- --ignored` (it needs root or a
//! systemd-managed engine).

mod common;

use common::*;
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

fn shell(script: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

fn systemd_manages_docker() -> bool {
    shell("systemctl is-active --quiet docker 2>/dev/null")
}

/// Stops a `dockerd` that systemd does not manage (none running is fine)
/// and waits until it has exited.
fn kill_dockerd() -> bool {
    shell(
        "pid=$(pgrep -x dockerd) || exit 0; kill -TERM $pid; \
         for i in $(seq 1 60); do kill -0 $pid 2>/dev/null || exit 0; sleep 0.5; done; exit 1",
    )
}

/// Stops the engine: through systemd when it manages Docker, otherwise by
/// stopping `dockerd`. Returns whether systemd manages it.
fn stop_engine() -> bool {
    let systemd = systemd_manages_docker();
    let stopped = if systemd {
        shell("systemctl stop docker docker.socket")
    } else {
        shell("pgrep -x dockerd >/dev/null") && kill_dockerd()
    };
    assert!(stopped, "could not stop the Docker engine (needs root or systemd)");
    systemd
}

/// Starts the engine as it was started before and waits until it answers.
fn try_start_engine(systemd: bool) -> Result<(), &'static str> {
    let started = if systemd {
        shell("systemctl start docker")
    } else {
        shell("setsid dockerd >>/var/log/dockerd.log 2>&1 </dev/null & exit 0")
    };
    if !started {
        return Err("could not start the Docker engine again");
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    while !shell("docker info >/dev/null 2>&1") {
        if Instant::now() >= deadline {
            return Err("the Docker engine did not come back");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// Starts the engine again and waits until it answers.
fn start_engine(systemd: bool) {
    if let Err(problem) = try_start_engine(systemd) {
        panic!("{problem}");
    }
}

/// Puts the machine's engine back as it was (plain `dockerd`, or systemd's)
/// when dropped, also when the test fails half-way.
struct RestoreEngine(bool);

impl Drop for RestoreEngine {
    fn drop(&mut self) {
        // No panics here: this may run while a failed test unwinds. The
        // engine to stop is the hand-started TLS one.
        kill_dockerd();
        let _ = try_start_engine(self.0);
    }
}

/// `multilang-sandbox doctor` while the engine is down: it must fail and
/// say how to start the engine.
fn doctor_while_stopped() -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_multilang-sandbox"))
        .arg("doctor")
        .env("MULTILANG_SANDBOX_AUDIT_LOG", "off")
        .output()
        .expect("doctor runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).to_string(),
    )
}

/// Runs `code` in the session until an execute succeeds (the first calls
/// after the restart may find the engine still settling; the server must
/// answer every call and recover within a few tries).
async fn first_success(client: &Client, name: &str, code: &str) -> serde_json::Value {
    let mut last = json!(null);
    for _ in 0..10 {
        let result = call(
            client,
            "sandbox_execute",
            json!({"language": "python", "session": name, "code": code}),
        )
        .await;
        if let Some(structured) = result.structured_content.clone()
            && structured["exit_code"] == 0
        {
            return structured;
        }
        last = json!({"error": text_of(&result)});
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    panic!("the session did not recover: {last}");
}

/// The tests here stop the one engine of the machine: one at a time.
static ENGINE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
#[ignore = "restarts the machine's Docker engine; run with -- --ignored (CI does)"]
async fn a_session_survives_an_engine_restart_and_says_what_was_lost() {
    let _engine = ENGINE.lock().await;
    require_docker().await;
    // One server keeps session files in memory (the default), one on disk.
    let memory = start_server().await;
    let disk = start_server_with_env(&[("MULTILANG_SANDBOX_SESSION_STORAGE", "disk")]).await;
    let in_memory = create_session(&memory, "restart-memory", "python").await;
    let on_disk = create_session(&disk, "restart-disk", "python").await;
    let setup = "x = 41\nopen('kept.txt', 'w').write('files survive')";
    for (client, name) in [(&memory, &in_memory), (&disk, &on_disk)] {
        let result = execute_in(client, name, "python", setup).await;
        assert_eq!(result["exit_code"], 0, "{result}");
    }

    let (doctor_code, doctor_report) = tokio::task::spawn_blocking(|| {
        let systemd = stop_engine();
        let doctor = doctor_while_stopped();
        start_engine(systemd);
        doctor
    })
    .await
    .unwrap();
    assert_eq!(
        doctor_code,
        Some(1),
        "doctor fails while the engine is stopped:\n{doctor_report}"
    );
    assert!(
        doctor_report.contains("PROBLEM  Docker engine") && doctor_report.contains("fix: start Docker"),
        "{doctor_report}"
    );

    let check = "import os\nprint(os.path.exists('kept.txt'))\nprint('x' in globals())";
    let result = first_success(&disk, &on_disk, check).await;
    assert_eq!(result["stdout"], "True\nFalse\n", "{result}");
    let note = result["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("variables were lost") && note.contains("files in /workspace and installed packages were kept"),
        "the result says what was lost: {result}"
    );
    let result = first_success(&memory, &in_memory, check).await;
    assert_eq!(result["stdout"], "False\nFalse\n", "{result}");
    let note = result["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("variables were lost") && note.contains("files in /workspace and /outputs were lost"),
        "the result says what was lost: {result}"
    );
    for (client, name) in [(&memory, &in_memory), (&disk, &on_disk)] {
        let again = execute_in(client, name, "python", "y = 1\nprint(y + 1)").await;
        assert_eq!(again["stdout"], "2\n", "{again}");
        session(client, json!({"action": "destroy", "name": name})).await;
    }
    memory.cancel().await.ok();
    disk.cancel().await.ok();
}

/// Makes a CA, a server certificate for 127.0.0.1 and a client certificate
/// (Docker's `ca.pem`, `cert.pem`, `key.pem` names) with the openssl CLI;
/// `dir/foreign` gets the same CA but a client certificate from another CA.
fn make_certificates(dir: &std::path::Path) {
    let script = format!(
        "set -e; cd {dir}; \
         openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 1 -subj /CN=test-ca; \
         openssl req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr -subj /CN=localhost; \
         printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext; \
         openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server-cert.pem -days 1 -extfile server.ext; \
         openssl req -newkey rsa:2048 -nodes -keyout key.pem -out client.csr -subj /CN=client; \
         printf 'extendedKeyUsage=clientAuth\\n' > client.ext; \
         openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out cert.pem -days 1 -extfile client.ext; \
         mkdir foreign; cp ca.pem foreign/ca.pem; \
         openssl req -x509 -newkey rsa:2048 -nodes -keyout foreign/other-ca-key.pem -out foreign/other-ca.pem -days 1 -subj /CN=other-ca; \
         openssl req -newkey rsa:2048 -nodes -keyout foreign/key.pem -out foreign/client.csr -subj /CN=intruder; \
         openssl x509 -req -in foreign/client.csr -CA foreign/other-ca.pem -CAkey foreign/other-ca-key.pem -CAcreateserial -out foreign/cert.pem -days 1 -extfile client.ext",
        dir = dir.display()
    );
    assert!(
        shell(&format!("({script}) >/dev/null 2>&1")),
        "cannot make test certificates (is openssl installed?)"
    );
}

#[tokio::test]
#[ignore = "restarts the machine's Docker engine with a TLS listener; run with -- --ignored (CI does)"]
async fn a_remote_engine_over_tls_runs_code_and_sessions() {
    let _engine = ENGINE.lock().await;
    require_docker().await;
    let dir = std::env::temp_dir().join(format!("multilang-sandbox-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    make_certificates(&dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port");
    let d = dir.display().to_string();
    let tls_engine = format!(
        "setsid dockerd -H unix:///var/run/docker.sock -H tcp://127.0.0.1:{port} --tlsverify \
         --tlscacert {d}/ca.pem --tlscert {d}/server-cert.pem --tlskey {d}/server-key.pem \
         >>/var/log/dockerd.log 2>&1 </dev/null & exit 0"
    );
    let restore = tokio::task::spawn_blocking(move || {
        let restore = RestoreEngine(stop_engine());
        assert!(shell(&tls_engine), "could not start dockerd with a TLS listener");
        let deadline = Instant::now() + Duration::from_secs(90);
        while !shell("docker info >/dev/null 2>&1") {
            assert!(Instant::now() < deadline, "the TLS engine did not come up");
            std::thread::sleep(Duration::from_millis(500));
        }
        restore
    })
    .await
    .unwrap();

    let host = format!("tcp://127.0.0.1:{port}");
    let client = start_server_with_env(&[
        ("DOCKER_HOST", &host),
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", &d),
        ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
    ])
    .await;
    let result = execute(&client, "python", "print(6 * 7)").await;
    let name = create_session(&client, "tls", "bash").await;
    let in_session = execute_in(&client, &name, "bash", "cd /tmp && echo over tls").await;
    session(&client, json!({"action": "destroy", "name": name})).await;
    client.cancel().await.ok();
    // A client certificate the engine's CA did not sign is refused.
    let refused = Command::new(env!("CARGO_BIN_EXE_multilang-sandbox"))
        .arg("doctor")
        .env("DOCKER_HOST", &host)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", format!("{d}/foreign"))
        .env("MULTILANG_SANDBOX_AUDIT_LOG", "off")
        .output()
        .expect("doctor runs");

    tokio::task::spawn_blocking(move || drop(restore)).await.unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(result["stdout"], "42\n", "{result}");
    assert_eq!(in_session["stdout"], "over tls\n", "{in_session}");
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stdout).contains("PROBLEM  Docker engine"));
}
