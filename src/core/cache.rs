//! The package cache and installs. A package set for a language is
//! installed once, in a short-lived install container, and committed as an
//! image `multilang-sandbox-cache/<language>:<key>`, where the key is the
//! SHA-256 of (language, base image id, sorted normalized specs). Later
//! requests for the same set start from that image: no network, no install.
//! Installs into a running session go into its packages volume instead, so
//! the session keeps its state and its code never gets network.
//!
//! An install container's only network is the egress proxy, on a sandbox
//! network of its own (`egress::LeasedNetwork`):
//! first the registries its package manager is configured for are found in
//! it (`runtime/registries.rs`), then granted, then the install runs.

mod install;

use super::egress::{EgressGateway, LeasedNetwork, Owner};
use super::launcher::{Launcher, Purpose};
use super::session::InstallTarget;
use super::watch::Watch;
use crate::core::error::PackageError;
use crate::docker::DockerError;
use crate::docker::ImageInfo;
use crate::runtime::Language;
use crate::runtime::packages::{CACHE_ROOT, PackageManager, SESSION_ROOT};
use parking_lot::Mutex;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Repository prefix of cached package images.
pub const CACHE_REPOSITORY: &str = "multilang-sandbox-cache";
/// Label keys on cached images.
const LABEL_LANGUAGE: &str = "multilang-sandbox.cache.language";
const LABEL_PACKAGES: &str = "multilang-sandbox.cache.packages";
const LABEL_BASE: &str = "multilang-sandbox.cache.base";
/// How long one install may take.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Most characters of a package manager's output kept in a report.
const OUTPUT_TAIL: usize = 6000;

/// Cache figures, as `sandbox_inspect` shows them.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CacheStats {
    /// Cached package images on the engine.
    pub images: usize,
    /// Requests served from a cached image (by this server).
    pub hits: u64,
    /// Requests that had to install (by this server).
    pub misses: u64,
    /// hits / (hits + misses), 0 when there were none.
    pub hit_rate: f64,
    /// Total size of the cached images, in bytes (layers shared with the
    /// language images are counted once per image by the engine).
    pub total_size_bytes: i64,
    /// The cached images, newest first.
    pub entries: Vec<CacheEntry>,
}

/// One cached package image.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CacheEntry {
    pub image: String,
    pub language: String,
    pub packages: Vec<String>,
    pub size_bytes: i64,
    /// Unix seconds.
    pub created: i64,
}

/// The image to run, and whether it came from the cache.
#[derive(Debug, Clone)]
pub struct CachedImage {
    pub image: String,
    pub hit: bool,
    pub packages: Vec<String>,
    /// Wall time to get the image (the install, on a miss).
    pub elapsed: Duration,
    /// The package manager's output (misses only).
    pub output: Option<String>,
}

/// What an install into a session did.
#[derive(Debug, Clone)]
pub struct SessionInstall {
    pub packages: Vec<String>,
    pub output: String,
    pub elapsed: Duration,
}

/// Installs packages and caches the results as images.
pub struct PackageCache {
    launcher: Arc<Launcher>,
    /// The install containers' way to their registries.
    egress: Arc<EgressGateway>,
    counters: Mutex<(u64, u64)>,
    building: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl PackageCache {
    pub fn new(launcher: Arc<Launcher>, egress: Arc<EgressGateway>) -> Arc<Self> {
        Arc::new(Self {
            launcher,
            egress,
            counters: Mutex::new((0, 0)),
            building: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The cached image with `specs` installed on `base_image` for
    /// `language`, installing and committing it on a miss.
    pub async fn image_for(
        &self,
        language: Language,
        base_image: &str,
        specs: &[String],
        watch: &Watch,
    ) -> Result<CachedImage, PackageError> {
        let started = Instant::now();
        let manager = PackageManager::for_language(language);
        let packages = manager.normalize(specs)?;
        let engine = self.launcher.engine();
        let base_id = engine
            .image_id(base_image)
            .await?
            .ok_or_else(|| DockerError::ImageMissing {
                image: base_image.to_string(),
            })?;
        let key = cache_key(language, &base_id, &packages);
        let repository = format!("{CACHE_REPOSITORY}/{}", language.name());
        let image = format!("{repository}:{key}");
        let lock = self.building.lock().await.entry(key.clone()).or_default().clone();
        let _building = lock.lock().await;
        if engine.image_exists(&image).await? {
            self.count(true);
            return Ok(CachedImage {
                image,
                hit: true,
                packages,
                elapsed: started.elapsed(),
                output: None,
            });
        }
        self.count(false);
        tracing::info!(%language, packages = %packages.join(" "), "installing packages for the cache");
        watch.progress(format!(
            "installing {} with {} into a new cached image",
            packages.join(", "),
            manager.name()
        ));
        let lease = LeasedNetwork::open(&self.egress, Owner::Install).await?;
        let purpose = Purpose::Install {
            packages_volume: None,
            as_root: manager.needs_root(),
            network: &lease.network,
        };
        let sandbox = self.start(&lease, language, base_image, purpose).await?;
        let result = self
            .install(&sandbox.connection, &lease, manager, &packages, CACHE_ROOT, watch)
            .await;
        let committed = match result {
            Ok(output) => {
                watch.progress("saving the installed packages as a cached image");
                let labels = HashMap::from([
                    (LABEL_LANGUAGE.to_string(), language.name().to_string()),
                    (LABEL_PACKAGES.to_string(), packages.join(" ")),
                    (LABEL_BASE.to_string(), base_id.clone()),
                ]);
                engine
                    .commit(sandbox.container.id(), &repository, &key, &labels)
                    .await
                    .map(|_| output)
                    .map_err(PackageError::from)
            }
            Err(error) => Err(error),
        };
        sandbox.container.remove().await;
        lease.close(&self.egress).await;
        let output = committed?;
        Ok(CachedImage {
            image,
            hit: false,
            packages,
            elapsed: started.elapsed(),
            output: Some(output),
        })
    }

    /// Installs `specs` into a session's packages volume, from a short-lived
    /// install container made from the session's image.
    pub async fn install_into_session(
        &self,
        target: &InstallTarget,
        specs: &[String],
        watch: &Watch,
    ) -> Result<SessionInstall, PackageError> {
        let started = Instant::now();
        let language = target.language;
        let manager = PackageManager::for_language(language);
        if manager.needs_root() {
            return Err(PackageError::NotInSession {
                manager: manager.name(),
            });
        }
        let packages = manager.normalize(specs)?;
        watch.progress(format!(
            "installing {} with {} into the session",
            packages.join(", "),
            manager.name()
        ));
        let lease = LeasedNetwork::open(&self.egress, Owner::Install).await?;
        let purpose = Purpose::Install {
            packages_volume: Some(&target.packages_volume),
            as_root: false,
            network: &lease.network,
        };
        let sandbox = self.start(&lease, language, &target.image, purpose).await?;
        let result = self
            .install(&sandbox.connection, &lease, manager, &packages, SESSION_ROOT, watch)
            .await;
        sandbox.container.remove().await;
        lease.close(&self.egress).await;
        Ok(SessionInstall {
            output: result?,
            packages,
            elapsed: started.elapsed(),
        })
    }

    /// Cache figures and entries.
    pub async fn stats(&self) -> Result<CacheStats, PackageError> {
        let entries = self.entries().await?;
        let (hits, misses) = *self.counters.lock();
        let total = hits + misses;
        Ok(CacheStats {
            images: entries.len(),
            hits,
            misses,
            hit_rate: if total == 0 { 0.0 } else { hits as f64 / total as f64 },
            total_size_bytes: entries.iter().map(|entry| entry.size_bytes).sum(),
            entries,
        })
    }

    /// Removes cached images beyond the `keep_per_language` newest of each
    /// language, then the oldest until the total fits `max_total_bytes`.
    /// Returns the removed images.
    pub async fn prune(&self, keep_per_language: usize, max_total_bytes: i64) -> Result<Vec<CacheEntry>, PackageError> {
        let entries = self.entries().await?;
        let mut per_language: BTreeMap<String, usize> = BTreeMap::new();
        let mut kept = Vec::new();
        let mut removed = Vec::new();
        for entry in entries {
            let count = per_language.entry(entry.language.clone()).or_default();
            *count += 1;
            if *count > keep_per_language {
                removed.push(entry);
            } else {
                kept.push(entry);
            }
        }
        let mut total: i64 = kept.iter().map(|entry| entry.size_bytes).sum();
        while total > max_total_bytes {
            let Some(oldest) = kept.pop() else { break };
            total -= oldest.size_bytes;
            removed.push(oldest);
        }
        let engine = self.launcher.engine();
        for entry in &removed {
            engine.remove_image(&entry.image).await?;
        }
        Ok(removed)
    }

    async fn entries(&self) -> Result<Vec<CacheEntry>, PackageError> {
        let images = self
            .launcher
            .engine()
            .list_images(&format!("{CACHE_REPOSITORY}/*"))
            .await?;
        let mut entries: Vec<CacheEntry> = images.iter().filter_map(entry_of).collect();
        entries.sort_by_key(|entry| std::cmp::Reverse(entry.created));
        Ok(entries)
    }

    fn count(&self, hit: bool) {
        let mut counters = self.counters.lock();
        if hit {
            counters.0 += 1;
        } else {
            counters.1 += 1;
        }
    }
}

/// SHA-256 of (language, base image id, sorted normalized specs), hex.
pub fn cache_key(language: Language, base_image_id: &str, packages: &[String]) -> String {
    let mut hasher = Sha256::new();
    for part in [language.name(), base_image_id]
        .into_iter()
        .chain(packages.iter().map(String::as_str))
    {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn entry_of(image: &ImageInfo) -> Option<CacheEntry> {
    let tag = image.tags.iter().find(|tag| tag.starts_with(CACHE_REPOSITORY))?.clone();
    Some(CacheEntry {
        image: tag,
        language: image.labels.get(LABEL_LANGUAGE).cloned().unwrap_or_default(),
        packages: image
            .labels
            .get(LABEL_PACKAGES)
            .map(|packages| packages.split(' ').map(str::to_string).collect())
            .unwrap_or_default(),
        size_bytes: image.size_bytes,
        created: image.created,
    })
}

pub(crate) fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_language_base_and_packages() {
        let packages = vec!["six".to_string()];
        let key = cache_key(Language::Python, "sha256:a", &packages);
        assert_eq!(key.len(), 64);
        assert_eq!(key, cache_key(Language::Python, "sha256:a", &packages));
        assert_ne!(key, cache_key(Language::Python, "sha256:b", &packages));
        assert_ne!(key, cache_key(Language::JavaScript, "sha256:a", &packages));
        assert_ne!(key, cache_key(Language::Python, "sha256:a", &["six==1".to_string()]));
        // Boundaries are part of the key: ("ab","c") differs from ("a","bc").
        assert_ne!(
            cache_key(Language::Python, "x", &["ab".into(), "c".into()]),
            cache_key(Language::Python, "x", &["a".into(), "bc".into()])
        );
    }

    #[test]
    fn tails_keep_the_end_on_a_char_boundary() {
        assert_eq!(tail("short", 10), "short");
        let cut = tail("ééééé", 3);
        assert!(cut.starts_with('…'));
        assert!(cut.ends_with('é'));
    }
}
