//! The host side of ukey ("certificate application environment"): a PIV client that speaks
//! to any key through [`proto::Transport`] — a virtual key in this process, a reader via PC/SC,
//! a USB CCID device (`ccid`, over the software bus or USB/IP) —
//! and never knows which one it has.

pub mod agent;
pub mod ccid;
pub mod certinfo;
pub mod csr;
pub mod error;
pub mod keys;
pub mod lang;
pub mod login_token;
pub mod mgmt;
pub mod pcsc;
pub mod piv;
pub mod sm2_digest;
pub mod usbip;

pub use error::PivError;
pub use keys::{inspect, KeyInfo};
pub use mgmt::MgmtKey;
pub use piv::{Applet, EcdsaSignature, Metadata, PinOutcome, PinStatus, Piv};
