//! The session label and name format: what a session's container labels
//! say (read back into [`SessionFacts`]), the mounts label, session names,
//! and the names of a session's container (live or being removed) and volumes.

use super::super::session_store::SessionRecord;
use super::{SessionInfo, SessionMount};
use crate::clock::rfc3339;
use crate::config::{HostFolder, SessionStorage};
use crate::core::error::SessionError;
use crate::docker::{SandboxInfo, labels};
use crate::images::templates::TEMPLATE_LABEL;
use crate::runtime::Language;
use crate::runtime::packages::SESSION_ROOT;
use crate::security::egress::HostPattern;

/// Facts read from a session container's labels plus its record.
pub(super) struct SessionFacts {
    pub(super) info: SandboxInfo,
    pub(super) name: String,
    pub(super) language: Language,
    pub(super) created: u64,
    pub(super) ttl: u64,
    pub(super) mounts: Vec<SessionMount>,
    pub(super) record: SessionRecord,
    /// Network grants; `None`: the session has no network.
    pub(super) grants: Option<Vec<HostPattern>>,
}

impl SessionFacts {
    pub(super) fn last_used(&self) -> u64 {
        self.record.last_used.unwrap_or(self.created).max(self.created)
    }

    pub(super) fn expires_at(&self) -> u64 {
        (self.last_used() + self.ttl).max(self.record.extended_until.unwrap_or(0))
    }

    pub(super) fn to_info(&self, now: u64) -> SessionInfo {
        let expires_at = self.expires_at();
        SessionInfo {
            name: self.name.clone(),
            language: self.language.name().to_string(),
            state: self.info.state.name().to_string(),
            created: rfc3339(self.created),
            last_used: rfc3339(self.last_used()),
            expires_at: rfc3339(expires_at),
            ttl_seconds: self.ttl,
            ttl_left_seconds: expires_at.saturating_sub(now),
            container: self.info.id.chars().take(12).collect(),
            // Containers carry their image's labels: a template's image
            // names its template.
            template: self.info.labels.get(TEMPLATE_LABEL).cloned(),
            seccomp: self
                .info
                .labels
                .get(labels::SECCOMP)
                .cloned()
                .unwrap_or_else(|| "engine-default".to_string()),
            storage: self.storage().name().to_string(),
            mounts: self.mounts.clone(),
            network: self
                .grants
                .as_ref()
                .map(|grants| grants.iter().map(ToString::to_string).collect()),
            egress: None,
        }
    }

    /// The session's sandbox network, when it has network grants.
    pub(super) fn network(&self) -> Option<SessionNetwork> {
        self.grants.as_ref()?;
        Some(match self.info.labels.get(labels::NETWORK_NAME) {
            Some(name) => SessionNetwork {
                name: name.clone(),
                holder: name.clone(),
            },
            // Made before network holders: on a network named after the
            // session, with an address of its own.
            None => SessionNetwork {
                name: legacy_network(&self.name),
                holder: self.info.id.clone(),
            },
        })
    }

    /// The session's packages volume (where install containers write).
    pub(super) fn packages_volume(&self) -> Option<&str> {
        self.info
            .volumes
            .iter()
            .find(|volume| volume.target == PACKAGES.1)
            .map(|volume| volume.name.as_str())
    }

    /// Where the session's files live (sessions made before the label
    /// existed used disk volumes).
    pub(super) fn storage(&self) -> SessionStorage {
        self.info
            .labels
            .get(labels::STORAGE)
            .and_then(|label| SessionStorage::parse(label))
            .unwrap_or(SessionStorage::Disk)
    }
}

/// A session's sandbox network and the container holding the session's
/// address there.
pub(super) struct SessionNetwork {
    pub(super) name: String,
    /// The network's holder (whose name is the network's), or the
    /// session's own container.
    pub(super) holder: String,
}

/// The label recording a session's host folders (JSON, so paths with any
/// characters survive).
pub(super) fn mounts_label(folders: &[HostFolder]) -> String {
    let mounts: Vec<SessionMount> = folders.iter().map(SessionMount::from_folder).collect();
    serde_json::to_string(&mounts).unwrap_or_else(|_| "[]".to_string())
}

/// Session names: 1–63 of `[A-Za-z0-9_-]`, starting with a letter or digit
/// (safe in container names, labels and file names).
pub fn validate_name(name: &str) -> Result<(), SessionError> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(SessionError::InvalidName(name.to_string()))
    }
}

/// Prefix of session container and volume names.
pub(super) const NAME_PREFIX: &str = "multilang-sandbox-session-";

/// The kind label of a session's volumes.
pub(super) const VOLUME_KIND: &str = "session-workspace";

/// Prefix of the name a destroyed session's container takes while it is
/// removed in the background: its session's name is free at once, and no
/// server finds it as that session any more.
pub(super) const TOMBSTONE_PREFIX: &str = "multilang-sandbox-removing-";

/// The name a destroyed session's container is given until it is gone.
pub(super) fn tombstone_name(container_id: &str) -> String {
    format!(
        "{TOMBSTONE_PREFIX}{}",
        container_id.chars().take(12).collect::<String>()
    )
}

/// The folders of a session kept in volumes, and where they are mounted.
pub(super) const WORKSPACE: (&str, &str) = ("workspace", "/workspace");
pub(super) const OUTPUTS: (&str, &str) = ("outputs", "/outputs");
pub(super) const PACKAGES: (&str, &str) = ("packages", SESSION_ROOT);
/// A session's `/tmp` (a volume, not the container's own tmpfs, so that a
/// snapshot can copy it: the build caches of Go and Rust live there).
pub(super) const TMP: (&str, &str) = ("tmp", "/tmp");
/// Every volume a session has, in the order [`make_volumes`] takes them.
///
/// [`make_volumes`]: super::SessionManager::make_volumes
pub(super) const FOLDERS: [(&str, &str); 4] = [WORKSPACE, PACKAGES, OUTPUTS, TMP];

/// The volume of one of a session's folders, unique to one container
/// (`instance`): a session destroyed while its volumes are still being
/// removed does not hold up a new session of the same name. The `.`s cannot
/// appear in a session name, so no session's volume can be another's (`x`
/// with `x-outputs`) or be squatted by a session named after it.
pub(super) fn session_volume(name: &str, instance: &str, folder: &str) -> String {
    format!("{NAME_PREFIX}{name}.{instance}.{folder}")
}

/// The name of the network of a session made before network holders.
pub(super) fn legacy_network(name: &str) -> String {
    format!("{NAME_PREFIX}{name}.network")
}

/// A session's grants: the record's when they were changed, else the
/// label's (a JSON list) it was created with; `None` without network.
/// Entries that no longer parse are dropped (they grant nothing).
pub(super) fn parse_grants(record: Option<&[String]>, label: Option<&str>) -> Option<Vec<HostPattern>> {
    let entries: Vec<String> = match (record, label) {
        (Some(entries), _) => entries.to_vec(),
        (None, Some(label)) => serde_json::from_str(label).unwrap_or_default(),
        (None, None) => return None,
    };
    Some(entries.iter().filter_map(|entry| entry.parse().ok()).collect())
}
