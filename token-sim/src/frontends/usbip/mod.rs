//! USB/IP: a virtual key exported as a USB device to another machine's (or a VM's) kernel,
//! whose `usbip attach` makes it a local USB smart-card reader. USB/IP has no authentication:
//! whoever reaches the port can use the key, so the server listens on loopback unless told.
//!
//! - [`wire`]: the protocol's messages, parsed and written (no I/O).
//! - [`server`]: answers `usbip list` (OP_REQ_DEVLIST) with the exported keys. Importing one
//!   (`usbip attach`) will carry URBs to the key's CCID device on the software bus
//!   (`frontends::ccid`); until that is wired the server refuses an import with USB/IP's error
//!   status and says so in its log.

pub mod server;
pub mod session;
/// The wire protocol lives in proto, shared with the host driver's USB/IP client.
pub use proto::usbip as wire;

use wire::DeviceRecord;

pub use super::ccid::{DEVICE_RELEASE, PRODUCT_ID, VENDOR_ID};
/// The smart-card (CCID) interface class.
pub const CCID_CLASS: [u8; 3] = [0x0B, 0x00, 0x00];
/// Default listening address (USB/IP's port on loopback).
pub const DEFAULT_ADDR: &str = "127.0.0.1:3240";

/// How the `n`th served key (from 1) shows in DEVLIST: bus 1, device `n`, bus id `1-n`, full
/// speed, one configuration with the CCID interface.
pub fn device_record(n: u32) -> DeviceRecord {
    DeviceRecord {
        path: format!("/sys/devices/ukey/usb1/1-{n}"),
        busid: format!("1-{n}"),
        busnum: 1,
        devnum: n,
        speed: 2,
        vendor: VENDOR_ID,
        product: PRODUCT_ID,
        bcd_device: DEVICE_RELEASE,
        // Class in the interface, as USB smart-card readers declare it.
        class: [0, 0, 0],
        configuration_value: 1,
        num_configurations: 1,
        interfaces: vec![CCID_CLASS],
    }
}
