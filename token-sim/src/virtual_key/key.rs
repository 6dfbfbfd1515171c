//! The virtual key itself: the card, its storage and its RNG, reachable through
//! [`proto::Transport`] exactly as a key in a reader is.

use std::path::{Path, PathBuf};

use proto::{Clock, Transport, TransportError};

use super::error::KeyError;
use super::manufacture::manufacture;
use super::spec::KeySpec;
use super::storage::KeyStorage;
use crate::faults::defect::{CardView, DefectLayer};
use crate::faults::inject::Ending;
use crate::faults::{Defect, Faults};
use crate::piv::state::PersistentState;
use crate::piv::{self, Card};
use crate::rng::{make_rng, SimRng};
use crate::store::{FileStore, SimMeta};

/// A virtual key in this process.
pub struct VirtualKey {
    card: Box<Card<KeyStorage, SimRng>>,
    label: String,
    present: bool,
    dir: Option<PathBuf>,
    defect: Option<DefectLayer>,
}

impl std::fmt::Debug for VirtualKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualKey").field("label", &self.label).field("serial", &self.card.state().serial).finish()
    }
}

impl VirtualKey {
    /// Make a new key in `dir` and open it.
    pub fn create(dir: &Path, spec: &KeySpec, clock: &dyn Clock) -> Result<VirtualKey, KeyError> {
        let mut rng = make_rng(spec.seed, 0);
        let state = manufacture(spec, &mut rng, clock)?;
        let meta = SimMeta {
            created: clock.now_unix(),
            scenario: spec.scenario.name().to_string(),
            seed: spec.seed,
            boots: 0,
        };
        let store = FileStore::create(dir, meta, &state)?;
        Ok(Self::with(state, KeyStorage::file(store), rng, label_of(dir), Some(dir.to_path_buf())))
    }

    /// Open the key kept in `dir`.
    pub fn open(dir: &Path) -> Result<VirtualKey, KeyError> {
        let (store, state) = FileStore::open(dir)?;
        let rng = make_rng(store.meta().seed, store.meta().boots);
        Ok(Self::with(state, KeyStorage::file(store), rng, label_of(dir), Some(dir.to_path_buf())))
    }

    /// A key that lives only in memory.
    pub fn in_memory(spec: &KeySpec, clock: &dyn Clock) -> Result<VirtualKey, KeyError> {
        let mut rng = make_rng(spec.seed, 0);
        let state = manufacture(spec, &mut rng, clock)?;
        let label = format!("virtual key {}", state.serial);
        Ok(Self::with(state, KeyStorage::memory(), rng, label, None))
    }

    /// A key in memory running `state` (made by [`manufacture`] or read from a file), with
    /// a seeded RNG on `stream` (pick one the state's making did not use: that was stream 0)
    /// or, with `seed` None, the OS RNG. For fuzzing and load tests that need many keys of
    /// one make.
    pub fn in_memory_from(state: PersistentState, seed: Option<u64>, stream: u64) -> VirtualKey {
        let label = format!("virtual key {}", state.serial);
        Self::with(state, KeyStorage::memory(), make_rng(seed, stream), label, None)
    }

    fn with(state: PersistentState, storage: KeyStorage, rng: SimRng, label: String, dir: Option<PathBuf>) -> Self {
        VirtualKey { card: Box::new(Card::new(state, storage, rng)), label, present: true, dir, defect: None }
    }

    pub fn label(&self) -> &str {
        &self.label
    }
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
    pub fn serial(&self) -> u32 {
        self.card.state().serial
    }
    pub fn meta(&self) -> Option<&SimMeta> {
        self.card.storage().meta()
    }

    /// Give the running key `defect` (or none): from the next command on it is wrong in
    /// that way. Never written to the key's file.
    pub fn set_defect(&mut self, defect: Option<Defect>) {
        self.defect = defect.map(DefectLayer::new);
        if defect.is_some() {
            // The storage defect needs the faults' view of the storage.
            self.faults();
        }
    }

    pub fn defect(&self) -> Option<Defect> {
        self.defect.as_ref().map(DefectLayer::defect)
    }

    /// The key's fault injection, set up on first use: arm a [`Fault`](crate::faults::Fault)
    /// on the handle, and the running key suffers it.
    pub fn faults(&mut self) -> Faults {
        let state = self.card.state().clone();
        self.card.storage_mut().faults_or_attach(&state)
    }

    /// One command through the key's defect and faults to the card. `Err` when the command
    /// got no answer: the power was lost (the card is back, unpowered, as its storage holds
    /// it) or the key was pulled out.
    fn run(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        let faults = self.card.storage().faults().cloned();
        if let Some(f) = &faults {
            let defer = self.defect.as_ref().is_some_and(|d| d.defect().defers_writes(apdu));
            if let Some(delay) = f.begin(defer) {
                std::thread::sleep(delay);
            }
        }
        let view = CardView { pin_limit: self.card.state().pin.counter.limit };
        let card = &mut self.card;
        let answer = match &mut self.defect {
            Some(layer) => layer.exchange(apdu, view, &mut |a| card.transmit(a).to_vec()),
            None => card.transmit(apdu).to_vec(),
        };
        let Some(f) = faults else { return Ok(answer) };
        match self.card.storage_mut().end_command(&f) {
            Ending::Answered => Ok(answer),
            Ending::PowerLost(durable) => {
                self.reboot(*durable);
                Err(TransportError::Reset(self.label.clone()))
            }
            Ending::Removed(durable) => {
                self.reboot(*durable);
                self.present = false;
                Err(TransportError::Removed(self.label.clone()))
            }
        }
    }

    fn reboot(&mut self, durable: PersistentState) {
        self.card.reboot_from(durable);
        if let Some(d) = &mut self.defect {
            d.reset();
        }
    }

    /// The card itself, for the simulator's own provisioning ([`provision`](Self::provision))
    /// and tests. Hosts use APDUs.
    pub fn card_mut(&mut self) -> &mut Card<KeyStorage, SimRng> {
        &mut self.card
    }
    pub fn card(&self) -> &Card<KeyStorage, SimRng> {
        &self.card
    }

    /// Pull the key out: power is lost, the session is gone, the host sees no card.
    pub fn remove(&mut self) {
        self.power_off();
        self.present = false;
    }
    /// Plug the key back in.
    pub fn insert(&mut self) {
        self.present = true;
        self.power_on();
    }

    // Reader-side operations, for front-ends that are the reader (vpcd): they decide presence.

    /// Power up or warm-reset the card; returns the ATR.
    pub fn power_on(&mut self) -> Vec<u8> {
        if let Some(d) = &mut self.defect {
            d.reset();
        }
        self.card.reset().to_vec()
    }
    /// Cut the power: the session (PIN verified, management key authenticated) is gone.
    pub fn power_off(&mut self) {
        if let Some(d) = &mut self.defect {
            d.reset();
        }
        self.card.power_off();
    }
    /// The ATR, without touching the card (readers ask for it to see the card is alive).
    pub fn atr(&self) -> Vec<u8> {
        piv::ATR.to_vec()
    }
    /// One command APDU to the card as it is; an unpowered card answers 6985. A command
    /// that got no answer (an injected power loss) answers nothing at all.
    pub fn exchange(&mut self, apdu: &[u8]) -> Vec<u8> {
        self.run(apdu).unwrap_or_default()
    }
}

fn label_of(dir: &Path) -> String {
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string())
}

impl Transport for VirtualKey {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        if !self.present {
            return Err(TransportError::NoCard(self.label.clone()));
        }
        if !self.card.is_powered() {
            // As PC/SC says after a reset, until the host resets (reconnects) in its turn.
            return Err(TransportError::Reset(self.label.clone()));
        }
        self.run(apdu)
    }
    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        if !self.present {
            return Err(TransportError::NoCard(self.label.clone()));
        }
        Ok(self.power_on())
    }
    fn is_present(&mut self) -> bool {
        self.present
    }
    fn name(&self) -> String {
        match self.defect() {
            Some(d) => format!("{} (defect {})", self.label, d.name()),
            None => self.label.clone(),
        }
    }
    /// A key in memory only computes; one kept in a directory syncs its counters to disk.
    fn may_block(&self) -> bool {
        self.dir.is_some()
    }
}
