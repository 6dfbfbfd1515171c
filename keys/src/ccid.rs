//! A virtual key plugged into the software USB bus of this process and driven through the
//! host's CCID transport (descriptors, power, XfrBlock), the way a real token's driver talks
//! to it.

use host_driver::ccid::CcidTransport;
use proto::transport::{Transport, TransportError};
use token_sim::frontends::ccid::bus::HostEnd;
use token_sim::frontends::ccid::device::Plugged;
use token_sim::VirtualKey;

use crate::error::Error;

/// A virtual key on the software USB bus, as a [`Transport`]. The key is unplugged when this
/// is dropped.
pub struct CcidKey {
    transport: CcidTransport<HostEnd>,
    _plugged: Plugged,
}

impl CcidKey {
    pub fn plug(key: VirtualKey) -> Result<CcidKey, Error> {
        let plugged = Plugged::new(token_sim::SharedKey::new(key));
        let transport = CcidTransport::open(plugged.host()).map_err(Error::Ccid)?;
        Ok(CcidKey { transport, _plugged: plugged })
    }
}

impl Transport for CcidKey {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.transport.transmit(apdu)
    }
    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        self.transport.reset()
    }
    fn is_present(&mut self) -> bool {
        self.transport.is_present()
    }
    fn name(&self) -> String {
        self.transport.name()
    }
    fn may_block(&self) -> bool {
        true
    }
}
