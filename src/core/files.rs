//! File operations in a session's `/workspace` and `/outputs`, through the
//! Docker archive API (so they work in network-less and paused sessions).
//! Paths are relative to `/workspace`; absolute paths must stay inside the
//! two folders; `..` is refused, and symbolic links are followed only while
//! they point inside the folders.

use super::run::ExecuteRequest;
use super::session::{SessionManager, rfc3339};
use crate::docker::{ArchiveRead, DockerEngine, EntryKind, Upload};
use crate::error::{ExecuteError, FileError};
use crate::runtime::Language;
use serde::Serialize;
use std::collections::BTreeMap;

/// The folders file operations may touch.
pub const ROOTS: [&str; 2] = ["/workspace", "/outputs"];
/// Most symbolic links followed while resolving one path.
const MAX_LINKS: usize = 8;
/// Most archive bytes read to list one folder.
const LIST_ARCHIVE_LIMIT: usize = 64 * 1024 * 1024;

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

/// The content of a file that was read.
#[derive(Debug, Clone)]
pub struct FileRead {
    pub path: String,
    pub bytes: Vec<u8>,
}

/// File operations on sessions.
pub struct Files<'a> {
    pub engine: &'a DockerEngine,
    pub sessions: &'a SessionManager,
    pub max_file_bytes: u64,
}

impl Files<'_> {
    pub async fn read(&self, session: &str, path: &str) -> Result<FileRead, FileError> {
        let id = self.sessions.container_id(session).await?;
        let path = self.resolve(&id, path).await?;
        let entry = self
            .engine
            .stat_in_container(&id, &path)
            .await?
            .ok_or_else(|| FileError::NotFound(path.clone()))?;
        match entry.kind {
            EntryKind::Directory => return Err(FileError::IsFolder(path)),
            EntryKind::File => {}
            _ => return Err(FileError::NotFound(path)),
        }
        if entry.size > self.max_file_bytes {
            return Err(FileError::TooLarge {
                path,
                size: entry.size,
                max: self.max_file_bytes,
            });
        }
        let limit = self.max_file_bytes as usize + 64 * 1024;
        match self.engine.read_archive(&id, &path, limit, true).await? {
            Some(ArchiveRead::Entries(entries)) => {
                let bytes = entries
                    .into_iter()
                    .find_map(|(_, data)| data)
                    .ok_or_else(|| FileError::NotFound(path.clone()))?;
                Ok(FileRead { path, bytes })
            }
            Some(ArchiveRead::TooLarge) => Err(FileError::TooLarge {
                path,
                size: entry.size,
                max: self.max_file_bytes,
            }),
            None => Err(FileError::NotFound(path)),
        }
    }

    /// Writes a file, creating missing parent folders.
    pub async fn write(&self, session: &str, path: &str, content: &[u8]) -> Result<FileEntry, FileError> {
        if content.len() as u64 > self.max_file_bytes {
            return Err(FileError::TooLarge {
                path: path.to_string(),
                size: content.len() as u64,
                max: self.max_file_bytes,
            });
        }
        let id = self.sessions.container_id(session).await?;
        let path = self.resolve(&id, path).await?;
        let (root, relative) = split_root(&path);
        if relative.is_empty() {
            return Err(FileError::IsFolder(path));
        }
        if let Some(existing) = self.engine.stat_in_container(&id, &path).await?
            && existing.kind == EntryKind::Directory
        {
            return Err(FileError::IsFolder(path));
        }
        let parents = parent_folders(relative);
        let mut items: Vec<Upload<'_>> = parents
            .iter()
            .map(|folder| Upload::Directory { path: folder })
            .collect();
        items.push(Upload::File {
            path: relative,
            content,
        });
        self.engine.write_archive(&id, root, &items).await?;
        self.entry(&id, &path).await
    }

    /// Creates a folder and any missing parents.
    pub async fn mkdir(&self, session: &str, path: &str) -> Result<FileEntry, FileError> {
        let id = self.sessions.container_id(session).await?;
        let path = self.resolve(&id, path).await?;
        let (root, relative) = split_root(&path);
        if !relative.is_empty() {
            let mut folders = parent_folders(relative);
            folders.push(relative.to_string());
            let items: Vec<Upload<'_>> = folders
                .iter()
                .map(|folder| Upload::Directory { path: folder })
                .collect();
            self.engine.write_archive(&id, root, &items).await?;
        }
        self.entry(&id, &path).await
    }

    /// The entries directly inside a folder.
    pub async fn list(&self, session: &str, path: &str) -> Result<Vec<FileEntry>, FileError> {
        let id = self.sessions.container_id(session).await?;
        let path = self.resolve(&id, path).await?;
        let entries = match self.engine.read_archive(&id, &path, LIST_ARCHIVE_LIMIT, false).await? {
            None => return Err(FileError::NotFound(path)),
            Some(ArchiveRead::TooLarge) => return Err(FileError::ListTooLarge),
            Some(ArchiveRead::Entries(entries)) => entries,
        };
        let Some((first, _)) = entries.first() else {
            return Err(FileError::NotFound(path));
        };
        if first.kind != EntryKind::Directory {
            return Err(FileError::NotFolder(path));
        }
        let top = first.path.trim_end_matches('/').to_string();
        let mut listed: Vec<FileEntry> = entries
            .iter()
            .filter_map(|(entry, _)| {
                let inner = entry.path.trim_end_matches('/').strip_prefix(&top)?.strip_prefix('/')?;
                (!inner.is_empty() && !inner.contains('/')).then(|| to_entry(&path, inner, entry))
            })
            .collect();
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listed)
    }

    /// Deletes a file or a folder with its content. The archive API cannot
    /// delete, so this runs `rm` in the session (resuming a paused session
    /// for the moment it takes).
    pub async fn delete(&self, session: &str, path: &str) -> Result<FileEntry, FileError> {
        let id = self.sessions.container_id(session).await?;
        let path = self.resolve(&id, path).await?;
        if ROOTS.contains(&path.as_str()) {
            return Err(FileError::RootFolder(path));
        }
        let entry = self.entry(&id, &path).await?;
        let was_paused = self.sessions.is_paused(session).await?;
        let request = ExecuteRequest {
            language: Language::Bash,
            code: format!("rm -rf -- '{}'", path.replace('\'', "'\\''")),
            timeout_ms: 30_000,
            stdin: None,
            env: BTreeMap::new(),
            session: Some(session.to_string()),
            packages: Vec::new(),
            ml: false,
        };
        let outcome = self
            .sessions
            .execute(session, &request)
            .await
            .map_err(|error| match error {
                ExecuteError::Session(error) => FileError::Session(error),
                ExecuteError::Docker(error) => FileError::Docker(error),
                other => FileError::DeleteFailed {
                    path: path.clone(),
                    message: other.to_string(),
                },
            })?;
        if was_paused {
            self.sessions.pause(session).await?;
        }
        if outcome.exit_code != 0 {
            return Err(FileError::DeleteFailed {
                path,
                message: outcome.stderr.trim().to_string(),
            });
        }
        Ok(entry)
    }

    async fn entry(&self, id: &str, path: &str) -> Result<FileEntry, FileError> {
        let entry = self
            .engine
            .stat_in_container(id, path)
            .await?
            .ok_or_else(|| FileError::NotFound(path.to_string()))?;
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        Ok(to_entry(if parent.is_empty() { "/" } else { parent }, name, &entry))
    }

    /// The absolute path `path` refers to, following symbolic links that
    /// stay inside the session's folders and refusing the others.
    async fn resolve(&self, id: &str, path: &str) -> Result<String, FileError> {
        let mut current = normalize(path)?;
        let mut hops = 0;
        'walk: loop {
            let (root, relative) = split_root(&current);
            let mut prefix = root.to_string();
            let components: Vec<&str> = relative.split('/').filter(|part| !part.is_empty()).collect();
            for (index, component) in components.iter().enumerate() {
                prefix = format!("{prefix}/{component}");
                let Some(entry) = self.engine.stat_in_container(id, &prefix).await? else {
                    break 'walk; // the rest does not exist yet
                };
                if let EntryKind::Symlink { target } = entry.kind {
                    hops += 1;
                    let parent = prefix.rsplit_once('/').map(|(parent, _)| parent).unwrap_or("/");
                    let joined = if target.starts_with('/') {
                        target.clone()
                    } else {
                        format!("{parent}/{target}")
                    };
                    let rest = components[index + 1..].join("/");
                    let next = if rest.is_empty() {
                        joined
                    } else {
                        format!("{joined}/{rest}")
                    };
                    current = match normalize_absolute(&next) {
                        Some(inside) if hops <= MAX_LINKS => inside,
                        _ => {
                            return Err(FileError::SymlinkEscape { path: prefix, target });
                        }
                    };
                    continue 'walk;
                }
            }
            break;
        }
        Ok(current)
    }
}

/// Lexical normalization: relative paths start at /workspace; `..` is
/// refused; the result must be inside one of [`ROOTS`].
pub fn normalize(path: &str) -> Result<String, FileError> {
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
    if inside_roots(&joined) {
        Ok(joined)
    } else {
        Err(FileError::Outside(path.to_string()))
    }
}

/// Normalizes an absolute path that may contain `..` (a link target);
/// `None` when it leaves the session's folders.
fn normalize_absolute(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let joined = format!("/{}", parts.join("/"));
    inside_roots(&joined).then_some(joined)
}

fn inside_roots(path: &str) -> bool {
    ROOTS
        .iter()
        .any(|root| path == *root || path.strip_prefix(root).is_some_and(|rest| rest.starts_with('/')))
}

/// Splits a normalized path into its root and the part below it.
fn split_root(path: &str) -> (&'static str, &str) {
    for root in ROOTS {
        if path == root {
            return (root, "");
        }
        if let Some(rest) = path.strip_prefix(root).and_then(|rest| rest.strip_prefix('/')) {
            return (root, rest);
        }
    }
    ("/workspace", path.trim_start_matches('/'))
}

/// `a/b/c.txt` → `["a", "a/b"]`.
fn parent_folders(relative: &str) -> Vec<String> {
    let parts: Vec<&str> = relative.split('/').collect();
    (1..parts.len()).map(|end| parts[..end].join("/")).collect()
}

fn to_entry(parent: &str, name: &str, entry: &crate::docker::ArchiveEntry) -> FileEntry {
    FileEntry {
        name: name.to_string(),
        path: format!("{}/{name}", parent.trim_end_matches('/')),
        kind: match entry.kind {
            EntryKind::File => "file",
            EntryKind::Directory => "folder",
            EntryKind::Symlink { .. } => "symlink",
            EntryKind::Other => "other",
        }
        .to_string(),
        size: entry.size,
        modified: rfc3339(entry.modified),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_start_in_the_workspace() {
        assert_eq!(normalize("data/a.csv").unwrap(), "/workspace/data/a.csv");
        assert_eq!(normalize("./a//b/").unwrap(), "/workspace/a/b");
        assert_eq!(normalize("").unwrap(), "/workspace");
        assert_eq!(normalize("/outputs/plot.png").unwrap(), "/outputs/plot.png");
        assert_eq!(normalize("/workspace").unwrap(), "/workspace");
    }

    #[test]
    fn escapes_are_refused() {
        assert!(matches!(normalize("../etc/passwd"), Err(FileError::Traversal(_))));
        assert!(matches!(normalize("a/../../etc"), Err(FileError::Traversal(_))));
        assert!(matches!(normalize("/etc/passwd"), Err(FileError::Outside(_))));
        assert!(matches!(normalize("/workspaces/x"), Err(FileError::Outside(_))));
        assert!(matches!(normalize("/tmp"), Err(FileError::Outside(_))));
    }

    #[test]
    fn link_targets_are_checked_after_normalization() {
        assert_eq!(normalize_absolute("/workspace/a/../b"), Some("/workspace/b".into()));
        assert_eq!(normalize_absolute("/workspace/../etc"), None);
        assert_eq!(normalize_absolute("/etc"), None);
    }

    #[test]
    fn parents_and_roots_split() {
        assert_eq!(parent_folders("a/b/c.txt"), ["a", "a/b"]);
        assert!(parent_folders("c.txt").is_empty());
        assert_eq!(split_root("/outputs/x/y"), ("/outputs", "x/y"));
        assert_eq!(split_root("/workspace"), ("/workspace", ""));
    }
}
