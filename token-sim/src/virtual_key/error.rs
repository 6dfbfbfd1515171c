//! What can go wrong making, opening or provisioning a virtual key.

use crate::piv::StorageError;
use crate::scenario::ScenarioError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid key settings: {0}")]
    Spec(String),
    /// The scenario could not be applied (no CA, the CA refused, a certificate too large).
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The provisioned state could not be written to the key's storage.
    #[error("the key's state could not be written")]
    Write(StorageError),
}
