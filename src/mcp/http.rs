//! The streamable HTTP transport: MCP at `/mcp` for shared or remote use.
//! Every request must carry `Authorization: Bearer <token>` (401
//! otherwise); only a loopback address may go without a token, and only
//! when told to for development. A POSTed JSON body rmcp could not read
//! (rmcp answers those with a plain-text 415) gets the JSON-RPC error the
//! stdio front gives the same message, with status 400 (413 when too
//! large).

use super::SandboxServer;
use super::message_check::{BadMessage, ID_PREFIX_BYTES, Refusal, check_message, top_level_id};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::{SessionId, SessionManager};
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
/// The header naming the MCP session of a request.
const SESSION_ID_HEADER: &str = "Mcp-Session-Id";

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
    let listener = tokio::net::TcpListener::bind(options.address)
        .await
        .map_err(|source| HttpError::Bind {
            address: options.address,
            source,
        })?;
    let address = listener.local_addr().unwrap_or(options.address);
    let mut config = StreamableHttpServerConfig::default()
        .with_cancellation_token(shutdown.child_token())
        .with_max_request_body_bytes(MAX_BODY_BYTES);
    if !options.address.ip().is_loopback() {
        // Reached by other names than localhost; the token is what protects it.
        config = config.disable_allowed_hosts();
    }
    if options.token.is_none() {
        // Without a token, refuse every request a web page could make,
        // except from this server's own loopback origin (a page it served
        // itself; a browser sends `Origin` on same-origin POSTs too).
        config = config
            .with_allowed_origins(own_origins(address.port()))
            .enforce_origin_validation();
    }
    let sessions = Arc::new({
        let mut sessions = LocalSessionManager::default();
        sessions.session_config.keep_alive = Some(options.session_idle);
        sessions
    });
    let service = StreamableHttpService::new(move || Ok(make_server()), sessions.clone(), config);
    let token = Arc::new(options.token.clone());
    let app = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(sessions, unknown_session_delete))
        .layer(axum::middleware::from_fn(check_body))
        .layer(axum::middleware::from_fn_with_state(token, require_bearer));
    tracing::info!(%address, auth = options.token.is_some(), "serving MCP over HTTP at /mcp");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled_owned().await })
        .await
        .map_err(HttpError::Serve)
}

/// The origins of this server's own loopback address on `port`.
fn own_origins(port: u16) -> Vec<String> {
    ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .map(|host| format!("http://{host}:{port}"))
        .collect()
}

/// Answers `DELETE /mcp` for a session that does not exist (any more) with
/// 404, as the MCP specification says (rmcp answers 202 whatever the id).
async fn unknown_session_delete(
    State(sessions): State<Arc<LocalSessionManager>>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::DELETE {
        return next.run(request).await;
    }
    let id = request
        .headers()
        .get(SESSION_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(|id| SessionId::from(id.to_string()));
    match id {
        Some(id) if !sessions.has_session(&id).await.unwrap_or(true) => (
            StatusCode::NOT_FOUND,
            "no such MCP session: it ended or never existed; initialize a new one\n",
        )
            .into_response(),
        _ => next.run(request).await,
    }
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

/// Passes on a POSTed JSON body only if rmcp will read it as a JSON-RPC
/// message ([`check_message`]); otherwise answers with the JSON-RPC error.
/// Other requests (and other content types, which rmcp refuses itself)
/// pass unchanged. Runs after the bearer check.
async fn check_body(request: Request, next: Next) -> Response {
    if request.method() != Method::POST || !is_json(request.headers()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    let bytes = match read_body(body, declared).await {
        Ok(bytes) => bytes,
        Err(BodyError::Refused(refusal)) => return refusal_response(&refusal),
        Err(BodyError::Read(error)) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {error}\n"),
            )
                .into_response();
        }
    };
    if let Err(refusal) = check_message(&bytes) {
        return refusal_response(&refusal);
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// Why a body was not read whole.
#[derive(Debug, Error)]
enum BodyError {
    #[error("{0}")]
    Refused(Refusal),
    #[error("{0}")]
    Read(axum::Error),
}

/// Reads a body of at most [`MAX_BODY_BYTES`]; a longer one is refused
/// with the id from its first bytes and its declared size (or the bytes
/// read until the limit was passed, when it declared none).
async fn read_body(body: Body, declared: Option<usize>) -> Result<Bytes, BodyError> {
    let mut stream = body.into_data_stream();
    let mut collected = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(BodyError::Read)?;
        if chunk.len() > MAX_BODY_BYTES - collected.len() {
            let size = declared.unwrap_or(collected.len() + chunk.len());
            collected.truncate(ID_PREFIX_BYTES);
            let room = ID_PREFIX_BYTES - collected.len();
            collected.extend_from_slice(&chunk[..chunk.len().min(room)]);
            return Err(BodyError::Refused(Refusal {
                id: top_level_id(&collected).unwrap_or(serde_json::Value::Null),
                reason: BadMessage::TooLarge {
                    size,
                    limit: MAX_BODY_BYTES,
                },
            }));
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(collected))
}

/// A `Content-Type` of `application/json` (with any parameters).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// The JSON-RPC error of a refused body: 413 when too large, else 400.
fn refusal_response(refusal: &Refusal) -> Response {
    tracing::warn!(error = %refusal, "malformed JSON-RPC message");
    let status = match refusal.reason {
        BadMessage::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        refusal.response(),
    )
        .into_response()
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
