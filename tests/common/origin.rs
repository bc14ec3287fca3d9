//! A local HTTP origin for the egress tests: a container on the engine's
//! default bridge (where the egress proxy has its way out) that stands in
//! for the outside world, allowed by its address through
//! `egress.allow_private`.

use super::unique_name;
use multilang_sandbox::config::Config;
use multilang_sandbox::images;
use multilang_sandbox::runtime::Language;
use std::process::Command;
use std::time::Duration;

/// Every Docker command here must end within this.
const DOCKER_LIMIT: Duration = Duration::from_secs(60);

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

    pub fn url(&self) -> String {
        format!("http://{}:8080/", self.address)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.name]).output();
    }
}
