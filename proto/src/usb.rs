//! A USB device as a host driver reaches it: control transfers on endpoint 0, bulk and
//! interrupt transfers on the others. The card's software USB bus (token-sim) and a USB/IP
//! connection both offer one, and host-driver's CCID transport is written against it.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

/// A control request's SETUP packet (USB 2.0 §9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    pub request_type: u8,
    pub request: u8,
    pub value: u16,
    pub index: u16,
    pub length: u16,
}

impl Setup {
    pub fn to_bytes(&self) -> [u8; 8] {
        let v = self.value.to_le_bytes();
        let i = self.index.to_le_bytes();
        let l = self.length.to_le_bytes();
        [self.request_type, self.request, v[0], v[1], i[0], i[1], l[0], l[1]]
    }
    pub fn parse(b: &[u8; 8]) -> Setup {
        Setup {
            request_type: b[0],
            request: b[1],
            value: u16::from_le_bytes([b[2], b[3]]),
            index: u16::from_le_bytes([b[4], b[5]]),
            length: u16::from_le_bytes([b[6], b[7]]),
        }
    }
    /// Device to host (an IN request)?
    pub fn is_in(&self) -> bool {
        self.request_type & 0x80 != 0
    }
    /// GET_DESCRIPTOR of `kind` (1 device, 2 configuration, 3 string) and `index`.
    pub fn get_descriptor(kind: u8, index: u8, lang: u16, length: u16) -> Setup {
        Setup { request_type: 0x80, request: 6, value: u16::from(kind) << 8 | u16::from(index), index: lang, length }
    }
    pub fn set_configuration(value: u8) -> Setup {
        Setup { request_type: 0x00, request: 9, value: value.into(), index: 0, length: 0 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsbError {
    /// The device refused the request or halted the endpoint.
    #[error("the USB device stalled the request")]
    Stall,
    #[error("the USB device did not answer in time")]
    Timeout,
    /// Unplugged, or its connection is gone.
    #[error("the USB device is gone")]
    Disconnected,
    #[error("USB I/O failed: {0}")]
    Io(String),
}

/// What a host driver needs of a USB device. Transfers complete whole: a bulk IN transfer
/// ends at a short packet or at `max` bytes, as a host controller does it.
pub trait UsbLink: Send {
    fn control_in(&mut self, setup: Setup) -> Result<Vec<u8>, UsbError>;
    fn control_out(&mut self, setup: Setup, data: &[u8]) -> Result<(), UsbError>;
    fn bulk_out(&mut self, endpoint: u8, data: &[u8]) -> Result<(), UsbError>;
    /// One IN transfer on `endpoint` (its address, 0x80 set) of up to `max` bytes.
    fn bulk_in(&mut self, endpoint: u8, max: usize, timeout: Duration) -> Result<Vec<u8>, UsbError>;
    /// Where the device is, for messages ("ukey 12345678 on the software bus").
    fn name(&self) -> String;
}
