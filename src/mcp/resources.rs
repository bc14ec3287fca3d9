//! MCP resources: the files of sessions, as
//! `sandbox://sessions/{name}/{path}` where `path` is the file's path in the
//! sandbox without its leading slash (`outputs/figure-1.png`,
//! `workspace/data.csv`, `mnt/data/input.csv`). Reads go through the session
//! file operations (`core::files`), so the same path checks (`..` refused,
//! only the session's folders), link handling and size cap hold as for
//! `sandbox_file_ops`. `resources/list` shows the files directly in each
//! running or paused session's `/outputs`; results of a session execute link
//! the files they could not attach; subscribers hear when an execute changes
//! a file they watch.

use super::SandboxServer;
use crate::clock::rfc3339;
use crate::core::ExecutionOutcome;
use crate::core::artifacts::mime_for;
use crate::core::error::{FileError, SessionError};
use crate::core::files::FileEntry;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rmcp::model::{
    ListResourceTemplatesResult, ListResourcesResult, MetaObject, ReadResourceResult, Resource, ResourceContents,
    ResourceTemplate, ResourceUpdatedNotificationParam,
};
use rmcp::{ErrorData, Peer, RoleServer};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use thiserror::Error;

/// What every session file's URI starts with.
pub const URI_PREFIX: &str = "sandbox://sessions/";
/// The RFC 6570 template of session files (`+`: the path keeps its slashes).
pub const URI_TEMPLATE: &str = "sandbox://sessions/{name}/{+path}";
/// Most files `resources/list` shows per session (and links per execute).
pub const MAX_LISTED_PER_SESSION: usize = 100;

/// A session file named by a resource URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFile {
    pub session: String,
    /// Absolute path in the sandbox, as file operations take it.
    pub path: String,
}

/// A URI that does not name a session file.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UriError {
    #[error(
        "`{0}` is not a session file: resources here are sandbox://sessions/<session>/<path>, for example sandbox://sessions/demo/outputs/figure-1.png (see resources/list)"
    )]
    NotSessionFile(String),
    #[error("`{0}` has a bad percent-escape (`%` must be followed by two hex digits of UTF-8)")]
    BadEscape(String),
}

/// Reads a resource URI: the session's name and the file's absolute path.
/// The path is only split off here; file operations check it.
pub fn parse(uri: &str) -> Result<SessionFile, UriError> {
    let not_ours = || UriError::NotSessionFile(uri.to_string());
    let rest = uri.strip_prefix(URI_PREFIX).ok_or_else(not_ours)?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (session, path) = rest.split_once('/').ok_or_else(not_ours)?;
    let session = decode(session).ok_or_else(|| UriError::BadEscape(uri.to_string()))?;
    let path = decode(path).ok_or_else(|| UriError::BadEscape(uri.to_string()))?;
    if session.is_empty() || path.is_empty() {
        return Err(not_ours());
    }
    Ok(SessionFile {
        session,
        path: format!("/{path}"),
    })
}

/// The URI of the file at `path` (absolute, in the sandbox) of `session`.
pub fn uri_for(session: &str, path: &str) -> String {
    format!(
        "{URI_PREFIX}{}/{}",
        encode(session, false),
        encode(path.trim_start_matches('/'), true)
    )
}

/// Percent-encodes all but unreserved characters (and `/` in paths).
fn encode(text: &str, keep_slash: bool) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || (keep_slash && byte == b'/') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Undoes percent-encoding; None for a broken escape or bytes that are not UTF-8.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = std::str::from_utf8(bytes.get(index + 1..index + 3)?).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// The resource entry of a file in a session.
pub fn resource_for(session: &str, path: &str, size: u64) -> Resource {
    let name = path.rsplit('/').next().unwrap_or(path);
    Resource::new(uri_for(session, path), name)
        .with_title(format!("{path} in session {session}"))
        .with_mime_type(mime_for(path))
        .with_size(size)
}

/// Media types whose content is returned as text (when it is UTF-8).
fn is_text(mime: &str) -> bool {
    mime.starts_with("text/") || mime == "application/json" || mime == "image/svg+xml"
}

/// The URIs this client subscribed to (`resources/subscribe`); one set per
/// connection, as each connection has its own server.
#[derive(Debug, Clone, Default)]
pub struct Subscriptions(Arc<Mutex<HashSet<String>>>);

impl Subscriptions {
    fn set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn add(&self, uri: String) {
        self.set().insert(uri);
    }

    pub fn remove(&self, uri: &str) {
        self.set().remove(uri);
    }

    /// The subscribed URIs among `uris`.
    pub fn among<'a>(&self, uris: impl Iterator<Item = &'a str>) -> Vec<String> {
        let set = self.set();
        uris.filter(|uri| set.contains(*uri)).map(str::to_string).collect()
    }
}

/// The MCP error for a file operation that failed on a resource.
fn read_error(uri: &str, session: &str, error: FileError) -> ErrorData {
    match error {
        FileError::Session(SessionError::Unknown(_) | SessionError::Expired(_)) => ErrorData::resource_not_found(
            format!(
                "{uri}: no session named `{session}`; sandbox_session (action list) lists the sessions, resources/list the files in their /outputs"
            ),
            None,
        ),
        FileError::NotFound(_) | FileError::IsFolder(_) => ErrorData::resource_not_found(
            format!(
                "{uri}: {error}. resources/list shows the files in each session's /outputs; sandbox_file_ops (operation list) shows any folder"
            ),
            None,
        ),
        FileError::TooLarge { path, size, max } => ErrorData::invalid_params(
            format!(
                "{uri}: `{path}` is {size} bytes, over the {max}-byte limit for one file (max_file_bytes, which sandbox_file_ops shares); have code in the session print or save the part you need (sandbox_execute), or compress it"
            ),
            None,
        ),
        FileError::Traversal(_)
        | FileError::Outside(_)
        | FileError::NulInPath(_)
        | FileError::SymlinkEscape { .. }
        | FileError::PermissionDenied(_)
        | FileError::Session(SessionError::InvalidName(_) | SessionError::StoppedInMemory { .. }) => {
            ErrorData::invalid_params(format!("{uri}: {error}"), None)
        }
        other => ErrorData::internal_error(format!("{uri}: {other}"), None),
    }
}

impl SandboxServer {
    /// `resources/templates/list`: the one template of session files.
    pub(crate) fn resource_templates(&self) -> ListResourceTemplatesResult {
        let template = ResourceTemplate::new(URI_TEMPLATE, "session-file")
            .with_title("A file in a sandbox session")
            .with_description(format!(
                "A file of a session (see sandbox_session): `path` is its path in the sandbox without the leading \
slash, for example outputs/figure-1.png or workspace/data.csv. Files up to {} bytes.",
                self.executor.config().max_file_bytes
            ));
        ListResourceTemplatesResult::with_all_items(vec![template])
    }

    /// `resources/list`: the files directly in each running or paused
    /// session's /outputs (stopped sessions are not started for a listing;
    /// their files can still be read).
    pub(crate) async fn list_session_resources(&self) -> Result<ListResourcesResult, ErrorData> {
        let sessions = self
            .executor
            .sessions()
            .list()
            .await
            .map_err(|error| ErrorData::internal_error(format!("cannot list the sessions: {error}"), None))?;
        let mut resources = Vec::new();
        for session in sessions.iter().filter(|s| s.state == "running" || s.state == "paused") {
            match self.executor.files().list(&session.name, "/outputs").await {
                Ok(listed) => resources.extend(
                    files_of(listed.value)
                        .take(MAX_LISTED_PER_SESSION)
                        .map(|entry| resource_for(&session.name, &entry.path, entry.size)),
                ),
                Err(error) => tracing::warn!(session = %session.name, %error, "cannot list the session's /outputs"),
            }
        }
        Ok(ListResourcesResult::with_all_items(resources))
    }

    /// `resources/read`: a session file, as text (text types that are UTF-8)
    /// or base64.
    pub(crate) async fn read_session_resource(&self, uri: &str) -> Result<ReadResourceResult, ErrorData> {
        let file = parse(uri).map_err(|error| ErrorData::invalid_params(error.to_string(), None))?;
        let done = self
            .executor
            .files()
            .read(&file.session, &file.path)
            .await
            .map_err(|error| read_error(uri, &file.session, error))?;
        let mime = mime_for(&done.value.path);
        let bytes = done.value.bytes;
        let contents = match String::from_utf8(bytes) {
            Ok(text) if is_text(mime) => ResourceContents::text(text, uri),
            Ok(text) => ResourceContents::blob(STANDARD.encode(text.as_bytes()), uri),
            Err(error) => ResourceContents::blob(STANDARD.encode(error.as_bytes()), uri),
        }
        .with_mime_type(mime);
        let mut result = ReadResourceResult::new(vec![contents]);
        if let Some(note) = done.note {
            // The session was started again for this read: what was lost.
            let mut meta = MetaObject::default();
            meta.0.insert("note".into(), note.into());
            result.meta = Some(meta);
        }
        Ok(result)
    }

    /// The files a session execute changed in /outputs: those it reported,
    /// and when it reported as many as the count cap allows, the others
    /// directly in /outputs modified since `since` (unix seconds).
    pub(crate) async fn changed_outputs(&self, outcome: &ExecutionOutcome, since: u64) -> Vec<Resource> {
        let Some(session) = outcome.session.as_deref() else {
            return Vec::new();
        };
        let mut changed: Vec<Resource> = outcome
            .artifacts
            .iter()
            .map(|artifact| resource_for(session, &artifact.path, artifact.size))
            .collect();
        if outcome.artifacts.len() < self.executor.config().max_artifacts {
            return changed;
        }
        let listed = match self.executor.files().list(session, "/outputs").await {
            Ok(listed) => listed.value,
            Err(error) => {
                tracing::warn!(session, %error, "cannot list /outputs for the files beyond the artifact cap");
                return changed;
            }
        };
        let since = rfc3339(since);
        let reported: HashSet<&str> = outcome.artifacts.iter().map(|a| a.path.as_str()).collect();
        let extra: Vec<Resource> = files_of(listed)
            .filter(|entry| entry.modified >= since && !reported.contains(entry.path.as_str()))
            .take(MAX_LISTED_PER_SESSION)
            .map(|entry| resource_for(session, &entry.path, entry.size))
            .collect();
        changed.extend(extra);
        changed
    }

    /// Tells this client about the `changed` files it subscribed to.
    pub(crate) async fn notify_changed(&self, peer: &Peer<RoleServer>, changed: &[Resource]) {
        for uri in self.subscriptions.among(changed.iter().map(|r| r.uri.as_str())) {
            if let Err(error) = peer
                .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri.clone()))
                .await
            {
                tracing::debug!(uri, %error, "could not send a resource update");
            }
        }
    }
}

/// The `changed` files whose content the result does not carry.
pub fn unattached(execution: &ExecutionOutcome, changed: Vec<Resource>) -> Vec<Resource> {
    let Some(session) = execution.session.as_deref() else {
        return Vec::new();
    };
    let attached: Vec<String> = execution
        .artifacts
        .iter()
        .filter(|artifact| artifact.content.is_some())
        .map(|artifact| uri_for(session, &artifact.path))
        .collect();
    changed
        .into_iter()
        .filter(|resource| !attached.contains(&resource.uri))
        .collect()
}

/// The regular files of a listing.
fn files_of(entries: Vec<FileEntry>) -> impl Iterator<Item = FileEntry> {
    entries.into_iter().filter(|entry| entry.kind == "file")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(session: &str, path: &str) -> SessionFile {
        SessionFile {
            session: session.into(),
            path: path.into(),
        }
    }

    #[test]
    fn uris_name_a_session_and_a_path_from_the_sandbox_root() {
        assert_eq!(
            parse("sandbox://sessions/demo/outputs/figure-1.png"),
            Ok(file("demo", "/outputs/figure-1.png"))
        );
        assert_eq!(
            parse("sandbox://sessions/demo/workspace/data/a.csv"),
            Ok(file("demo", "/workspace/data/a.csv"))
        );
        assert_eq!(
            parse("sandbox://sessions/demo/outputs%2Fmy%20plot.png"),
            Ok(file("demo", "/outputs/my plot.png")),
            "a strict {{path}} expansion encodes the slash"
        );
        assert_eq!(
            parse("sandbox://sessions/demo/outputs/a.txt?x=1#y"),
            Ok(file("demo", "/outputs/a.txt"))
        );
    }

    #[test]
    fn other_uris_are_refused_and_escapes_are_left_to_the_file_checks() {
        for uri in [
            "file:///etc/passwd",
            "sandbox://sessions/demo",
            "sandbox://sessions/demo/",
            "sandbox://sessions//outputs/a",
            "sandbox://other/demo/outputs/a",
        ] {
            assert!(matches!(parse(uri), Err(UriError::NotSessionFile(_))), "{uri}");
        }
        for uri in ["sandbox://sessions/demo/outputs/%zz", "sandbox://sessions/demo/%ff%fe"] {
            assert!(matches!(parse(uri), Err(UriError::BadEscape(_))), "{uri}");
        }
        // `..` reaches the file operations' path check, which refuses it.
        assert_eq!(
            parse("sandbox://sessions/demo/outputs/%2E%2E/%2E%2E/etc/passwd"),
            Ok(file("demo", "/outputs/../../etc/passwd"))
        );
    }

    #[test]
    fn uris_round_trip_and_encode_what_is_not_plain() {
        for (session, path) in [
            ("demo", "/outputs/figure-1.png"),
            ("a_b-1", "/workspace/dir/naïve file #1?.txt"),
            ("x", "/mnt/data/100%.csv"),
        ] {
            let uri = uri_for(session, path);
            assert!(!uri[URI_PREFIX.len()..].contains([' ', '#', '?']), "{uri}");
            assert_eq!(parse(&uri), Ok(file(session, path)), "{uri}");
        }
        assert_eq!(
            uri_for("demo", "/outputs/figure-1.png"),
            "sandbox://sessions/demo/outputs/figure-1.png"
        );
    }

    #[test]
    fn resources_carry_name_type_and_size() {
        let resource = resource_for("demo", "/outputs/table.csv", 42);
        assert_eq!(resource.uri, "sandbox://sessions/demo/outputs/table.csv");
        assert_eq!(resource.name, "table.csv");
        assert_eq!(resource.mime_type.as_deref(), Some("text/csv"));
        assert_eq!(resource.size, Some(42));
        assert!(is_text("text/csv") && is_text("application/json") && !is_text("image/png"));
    }

    #[test]
    fn subscriptions_pick_the_watched_uris() {
        let subscriptions = Subscriptions::default();
        subscriptions.add("sandbox://sessions/a/outputs/x".into());
        subscriptions.add("sandbox://sessions/a/outputs/y".into());
        subscriptions.remove("sandbox://sessions/a/outputs/y");
        let changed = ["sandbox://sessions/a/outputs/x", "sandbox://sessions/a/outputs/y"];
        assert_eq!(
            subscriptions.among(changed.into_iter()),
            vec!["sandbox://sessions/a/outputs/x".to_string()]
        );
    }

    #[test]
    fn unknown_sessions_and_large_files_say_what_to_do() {
        let uri = "sandbox://sessions/ghost/outputs/a.txt";
        let error = read_error(uri, "ghost", FileError::Session(SessionError::Unknown("ghost".into())));
        assert_eq!(error.code, rmcp::model::ErrorCode::RESOURCE_NOT_FOUND);
        assert!(
            error.message.contains("no session named `ghost`") && error.message.contains("resources/list"),
            "{}",
            error.message
        );
        let error = read_error(
            uri,
            "ghost",
            FileError::TooLarge {
                path: "/outputs/a.txt".into(),
                size: 20,
                max: 10,
            },
        );
        assert!(
            error.message.contains("10-byte limit") && error.message.contains("sandbox_execute"),
            "{}",
            error.message
        );
        let error = read_error(uri, "ghost", FileError::Traversal("/outputs/../x".into()));
        assert_eq!(error.code, rmcp::model::ErrorCode::INVALID_PARAMS);
    }
}
