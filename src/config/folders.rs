//! Host folders that sessions may mount (`host_folders`): the type, the
//! `name=/path[:rw],…` syntax and the refusal of folders inside writable ones.

use crate::config::ConfigError;
use std::path::{Component, PathBuf};

/// A host folder that sessions may mount.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct HostFolder {
    /// Name the session asks for; the folder appears at `/mnt/<name>`.
    pub name: String,
    /// Absolute path on the host (or on the Docker engine's machine).
    pub host_path: PathBuf,
    /// Code may change files in it (`:rw`); otherwise it is read-only.
    pub writable: bool,
}

impl HostFolder {
    /// Where the folder appears inside a session.
    pub fn mount_point(&self) -> String {
        format!("/mnt/{}", self.name)
    }
}

/// Parses `data=/srv/data,results=/srv/results:rw`. Names are 1–32 of
/// `[a-z0-9_-]` (they become `/mnt/<name>`); paths must be absolute.
pub(super) fn parse_host_folders(key: &str, value: &str) -> Result<Vec<HostFolder>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        key: key.to_string(),
        reason,
    };
    let mut folders: Vec<HostFolder> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let (name, path) = entry.split_once('=').ok_or_else(|| {
            invalid(format!(
                "`{entry}` should look like `data=/home/me/data` or `out=/srv/out:rw`"
            ))
        })?;
        let name = name.trim();
        let valid_name = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid_name {
            return Err(invalid(format!(
                "folder name `{name}` must be 1 to 32 of a-z, 0-9, `-` or `_`"
            )));
        }
        let path = path.trim();
        let (path, writable) = match path.rsplit_once(':') {
            Some((folder, access)) if access.eq_ignore_ascii_case("rw") => (folder.trim(), true),
            Some((folder, access)) if access.eq_ignore_ascii_case("ro") => (folder.trim(), false),
            _ => (path, false),
        };
        let host_path = PathBuf::from(path);
        if !host_path.is_absolute() {
            return Err(invalid(format!("`{path}` for `{name}` must be an absolute path")));
        }
        if host_path
            .components()
            .any(|part| matches!(part, Component::ParentDir | Component::CurDir))
        {
            return Err(invalid(format!(
                "`{path}` for `{name}` contains `.` or `..`; give the folder's plain absolute path"
            )));
        }
        if folders.iter().any(|folder| folder.name == name) {
            return Err(invalid(format!("folder name `{name}` is given twice")));
        }
        folders.push(HostFolder {
            name: name.to_string(),
            host_path,
            writable,
        });
    }
    if let Some((outer, inner)) = nested_in_writable(&folders) {
        return Err(invalid(format!(
            "folder `{}` ({}) lies inside the writable folder `{}` ({}): code in a session that mounts `{}` \
             could replace part of `{}`'s path with a symbolic link and so mount any host folder. \
             Make `{}` read-only, or configure folders that do not lie inside writable ones",
            inner.name,
            inner.host_path.display(),
            outer.name,
            outer.host_path.display(),
            outer.name,
            inner.name,
            outer.name,
        )));
    }
    Ok(folders)
}

/// The folders as [`parse_host_folders`] reads them.
pub(super) fn render_host_folders(folders: &[HostFolder]) -> String {
    let entries: Vec<String> = folders
        .iter()
        .map(|folder| {
            let access = if folder.writable { ":rw" } else { "" };
            format!("{}={}{access}", folder.name, folder.host_path.display())
        })
        .collect();
    entries.join(",")
}

/// The first pair (writable folder, another folder inside it), if any.
fn nested_in_writable(folders: &[HostFolder]) -> Option<(&HostFolder, &HostFolder)> {
    folders.iter().filter(|outer| outer.writable).find_map(|outer| {
        folders
            .iter()
            .find(|inner| inner.host_path != outer.host_path && inner.host_path.starts_with(&outer.host_path))
            .map(|inner| (outer, inner))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// The folders as the configuration loads them from the variable.
    fn parse(value: &str) -> Result<Vec<HostFolder>, ConfigError> {
        Config::from_lookup(|key| (key == "MULTILANG_SANDBOX_HOST_FOLDERS").then(|| value.to_string()))
            .map(|config| config.host_folders)
    }

    #[test]
    fn host_folders_parse_with_read_only_default() {
        let folders = parse("data=/srv/data, results=/srv/out :RW,logs=/var/log:ro").unwrap();
        assert_eq!(folders.len(), 3);
        assert_eq!(folders[0].name, "data");
        assert_eq!(folders[0].host_path, PathBuf::from("/srv/data"));
        assert!(!folders[0].writable);
        assert!(folders[1].writable);
        assert_eq!(folders[1].host_path, PathBuf::from("/srv/out"));
        assert!(!folders[2].writable);
        assert_eq!(folders[1].mount_point(), "/mnt/results");
        assert_eq!(
            render_host_folders(&folders),
            "data=/srv/data,results=/srv/out:rw,logs=/var/log"
        );
        for bad in ["data", "data=relative/path", "Bad Name=/x", "../x=/x", "a=/x,a=/y"] {
            let error = parse(bad).unwrap_err();
            assert!(error.to_string().contains("HOST_FOLDERS"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_writable_folder_holding_the_templates_is_refused() {
        let with = |folders: &str| {
            Config::from_lookup(|key| match key {
                "MULTILANG_SANDBOX_HOST_FOLDERS" => Some(folders.to_string()),
                "MULTILANG_SANDBOX_TEMPLATES_DIR" => Some("/home/me/.config/multilang-sandbox/templates".into()),
                _ => None,
            })
        };
        for overlapping in [
            "home=/home/me:rw",
            "t=/home/me/.config/multilang-sandbox/templates/tools:rw",
        ] {
            let error = with(overlapping).unwrap_err().to_string();
            assert!(
                error.contains("templates folder") && error.contains("read-only"),
                "{error}"
            );
        }
        assert!(with("home=/home/me").is_ok());
        assert!(with("out=/home/me/out:rw").is_ok());
    }

    #[test]
    fn folders_inside_writable_folders_are_refused() {
        for nested in [
            "proj=/x/proj:rw,inner=/x/proj/inner",
            "inner=/x/proj/inner:rw,proj=/x/proj:rw",
            "all=/:rw,data=/srv/data",
        ] {
            let error = parse(nested).unwrap_err();
            assert!(
                error.to_string().contains("lies inside the writable folder"),
                "{nested}: {error}"
            );
        }
        for fine in [
            // A writable folder inside a read-only one cannot change the outer's path.
            "proj=/x/proj,inner=/x/proj/inner:rw",
            // Siblings sharing a name prefix are not nested.
            "a=/x/proj:rw,b=/x/project",
            "a=/x/proj:rw,b=/x/proj",
        ] {
            assert!(parse(fine).is_ok(), "{fine}");
        }
        let error = parse("a=/x/../etc").unwrap_err();
        assert!(error.to_string().contains("`..`"), "{error}");
    }
}
