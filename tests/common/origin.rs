//! A local origin for the egress tests: a container on the engine's default
//! bridge (where the egress proxy has its way out) that stands in for the
//! outside world, allowed by its address through `egress.allow_private`.
//! It serves HTTP on 8080 and, when started with [`Origin::start_with_tls`],
//! HTTPS on 8443 with a certificate for its address signed by a CA made for
//! that test (the sandbox is handed the CA as a user would). It prints a line
//! for every connection it accepts, so a test can tell that the proxy never
//! connected to it.

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

/// The origin's program: HTTP on 8080 from the start; HTTPS on 8443 (when
/// its argument is `tls`) once the certificate and key the test copies into
/// /tmp/tls load. Every accepted connection prints `accepted <port> <peer>`.
const ORIGIN_PROGRAM: &str = r#"
import functools, http.server, os, ssl, sys, threading, time
os.makedirs("/tmp/site", exist_ok=True)
with open("/tmp/site/index.html", "w") as f:
    f.write("origin-says-hello\n")
with open("/tmp/site/big", "wb") as f:
    f.write(bytes(3000000))
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory="/tmp/site")
class Logged(http.server.ThreadingHTTPServer):
    def get_request(self):
        request, peer = super().get_request()
        print("accepted", self.server_address[1], peer[0], flush=True)
        return request, peer
class Tls(Logged):
    def finish_request(self, request, peer):
        with self.context.wrap_socket(request, server_side=True) as secure:
            self.RequestHandlerClass(secure, peer, self)
plain = Logged(("0.0.0.0", 8080), handler)
if sys.argv[1:] != ["tls"]:
    plain.serve_forever()
threading.Thread(target=plain.serve_forever, daemon=True).start()
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
while True:
    try:
        context.load_cert_chain("/tmp/tls/cert.pem", "/tmp/tls/key.pem")
        break
    except (OSError, ssl.SSLError):
        time.sleep(0.05)
secure = Tls(("0.0.0.0", 8443), handler)
secure.context = context
print("https ready", flush=True)
secure.serve_forever()
"#;

/// The test's own CA and the certificate it signed for the origin.
pub struct OriginTls {
    /// The CA certificate (PEM), which the sandbox is handed.
    pub ca_pem: String,
    /// SHA-256 of the origin's certificate (DER), lower-case hex: what a
    /// client sees when nothing intercepts its TLS.
    pub cert_sha256: String,
}

/// A local origin on the engine's default bridge, removed on drop.
pub struct Origin {
    pub name: String,
    pub address: String,
    /// Set by [`Origin::start_with_tls`].
    pub tls: Option<OriginTls>,
}

impl Origin {
    /// An origin serving HTTP on 8080.
    pub fn start() -> Self {
        Self::launch(&[])
    }

    /// An origin serving HTTP on 8080 and HTTPS on 8443, with a CA and a
    /// certificate for its address made now; returns once HTTPS is served.
    pub fn start_with_tls() -> Self {
        let mut origin = Self::launch(&["tls"]);
        let (ca, cert) = certificates(&origin.address);
        let dir = std::env::temp_dir().join(unique_name("mls-origin-tls"));
        std::fs::create_dir_all(&dir).expect("a temporary directory for the origin's key");
        let written = std::fs::write(dir.join("cert.pem"), cert.cert.pem())
            .and_then(|()| std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()));
        let copied = written.map(|()| {
            Command::new("timeout")
                .arg(DOCKER_LIMIT.as_secs().to_string())
                .args(["docker", "cp"])
                .arg(&dir)
                .arg(format!("{}:/tmp/tls", origin.name))
                .output()
        });
        let _ = std::fs::remove_dir_all(&dir);
        let copied = copied.expect("writing the origin's certificate").expect("docker cp");
        assert!(
            copied.status.success(),
            "docker cp of the origin's certificate failed: {}",
            String::from_utf8_lossy(&copied.stderr)
        );
        let deadline = std::time::Instant::now() + DOCKER_LIMIT;
        while !origin.log().lines().any(|line| line == "https ready") {
            assert!(
                std::time::Instant::now() < deadline,
                "the origin does not serve HTTPS: {}",
                origin.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        origin.tls = Some(OriginTls {
            ca_pem: ca.pem(),
            cert_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(cert.cert.der())),
        });
        origin
    }

    fn launch(arguments: &[&str]) -> Self {
        let config = Config::from_env().expect("configuration");
        let image = images::tag_for(Language::Python, &config);
        let name = unique_name("mls-egress-origin");
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            "multilang-sandbox.test=egress",
            &image,
            "python3",
            "-c",
            ORIGIN_PROGRAM,
        ];
        args.extend_from_slice(arguments);
        docker(&args);
        let mut origin = Self {
            name: name.clone(),
            address: String::new(),
            tls: None,
        };
        origin.address = docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &name]);
        assert!(!origin.address.is_empty(), "the origin has no address on the bridge");
        origin
    }

    /// `<address>:8080`, as `egress.allow` and `network` name it.
    pub fn allow(&self) -> String {
        format!("{}:8080", self.address)
    }

    /// `<address>:8443`, the HTTPS port, as `egress.allow` and `network`
    /// name it.
    pub fn https_allow(&self) -> String {
        format!("{}:8443", self.address)
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

    pub fn https_url(&self) -> String {
        format!("https://{}:8443/", self.address)
    }

    /// The origin's own output (its accepted connections, request lines).
    pub fn log(&self) -> String {
        let output = Command::new("timeout")
            .arg(DOCKER_LIMIT.as_secs().to_string())
            .args(["docker", "logs", &self.name])
            .output()
            .expect("cannot run the docker CLI");
        assert!(output.status.success(), "docker logs {} failed", self.name);
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// How many connections the origin has accepted on `port` so far.
    pub fn accepted(&self, port: u16) -> usize {
        let prefix = format!("accepted {port} ");
        self.log().lines().filter(|line| line.starts_with(&prefix)).count()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.name]).output();
    }
}

/// A CA made for this test and the origin's certificate for `address`,
/// signed by it (with the extensions strict verifiers, Python 3.13's
/// included, require).
fn certificates(address: &str) -> (rcgen::Certificate, rcgen::CertifiedKey<rcgen::KeyPair>) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedKey, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "multilang-sandbox test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let ca_key = KeyPair::generate().expect("a CA key");
    let ca = ca_params.self_signed(&ca_key).expect("the CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let mut params = CertificateParams::new(vec![address.to_string()]).expect("origin certificate parameters");
    params.distinguished_name.push(DnType::CommonName, address);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().expect("the origin's key");
    let cert = params.signed_by(&key, &issuer).expect("the origin's certificate");
    (ca, CertifiedKey { cert, signing_key: key })
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

/// The package index hosts pip in the Python image is configured for, read
/// by the test on its own (not by the server's discovery) in a container
/// without network: the configured indexes, else pip's defaults (its index
/// and the host its files come from).
pub fn pip_index_hosts() -> Vec<String> {
    let config = Config::from_env().expect("configuration");
    let image = images::tag_for(Language::Python, &config);
    let code = r#"
import subprocess, urllib.parse
from pip._internal.models.index import PyPI
listed = subprocess.run(["python3", "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
urls = [line.split("=", 1)[1].strip("'\"") for line in listed.splitlines() if "index-url=" in line]
hosts = [urllib.parse.urlsplit(url).hostname for url in " ".join(urls).split()]
if not any(line.split("=", 1)[0].endswith(".index-url") for line in listed.splitlines()):
    hosts += [PyPI.netloc, PyPI.file_storage_domain]
print(" ".join(hosts))
"#;
    docker(&["run", "--rm", "--network", "none", &image, "python3", "-c", code])
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// JavaScript that fetches `url` (a JavaScript expression) and prints
/// `<label> <status> <body>`, or `<label> failed` and the error's causes.
pub fn js_fetch(label: &str, url: &str) -> String {
    format!(
        r#"
await (async () => {{
  try {{
    const response = await fetch({url}, {{ signal: AbortSignal.timeout(15000) }});
    console.log("{label}", response.status, (await response.text()).trim());
  }} catch (error) {{
    const causes = [];
    for (let cause = error.cause; cause; cause = cause.cause) causes.push(cause.message || cause.code);
    console.log("{label} failed", error.message, causes.join(" / "));
  }}
}})();
"#
    )
}
