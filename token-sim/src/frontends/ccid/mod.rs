//! The key as a USB CCID device (issue 16, in progress). So far: the reader's slot, the
//! CCID message state machine between USB and the card (no_std, bounded buffers). The USB
//! class on usb-device, the software bus and the host transport come next.
//!
//! Why not usbd-ccid 0.5: it answers IccPowerOn with a fixed ATR of its own (only 13
//! issuer bytes may vary) and never tells the application about power on or off, so the
//! card's security status would outlive a power cycle; and it sends every response in
//! 54-byte DataBlocks, one USB round trip each. The slot here answers the card's own ATR,
//! resets the card on power on/off and USB reset, and sends a response in messages of up
//! to dwMaxCCIDMessageLength.

pub mod slot;

/// dwMaxCCIDMessageLength: header plus 1 KiB. Longer APDUs and responses are chained.
pub const MAX_MESSAGE: usize = proto::ccid::HEADER + 1024;
/// The longest command APDU the slot assembles (the card's longest chain, extended header).
pub const MAX_APDU: usize = crate::piv::card::MAX_CHAIN + 9;
/// The longest response: the card's longest reply and its status word.
pub const MAX_RESPONSE: usize = crate::piv::MAX_REPLY + 2;
