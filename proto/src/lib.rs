//! Wire-level definitions shared by the virtual card and the host driver: command APDUs,
//! status words, BER-TLV and the PIV constants of NIST SP 800-73-4 plus the Yubico extensions.
//!
//! `no_std` and allocation-free by default; the `alloc` feature adds owned encodings and the
//! [`Transport`] trait the host side is written against.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod apdu;
pub mod ccid;
pub mod clock;
#[cfg(feature = "mgmt-cipher")]
pub mod mgmt;
pub mod piv;
pub mod secret;
pub mod skf;
pub mod status;
pub mod tlv;
#[cfg(feature = "alloc")]
pub mod transport;
#[cfg(feature = "alloc")]
pub mod usb;
#[cfg(feature = "std")]
pub mod usbip;

pub use apdu::{ApduError, CommandApdu};
pub use clock::Clock;
pub use status::Sw;
#[cfg(feature = "alloc")]
pub use transport::{Transport, TransportError};
