//! Keys that are wrong on purpose, for testing hosts and the conformance suite: chosen per
//! running key (`VirtualKey::set_defect`, `VirtualKey::faults`), never stored in a key file.
//!
//! - [`defect`]: a key that departs from the standard in one named way.
//! - [`inject`]: a right key in a world that goes wrong: power loss at the Nth write, storage
//!   errors, a slow card, a key pulled out mid-command.

pub mod defect;
pub mod inject;

pub use defect::Defect;
pub use inject::{Fault, Faults};
