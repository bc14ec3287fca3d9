//! The sandbox network of one stateless execute with `network`: made for
//! it, bound once its sandbox is up, removed with it.

use crate::core::egress::{EgressError, EgressGateway, Owner};
use crate::core::launcher::{Sandbox, SandboxNetwork};
use crate::security::egress::HostPattern;
use std::net::IpAddr;

/// Prefix of stateless executes' network names.
const NAME_PREFIX: &str = "multilang-sandbox-execute-";

pub(super) struct StatelessNetwork {
    pub(super) name: String,
    owner: Owner,
    via: IpAddr,
    grants: Vec<HostPattern>,
}

impl StatelessNetwork {
    /// Makes the network and has the proxy join it.
    pub(super) async fn open(egress: &EgressGateway, grants: Vec<HostPattern>) -> Result<Self, EgressError> {
        let id: String = uuid::Uuid::new_v4().simple().to_string().chars().take(12).collect();
        let name = format!("{NAME_PREFIX}{id}");
        let owner = Owner::Execute(id);
        let via = egress.open_network(&name, &owner).await?;
        Ok(Self {
            name,
            owner,
            via,
            grants,
        })
    }

    /// The network as the launcher needs it.
    pub(super) fn sandbox_network(&self) -> SandboxNetwork<'_> {
        SandboxNetwork {
            name: &self.name,
            proxy: self.via,
        }
    }

    pub(super) fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Binds the started sandbox, so its connections count as this execute's.
    pub(super) async fn bind(&self, egress: &EgressGateway, sandbox: &Sandbox) -> Result<(), EgressError> {
        egress
            .bind(
                &self.owner,
                &self.name,
                sandbox.container.id(),
                self.via,
                self.grants.clone(),
            )
            .await
    }

    /// The refusals the execute's code met, as notes for its result.
    pub(super) async fn refusals(&self, egress: &EgressGateway) -> Vec<String> {
        egress.refusal_notes(&self.owner).await
    }

    /// Removes the network (its sandbox must be gone).
    pub(super) async fn close(&self, egress: &EgressGateway) {
        if let Err(error) = egress.close_network(&self.name, &self.owner).await {
            tracing::warn!(network = %self.name, %error, "could not remove an execute's sandbox network");
        }
    }
}
