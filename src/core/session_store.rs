//! Mutable session facts that Docker labels cannot hold (labels are fixed at
//! creation): last activity and TTL extensions, one small JSON file per
//! session container in the state folder, shared by every server on the
//! machine. Written atomically (temporary file, then rename).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What changes during a session's life.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Unix seconds of the last execute.
    #[serde(default)]
    pub last_used: Option<u64>,
    /// Unix seconds the session was extended to, if it was.
    #[serde(default)]
    pub extended_until: Option<u64>,
    /// Unix seconds the session was created, when its container was made
    /// before (a claimed spare: its label holds when the spare was made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    /// The session's network grants since they were last changed (the
    /// label holds those it was created with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<Vec<String>>,
}

/// The folder of session records.
pub struct SessionStore {
    dir: PathBuf,
}

impl SessionStore {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("sessions"),
        }
    }

    /// The record of a session container, or an empty one.
    pub fn load(&self, container_id: &str) -> SessionRecord {
        std::fs::read(self.path(container_id))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Saves a record; failures are logged, not fatal (labels still work).
    pub fn save(&self, container_id: &str, record: &SessionRecord) {
        if let Err(error) = self.try_save(container_id, record) {
            tracing::warn!(dir = %self.dir.display(), %error, "could not save session state");
        }
    }

    fn try_save(&self, container_id: &str, record: &SessionRecord) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path(container_id);
        let temporary = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
        std::fs::write(&temporary, serde_json::to_vec(record).unwrap_or_default())?;
        std::fs::rename(&temporary, &path)
    }

    pub fn remove(&self, container_id: &str) {
        let _ = std::fs::remove_file(self.path(container_id));
    }

    /// Removes records of containers that no longer exist.
    pub fn retain(&self, live_container_ids: &[String]) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let id = name.split('.').next().unwrap_or_default();
            if !live_container_ids.iter().any(|live| live == id) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn path(&self, container_id: &str) -> PathBuf {
        let safe: String = container_id.chars().filter(char::is_ascii_alphanumeric).collect();
        self.dir.join(format!("{safe}.json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_are_cleaned_up() {
        let dir = std::env::temp_dir().join(format!("msb-store-{}", uuid::Uuid::new_v4()));
        let store = SessionStore::new(&dir);
        assert_eq!(store.load("abc"), SessionRecord::default());
        let record = SessionRecord {
            last_used: Some(10),
            extended_until: Some(99),
            grants: None,
            created: Some(5),
        };
        store.save("abc", &record);
        store.save("def", &SessionRecord::default());
        assert_eq!(store.load("abc"), record);
        store.retain(&["def".to_string()]);
        assert_eq!(store.load("abc"), SessionRecord::default());
        assert!(store.path("def").exists());
        store.remove("def");
        assert!(!store.path("def").exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
