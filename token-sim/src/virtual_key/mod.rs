//! An in-process virtual key: the card, its storage and its RNG, reachable through
//! [`proto::Transport`] exactly as a key in a reader is.
//!
//! - [`spec`]: how to make a new key ([`KeySpec`]).
//! - [`manufacture`]: a factory-fresh card state for a spec, attestation key and certificate
//!   included.
//! - [`storage`]: where a key's state goes (its directory or nowhere), through its faults.
//! - [`key`]: the key itself ([`VirtualKey`]): opening, power, presence, defects and faults,
//!   and [`proto::Transport`].
//! - [`provision`]: bringing a key into a [`Scenario`](crate::scenario::Scenario) in one call.
//! - [`shared`]: one key shared by several users in one process ([`SharedKey`]).
//! - [`error`]: what can go wrong making, opening or provisioning a key.

pub mod error;
pub mod key;
pub mod manufacture;
pub mod provision;
pub mod shared;
pub mod spec;
pub mod storage;

pub use error::KeyError;
pub use key::VirtualKey;
pub use manufacture::manufacture;
pub use shared::SharedKey;
pub use spec::KeySpec;
pub use storage::KeyStorage;
