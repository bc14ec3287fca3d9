//! Isolated networks for sandboxes with network grants: internal bridge networks whose bridge owns no host
//! address, so a container on one reaches only the containers connected to
//! it (the egress proxy), never the outside and never the host (an
//! `--internal` network alone leaves the host reachable at its gateway
//! address; `tests/egress_engine.rs` shows both).

use super::{DockerEngine, DockerError, is_not_found};
use bollard::models::{
    EndpointIpamConfig, EndpointSettings, NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
};
use bollard::query_parameters::{InspectContainerOptions, ListNetworksOptionsBuilder};
use std::collections::HashMap;

/// The bridge option that keeps the host's own address off the bridge.
const NO_HOST_ADDRESS: (&str, &str) = ("com.docker.network.bridge.inhibit_ipv4", "true");

/// A network and what is on it.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkMembers {
    pub name: String,
    pub labels: HashMap<String, String>,
    /// Names of the running containers connected to it.
    pub members: Vec<String>,
    /// Unix seconds, when the engine says.
    pub created: Option<u64>,
}

/// A network made by [`DockerEngine::create_isolated_network`].
#[derive(Debug, Clone, PartialEq)]
pub struct IsolatedNetwork {
    pub id: String,
    pub name: String,
    /// The subnet the engine chose (`172.19.0.0/16`), when it says.
    pub subnet: Option<String>,
}

impl DockerEngine {
    /// Creates an internal network `name` with `labels` whose bridge has no
    /// host address.
    pub async fn create_isolated_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<IsolatedNetwork, DockerError> {
        let client = self.client().await?;
        let created = client
            .create_network(NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".to_string()),
                internal: Some(true),
                options: Some(HashMap::from([(
                    NO_HOST_ADDRESS.0.to_string(),
                    NO_HOST_ADDRESS.1.to_string(),
                )])),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await?;
        let inspected = client.inspect_network(&created.id, None).await?;
        let subnet = inspected
            .ipam
            .and_then(|ipam| ipam.config)
            .and_then(|configs| configs.into_iter().find_map(|config| config.subnet));
        Ok(IsolatedNetwork {
            id: created.id,
            name: name.to_string(),
            subnet,
        })
    }

    /// Connects `container` to `network`, at `address` when given, and
    /// known on it (to the engine's resolver) by `aliases` as well as its name.
    pub async fn connect_to_network(
        &self,
        network: &str,
        container: &str,
        address: Option<&str>,
        aliases: &[&str],
    ) -> Result<(), DockerError> {
        let client = self.client().await?;
        let endpoint = EndpointSettings {
            ipam_config: address.map(|address| EndpointIpamConfig {
                ipv4_address: Some(address.to_string()),
                ..Default::default()
            }),
            aliases: (!aliases.is_empty()).then(|| aliases.iter().map(|alias| alias.to_string()).collect()),
            ..Default::default()
        };
        client
            .connect_network(
                network,
                NetworkConnectRequest {
                    container: container.to_string(),
                    endpoint_config: Some(endpoint),
                },
            )
            .await?;
        Ok(())
    }

    /// Names of the running containers on `network` (none when it is absent).
    pub async fn network_members(&self, network: &str) -> Result<Vec<String>, DockerError> {
        let client = self.client().await?;
        match client.inspect_network(network, None).await {
            Ok(inspected) => Ok(inspected
                .containers
                .unwrap_or_default()
                .into_values()
                .filter_map(|member| member.name)
                .collect()),
            Err(error) if is_not_found(&error) => Ok(Vec::new()),
            Err(error) => Err(error.into()),
        }
    }

    /// Takes `container` off `network`; already off is fine.
    pub async fn disconnect_from_network(&self, network: &str, container: &str) -> Result<(), DockerError> {
        let client = self.client().await?;
        let request = NetworkDisconnectRequest {
            container: container.to_string(),
            force: Some(true),
        };
        match client.disconnect_network(network, request).await {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 403, .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// The IPv4 address `container` has on `network` (`None` when it is
    /// not connected to it).
    pub async fn address_on_network(&self, container: &str, network: &str) -> Result<Option<String>, DockerError> {
        let client = self.client().await?;
        let inspected = client
            .inspect_container(container, None::<InspectContainerOptions>)
            .await?;
        Ok(inspected
            .network_settings
            .and_then(|settings| settings.networks)
            .and_then(|mut networks| networks.remove(network))
            .and_then(|endpoint| endpoint.ip_address)
            .filter(|address| !address.is_empty()))
    }

    /// Removes a network; an absent one is fine. Containers still
    /// connected (egress proxies) are disconnected first.
    pub async fn remove_network(&self, name: &str) -> Result<(), DockerError> {
        let client = self.client().await?;
        let members = match client.inspect_network(name, None).await {
            Ok(network) => network.containers.unwrap_or_default(),
            Err(error) if is_not_found(&error) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        for container in members.keys() {
            let request = NetworkDisconnectRequest {
                container: container.clone(),
                force: Some(true),
            };
            if let Err(error) = client.disconnect_network(name, request).await {
                tracing::debug!(%error, network = name, container, "disconnecting from a network being removed");
            }
        }
        match client.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// The networks carrying every `key=value` label given, each with its
    /// labels, the names of the running containers on it, and its age.
    pub async fn networks_with_members(&self, labels: &[(&str, &str)]) -> Result<Vec<NetworkMembers>, DockerError> {
        let client = self.client().await?;
        let mut found = Vec::new();
        for name in self.networks_labelled(labels).await? {
            let network = match client.inspect_network(&name, None).await {
                Ok(network) => network,
                Err(error) if is_not_found(&error) => continue,
                Err(error) => return Err(error.into()),
            };
            let created = network
                .created
                .as_deref()
                .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
                .map(|time| time.timestamp().max(0) as u64);
            found.push(NetworkMembers {
                name,
                labels: network.labels.unwrap_or_default(),
                members: network
                    .containers
                    .unwrap_or_default()
                    .into_values()
                    .filter_map(|member| member.name)
                    .collect(),
                created,
            });
        }
        Ok(found)
    }

    /// Names of the networks carrying every `key=value` label given.
    pub async fn networks_labelled(&self, labels: &[(&str, &str)]) -> Result<Vec<String>, DockerError> {
        let client = self.client().await?;
        let filters: Vec<String> = labels.iter().map(|(key, value)| format!("{key}={value}")).collect();
        let options = ListNetworksOptionsBuilder::default()
            .filters(&HashMap::from([("label".to_string(), filters)]))
            .build();
        Ok(client
            .list_networks(Some(options))
            .await?
            .into_iter()
            .filter_map(|network| network.name)
            .collect())
    }
}
