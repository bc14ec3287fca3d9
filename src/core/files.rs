//! File operations in a session's `/workspace`, `/outputs` and mounted host
//! folders (`/mnt/<name>`), through the Docker archive API (so they work in
//! network-less and paused sessions). Paths are relative to `/workspace`;
//! absolute paths must stay inside the session's folders; `..` is refused,
//! symbolic links are followed only while they point inside the folders, and
//! read-only host folders are never written.

use super::run::ExecuteRequest;
use super::session::{SessionManager, SessionMount, rfc3339};
use super::watch::Watch;
use crate::docker::{ArchiveEntry, ArchiveRead, DockerEngine, EntryKind, Upload};
use crate::error::{ExecuteError, FileError};
use crate::runtime::Language;
use serde::Serialize;
use std::collections::BTreeMap;

/// The folders every session has; file operations may touch them.
pub const ROOTS: [&str; 2] = ["/workspace", "/outputs"];
/// Most symbolic links followed while resolving one path.
const MAX_LINKS: usize = 8;
/// Most entries (the folder's whole tree) streamed to list one folder.
const LIST_MAX_ENTRIES: usize = 200_000;

/// A path after following symbolic links.
struct Resolved {
    path: String,
    /// How many components below its root exist (the rest would be created).
    existing: usize,
    /// What the path is, when it exists (never a link: links are followed).
    found: Option<ArchiveEntry>,
}

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

    fn writable(&self, path: &str) -> bool {
        self.find(path).is_some_and(|(_, writable)| *writable)
    }

    fn is_root(&self, path: &str) -> bool {
        self.roots.iter().any(|(root, _)| root == path)
    }

    /// Splits a normalized path into its root and the part below it.
    fn split<'a>(&'a self, path: &'a str) -> (&'a str, &'a str) {
        match self.find(path) {
            Some((root, _)) => (root.as_str(), path[root.len()..].trim_start_matches('/')),
            None => ("/workspace", path.trim_start_matches('/')),
        }
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
        let (id, roots, _) = self.target(session).await?;
        let Resolved { path, found, .. } = self.resolve(&id, &roots, path).await?;
        let entry = found.ok_or_else(|| FileError::NotFound(path.clone()))?;
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
        match self.engine.read_archive(&id, &path, limit).await? {
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
        let (id, roots, _) = self.target(session).await?;
        let Resolved { path, existing, found } = self.resolve(&id, &roots, path).await?;
        if !roots.writable(&path) {
            return Err(FileError::ReadOnly(path));
        }
        let (root, relative) = roots.split(&path);
        if relative.is_empty() || found.is_some_and(|entry| entry.kind == EntryKind::Directory) {
            return Err(FileError::IsFolder(path));
        }
        // Only missing folders are uploaded: existing ones keep their owner and mode.
        let parents = missing_folders(parent_folders(relative), existing);
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
        let (id, roots, _) = self.target(session).await?;
        let Resolved { path, existing, found } = self.resolve(&id, &roots, path).await?;
        let (root, relative) = roots.split(&path);
        let mut folders = parent_folders(relative);
        if !relative.is_empty() {
            folders.push(relative.to_string());
        }
        let missing = missing_folders(folders, existing);
        if missing.is_empty() {
            return match found {
                Some(entry) if entry.kind == EntryKind::Directory => Ok(entry_at(&path, &entry)),
                Some(_) => Err(FileError::NotFolder(path)),
                None => Err(FileError::NotFound(path)),
            };
        }
        if !roots.writable(&path) {
            return Err(FileError::ReadOnly(path));
        }
        let items: Vec<Upload<'_>> = missing
            .iter()
            .map(|folder| Upload::Directory { path: folder })
            .collect();
        self.engine.write_archive(&id, root, &items).await?;
        self.entry(&id, &path).await
    }

    /// The entries directly inside a folder.
    pub async fn list(&self, session: &str, path: &str) -> Result<Vec<FileEntry>, FileError> {
        let (id, roots, _) = self.target(session).await?;
        let path = self.resolve(&id, &roots, path).await?.path;
        let entries = match self.engine.list_archive(&id, &path, LIST_MAX_ENTRIES).await? {
            None => return Err(FileError::NotFound(path)),
            Some((_, false)) => return Err(FileError::ListTooLarge { max: LIST_MAX_ENTRIES }),
            Some((entries, true)) => entries,
        };
        let Some(first) = entries.first() else {
            return Err(FileError::NotFound(path));
        };
        if first.kind != EntryKind::Directory {
            return Err(FileError::NotFolder(path));
        }
        let top = first.path.trim_end_matches('/').to_string();
        let mut listed: Vec<FileEntry> = entries
            .iter()
            .filter_map(|entry| {
                let inner = entry.path.trim_end_matches('/').strip_prefix(&top)?.strip_prefix('/')?;
                (!inner.is_empty() && !inner.contains('/')).then(|| to_entry(&path, inner, entry))
            })
            .collect();
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listed)
    }

    /// Deletes a file or a folder with its content; a symbolic link is
    /// removed itself, never what it points to. The archive API cannot
    /// delete, so this runs `rm` in the session (resuming a paused session
    /// for the moment it takes).
    pub async fn delete(&self, session: &str, path: &str) -> Result<FileEntry, FileError> {
        let (id, roots, was_paused) = self.target(session).await?;
        let normalized = normalize(path, &roots)?;
        if roots.is_root(&normalized) {
            return Err(FileError::RootFolder(normalized));
        }
        // Follow links in the folders above, not in the last component.
        let (parent, name) = normalized.rsplit_once('/').unwrap_or(("/workspace", &normalized));
        let parent = self.resolve(&id, &roots, parent).await?.path;
        let path = format!("{parent}/{name}");
        if roots.is_root(&path) {
            return Err(FileError::RootFolder(path));
        }
        if !roots.writable(&path) {
            return Err(FileError::ReadOnly(path));
        }
        let entry = self.entry(&id, &path).await?;
        let request = ExecuteRequest {
            language: Language::Bash,
            code: format!("rm -rf -- '{}'", path.replace('\'', "'\\''")),
            timeout_ms: 30_000,
            stdin: None,
            env: BTreeMap::new(),
            session: Some(session.to_string()),
            packages: Vec::new(),
            ml: false,
            watch: Watch::default(),
        };
        let outcome = self.sessions.execute(session, &request).await;
        if was_paused {
            self.sessions.pause(session).await?;
        }
        let outcome = outcome.map_err(|error| match error {
            ExecuteError::Session(error) => FileError::Session(error),
            ExecuteError::Docker(error) => FileError::Docker(error),
            other => FileError::DeleteFailed {
                path: path.clone(),
                message: other.to_string(),
            },
        })?;
        if outcome.exit_code != 0 {
            return Err(FileError::DeleteFailed {
                path,
                message: outcome.stderr.trim().to_string(),
            });
        }
        Ok(entry)
    }

    /// The session's container, the folders file operations may touch, and
    /// whether the session is paused.
    async fn target(&self, session: &str) -> Result<(String, Roots, bool), FileError> {
        let target = self.sessions.file_target(session).await?;
        Ok((target.container_id, Roots::for_session(&target.mounts), target.paused))
    }

    async fn entry(&self, id: &str, path: &str) -> Result<FileEntry, FileError> {
        let entry = self
            .engine
            .stat_in_container(id, path)
            .await?
            .ok_or_else(|| FileError::NotFound(path.to_string()))?;
        Ok(entry_at(path, &entry))
    }

    /// The absolute path `path` refers to, following symbolic links that
    /// stay inside the session's folders and refusing the others.
    async fn resolve(&self, id: &str, roots: &Roots, path: &str) -> Result<Resolved, FileError> {
        let mut current = normalize(path, roots)?;
        let mut hops = 0;
        let existing;
        let mut found = None;
        'walk: loop {
            let (root, relative) = roots.split(&current);
            let mut prefix = root.to_string();
            let components: Vec<&str> = relative.split('/').filter(|part| !part.is_empty()).collect();
            for (index, component) in components.iter().enumerate() {
                prefix = format!("{prefix}/{component}");
                let Some(entry) = self.engine.stat_in_container(id, &prefix).await? else {
                    existing = index; // the rest does not exist yet
                    found = None;
                    break 'walk;
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
                    current = match normalize_absolute(&next, roots) {
                        Some(inside) if hops <= MAX_LINKS => inside,
                        _ => {
                            return Err(FileError::SymlinkEscape { path: prefix, target });
                        }
                    };
                    continue 'walk;
                }
                found = Some(entry);
            }
            if components.is_empty() {
                found = self.engine.stat_in_container(id, &current).await?;
            }
            existing = components.len();
            break;
        }
        Ok(Resolved {
            path: current,
            existing,
            found,
        })
    }
}

/// Lexical normalization: relative paths start at /workspace; `..` is
/// refused; the result must be inside one of the session's `roots`.
pub fn normalize(path: &str, roots: &Roots) -> Result<String, FileError> {
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

/// Normalizes an absolute path that may contain `..` (a link target);
/// `None` when it leaves the session's folders.
fn normalize_absolute(path: &str, roots: &Roots) -> Option<String> {
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
    roots.contains(&joined).then_some(joined)
}

/// The folders of `folders` (as from [`parent_folders`], shallowest first)
/// deeper than the `existing` components that are already there.
fn missing_folders(folders: Vec<String>, existing: usize) -> Vec<String> {
    folders.into_iter().skip(existing).collect()
}

/// `a/b/c.txt` → `["a", "a/b"]`.
fn parent_folders(relative: &str) -> Vec<String> {
    let parts: Vec<&str> = relative.split('/').collect();
    (1..parts.len()).map(|end| parts[..end].join("/")).collect()
}

/// The listing entry of the absolute `path`.
fn entry_at(path: &str, entry: &ArchiveEntry) -> FileEntry {
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
    to_entry(if parent.is_empty() { "/" } else { parent }, name, entry)
}

fn to_entry(parent: &str, name: &str, entry: &ArchiveEntry) -> FileEntry {
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
        assert!(matches!(normalize("/mnt/data/x", &roots), Err(FileError::Outside(_))));
    }

    #[test]
    fn mounted_folders_are_roots_with_their_own_access() {
        let roots = with_mounts();
        assert_eq!(normalize("/mnt/data/a.csv", &roots).unwrap(), "/mnt/data/a.csv");
        assert!(matches!(normalize("/mnt/database", &roots), Err(FileError::Outside(_))));
        assert!(matches!(normalize("/mnt", &roots), Err(FileError::Outside(_))));
        assert!(!roots.writable("/mnt/data/a.csv"));
        assert!(roots.writable("/mnt/out/b.csv"));
        assert!(roots.writable("/workspace/c"));
        assert!(roots.is_root("/mnt/out"));
        assert_eq!(roots.split("/mnt/out/x/y"), ("/mnt/out", "x/y"));
    }

    #[test]
    fn link_targets_are_checked_after_normalization() {
        let roots = with_mounts();
        assert_eq!(
            normalize_absolute("/workspace/a/../b", &roots),
            Some("/workspace/b".into())
        );
        assert_eq!(normalize_absolute("/workspace/../etc", &roots), None);
        assert_eq!(normalize_absolute("/etc", &roots), None);
        assert_eq!(
            normalize_absolute("/mnt/data/../out/x", &roots),
            Some("/mnt/out/x".into())
        );
        assert_eq!(normalize_absolute("/mnt/data/../../etc", &roots), None);
    }

    #[test]
    fn parents_and_roots_split() {
        let roots = plain();
        assert_eq!(parent_folders("a/b/c.txt"), ["a", "a/b"]);
        assert!(parent_folders("c.txt").is_empty());
        assert_eq!(missing_folders(parent_folders("a/b/c/d.txt"), 1), ["a/b", "a/b/c"]);
        assert!(missing_folders(parent_folders("a/b.txt"), 2).is_empty());
        assert_eq!(roots.split("/outputs/x/y"), ("/outputs", "x/y"));
        assert_eq!(roots.split("/workspace"), ("/workspace", ""));
    }
}
