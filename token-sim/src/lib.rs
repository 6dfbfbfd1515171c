//! The virtual USB-Key.
//!
//! - [`piv`]: the PIV card application, `no_std` and allocation-free, storage and RNG injected.
//! - `store` (std): the key's directory on disk: versioned file, atomic replace, fsync.
//! - `virtual_key` (std): an in-process key implementing [`proto::Transport`].
//! - `frontends` (std): the key as a reader of the OS smart-card stack (vsmartcard vpcd, feature
//!   vpcd), and as a USB CCID device over USB/IP (`frontends::usbip`), owner-only.
//! - `scenario` (std): ready-made key states (fresh, provisioned, expiring, pin-locked, ...).
//! - `faults` (std): defect profiles (a key wrong in one named way) and fault injection
//!   (power loss at a write, storage errors, a slow card, removal mid-command).
#![cfg_attr(not(feature = "std"), no_std)]
// No unsafe code in the card; the unit tests alone may hold a scanning allocator (wipe_tests).
#![cfg_attr(not(test), forbid(unsafe_code))]
#![cfg_attr(test, deny(unsafe_code))]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod piv;

#[cfg(feature = "std")]
pub mod faults;
pub mod frontends;
#[cfg(feature = "std")]
pub mod rng;
#[cfg(feature = "std")]
pub mod scenario;
#[cfg(feature = "std")]
pub mod store;
#[cfg(feature = "std")]
pub mod virtual_key;

#[cfg(feature = "std")]
pub use virtual_key::{KeySpec, SharedKey, VirtualKey};
