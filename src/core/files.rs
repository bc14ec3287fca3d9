//! File operations in a session's `/workspace`, `/outputs` and mounted host
//! folders (`/mnt/<name>`). The host checks the path lexically (relative
//! paths start at `/workspace`, `..` is refused, the result must lie in one
//! of the session's folders) and the session's runner does the operation
//! inside the container, as the sandbox user, opening every path component
//! without following links (`images/runner/fileops.py`): permissions,
//! read-only mounts and the read-only root hold as they do for the code, and
//! code racing the operation with links cannot move it elsewhere. Symbolic
//! links are followed only while they point inside the folders. Nothing is
//! copied through the engine's archive API, so no host CPU is spent on a
//! folder's contents and a huge sparse file costs nothing to list.

use super::protocol::{
    FileOp, FileReply, FileReplyError, FileRequest, FileRoot, HostMessage, RunnerEntry, RunnerMessage,
};
use super::session::{SessionManager, SessionMount};
use crate::clock::rfc3339;
use crate::core::error::FileError;
use crate::docker::DockerError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

/// The folders every session has; file operations may touch them.
pub const ROOTS: [&str; 2] = ["/workspace", "/outputs"];
/// Most entries one listing returns.
const LIST_MAX_ENTRIES: u64 = 20_000;

/// The folders of one session that file operations may touch, and whether
/// each may be written.
#[derive(Debug, Clone)]
pub struct Roots {
    roots: Vec<(String, bool)>,
}

impl Roots {
    /// `/workspace` and `/outputs` (writable) plus the session's host folders.
    pub fn for_session(mounts: &[SessionMount]) -> Self {
        let mut roots: Vec<(String, bool)> = ROOTS.iter().map(|root| (root.to_string(), true)).collect();
        roots.extend(mounts.iter().map(|mount| (mount.path.clone(), mount.writable)));
        Self { roots }
    }

    fn find(&self, path: &str) -> Option<&(String, bool)> {
        self.roots.iter().find(|(root, _)| {
            path == root
                || path
                    .strip_prefix(root.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    fn contains(&self, path: &str) -> bool {
        self.find(path).is_some()
    }

    fn is_root(&self, path: &str) -> bool {
        self.roots.iter().any(|(root, _)| root == path)
    }

    fn to_request(&self) -> Vec<FileRoot<'_>> {
        self.roots
            .iter()
            .map(|(path, writable)| FileRoot {
                path,
                writable: *writable,
            })
            .collect()
    }
}

/// One entry of a listing.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, PartialEq)]
pub struct FileEntry {
    pub name: String,
    /// Absolute path inside the sandbox.
    pub path: String,
    /// file, folder, symlink or other.
    pub kind: String,
    /// Size in bytes (files).
    pub size: u64,
    /// Last modification, RFC 3339 (UTC).
    pub modified: String,
}

impl From<RunnerEntry> for FileEntry {
    fn from(entry: RunnerEntry) -> Self {
        Self {
            name: entry.name,
            path: entry.path,
            kind: entry.kind,
            size: entry.size,
            modified: rfc3339(u64::try_from(entry.modified).unwrap_or(0)),
        }
    }
}

/// The content of a file that was read.
#[derive(Debug, Clone)]
pub struct FileRead {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// What a file operation returned, and a note when the session had to be
/// started again for it (what was lost).
#[derive(Debug, Clone)]
pub struct Done<T> {
    pub value: T,
    pub note: Option<String>,
}

/// File operations on sessions.
pub struct Files<'a> {
    pub sessions: &'a SessionManager,
    pub max_file_bytes: u64,
}

impl Files<'_> {
    pub async fn read(&self, session: &str, path: &str) -> Result<Done<FileRead>, FileError> {
        let (reply, note) = self.call(session, FileOp::Read, path, None).await?;
        let path = reply_path(&reply, path);
        let bytes = STANDARD
            .decode(reply.content_base64.as_deref().unwrap_or_default())
            .map_err(|error| DockerError::Protocol(format!("file content is not base64: {error}")))?;
        if bytes.len() as u64 > self.max_file_bytes {
            return Err(FileError::TooLarge {
                path,
                size: bytes.len() as u64,
                max: self.max_file_bytes,
            });
        }
        Ok(Done {
            value: FileRead { path, bytes },
            note,
        })
    }

    /// Writes a file, creating missing parent folders.
    pub async fn write(&self, session: &str, path: &str, content: &[u8]) -> Result<Done<FileEntry>, FileError> {
        if content.len() as u64 > self.max_file_bytes {
            return Err(FileError::TooLarge {
                path: path.to_string(),
                size: content.len() as u64,
                max: self.max_file_bytes,
            });
        }
        let (reply, note) = self.call(session, FileOp::Write, path, Some(content)).await?;
        entry_of(reply, path, note)
    }

    /// Creates a folder and any missing parents.
    pub async fn mkdir(&self, session: &str, path: &str) -> Result<Done<FileEntry>, FileError> {
        let (reply, note) = self.call(session, FileOp::Mkdir, path, None).await?;
        entry_of(reply, path, note)
    }

    /// The entries directly inside a folder, sorted by name.
    pub async fn list(&self, session: &str, path: &str) -> Result<Done<Vec<FileEntry>>, FileError> {
        let (reply, note) = self.call(session, FileOp::List, path, None).await?;
        Ok(Done {
            value: reply.entries.into_iter().map(FileEntry::from).collect(),
            note,
        })
    }

    /// Deletes a file or a folder with its content; a symbolic link is
    /// removed itself, never what it points to.
    pub async fn delete(&self, session: &str, path: &str) -> Result<Done<FileEntry>, FileError> {
        let (reply, note) = self.call(session, FileOp::Delete, path, None).await?;
        entry_of(reply, path, note)
    }

    /// Checks `path`, has the session's runner do `op` on it, and turns a
    /// refusal into the matching error.
    async fn call(
        &self,
        session: &str,
        op: FileOp,
        path: &str,
        content: Option<&[u8]>,
    ) -> Result<(FileReply, Option<String>), FileError> {
        let target = self.sessions.file_target(session).await?;
        let roots = Roots::for_session(&target.mounts);
        let normalized = normalize(path, &roots)?;
        if op == FileOp::Delete && roots.is_root(&normalized) {
            return Err(FileError::RootFolder(normalized));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let request = HostMessage::File(FileRequest {
            id: &id,
            op,
            path: &normalized,
            roots: roots.to_request(),
            content_base64: content.map(|bytes| STANDARD.encode(bytes)),
            max_bytes: self.max_file_bytes,
            max_entries: LIST_MAX_ENTRIES as usize,
        });
        let payload = request.encode()?;
        let (message, note) = self.sessions.file_request(&target, &id, &payload).await?;
        let reply = match message {
            RunnerMessage::File(reply) => reply,
            RunnerMessage::Error { message, .. } => return Err(DockerError::RunnerFailed(message).into()),
            // A runner from before file operations treats the request as an empty run.
            RunnerMessage::Result(_) => return Err(FileError::OldRunner(session.to_string())),
            other => {
                return Err(DockerError::Protocol(format!("expected a file answer, got {other:?}")).into());
            }
        };
        match reply.error {
            Some(error) => Err(refusal(error, self.max_file_bytes)),
            None => Ok((reply, note)),
        }
    }
}

/// The path the runner acted on (after following links), or the one asked for.
fn reply_path(reply: &FileReply, asked: &str) -> String {
    reply.path.clone().unwrap_or_else(|| asked.to_string())
}

fn entry_of(reply: FileReply, asked: &str, note: Option<String>) -> Result<Done<FileEntry>, FileError> {
    let path = reply_path(&reply, asked);
    let entry = reply
        .entry
        .ok_or_else(|| DockerError::Protocol(format!("the file answer for `{path}` has no entry")))?;
    Ok(Done {
        value: entry.into(),
        note,
    })
}

/// The error for a runner's refusal.
fn refusal(error: FileReplyError, max_file_bytes: u64) -> FileError {
    let FileReplyError {
        kind,
        path,
        target,
        size,
        max,
        message,
    } = error;
    match kind.as_str() {
        "not_found" => FileError::NotFound(path),
        "is_folder" => FileError::IsFolder(path),
        "not_folder" => FileError::NotFolder(path),
        "too_large" => FileError::TooLarge {
            path,
            size: size.unwrap_or(0),
            max: max.unwrap_or(max_file_bytes),
        },
        "read_only" => FileError::ReadOnly(path),
        "root_folder" => FileError::RootFolder(path),
        "symlink_escape" => FileError::SymlinkEscape {
            path,
            target: target.unwrap_or_default(),
        },
        "changed" => FileError::Changed(path),
        "permission_denied" => FileError::PermissionDenied(path),
        "no_space" => FileError::NoSpace(path),
        "list_too_large" => FileError::ListTooLarge {
            max: max.unwrap_or(LIST_MAX_ENTRIES),
        },
        "outside" => FileError::Outside(path),
        _ => FileError::Failed {
            path,
            message: message.unwrap_or(kind),
        },
    }
}

/// Lexical normalization: relative paths start at /workspace; `..` is
/// refused; the result must be inside one of the session's `roots`.
pub fn normalize(path: &str, roots: &Roots) -> Result<String, FileError> {
    if path.contains('\0') {
        return Err(FileError::NulInPath(path.replace('\0', "\\0")));
    }
    let trimmed = path.trim();
    let absolute = if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/workspace/{trimmed}")
    };
    let mut parts = Vec::new();
    for part in absolute.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(FileError::Traversal(path.to_string())),
            other => parts.push(other),
        }
    }
    let joined = format!("/{}", parts.join("/"));
    if roots.contains(&joined) {
        Ok(joined)
    } else {
        Err(FileError::Outside(path.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> Roots {
        Roots::for_session(&[])
    }

    fn with_mounts() -> Roots {
        Roots::for_session(&[
            SessionMount {
                name: "data".into(),
                path: "/mnt/data".into(),
                host_path: "/srv/data".into(),
                writable: false,
            },
            SessionMount {
                name: "out".into(),
                path: "/mnt/out".into(),
                host_path: "/srv/out".into(),
                writable: true,
            },
        ])
    }

    #[test]
    fn relative_paths_start_in_the_workspace() {
        let roots = plain();
        assert_eq!(normalize("data/a.csv", &roots).unwrap(), "/workspace/data/a.csv");
        assert_eq!(normalize("./a//b/", &roots).unwrap(), "/workspace/a/b");
        assert_eq!(normalize("", &roots).unwrap(), "/workspace");
        assert_eq!(normalize("/outputs/plot.png", &roots).unwrap(), "/outputs/plot.png");
        assert_eq!(normalize("/workspace", &roots).unwrap(), "/workspace");
    }

    #[test]
    fn escapes_are_refused() {
        let roots = plain();
        assert!(matches!(
            normalize("../etc/passwd", &roots),
            Err(FileError::Traversal(_))
        ));
        assert!(matches!(normalize("a/../../etc", &roots), Err(FileError::Traversal(_))));
        assert!(matches!(normalize("/etc/passwd", &roots), Err(FileError::Outside(_))));
        assert!(matches!(normalize("/workspaces/x", &roots), Err(FileError::Outside(_))));
        assert!(matches!(normalize("/tmp", &roots), Err(FileError::Outside(_))));
        assert!(matches!(normalize("a\0b", &roots), Err(FileError::NulInPath(_))));
        assert!(matches!(normalize("/mnt/data/x", &roots), Err(FileError::Outside(_))));
    }

    #[test]
    fn mounted_folders_are_roots_with_their_own_access() {
        let roots = with_mounts();
        assert_eq!(normalize("/mnt/data/a.csv", &roots).unwrap(), "/mnt/data/a.csv");
        assert!(matches!(normalize("/mnt/database", &roots), Err(FileError::Outside(_))));
        assert!(matches!(normalize("/mnt", &roots), Err(FileError::Outside(_))));
        assert!(roots.is_root("/mnt/out"));
        assert!(!roots.is_root("/mnt/out/x"));
        let sent: Vec<(&str, bool)> = roots
            .to_request()
            .iter()
            .map(|root| (root.path, root.writable))
            .collect();
        assert_eq!(
            sent,
            [
                ("/workspace", true),
                ("/outputs", true),
                ("/mnt/data", false),
                ("/mnt/out", true)
            ]
        );
    }

    #[test]
    fn runner_refusals_become_their_errors() {
        let refused = |kind: &str| FileReplyError {
            kind: kind.into(),
            path: "/workspace/a".into(),
            target: Some("/etc/shadow".into()),
            size: Some(20),
            max: Some(10),
            message: Some("Input/output error".into()),
        };
        assert!(matches!(refusal(refused("not_found"), 10), FileError::NotFound(path) if path == "/workspace/a"));
        assert!(matches!(
            refusal(refused("symlink_escape"), 10),
            FileError::SymlinkEscape { target, .. } if target == "/etc/shadow"
        ));
        assert!(matches!(
            refusal(refused("too_large"), 10),
            FileError::TooLarge { size: 20, max: 10, .. }
        ));
        assert!(matches!(refusal(refused("changed"), 10), FileError::Changed(_)));
        assert!(matches!(
            refusal(refused("permission_denied"), 10),
            FileError::PermissionDenied(_)
        ));
        assert!(matches!(
            refusal(refused("list_too_large"), 10),
            FileError::ListTooLarge { max: 10 }
        ));
        assert!(matches!(
            refusal(refused("something new"), 10),
            FileError::Failed { message, .. } if message == "Input/output error"
        ));
    }
}
