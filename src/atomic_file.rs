//! Replacing a file's content whole: written beside it under a name of its
//! own, flushed, then renamed over it, so no reader sees half of it and two
//! writers at once cannot mix their bytes.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Replaces `path` with `text`: written to a temporary file in the same
/// folder (with the file's permissions), flushed, then renamed over it.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&folder)?;
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned());
    let temporary = folder.join(format!(
        ".{}.{}.tmp",
        name.as_deref().unwrap_or("config.toml"),
        uuid::Uuid::new_v4().simple()
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        if let Ok(metadata) = std::fs::metadata(path) {
            file.set_permissions(metadata.permissions())?;
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}
