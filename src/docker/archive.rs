//! Files inside a container through the Docker archive API (tar over HTTP),
//! which works whether or not the container has network and without running
//! anything in it. Everything is packed and unpacked in memory: nothing from
//! a container is ever extracted onto a host path.

use super::{DockerEngine, is_not_found};
use crate::error::DockerError;
use bollard::query_parameters::{
    ContainerArchiveInfoOptionsBuilder, DownloadFromContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bytes::Bytes;
use futures::StreamExt;
use std::io::Read;

/// What a path in a container is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Directory,
    Symlink { target: String },
    Other,
}

/// One entry of a container archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEntry {
    /// Path inside the archive (relative to the requested path's parent).
    pub path: String,
    pub kind: EntryKind,
    pub size: u64,
    /// Unix seconds.
    pub modified: u64,
}

/// A file or folder to put into a container.
pub enum Upload<'a> {
    Directory { path: &'a str },
    File { path: &'a str, content: &'a [u8] },
}

/// Why reading from an archive stopped.
#[derive(Debug)]
pub enum ArchiveRead {
    /// The archive was larger than allowed; nothing is returned.
    TooLarge,
    Entries(Vec<(ArchiveEntry, Option<Vec<u8>>)>),
}

impl DockerEngine {
    /// What `path` is (a link is reported as a link, not followed), or
    /// `None` when it does not exist. A `HEAD` of the archive endpoint: the
    /// engine stats the path without packing anything.
    pub async fn stat_in_container(&self, id: &str, path: &str) -> Result<Option<ArchiveEntry>, DockerError> {
        let client = self.client().await?;
        let options = ContainerArchiveInfoOptionsBuilder::default().path(path).build();
        match client.get_container_archive_info(id, Some(options)).await {
            Ok(stat) => Ok(Some(ArchiveEntry {
                kind: kind_from_mode(stat.file_mode, &stat.link_target),
                path: stat.name,
                size: u64::try_from(stat.size).unwrap_or(0),
                modified: stat.modification_time.as_deref().and_then(parse_rfc3339).unwrap_or(0),
            })),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The archive of `path` (all entries, with the bytes of regular files),
    /// reading at most `max_bytes` of archive. `None` when `path` does not
    /// exist.
    pub async fn read_archive(
        &self,
        id: &str,
        path: &str,
        max_bytes: usize,
    ) -> Result<Option<ArchiveRead>, DockerError> {
        let client = self.client().await?;
        let options = DownloadFromContainerOptionsBuilder::default().path(path).build();
        let mut stream = client.download_from_container(id, Some(options));
        let mut buffer: Vec<u8> = Vec::new();
        let mut complete = true;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => buffer.extend_from_slice(&bytes),
                Err(error) if is_not_found(&error) => return Ok(None),
                Err(error) => return Err(error.into()),
            }
            if buffer.len() > max_bytes {
                complete = false;
                break;
            }
        }
        if !complete {
            return Ok(Some(ArchiveRead::TooLarge));
        }
        let entries = parse_entries(&buffer);
        Ok(Some(ArchiveRead::Entries(entries)))
    }

    /// The entries of the archive of `path` (itself first, then everything
    /// below it), without keeping any file content: the archive is streamed
    /// through a tar reader, so memory stays small whatever the folder holds.
    /// Stops after `max_entries` (the bool says whether the listing is
    /// complete). `None` when `path` does not exist.
    pub async fn list_archive(
        &self,
        id: &str,
        path: &str,
        max_entries: usize,
    ) -> Result<Option<(Vec<ArchiveEntry>, bool)>, DockerError> {
        let client = self.client().await?;
        let options = DownloadFromContainerOptionsBuilder::default().path(path).build();
        let mut stream = client.download_from_container(id, Some(options)).peekable();
        // A missing path fails on the first chunk.
        if let Some(Err(error)) = std::pin::Pin::new(&mut stream).peek().await
            && is_not_found(error)
        {
            return Ok(None);
        }
        let reader = tokio_util::io::StreamReader::new(
            stream.map(|chunk| chunk.map_err(|error| std::io::Error::other(error.to_string()))),
        );
        let bridge = tokio_util::io::SyncIoBridge::new(reader);
        let listed = tokio::task::spawn_blocking(move || list_entries(bridge, max_entries))
            .await
            .map_err(|error| DockerError::Protocol(format!("listing stopped: {error}")))?
            .map_err(|error| DockerError::Protocol(format!("cannot read the folder listing: {error}")))?;
        Ok(Some(listed))
    }

    /// Puts folders and files under `parent` (which must exist), owned by the
    /// sandbox user (uid/gid 1000, set in the tar headers: the engine keeps
    /// header ownership, while its `copyUIDGID` option cannot resolve a numeric
    /// `uid:gid` user on Docker 20.10).
    pub async fn write_archive(&self, id: &str, parent: &str, items: &[Upload<'_>]) -> Result<(), DockerError> {
        let mut builder = tar::Builder::new(Vec::new());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or(0);
        let packed: std::io::Result<()> = items.iter().try_for_each(|item| {
            let mut header = tar::Header::new_gnu();
            header.set_uid(1000);
            header.set_gid(1000);
            header.set_mtime(now);
            match item {
                Upload::Directory { path } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    builder.append_data(&mut header, path, std::io::empty())
                }
                Upload::File { path, content } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(0o644);
                    header.set_size(content.len() as u64);
                    builder.append_data(&mut header, path, *content)
                }
            }
        });
        let tar = packed
            .and_then(|()| builder.into_inner())
            .map_err(|e| DockerError::Protocol(format!("cannot pack the upload: {e}")))?;
        let client = self.client().await?;
        // Never replace a file by a folder or a folder by a file.
        let options = UploadToContainerOptionsBuilder::default()
            .path(parent)
            .no_overwrite_dir_non_dir("true")
            .build();
        client
            .upload_to_container(id, Some(options), bollard::body_full(Bytes::from(tar)))
            .await?;
        Ok(())
    }
}

/// The kind of a path from its Go `os.FileMode` bits (as the engine reports them).
fn kind_from_mode(mode: u32, link_target: &str) -> EntryKind {
    const DIRECTORY: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const OTHER: u32 = (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19); // device, pipe, socket, char device, irregular
    if mode & DIRECTORY != 0 {
        EntryKind::Directory
    } else if mode & SYMLINK != 0 {
        EntryKind::Symlink {
            target: link_target.to_string(),
        }
    } else if mode & OTHER != 0 {
        EntryKind::Other
    } else {
        EntryKind::File
    }
}

/// Unix seconds of an RFC 3339 time such as `2026-11-27T22:54:44.27374214Z`
/// or `2026-11-27T23:54:44+01:00`.
fn parse_rfc3339(text: &str) -> Option<u64> {
    let number = |range: std::ops::Range<usize>| -> Option<i64> { text.get(range)?.parse().ok() };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let zone = text
        .get(19..)?
        .trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let hours: i64 = zone.get(1..3)?.parse().ok()?;
            let minutes: i64 = zone.get(4..6)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let shifted = if month <= 2 { year - 1 } else { year };
    let era = shifted.div_euclid(400);
    let year_of_era = shifted - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second - offset).ok()
}

/// Reads entry headers from a tar stream, skipping contents.
fn list_entries(reader: impl Read, max_entries: usize) -> std::io::Result<(Vec<ArchiveEntry>, bool)> {
    let mut archive = tar::Archive::new(reader);
    let mut found = Vec::new();
    for entry in archive.entries()? {
        if found.len() >= max_entries {
            return Ok((found, false));
        }
        found.push(describe(&entry?));
    }
    Ok((found, true))
}

/// What one tar entry is.
fn describe<R: Read>(entry: &tar::Entry<'_, R>) -> ArchiveEntry {
    let header = entry.header();
    let kind = match header.entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
        tar::EntryType::Directory => EntryKind::Directory,
        tar::EntryType::Symlink => EntryKind::Symlink {
            target: entry
                .link_name()
                .ok()
                .flatten()
                .map(|target| target.to_string_lossy().into_owned())
                .unwrap_or_default(),
        },
        _ => EntryKind::Other,
    };
    ArchiveEntry {
        path: entry
            .path()
            .map(|path| path.to_string_lossy().into_owned())
            .unwrap_or_default(),
        kind,
        size: header.size().unwrap_or(0),
        modified: header.mtime().unwrap_or(0),
    }
}

/// Entries of a (possibly truncated) tar buffer, with the bytes of regular
/// files. Stops at the first entry that is not complete in the buffer.
fn parse_entries(buffer: &[u8]) -> Vec<(ArchiveEntry, Option<Vec<u8>>)> {
    let mut archive = tar::Archive::new(buffer);
    let mut found = Vec::new();
    let Ok(entries) = archive.entries() else {
        return found;
    };
    for entry in entries {
        let Ok(mut entry) = entry else { break };
        let described = describe(&entry);
        let size = described.size;
        let data = if described.kind == EntryKind::File {
            // The header's size comes from the container: never trust it
            // for an allocation beyond what was actually received.
            let mut data = Vec::with_capacity((size as usize).min(buffer.len()));
            if entry.read_to_end(&mut data).is_err() || (data.len() as u64) < size {
                break;
            }
            Some(data)
        } else {
            None
        };
        found.push((described, data));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_size(0);
        dir.set_mode(0o755);
        builder.append_data(&mut dir, "data", std::io::empty()).unwrap();
        let mut file = tar::Header::new_gnu();
        file.set_size(5);
        file.set_mode(0o644);
        file.set_mtime(42);
        builder.append_data(&mut file, "data/a.txt", &b"hello"[..]).unwrap();
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder.append_link(&mut link, "data/out", "/etc").unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn parses_kinds_sizes_contents_and_links() {
        let entries = parse_entries(&sample());
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].0.kind, EntryKind::Directory);
        assert_eq!(entries[1].0.path, "data/a.txt");
        assert_eq!(entries[1].0.size, 5);
        assert_eq!(entries[1].0.modified, 42);
        assert_eq!(entries[1].1.as_deref(), Some(&b"hello"[..]));
        assert_eq!(entries[2].0.kind, EntryKind::Symlink { target: "/etc".into() });
    }

    #[test]
    fn engine_stats_map_to_kinds_and_times() {
        assert_eq!(kind_from_mode(2147484141, ""), EntryKind::Directory);
        assert_eq!(
            kind_from_mode(134218239, "/etc"),
            EntryKind::Symlink { target: "/etc".into() }
        );
        assert_eq!(kind_from_mode(420, ""), EntryKind::File);
        assert_eq!(kind_from_mode((1 << 25) | 0o644, ""), EntryKind::Other);
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-11-27T22:54:44.27374214Z"), Some(1_795_820_084));
        assert_eq!(parse_rfc3339("2026-11-27T23:54:44+01:00"), Some(1_795_820_084));
        assert_eq!(parse_rfc3339("2000-02-29T12:00:00Z"), Some(951_825_600));
        assert_eq!(parse_rfc3339("not a time"), None);
    }

    #[test]
    fn streamed_listings_skip_contents_and_stop_at_the_cap() {
        let (entries, complete) = list_entries(&sample()[..], 10).unwrap();
        assert!(complete);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1].size, 5);
        let (entries, complete) = list_entries(&sample()[..], 2).unwrap();
        assert!(!complete);
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn a_huge_declared_size_does_not_allocate_it() {
        let mut header = tar::Header::new_gnu();
        header.set_size(1 << 40);
        header.set_mode(0o644);
        header.set_path("huge.bin").unwrap();
        header.set_cksum();
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 4096]);
        let entries = parse_entries(&bytes);
        assert!(entries.iter().all(|(_, data)| data.is_none()));
    }

    #[test]
    fn a_truncated_archive_yields_the_complete_entries() {
        let whole = sample();
        let entries = parse_entries(&whole[..1024]);
        assert_eq!(entries[0].0.path, "data");
    }
}
