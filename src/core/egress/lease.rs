//! A sandbox network taken for one short-lived sandbox (a stateless execute
//! with `network`, an install): the owner its connections count for, known
//! by the network's id; bound once the sandbox is up, removed with it.

use super::{EgressError, EgressGateway, NETWORK_PREFIX, OpenedNetwork, Owner};
use crate::security::egress::HostPattern;
use std::sync::Arc;

pub struct LeasedNetwork {
    pub network: OpenedNetwork,
    owner: Owner,
}

impl LeasedNetwork {
    /// Takes a sandbox network; `owner` makes the owner from the network's
    /// id (`Owner::Execute`, `Owner::Install`).
    pub async fn open(egress: &Arc<EgressGateway>, owner: fn(String) -> Owner) -> Result<Self, EgressError> {
        let network = egress.open_network().await?;
        let owner = owner(network.name.trim_start_matches(NETWORK_PREFIX).to_string());
        Ok(Self { network, owner })
    }

    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Binds the started sandbox (container `sandbox`) with `grants`, so
    /// its connections count as the owner's.
    pub fn bind(&self, egress: &EgressGateway, sandbox: &str, grants: Vec<HostPattern>) {
        egress.bind(&self.owner, &self.network, sandbox, grants);
    }

    /// The refusals the sandbox's connections met, as result notes.
    pub async fn refusals(&self, egress: &EgressGateway) -> Vec<String> {
        egress.refusal_notes(&self.owner).await
    }

    /// Removes the network (its sandbox must be gone).
    pub async fn close(&self, egress: &EgressGateway) {
        if let Err(error) = egress.close_network(&self.network.name, &self.owner).await {
            tracing::warn!(network = %self.network.name, owner = %self.owner, %error, "could not remove a sandbox network");
        }
    }
}
