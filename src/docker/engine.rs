//! The engine seam: every operation `core/` asks of a container engine, as
//! one trait ([`SandboxEngine`]): containers attached to their runner,
//! images, labels and listings, pause and stats, volumes and networks.
//! [`DockerEngine`] implements it for the Docker API (Docker and Podman);
//! `core/` holds an `Arc<dyn SandboxEngine>`, so another backend (the
//! Kubernetes design in docs/kubernetes.md) implements this trait and the
//! container handle ([`super::SandboxContainer`] with a
//! [`super::ContainerRemover`]) without touching `core/`.

use super::{
    BuildContext, BuildEvent, DockerEngine, DockerError, EngineCapacity, HolderSpec, ImageFacts, ImageInfo,
    IsolatedNetwork, LabelledVolume, NetworkMembers, RunnerChannel, SandboxContainer, SandboxInfo, SandboxSpec,
    VolumeBacking,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::time::Duration;

/// A root filesystem tarball, streamed.
pub type RootfsStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A container engine as `core/` uses it.
#[async_trait]
pub trait SandboxEngine: Send + Sync {
    /// True when the engine runs on this machine (its paths are ours: host
    /// folders, profile files).
    fn is_local(&self) -> bool;

    // Sandbox containers: start one attached to its runner, attach again, remove.
    /// Creates, attaches and starts a sandbox container.
    async fn start_sandbox(&self, spec: &SandboxSpec) -> Result<(SandboxContainer, RunnerChannel), DockerError>;
    /// Attaches to an existing container's stdin/stdout (new output only).
    async fn attach_sandbox(&self, id: &str) -> Result<RunnerChannel, DockerError>;
    /// Force-removes a container by id or name; absent containers are fine.
    async fn remove_sandbox(&self, id: &str) -> Result<(), DockerError>;
    /// Waits up to `limit` until the container is gone (its volumes free):
    /// a removal the engine already had under way (an auto-removal)
    /// answers a removal request before it is done. False on timeout.
    async fn wait_removed(&self, id: &str, limit: Duration) -> bool;

    // Network holders: the container that keeps a sandbox network's address.
    /// Creates and starts the holder of `spec.network`; returns its id.
    /// A failed start removes what was created.
    async fn start_network_holder(&self, spec: &HolderSpec<'_>) -> Result<String, DockerError>;
    /// Starts the holder `name` if it is not running (someone stopped it:
    /// an engine restart starts it by itself).
    async fn start_network_holder_again(&self, name: &str) -> Result<(), DockerError>;

    // Images: inspect, commit, list, tag, remove, build.
    /// True when the image exists locally.
    async fn image_exists(&self, image: &str) -> Result<bool, DockerError>;
    /// Id (`sha256:…`) of a local image.
    async fn image_id(&self, image: &str) -> Result<Option<String>, DockerError>;
    /// How an image's containers start, and its layers; `None` when absent.
    async fn image_facts(&self, image: &str) -> Result<Option<ImageFacts>, DockerError>;
    /// Commits a container's filesystem as `repository:tag`, with labels.
    async fn commit(
        &self,
        container_id: &str,
        repository: &str,
        tag: &str,
        labels: &HashMap<String, String>,
    ) -> Result<String, DockerError>;
    /// Local images whose reference matches `reference` (e.g. `repo/*`).
    async fn list_images(&self, reference: &str) -> Result<Vec<ImageInfo>, DockerError>;
    /// Gives `image` the tag `target` (`repository:tag`).
    async fn tag_image(&self, image: &str, target: &str) -> Result<(), DockerError>;
    /// Removes a tag, and the image when no container uses it and nothing
    /// builds on it (then only the tag goes); false when the engine
    /// refused because a container uses it.
    async fn remove_image_if_unused(&self, image: &str) -> Result<bool, DockerError>;
    /// Removes an image by tag or id; an absent image is fine.
    async fn remove_image(&self, image: &str) -> Result<(), DockerError>;
    /// Pulls an image from its registry.
    async fn pull(&self, image: &str) -> Result<(), DockerError>;
    /// Imports a root filesystem tarball as `repository:tag` (`docker import`).
    async fn import_rootfs(&self, repository: &str, tag: &str, tarball: RootfsStream) -> Result<(), DockerError>;
    /// Builds `tag` from `context`, passing each line of output to `on_event`.
    async fn build(
        &self,
        tag: &str,
        context: &BuildContext,
        build_args: &HashMap<String, String>,
        labels: &HashMap<String, String>,
        on_event: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<(), DockerError>;

    // The engine's sandboxes and volumes as they are: list, inspect, labels, stats, pause, stop, rename.
    /// Containers (any state) carrying every `key=value` label given.
    async fn list_sandboxes(&self, labels: &[(&str, &str)]) -> Result<Vec<SandboxInfo>, DockerError>;
    /// The values of label `key` on the containers (any state) carrying it.
    async fn label_values(&self, key: &str) -> Result<HashSet<String>, DockerError>;
    /// One container by id or name, or `None` when it does not exist.
    async fn inspect_sandbox(&self, id_or_name: &str) -> Result<Option<SandboxInfo>, DockerError>;
    /// The memory a running container uses, in bytes, as `docker stats`
    /// counts it: its cgroup's usage less the page cache it could drop.
    /// `None` when the engine reports no figure (or the container is gone).
    async fn memory_in_use(&self, id: &str) -> Result<Option<u64>, DockerError>;
    /// The engine machine's memory in bytes and its CPUs, as far as it says.
    async fn capacity(&self) -> Result<EngineCapacity, DockerError>;
    async fn pause_sandbox(&self, id: &str) -> Result<(), DockerError>;
    /// Resumes a paused container. The engine can hold a container as
    /// paused whose processes run (runc then refuses the resume with
    /// "cannot resume a running process"; seen under load on cgroup v1):
    /// it runs, which is what the resume is for.
    async fn unpause_sandbox(&self, id: &str) -> Result<(), DockerError>;
    /// Stops a container at once (SIGKILL to every process in it) and
    /// returns when it has stopped; a container already stopped is fine.
    async fn stop_sandbox(&self, id: &str) -> Result<(), DockerError>;
    /// Starts a stopped container again.
    async fn restart_sandbox(&self, id: &str) -> Result<(), DockerError>;
    /// Creates a labelled named volume (idempotent).
    async fn create_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
        backing: VolumeBacking,
    ) -> Result<(), DockerError>;
    /// Renames a container, found by its id or its current name.
    /// `Ok(false)`: it is gone (or no longer has that name), or the name is
    /// taken (another server renamed it first).
    async fn rename_sandbox(&self, id: &str, name: &str) -> Result<bool, DockerError>;
    /// Removes a volume; an absent volume is fine.
    async fn remove_volume(&self, name: &str) -> Result<(), DockerError>;

    // The engine itself: its connection and the removals in flight.
    /// Waits up to `limit` for removals started by dropped container
    /// handles; false when some were still under way at the limit.
    async fn wait_for_removals(&self, limit: Duration) -> bool;
    /// Drops the cached client after a connection failure, so the next call
    /// reconnects (and renegotiates) once the engine is back.
    async fn reset_if_disconnected(&self, error: &DockerError);

    // Sandbox networks: made, joined, left, listed, removed.
    /// Creates an internal network `name` with `labels` whose bridge has no
    /// host address, on a subnet of the engine's choosing that is then
    /// pinned (given back to the engine as the network's own), so that a
    /// container can be connected at a chosen address on it: the engine
    /// takes chosen addresses only on networks whose subnet was given.
    /// `reuse`: a subnet to try first (one this server just freed), which
    /// saves the picking when no other network took it meanwhile.
    async fn create_isolated_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
        reuse: Option<&str>,
    ) -> Result<IsolatedNetwork, DockerError>;
    /// Connects `container` to `network`, at `address` when given.
    async fn connect_to_network(
        &self,
        network: &str,
        container: &str,
        address: Option<&str>,
    ) -> Result<(), DockerError>;
    /// `network`'s labels, subnet and running members; `None` when absent.
    async fn network_facts(&self, network: &str) -> Result<Option<NetworkMembers>, DockerError>;
    /// Takes `container` off `network`; already off is fine.
    async fn disconnect_from_network(&self, network: &str, container: &str) -> Result<(), DockerError>;
    /// The IPv4 address `container` has on `network` (`None` when it is
    /// not connected to it).
    async fn address_on_network(&self, container: &str, network: &str) -> Result<Option<String>, DockerError>;
    /// Removes a network; an absent one is fine. Containers still
    /// connected (egress proxies) are disconnected first. Returns the
    /// subnet it had (free again for the next network).
    async fn remove_network(&self, name: &str) -> Result<Option<String>, DockerError>;
    /// The networks carrying every `key=value` label given, each with its
    /// labels, the names of the running containers on it, and its age.
    async fn networks_with_members(&self, labels: &[(&str, &str)]) -> Result<Vec<NetworkMembers>, DockerError>;

    // Volumes by label.
    /// The volumes carrying every `key=value` label given.
    async fn labelled_volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<LabelledVolume>, DockerError>;
    /// The volumes carrying every `key=value` label given that no container
    /// uses.
    async fn unused_volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<LabelledVolume>, DockerError>;
    /// One volume's labels; `None` when there is no such volume.
    async fn volume_labels(&self, name: &str) -> Result<Option<HashMap<String, String>>, DockerError>;
}

#[async_trait]
impl SandboxEngine for DockerEngine {
    fn is_local(&self) -> bool {
        DockerEngine::is_local(self)
    }

    async fn start_sandbox(&self, spec: &SandboxSpec) -> Result<(SandboxContainer, RunnerChannel), DockerError> {
        DockerEngine::start_sandbox(self, spec).await
    }

    async fn attach_sandbox(&self, id: &str) -> Result<RunnerChannel, DockerError> {
        DockerEngine::attach_sandbox(self, id).await
    }

    async fn remove_sandbox(&self, id: &str) -> Result<(), DockerError> {
        DockerEngine::remove_sandbox(self, id).await
    }

    async fn wait_removed(&self, id: &str, limit: Duration) -> bool {
        DockerEngine::wait_removed(self, id, limit).await
    }

    async fn start_network_holder(&self, spec: &HolderSpec<'_>) -> Result<String, DockerError> {
        DockerEngine::start_network_holder(self, spec).await
    }

    async fn start_network_holder_again(&self, name: &str) -> Result<(), DockerError> {
        DockerEngine::start_network_holder_again(self, name).await
    }

    async fn image_exists(&self, image: &str) -> Result<bool, DockerError> {
        DockerEngine::image_exists(self, image).await
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>, DockerError> {
        DockerEngine::image_id(self, image).await
    }

    async fn image_facts(&self, image: &str) -> Result<Option<ImageFacts>, DockerError> {
        DockerEngine::image_facts(self, image).await
    }

    async fn commit(
        &self,
        container_id: &str,
        repository: &str,
        tag: &str,
        labels: &HashMap<String, String>,
    ) -> Result<String, DockerError> {
        DockerEngine::commit(self, container_id, repository, tag, labels).await
    }

    async fn list_images(&self, reference: &str) -> Result<Vec<ImageInfo>, DockerError> {
        DockerEngine::list_images(self, reference).await
    }

    async fn tag_image(&self, image: &str, target: &str) -> Result<(), DockerError> {
        DockerEngine::tag_image(self, image, target).await
    }

    async fn remove_image_if_unused(&self, image: &str) -> Result<bool, DockerError> {
        DockerEngine::remove_image_if_unused(self, image).await
    }

    async fn remove_image(&self, image: &str) -> Result<(), DockerError> {
        DockerEngine::remove_image(self, image).await
    }

    async fn pull(&self, image: &str) -> Result<(), DockerError> {
        DockerEngine::pull(self, image).await
    }

    async fn import_rootfs(&self, repository: &str, tag: &str, tarball: RootfsStream) -> Result<(), DockerError> {
        DockerEngine::import_rootfs(self, repository, tag, tarball).await
    }

    async fn build(
        &self,
        tag: &str,
        context: &BuildContext,
        build_args: &HashMap<String, String>,
        labels: &HashMap<String, String>,
        on_event: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<(), DockerError> {
        DockerEngine::build(self, tag, context, build_args, labels, on_event).await
    }

    async fn list_sandboxes(&self, labels: &[(&str, &str)]) -> Result<Vec<SandboxInfo>, DockerError> {
        DockerEngine::list_sandboxes(self, labels).await
    }

    async fn label_values(&self, key: &str) -> Result<HashSet<String>, DockerError> {
        DockerEngine::label_values(self, key).await
    }

    async fn inspect_sandbox(&self, id_or_name: &str) -> Result<Option<SandboxInfo>, DockerError> {
        DockerEngine::inspect_sandbox(self, id_or_name).await
    }

    async fn memory_in_use(&self, id: &str) -> Result<Option<u64>, DockerError> {
        DockerEngine::memory_in_use(self, id).await
    }

    async fn capacity(&self) -> Result<EngineCapacity, DockerError> {
        DockerEngine::capacity(self).await
    }

    async fn pause_sandbox(&self, id: &str) -> Result<(), DockerError> {
        DockerEngine::pause_sandbox(self, id).await
    }

    async fn unpause_sandbox(&self, id: &str) -> Result<(), DockerError> {
        DockerEngine::unpause_sandbox(self, id).await
    }

    async fn stop_sandbox(&self, id: &str) -> Result<(), DockerError> {
        DockerEngine::stop_sandbox(self, id).await
    }

    async fn restart_sandbox(&self, id: &str) -> Result<(), DockerError> {
        DockerEngine::restart_sandbox(self, id).await
    }

    async fn create_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
        backing: VolumeBacking,
    ) -> Result<(), DockerError> {
        DockerEngine::create_volume(self, name, labels, backing).await
    }

    async fn rename_sandbox(&self, id: &str, name: &str) -> Result<bool, DockerError> {
        DockerEngine::rename_sandbox(self, id, name).await
    }

    async fn remove_volume(&self, name: &str) -> Result<(), DockerError> {
        DockerEngine::remove_volume(self, name).await
    }

    async fn wait_for_removals(&self, limit: Duration) -> bool {
        DockerEngine::wait_for_removals(self, limit).await
    }

    async fn reset_if_disconnected(&self, error: &DockerError) {
        DockerEngine::reset_if_disconnected(self, error).await
    }

    async fn create_isolated_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
        reuse: Option<&str>,
    ) -> Result<IsolatedNetwork, DockerError> {
        DockerEngine::create_isolated_network(self, name, labels, reuse).await
    }

    async fn connect_to_network(
        &self,
        network: &str,
        container: &str,
        address: Option<&str>,
    ) -> Result<(), DockerError> {
        DockerEngine::connect_to_network(self, network, container, address).await
    }

    async fn network_facts(&self, network: &str) -> Result<Option<NetworkMembers>, DockerError> {
        DockerEngine::network_facts(self, network).await
    }

    async fn disconnect_from_network(&self, network: &str, container: &str) -> Result<(), DockerError> {
        DockerEngine::disconnect_from_network(self, network, container).await
    }

    async fn address_on_network(&self, container: &str, network: &str) -> Result<Option<String>, DockerError> {
        DockerEngine::address_on_network(self, container, network).await
    }

    async fn remove_network(&self, name: &str) -> Result<Option<String>, DockerError> {
        DockerEngine::remove_network(self, name).await
    }

    async fn networks_with_members(&self, labels: &[(&str, &str)]) -> Result<Vec<NetworkMembers>, DockerError> {
        DockerEngine::networks_with_members(self, labels).await
    }

    async fn labelled_volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<LabelledVolume>, DockerError> {
        DockerEngine::labelled_volumes(self, labels).await
    }

    async fn unused_volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<LabelledVolume>, DockerError> {
        DockerEngine::unused_volumes(self, labels).await
    }

    async fn volume_labels(&self, name: &str) -> Result<Option<HashMap<String, String>>, DockerError> {
        DockerEngine::volume_labels(self, name).await
    }
}

#[cfg(test)]
mod tests {
    /// `core/` reaches its engine only through [`super::SandboxEngine`]:
    /// no code under `src/core/` (its unit tests aside) names Docker's
    /// engine type or its client library, so a second backend needs no
    /// change there.
    #[test]
    fn core_reaches_its_engine_only_through_the_seam() {
        fn visit(folder: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(folder).expect("a source folder") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    visit(&path, found);
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("a source file");
                // Unit tests sit at a file's end, after `#[cfg(test)]`.
                let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
                for (number, line) in code.lines().enumerate() {
                    let docker_only = [
                        "DockerEngine",
                        "bollard",
                        "EngineProduct",
                        "EngineFacts",
                        "EngineTraits",
                    ];
                    if docker_only.iter().any(|name| line.contains(name)) {
                        found.push(format!("{}:{}: {line}", path.display(), number + 1));
                    }
                }
            }
        }
        let mut found = Vec::new();
        visit(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core"),
            &mut found,
        );
        assert!(found.is_empty(), "core/ names the Docker engine:\n{}", found.join("\n"));
    }
}
