//! Where a virtual key's state goes: its directory, or nowhere (throw-away keys,
//! benchmarks), through the key's fault injection when it has one.

use crate::faults::inject::Ending;
use crate::faults::Faults;
use crate::piv::state::PersistentState;
use crate::piv::{NoStorage, Storage, StorageError};
use crate::store::{FileStore, SimMeta};

/// Where the key's state goes: its directory, or nowhere (throw-away keys, benchmarks),
/// through the key's fault injection when it has one.
#[derive(Debug)]
pub struct KeyStorage {
    backend: Backend,
    faults: Option<Faults>,
}

#[derive(Debug)]
enum Backend {
    File(FileStore),
    Memory,
}

impl Storage for Backend {
    fn persist(&mut self, state: &PersistentState) -> Result<(), StorageError> {
        match self {
            Backend::File(f) => f.persist(state),
            Backend::Memory => NoStorage.persist(state),
        }
    }
}

impl Storage for KeyStorage {
    fn persist(&mut self, state: &PersistentState) -> Result<(), StorageError> {
        match &self.faults {
            Some(f) => f.write(state, &mut self.backend),
            None => self.backend.persist(state),
        }
    }
}

impl KeyStorage {
    /// The key's directory.
    pub(crate) fn file(store: FileStore) -> KeyStorage {
        KeyStorage { backend: Backend::File(store), faults: None }
    }

    /// Nowhere: the state lives as long as the key in memory.
    pub(crate) fn memory() -> KeyStorage {
        KeyStorage { backend: Backend::Memory, faults: None }
    }

    /// The directory's metadata; `None` for a key in memory.
    pub fn meta(&self) -> Option<&SimMeta> {
        match &self.backend {
            Backend::File(f) => Some(f.meta()),
            Backend::Memory => None,
        }
    }

    /// The fault injection, once set up.
    pub(crate) fn faults(&self) -> Option<&Faults> {
        self.faults.as_ref()
    }

    /// The fault injection, set up on first use for a card whose storage holds `state`.
    pub(crate) fn faults_or_attach(&mut self, state: &PersistentState) -> Faults {
        self.faults
            .get_or_insert_with(|| {
                let f = Faults::default();
                f.attach(state);
                f
            })
            .clone()
    }

    /// A command is over: how it ended under `faults` (deferred writes reach the storage
    /// behind them).
    pub(crate) fn end_command(&mut self, faults: &Faults) -> Ending {
        faults.end(&mut self.backend)
    }
}
