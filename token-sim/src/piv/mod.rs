//! The PIV card application: bytes in -> [`CommandApdu`](proto::CommandApdu) -> typed
//! [`Command`] -> execution -> bytes out. No I/O: storage and randomness are injected.

mod attest;
pub mod buf;
pub mod card;
pub mod command;
pub mod exec;
mod generator;
pub mod objects;
pub mod persisted;
pub mod reply;
pub mod state;
pub mod storage;
#[cfg(test)]
#[allow(unsafe_code)]
mod wipe_tests;

pub use attest::self_signed_attestation_cert;
pub use card::{Card, ATR};
pub use command::Command;
pub use exec::{factory_state, Defaults, PivApp};
pub use reply::{Reply, MAX_REPLY};
pub use state::PersistentState;
pub use storage::{NoStorage, Storage, StorageError};
