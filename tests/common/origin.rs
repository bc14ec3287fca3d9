//! A local HTTP origin for the egress tests: a container on the engine's
//! default bridge (where the egress proxy has its way out) that stands in
//! for the outside world, allowed by its address through
//! `egress.allow_private`.

use super::unique_name;
use multilang_sandbox::config::Config;
use multilang_sandbox::images;
use multilang_sandbox::runtime::Language;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

/// Every Docker command here must end within this.
pub const DOCKER_LIMIT: Duration = Duration::from_secs(60);

/// Runs a docker CLI command; panics with its output when it fails.
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("timeout")
        .arg(DOCKER_LIMIT.as_secs().to_string())
        .arg("docker")
        .args(args)
        .output()
        .expect("cannot run the docker CLI");
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A local HTTP origin on the engine's default bridge, removed on drop.
pub struct Origin {
    pub name: String,
    pub address: String,
}

impl Origin {
    pub fn start() -> Self {
        let config = Config::from_env().expect("configuration");
        let image = images::tag_for(Language::Python, &config);
        let name = unique_name("mls-egress-origin");
        docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            "multilang-sandbox.test=egress",
            &image,
            "sh",
            "-c",
            "mkdir -p /tmp/site && echo origin-says-hello > /tmp/site/index.html && head -c 3000000 /dev/zero > /tmp/site/big \
             && cd /tmp/site && exec python3 -m http.server 8080",
        ]);
        let address = docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &name]);
        assert!(!address.is_empty(), "the origin has no address on the bridge");
        Self { name, address }
    }

    /// `<address>:8080`, as `egress.allow` and `network` name it.
    pub fn allow(&self) -> String {
        format!("{}:8080", self.address)
    }

    /// A server's environment that allows `allow` (this origin) and lets
    /// the proxy connect to its private address, without a pool, plus `extra`.
    pub fn server_env<'a>(&'a self, allow: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut env = vec![
            ("MULTILANG_SANDBOX_POOL_SIZE", "0"),
            ("MULTILANG_SANDBOX_EGRESS_ALLOW", allow),
            ("MULTILANG_SANDBOX_EGRESS_ALLOW_PRIVATE", self.address.as_str()),
        ];
        env.extend_from_slice(extra);
        env
    }

    pub fn url(&self) -> String {
        format!("http://{}:8080/", self.address)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.name]).output();
    }
}

/// A field of an execute's structured result as text ("" when absent).
pub fn field<'a>(result: &'a Value, name: &str) -> &'a str {
    result[name].as_str().unwrap_or_default()
}

pub fn stdout(result: &Value) -> &str {
    field(result, "stdout")
}

pub fn note(result: &Value) -> &str {
    field(result, "note")
}

/// Python that fetches `url` with urllib and prints `status <code> <body>`
/// (a 403 from the proxy included), or `failed <error>`.
pub fn python_fetch(url: &str) -> String {
    format!(
        r#"
import urllib.request, urllib.error
try:
    with urllib.request.urlopen("{url}", timeout=20) as r:
        print("status", r.status, r.read().decode().strip())
except urllib.error.HTTPError as e:
    print("status", e.code, e.read().decode().strip())
except Exception as e:
    print("failed", type(e).__name__, e)
"#
    )
}
