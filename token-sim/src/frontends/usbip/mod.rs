//! USB/IP: a virtual key exported as a USB device to another machine's (or a VM's) kernel,
//! whose `usbip attach` makes it a local USB smart-card reader. USB/IP has no authentication of
//! its own, so the server admits only processes of the user who runs it (`localpeer`: the
//! peer's uid from `/proc/net/tcp`, or `SO_PEERCRED` on a Unix socket); other machines only
//! when told to (`--usbip-allow-remote`), and it then says that anyone who reaches it may use
//! the keys.
//!
//! - [`wire`]: the protocol's messages, parsed and written (no I/O).
//! - [`conn`]: where importers connect (TCP or a 0600 Unix socket) and the owner-only rule.
//! - [`error`]: why a connection ended ([`error::ConnectionError`]), shared by server and
//!   session.
//! - [`server`]: answers `usbip list` (OP_REQ_DEVLIST) and imports (`usbip attach`); a
//!   connection idle too long is closed; a failed accept is waited out.
//! - [`session`]: an imported device's URBs carried to its CCID device on the software bus,
//!   with bounded queues.

pub mod conn;
pub mod error;
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
