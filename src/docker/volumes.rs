//! Named volumes found by their labels (session snapshots live in such
//! volumes).

use super::DockerError;
use super::{DockerEngine, is_not_found};
use bollard::query_parameters::ListVolumesOptionsBuilder;
use std::collections::HashMap;

/// A named volume and its labels.
#[derive(Debug, Clone)]
pub struct LabelledVolume {
    pub name: String,
    pub labels: HashMap<String, String>,
}

impl DockerEngine {
    /// The volumes carrying every `key=value` label given.
    pub async fn labelled_volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<LabelledVolume>, DockerError> {
        self.list_volumes(labels, false).await
    }

    /// The volumes carrying every `key=value` label given that no container
    /// uses.
    pub async fn unused_volumes(&self, labels: &[(&str, &str)]) -> Result<Vec<LabelledVolume>, DockerError> {
        self.list_volumes(labels, true).await
    }

    async fn list_volumes(&self, labels: &[(&str, &str)], unused: bool) -> Result<Vec<LabelledVolume>, DockerError> {
        let client = self.client().await?;
        let filters: Vec<String> = labels.iter().map(|(key, value)| format!("{key}={value}")).collect();
        let mut wanted = HashMap::from([("label".to_string(), filters)]);
        if unused {
            wanted.insert("dangling".to_string(), vec!["true".to_string()]);
        }
        let options = ListVolumesOptionsBuilder::default().filters(&wanted).build();
        let volumes = client.list_volumes(Some(options)).await?.volumes.unwrap_or_default();
        Ok(volumes
            .into_iter()
            .map(|volume| LabelledVolume {
                name: volume.name,
                labels: volume.labels,
            })
            .collect())
    }

    /// One volume's labels; `None` when there is no such volume.
    pub async fn volume_labels(&self, name: &str) -> Result<Option<HashMap<String, String>>, DockerError> {
        let client = self.client().await?;
        match client.inspect_volume(name).await {
            Ok(volume) => Ok(Some(volume.labels)),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }
}
