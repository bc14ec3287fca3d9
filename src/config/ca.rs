//! The machine's CA bundle (`ca_bundle`) and the variables that point each
//! package manager's TLS at it, for installs and template builds behind a
//! TLS-inspecting proxy.

use super::Config;

/// Variables that point each package manager's TLS at the bundle.
pub const VARIABLES: [&str; 7] = [
    "SSL_CERT_FILE",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "CARGO_HTTP_CAINFO",
    "GIT_SSL_CAINFO",
    "CURL_CA_BUNDLE",
];

impl Config {
    /// The configured CA bundle's text, if there is a readable one.
    pub fn read_ca_bundle(&self) -> Option<String> {
        let path = self.ca_bundle.as_ref()?;
        match std::fs::read_to_string(path) {
            Ok(text) if text.contains("BEGIN CERTIFICATE") => Some(text),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read the CA bundle; installs and builds use the image's own");
                None
            }
        }
    }
}
