//! One virtual key shared by several users in one process.

use proto::{Transport, TransportError};

use super::key::VirtualKey;

/// A virtual key shared by several users in one process (a front-end serving it, an agent
/// offering it, a test looking at it). As a [`Transport`] it takes the lock per APDU.
#[derive(Clone, Debug)]
pub struct SharedKey(std::sync::Arc<std::sync::Mutex<VirtualKey>>);

impl SharedKey {
    pub fn new(key: VirtualKey) -> SharedKey {
        SharedKey(std::sync::Arc::new(std::sync::Mutex::new(key)))
    }
    /// The key itself; a panic while it was held does not make it unusable.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, VirtualKey> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Transport for SharedKey {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.lock().transmit(apdu)
    }
    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        self.lock().reset()
    }
    fn is_present(&mut self) -> bool {
        self.lock().is_present()
    }
    fn name(&self) -> String {
        self.lock().name()
    }
    fn may_block(&self) -> bool {
        self.lock().may_block()
    }
}
