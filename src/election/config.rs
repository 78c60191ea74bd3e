//! The elector's configuration: who we are, which Lease, which timings.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{DEFAULT_LEASE_NAME, DEFAULT_LEASE_NAMESPACE, Timings};
use crate::credentials::{ClientTimeouts, LeaseLocation};

/// What the elector needs besides credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectorConfig {
    /// This node's identity in `holderIdentity` (kube-vip: the node name).
    pub identity: String,
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// Annotations to put on the Lease (kube-vip's `vip_leaseannotations`).
    pub annotations: BTreeMap<String, String>,
    /// Validated timings.
    pub timings: Timings,
}

/// Why an elector configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElectorConfigError {
    /// An empty identity would look like a released Lease to every other node.
    #[error(
        "the election identity is empty: set the node name (kube-vip's vip_nodename / NODE_NAME)"
    )]
    EmptyIdentity,
}

impl ElectorConfig {
    /// The default Lease (`kube-system/plndr-cp-lock`) for `identity`.
    pub fn new(identity: &str, timings: Timings) -> Result<Self, ElectorConfigError> {
        if identity.trim().is_empty() {
            return Err(ElectorConfigError::EmptyIdentity);
        }
        Ok(Self {
            identity: identity.to_owned(),
            namespace: DEFAULT_LEASE_NAMESPACE.to_owned(),
            name: DEFAULT_LEASE_NAME.to_owned(),
            annotations: BTreeMap::new(),
            timings,
        })
    }

    /// The client timeouts these timings call for, to build the [`Ladder`] with.
    pub fn client_timeouts(&self) -> ClientTimeouts {
        ClientTimeouts {
            request: self.timings.request_timeout(),
            watch: Duration::from_secs(self.watch_timeout_secs().into()),
        }
    }

    /// Where the Lease lives, to build the [`Ladder`] with.
    pub fn lease_location(&self) -> LeaseLocation {
        LeaseLocation {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    pub(super) fn watch_timeout_secs(&self) -> u32 {
        let secs = self.timings.resync_period().as_secs_f64().ceil();
        (secs as u32).max(1)
    }
}
