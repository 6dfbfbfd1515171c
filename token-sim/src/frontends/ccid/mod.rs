//! The key as a USB CCID device:
//!
//! - [`slot`]: the reader's one slot, the CCID message state machine between USB and the
//!   card (no_std, bounded buffers);
//! - [`class`]: the CCID class on usb-device (descriptors, bulk and interrupt endpoints,
//!   class requests; no_std);
//! - `bus` (std): a software USB bus, usb-device's `UsbBus` on one side and a host's end
//!   (`proto::usb::UsbLink`) on the other, in one process;
//! - `device` (std): a virtual key plugged into that bus, its card on a worker thread.
//!
//! Why not usbd-ccid 0.5: it answers IccPowerOn with a fixed ATR of its own (only 13
//! issuer bytes may vary) and never tells the application about power on or off, so the
//! card's security status would outlive a power cycle; and it sends every response in
//! 54-byte DataBlocks, one USB round trip each. The slot here answers the card's own ATR,
//! resets the card on power on/off and USB reset, and sends a response in messages of up
//! to dwMaxCCIDMessageLength.

#[cfg(feature = "std")]
pub mod bus;
pub mod class;
#[cfg(feature = "std")]
pub mod device;
pub mod slot;

/// pid.codes' vendor id (the open-source hardware registry).
pub const VENDOR_ID: u16 = 0x1209;
/// A product id pid.codes reserves for private testing (0x0001-0x0010): ukey's keys are test
/// devices. libccid opens only the VID/PIDs in its Info.plist, so a host that should use a
/// served key with pcscd adds this pair there.
pub const PRODUCT_ID: u16 = 0x0001;
/// bcdDevice: release 1.00.
pub const DEVICE_RELEASE: u16 = 0x0100;

/// dwMaxCCIDMessageLength: header plus 1 KiB. Longer APDUs and responses are chained.
pub const MAX_MESSAGE: usize = proto::ccid::HEADER + 1024;
/// The longest command APDU the slot assembles (the card's longest chain, extended header).
pub const MAX_APDU: usize = crate::piv::card::MAX_CHAIN + 9;
/// The longest response: the card's longest reply and its status word.
pub const MAX_RESPONSE: usize = crate::piv::MAX_REPLY + 2;
