//! The sandbox network of one stateless execute with `network`: handed out
//! for it, bound once its sandbox is up, removed with it.

use crate::core::egress::{EgressError, EgressGateway, NETWORK_PREFIX, OpenedNetwork, Owner};
use crate::core::launcher::Sandbox;
use crate::security::egress::HostPattern;
use std::sync::Arc;

pub(super) struct StatelessNetwork {
    pub(super) network: OpenedNetwork,
    owner: Owner,
    grants: Vec<HostPattern>,
}

impl StatelessNetwork {
    /// Takes a sandbox network for the execute.
    pub(super) async fn open(egress: &Arc<EgressGateway>, grants: Vec<HostPattern>) -> Result<Self, EgressError> {
        let network = egress.open_network().await?;
        // The execute is known by its network's id.
        let owner = Owner::Execute(network.name.trim_start_matches(NETWORK_PREFIX).to_string());
        Ok(Self { network, owner, grants })
    }

    pub(super) fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Binds the started sandbox, so its connections count as this execute's.
    pub(super) fn bind(&self, egress: &EgressGateway, sandbox: &Sandbox) {
        egress.bind(&self.owner, &self.network, sandbox.container.id(), self.grants.clone());
    }

    /// The refusals the execute's code met, as notes for its result.
    pub(super) async fn refusals(&self, egress: &EgressGateway) -> Vec<String> {
        egress.refusal_notes(&self.owner).await
    }

    /// Removes the network (its sandbox must be gone).
    pub(super) async fn close(&self, egress: &EgressGateway) {
        if let Err(error) = egress.close_network(&self.network.name, &self.owner).await {
            tracing::warn!(network = %self.network.name, %error, "could not remove an execute's sandbox network");
        }
    }
}
