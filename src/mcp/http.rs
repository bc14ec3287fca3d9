//! The streamable HTTP transport: MCP at `/mcp` for shared or remote use.
//! Every request must carry `Authorization: Bearer <token>` (401
//! otherwise); only a loopback address may go without a token, and only
//! when told to for development.

use super::SandboxServer;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

/// Where `serve --http` listens when given no address.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8765";
/// The environment variable holding the bearer token.
pub const TOKEN_VARIABLE: &str = "MULTILANG_SANDBOX_HTTP_TOKEN";
/// Largest request body (the stdio transport's line limit).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How to serve over HTTP.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub address: SocketAddr,
    /// The bearer token clients must send; `None` only with `no_auth`.
    pub token: Option<String>,
    /// Serve without a token (development; loopback only).
    pub no_auth: bool,
    /// How long an MCP session may go without any message before it is
    /// closed: longer than the longest execute or install, which may send
    /// nothing while it runs.
    pub session_idle: Duration,
}

#[derive(Debug, Error)]
pub enum HttpError {
    #[error(
        "no bearer token: set {TOKEN_VARIABLE} (for example to the output of `openssl rand -hex 32`) \
         and give clients the same token; for local development on a loopback address only, \
         pass --no-auth instead"
    )]
    NoToken,
    #[error("--no-auth is only allowed on a loopback address (127.0.0.1 or ::1), not {0}; set {TOKEN_VARIABLE}")]
    NoAuthOffLoopback(SocketAddr),
    #[error("the bearer token in {TOKEN_VARIABLE} is too short: use at least 16 characters")]
    WeakToken,
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

impl HttpOptions {
    /// Checks the token rules before anything listens.
    pub fn validate(&self) -> Result<(), HttpError> {
        match (&self.token, self.no_auth) {
            (Some(token), _) if token.len() < 16 => Err(HttpError::WeakToken),
            (Some(_), _) => Ok(()),
            (None, true) if self.address.ip().is_loopback() => Ok(()),
            (None, true) => Err(HttpError::NoAuthOffLoopback(self.address)),
            (None, false) => Err(HttpError::NoToken),
        }
    }
}

/// Serves MCP over HTTP until `shutdown` is cancelled. `make_server`
/// creates the handler of each MCP session.
pub async fn serve_http(
    options: HttpOptions,
    make_server: impl Fn() -> SandboxServer + Send + Sync + 'static,
    shutdown: CancellationToken,
) -> Result<(), HttpError> {
    options.validate()?;
    let mut config = StreamableHttpServerConfig::default()
        .with_cancellation_token(shutdown.child_token())
        .with_max_request_body_bytes(MAX_BODY_BYTES);
    if !options.address.ip().is_loopback() {
        // Reached by other names than localhost; the token is what protects it.
        config = config.disable_allowed_hosts();
    }
    if options.token.is_none() {
        // Without a token, refuse every request a web page could make.
        config = config.enforce_origin_validation();
    }
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(options.session_idle);
    let service = StreamableHttpService::new(move || Ok(make_server()), Arc::new(sessions), config);
    let token = Arc::new(options.token.clone());
    let app = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(token, require_bearer));
    let listener = tokio::net::TcpListener::bind(options.address)
        .await
        .map_err(|source| HttpError::Bind {
            address: options.address,
            source,
        })?;
    let address = listener.local_addr().unwrap_or(options.address);
    tracing::info!(%address, auth = options.token.is_some(), "serving MCP over HTTP at /mcp");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled_owned().await })
        .await
        .map_err(HttpError::Serve)
}

/// Lets a request through only with the right bearer token.
async fn require_bearer(State(token): State<Arc<Option<String>>>, request: Request, next: Next) -> Response {
    let Some(expected) = token.as_deref() else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token);
    match given {
        Some(given) if same_secret(given.as_bytes(), expected.as_bytes()) => next.run(request).await,
        _ => {
            let mut response = (
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token: send `Authorization: Bearer <MULTILANG_SANDBOX_HTTP_TOKEN>`\n",
            )
                .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"multilang-sandbox\""),
            );
            response
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is
/// case-insensitive).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares two secrets in time that does not depend on where they differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (given, expected) = (Sha256::digest(given), Sha256::digest(expected));
    given.iter().zip(expected.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(address: &str, token: Option<&str>, no_auth: bool) -> HttpOptions {
        HttpOptions {
            address: address.parse().unwrap(),
            token: token.map(str::to_string),
            no_auth,
            session_idle: Duration::from_secs(60),
        }
    }

    #[test]
    fn tokens_are_required_except_on_loopback_when_told() {
        assert!(
            options("127.0.0.1:1", Some("0123456789abcdef"), false)
                .validate()
                .is_ok()
        );
        assert!(options("0.0.0.0:1", Some("0123456789abcdef"), false).validate().is_ok());
        assert!(matches!(
            options("127.0.0.1:1", None, false).validate(),
            Err(HttpError::NoToken)
        ));
        assert!(options("127.0.0.1:1", None, true).validate().is_ok());
        assert!(options("[::1]:1", None, true).validate().is_ok());
        assert!(matches!(
            options("0.0.0.0:1", None, true).validate(),
            Err(HttpError::NoAuthOffLoopback(_))
        ));
        assert!(matches!(
            options("127.0.0.1:1", Some("short"), false).validate(),
            Err(HttpError::WeakToken)
        ));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("abc"), None);
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"abc"));
    }
}
