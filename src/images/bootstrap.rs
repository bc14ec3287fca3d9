//! Offline base image: when the base image is missing and cannot be pulled
//! (no registry on the machine), build it from Debian's packages with
//! `debootstrap --variant=minbase trixie` and import it (`docker import`).

use crate::docker::SandboxEngine;
use crate::images::ImageError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::Command;
use tokio_util::io::ReaderStream;

/// The Debian release the base image is made from.
const SUITE: &str = "trixie";

/// Builds `image` (`repository:tag`) with debootstrap and imports it.
pub async fn bootstrap_base(engine: &dyn SandboxEngine, image: &str) -> Result<(), ImageError> {
    let (repository, tag) = split_reference(image);
    let root = std::env::temp_dir().join(format!("multilang-sandbox-rootfs-{}", uuid::Uuid::new_v4()));
    let result = bootstrap_into(engine, &root, repository, tag).await;
    if let Err(error) = tokio::fs::remove_dir_all(&root).await
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %root.display(), %error, "could not remove the debootstrap folder");
    }
    result
}

async fn bootstrap_into(
    engine: &dyn SandboxEngine,
    root: &Path,
    repository: &str,
    tag: &str,
) -> Result<(), ImageError> {
    let output = Command::new("debootstrap")
        .args(["--variant=minbase", SUITE])
        .arg(root)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|error| {
            ImageError::Bootstrap(format!(
                "cannot run debootstrap ({error}); install it (Debian/Ubuntu: `sudo apt-get install debootstrap`)"
            ))
        })?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        let tail: Vec<&str> = text.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(ImageError::Bootstrap(format!(
            "debootstrap exited with {} (it needs root: run `sudo multilang-sandbox images build`): {}",
            output.status,
            tail.join(" | ")
        )));
    }
    for cache in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        clear_folder(&root.join(cache)).await?;
    }
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["--numeric-owner", "-c", "."])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = tar
        .stdout
        .take()
        .ok_or_else(|| ImageError::Bootstrap("tar produced no output stream".into()))?;
    engine
        .import_rootfs(repository, tag, Box::pin(ReaderStream::new(stdout)))
        .await?;
    let status = tar.wait().await?;
    if !status.success() {
        return Err(ImageError::Bootstrap(format!(
            "packing the root filesystem failed: tar exited with {status}"
        )));
    }
    Ok(())
}

/// Removes the files in a folder, keeping the folder (and sub-folders).
async fn clear_folder(folder: &PathBuf) -> Result<(), ImageError> {
    let mut entries = match tokio::fs::read_dir(folder).await {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    while let Some(entry) = entries.next_entry().await? {
        if entry.file_type().await?.is_file() {
            tokio::fs::remove_file(entry.path()).await?;
        }
    }
    Ok(())
}

/// Splits `repo:tag` (a registry port's colon is not a tag separator).
fn split_reference(image: &str) -> (&str, &str) {
    match image.rfind(':') {
        Some(index) if !image[index..].contains('/') => (&image[..index], &image[index + 1..]),
        _ => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn splits_image_references() {
        assert_eq!(split_reference("debian:trixie-slim"), ("debian", "trixie-slim"));
        assert_eq!(split_reference("debian"), ("debian", "latest"));
        assert_eq!(
            split_reference("localhost:5000/debian"),
            ("localhost:5000/debian", "latest")
        );
        assert_eq!(
            split_reference("localhost:5000/debian:13"),
            ("localhost:5000/debian", "13")
        );
    }
}
