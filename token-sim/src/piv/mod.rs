//! The PIV card application: bytes in -> [`CommandApdu`](proto::CommandApdu) -> typed
//! [`Command`] -> execution -> bytes out. No I/O: storage and randomness are injected.

mod attest;
pub mod buf;
pub mod card;
pub mod command;
pub mod exec;
mod generator;
pub mod objects;
pub mod state;
#[cfg(test)]
#[allow(unsafe_code)]
mod wipe_tests;

pub use attest::self_signed_attestation_cert;
pub use card::{Card, ATR};
pub use command::Command;
pub use exec::{factory_state, Defaults, PivApp};
pub use state::PersistentState;

/// Response data of one command before it is cut into APDU-sized chunks.
pub const MAX_REPLY: usize = state::MAX_OBJECT + 64;
pub type Reply = buf::Buf<MAX_REPLY>;

/// Storage could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageError;

/// Where the card writes its persistent state. Called before the card answers any command
/// that changed the state; the write must be durable when it returns.
pub trait Storage {
    fn persist(&mut self, state: &PersistentState) -> Result<(), StorageError>;
}

/// Storage that keeps nothing: for benchmarks and throw-away keys.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoStorage;

impl Storage for NoStorage {
    fn persist(&mut self, _: &PersistentState) -> Result<(), StorageError> {
        Ok(())
    }
}
