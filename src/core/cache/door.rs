//! The network of one install (issue #14, item 5): a sandbox network of
//! its own, through the egress proxy like a stateless execute's, on which
//! the install reaches only the registries its package manager is
//! configured for. They are found inside the install container, before the
//! install steps, by the discovery steps (`runtime/registries.rs`), and
//! granted to the install's owner; the ledger allows nothing else
//! (`Owner::Install`). The network is removed with the container.

use crate::core::egress::{EgressGateway, NETWORK_PREFIX, OpenedNetwork, Owner};
use crate::core::error::PackageError;
use crate::core::launcher::{Purpose, Sandbox};
use crate::runtime::registries::Registries;
use std::sync::Arc;

pub(super) struct InstallDoor {
    network: OpenedNetwork,
    owner: Owner,
}

impl InstallDoor {
    /// Takes a sandbox network for one install.
    pub(super) async fn open(egress: &Arc<EgressGateway>) -> Result<Self, PackageError> {
        let network = egress.open_network().await?;
        // The install is known by its network's id.
        let owner = Owner::Install(network.name.trim_start_matches(NETWORK_PREFIX).to_string());
        Ok(Self { network, owner })
    }

    pub(super) fn owner(&self) -> &Owner {
        &self.owner
    }

    /// What the install container is for, on this network.
    pub(super) fn purpose<'a>(&'a self, packages_volume: Option<&'a str>, as_root: bool) -> Purpose<'a> {
        Purpose::Install {
            packages_volume,
            as_root,
            network: &self.network,
        }
    }

    /// Binds the started container, with nothing granted yet: discovery
    /// needs no network.
    pub(super) fn bind(&self, egress: &EgressGateway, sandbox: &Sandbox) {
        egress.bind(&self.owner, &self.network, sandbox.container.id(), Vec::new());
    }

    /// Grants the registries found.
    pub(super) fn grant(&self, egress: &EgressGateway, registries: &Registries) {
        egress.set_grants(&self.owner, registries.grants.clone());
    }

    /// The proxy's refusals of the install's connections (each a line
    /// with the host and the reason the program saw in its 403).
    pub(super) async fn refusals(&self, egress: &EgressGateway) -> Vec<String> {
        egress.refusal_notes(&self.owner).await
    }

    /// Removes the network (its container must be gone).
    pub(super) async fn close(&self, egress: &EgressGateway) {
        if let Err(error) = egress.close_network(&self.network.name, &self.owner).await {
            tracing::warn!(network = %self.network.name, %error, "could not remove an install's sandbox network");
        }
    }
}
