//! Seccomp profiles in the form the engine takes: Docker reads a profile's
//! JSON from the `seccomp=` security option itself, Podman's
//! Docker-compatible API reads that option as the path of a file on its own
//! machine. For Podman the profile is written to a file named by its
//! SHA-256 in the state folder, so it must run on this machine.

use super::{DockerEngine, DockerError, EngineProduct, EngineTraits};
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where profiles given to Podman are written: `<state_dir>/seccomp`.
pub(super) fn profile_folder(state_dir: &Path) -> PathBuf {
    state_dir.join("seccomp")
}

impl DockerEngine {
    /// The `seccomp=` security option that gives the engine the profile `json`.
    pub(super) async fn seccomp_option(&self, json: &str, engine: EngineTraits) -> Result<String, DockerError> {
        match engine.product {
            EngineProduct::Docker => Ok(format!("seccomp={json}")),
            EngineProduct::Podman if self.is_local() => {
                let path = write_profile(&self.profile_folder, json).await?;
                Ok(format!("seccomp={}", path.display()))
            }
            EngineProduct::Podman => Err(DockerError::PodmanSeccompRemote),
        }
    }
}

/// The file in `folder` that holds `json`, written unless it already does.
/// The folder is made ours alone (0700; a rootful Podman reads it as root,
/// a rootless one as you), and refused when another user could change a
/// profile in it after it is checked here and before the engine reads it.
async fn write_profile(folder: &Path, json: &str) -> Result<PathBuf, DockerError> {
    let folder = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
    let name = format!("{}.json", hex::encode(Sha256::digest(json.as_bytes())));
    let path = folder.join(&name);
    let json = json.to_string();
    let written = path.clone();
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        if !folder.exists() {
            std::fs::create_dir_all(&folder).map_err(|error| error.to_string())?;
            std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700))
                .map_err(|error| error.to_string())?;
        }
        check_folder(&folder)?;
        if std::fs::read(&written).is_ok_and(|held| held == json.as_bytes()) {
            return Ok(());
        }
        crate::atomic_file::write_atomically(&written, &json).map_err(|error| error.to_string())
    })
    .await
    .map_err(|error| error.to_string())
    .and_then(|result| result)
    .map_err(|reason| DockerError::SeccompFile {
        path: path.clone(),
        reason,
    })?;
    Ok(path)
}

/// A folder only this user can change: a real folder (not a link), ours,
/// writable by no group or other user.
fn check_folder(folder: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::symlink_metadata(folder).map_err(|error| error.to_string())?;
    let ours = metadata.uid() == users_uid();
    if !metadata.is_dir() || !ours || metadata.mode() & 0o022 != 0 {
        return Err(format!(
            "{} must be a folder of your own that no other user can write (remove it and it is made again)",
            folder.display()
        ));
    }
    Ok(())
}

/// This process's user id (the owner of what it creates).
fn users_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|metadata| metadata.uid())
        .unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder of its own, removed when the test ends (passed or not).
    struct Folder(PathBuf);

    impl Folder {
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Folder {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[tokio::test]
    async fn a_profile_is_written_once_under_its_hash_and_rewritten_when_changed() {
        let folder = Folder(std::env::temp_dir().join(format!("seccomp-files-{}", uuid::Uuid::new_v4())));
        let json = r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#;
        let path = write_profile(folder.path(), json).await.expect("written");
        assert_eq!(path.parent(), Some(folder.path()));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), json);
        let mode = std::fs::metadata(folder.path()).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the folder is ours alone");
        // A file under the right name with other content is replaced.
        std::fs::write(&path, "tampered").expect("write");
        assert_eq!(write_profile(folder.path(), json).await.expect("written"), path);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), json);
        let other = write_profile(folder.path(), "{}").await.expect("written");
        assert_ne!(other, path);
        let names: Vec<_> = std::fs::read_dir(folder.path()).expect("list").collect();
        assert_eq!(names.len(), 2, "no partial files are left");
        // A folder others can write is refused (they could swap a profile).
        std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let refused = write_profile(folder.path(), json).await.expect_err("refused");
        assert!(refused.to_string().contains("no other user can write"), "{refused}");
    }
}
