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

/// The file in `folder` that holds `json`, written unless it already does
/// (readable by everyone: a rootful Podman reads it as root, others as you).
async fn write_profile(folder: &Path, json: &str) -> Result<PathBuf, DockerError> {
    let name = format!("{}.json", hex::encode(Sha256::digest(json.as_bytes())));
    let path = folder.join(&name);
    let failed = |error: std::io::Error| DockerError::SeccompFile {
        path: path.clone(),
        reason: error.to_string(),
    };
    if tokio::fs::read(&path).await.is_ok_and(|held| held == json.as_bytes()) {
        return Ok(path);
    }
    tokio::fs::create_dir_all(folder).await.map_err(failed)?;
    // Written aside and renamed, so no engine reads half a profile.
    let partial = folder.join(format!(".{name}.{}", std::process::id()));
    tokio::fs::write(&partial, json).await.map_err(failed)?;
    tokio::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o644))
        .await
        .map_err(failed)?;
    tokio::fs::rename(&partial, &path).await.map_err(failed)?;
    Ok(path)
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
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        // A file under the right name with other content is replaced.
        std::fs::write(&path, "tampered").expect("write");
        assert_eq!(write_profile(folder.path(), json).await.expect("written"), path);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), json);
        let other = write_profile(folder.path(), "{}").await.expect("written");
        assert_ne!(other, path);
        let names: Vec<_> = std::fs::read_dir(folder.path()).expect("list").collect();
        assert_eq!(names.len(), 2, "no partial files are left");
    }
}
