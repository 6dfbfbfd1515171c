//! Where the card writes its persistent state (injected: a file, nothing, a fault layer).

use super::state::PersistentState;

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
