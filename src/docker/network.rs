//! Isolated networks for sandboxes with network grants: internal bridge networks whose bridge owns no host
//! address, so a container on one reaches only the containers connected to
//! it (the egress proxy), never the outside and never the host (an
//! `--internal` network alone leaves the host reachable at its gateway
//! address; `tests/egress_engine.rs` shows both).

use super::{DockerEngine, DockerError, is_not_found};
use bollard::models::{
    EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest, NetworkInspect,
};
use bollard::query_parameters::{InspectContainerOptions, ListNetworksOptionsBuilder};
use std::collections::HashMap;

/// How often a network's subnet is picked again when another network took
/// it while it was being pinned.
const PIN_ATTEMPTS: usize = 3;

/// The bridge option that keeps the host's own address off the bridge.
const NO_HOST_ADDRESS: (&str, &str) = ("com.docker.network.bridge.inhibit_ipv4", "true");

/// A network and what is on it.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkMembers {
    pub name: String,
    pub labels: HashMap<String, String>,
    /// Names of the running containers connected to it.
    pub members: Vec<String>,
    /// Its subnet (`172.19.0.0/16`), when the engine says.
    pub subnet: Option<String>,
    /// Unix seconds, when the engine says.
    pub created: Option<u64>,
}

async fn subnet_of(client: &bollard::Docker, network: &str) -> Result<Option<String>, DockerError> {
    Ok(subnet_in(client.inspect_network(network, None).await?.ipam))
}

fn subnet_in(ipam: Option<Ipam>) -> Option<String> {
    ipam.and_then(|ipam| ipam.config)
        .and_then(|configs| configs.into_iter().find_map(|config| config.subnet))
}

/// The upper half of `subnet` (`172.19.128.0/17` of `172.19.0.0/16`).
fn upper_half(subnet: &str) -> Option<String> {
    let net: ipnet::IpNet = subnet.parse().ok()?;
    let halves = net.subnets(net.prefix_len() + 1).ok()?;
    halves.last().map(|half| half.to_string())
}

fn members_of(name: &str, network: NetworkInspect) -> NetworkMembers {
    let subnet = subnet_in(network.ipam);
    NetworkMembers {
        name: name.to_string(),
        labels: network.labels.unwrap_or_default(),
        members: network
            .containers
            .unwrap_or_default()
            .into_values()
            .filter_map(|member| member.name)
            .collect(),
        subnet,
        created: network
            .created
            .as_deref()
            .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
            .map(|time| time.timestamp().max(0) as u64),
    }
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
    /// host address, on a subnet of the engine's choosing that is then
    /// pinned (given back to the engine as the network's own), so that a
    /// container can be connected at a chosen address on it: the engine
    /// takes chosen addresses only on networks whose subnet was given.
    /// `reuse`: a subnet to try first (one this server just freed), which
    /// saves the picking when no other network took it meanwhile.
    pub async fn create_isolated_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
        reuse: Option<&str>,
    ) -> Result<IsolatedNetwork, DockerError> {
        let client = self.client().await?;
        if let Some(subnet) = reuse
            && let Ok(id) = self.create_internal(&client, name, labels, Some(subnet)).await
        {
            return Ok(IsolatedNetwork {
                id,
                name: name.to_string(),
                subnet: Some(subnet.to_string()),
            });
        }
        let mut last_error = None;
        for _ in 0..PIN_ATTEMPTS {
            // The engine picks a free subnet from its pools ...
            let picked = self.create_internal(&client, name, labels, None).await?;
            let subnet = subnet_of(&client, &picked).await?;
            client.remove_network(&picked).await?;
            let Some(subnet) = subnet else {
                return Err(DockerError::Protocol(format!(
                    "the engine gave network `{name}` no subnet"
                )));
            };
            // ... and gets it back as ours; another network may have taken
            // it in between: then pick again.
            match self.create_internal(&client, name, labels, Some(&subnet)).await {
                Ok(id) => {
                    return Ok(IsolatedNetwork {
                        id,
                        name: name.to_string(),
                        subnet: Some(subnet),
                    });
                }
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| DockerError::Protocol(format!("could not create network `{name}`"))))
    }

    async fn create_internal(
        &self,
        client: &bollard::Docker,
        name: &str,
        labels: &HashMap<String, String>,
        subnet: Option<&str>,
    ) -> Result<String, DockerError> {
        let ipam = subnet.map(|subnet| Ipam {
            config: Some(vec![IpamConfig {
                subnet: Some(subnet.to_string()),
                // The engine hands out addresses from the upper half only,
                // so the addresses below it (the proxy's) are never given
                // to a sandbox.
                ip_range: upper_half(subnet),
                ..Default::default()
            }]),
            ..Default::default()
        });
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
                ipam,
                ..Default::default()
            })
            .await?;
        Ok(created.id)
    }

    /// Connects `container` to `network`, at `address` when given.
    pub async fn connect_to_network(
        &self,
        network: &str,
        container: &str,
        address: Option<&str>,
    ) -> Result<(), DockerError> {
        let client = self.client().await?;
        let endpoint = EndpointSettings {
            ipam_config: address.map(|address| EndpointIpamConfig {
                ipv4_address: Some(address.to_string()),
                ..Default::default()
            }),
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

    /// `network`'s labels, subnet and running members; `None` when absent.
    pub async fn network_facts(&self, network: &str) -> Result<Option<NetworkMembers>, DockerError> {
        let client = self.client().await?;
        match client.inspect_network(network, None).await {
            Ok(inspected) => Ok(Some(members_of(network, inspected))),
            Err(error) if is_not_found(&error) => Ok(None),
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
            // Being removed: it leaves the network by itself.
            Err(bollard::errors::Error::DockerResponseServerError { ref message, .. })
                if message.contains("marked for removal") =>
            {
                Ok(())
            }
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
    /// connected (egress proxies) are disconnected first. Returns the
    /// subnet it had (free again for the next network).
    pub async fn remove_network(&self, name: &str) -> Result<Option<String>, DockerError> {
        let client = self.client().await?;
        let (members, subnet) = match client.inspect_network(name, None).await {
            Ok(network) => (network.containers.unwrap_or_default(), subnet_in(network.ipam)),
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        for container in members.keys() {
            if let Err(error) = self.disconnect_from_network(name, container).await {
                tracing::debug!(%error, network = name, container, "disconnecting from a network being removed");
            }
        }
        match client.remove_network(name).await {
            Ok(()) => Ok(subnet),
            Err(error) if is_not_found(&error) => Ok(None),
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
            found.push(members_of(&name, network));
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
