//! An in-process virtual key: the card, its storage and its RNG, reachable through
//! [`proto::Transport`] exactly as a key in a reader is.

use std::path::{Path, PathBuf};

use proto::piv::{object, Algorithm, PinPolicy, Slot, TouchPolicy};
use proto::secret::{KeyBytes, Pin, Puk};
use proto::{Clock, Transport, TransportError};
use rand_core::RngCore;

use crate::faults::defect::{CardView, DefectLayer};
use crate::faults::inject::Ending;
use crate::faults::{Defect, Faults};
use crate::piv::state::{Flavor, KeySlot, Origin, PersistentState};
use crate::piv::{self, Card, Defaults, NoStorage, Storage, StorageError};
use crate::rng::{make_rng, SimRng};
use crate::store::{FileStore, SimMeta, StoreError};

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
    fn new(backend: Backend) -> KeyStorage {
        KeyStorage { backend, faults: None }
    }
}

/// How to make a new key. `Default` is a factory-fresh YubiKey-like key, firmware 5.4.3.
/// PIN, PUK and management key are secret types: `{:?}` of a spec shows none of them.
#[derive(Clone, Debug)]
pub struct KeySpec {
    pub pin: Pin,
    pub puk: Puk,
    pub mgmt_alg: Algorithm,
    pub mgmt_key: KeyBytes,
    pub pin_retries: u8,
    pub puk_retries: u8,
    /// `None`: random (or derived from `seed` in deterministic mode).
    pub serial: Option<u32>,
    pub flavor: Flavor,
    /// Deterministic mode: seeds the RNG (the serial, unless given, is drawn from it).
    pub seed: Option<u64>,
    pub scenario: String,
    /// The manufacturer CA that issues the key's attestation certificate (F9), as Yubico's
    /// does for a YubiKey; portals trust attestations that chain to it. `None`: the F9
    /// certificate signs itself, and no verifier can tell the key from software.
    pub factory: Option<std::sync::Arc<ca::Ca>>,
}

impl Default for KeySpec {
    fn default() -> Self {
        let d = Defaults::factory();
        KeySpec {
            pin: Pin::new(String::from_utf8_lossy(d.pin)),
            puk: Puk::new(String::from_utf8_lossy(d.puk)),
            mgmt_alg: d.mgmt_alg,
            mgmt_key: d.mgmt_key.into(),
            pin_retries: d.pin_retries,
            puk_retries: d.puk_retries,
            serial: None,
            flavor: Flavor::Yubico { version: [5, 4, 3] },
            seed: None,
            scenario: "fresh".into(),
            factory: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid key settings: {0}")]
    Spec(String),
}

/// The attestation certificate is valid for 20 years from manufacture.
const ATTESTATION_YEARS: u64 = 20;

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

/// A factory-fresh card state for `spec`, attestation key and certificate included.
pub fn manufacture(spec: &KeySpec, rng: &mut SimRng, clock: &dyn Clock) -> Result<PersistentState, KeyError> {
    let serial = spec.serial.unwrap_or_else(|| 10_000_000 + rng.next_u32() % 90_000_000);
    let defaults = Defaults {
        pin: spec.pin.expose().as_bytes(),
        puk: spec.puk.expose().as_bytes(),
        mgmt_alg: spec.mgmt_alg,
        mgmt_key: &spec.mgmt_key,
        pin_retries: spec.pin_retries,
        puk_retries: spec.puk_retries,
    };
    let mut state = piv::factory_state(serial, spec.flavor, &defaults, rng).ok_or_else(|| {
        KeyError::Spec(format!(
            "PIN and PUK need 6 to 8 characters, retries 1 to 15, and a {} management key of {} bytes",
            spec.mgmt_alg.name(),
            spec.mgmt_alg.key_len().unwrap_or(0)
        ))
    })?;
    let f9_secret = p256::SecretKey::random(&mut *rng);
    let f9 = KeySlot::new(&f9_secret, PinPolicy::Never, TouchPolicy::Never, Origin::Generated);
    let now = clock.now_unix();
    let not_after = now + ATTESTATION_YEARS * 365 * 86_400;
    let cert = match &spec.factory {
        Some(factory) => factory_attestation_cert(factory, &f9_secret.public_key(), serial, now, not_after)?,
        None => {
            let mut serial_seed = [0u8; 16];
            rng.fill_bytes(&mut serial_seed);
            let mut cert = Vec::new();
            piv::self_signed_attestation_cert(&f9, &serial_seed, now - 60, not_after, &mut cert)
                .map_err(|e| KeyError::Spec(format!("attestation certificate: {e}")))?;
            cert
        }
    };
    state.keys[Slot::Attestation.index()] = Some(f9);
    state
        .set_object(object::ATTESTATION_CERT, &proto::piv::cert_object::encode(&cert))
        .map_err(|_| KeyError::Spec("attestation certificate too large".into()))?;
    Ok(state)
}

/// The F9 certificate from the manufacturer CA: "CN=ukey PIV Attestation,serialNumber=<serial>",
/// valid from manufacture for 20 years or until the factory's own certificate ends.
fn factory_attestation_cert(
    factory: &ca::Ca,
    key: &p256::PublicKey,
    serial: u32,
    now: u64,
    not_after: u64,
) -> Result<Vec<u8>, KeyError> {
    use p256::pkcs8::EncodePublicKey;
    let spki = key.to_public_key_der().map_err(|e| KeyError::Spec(format!("attestation key: {e}")))?;
    let serial = serial.to_string();
    let subject = ca::name_from(&[(ca::attr::COMMON_NAME, "ukey PIV Attestation"), (ca::attr::SERIAL_NUMBER, &serial)])
        .map_err(|e| KeyError::Spec(e.to_string()))?;
    factory
        .issue_intermediate(&subject, spki.as_bytes(), now.saturating_sub(60), not_after.min(factory.not_after()))
        .map_err(|e| {
            KeyError::Spec(format!(
                "the factory {} cannot issue the attestation certificate: {e}",
                factory.dir().display()
            ))
        })
}

impl VirtualKey {
    /// Make a new key in `dir` and open it.
    pub fn create(dir: &Path, spec: &KeySpec, clock: &dyn Clock) -> Result<VirtualKey, KeyError> {
        let mut rng = make_rng(spec.seed, 0);
        let state = manufacture(spec, &mut rng, clock)?;
        let meta = SimMeta { created: clock.now_unix(), scenario: spec.scenario.clone(), seed: spec.seed, boots: 0 };
        let store = FileStore::create(dir, meta, &state)?;
        Ok(Self::with(state, KeyStorage::new(Backend::File(store)), rng, label_of(dir), Some(dir.to_path_buf())))
    }

    /// Open the key kept in `dir`.
    pub fn open(dir: &Path) -> Result<VirtualKey, KeyError> {
        let (store, state) = FileStore::open(dir)?;
        let rng = make_rng(store.meta().seed, store.meta().boots);
        Ok(Self::with(state, KeyStorage::new(Backend::File(store)), rng, label_of(dir), Some(dir.to_path_buf())))
    }

    /// A key that lives only in memory.
    pub fn in_memory(spec: &KeySpec, clock: &dyn Clock) -> Result<VirtualKey, KeyError> {
        let mut rng = make_rng(spec.seed, 0);
        let state = manufacture(spec, &mut rng, clock)?;
        let label = format!("virtual key {}", state.serial);
        Ok(Self::with(state, KeyStorage::new(Backend::Memory), rng, label, None))
    }

    /// A key in memory running `state` (made by [`manufacture`] or read from a file), with
    /// a seeded RNG on `stream` (pick one the state's making did not use: that was stream 0)
    /// or, with `seed` None, the OS RNG. For fuzzing and load tests that need many keys of
    /// one make.
    pub fn in_memory_from(state: PersistentState, seed: Option<u64>, stream: u64) -> VirtualKey {
        let label = format!("virtual key {}", state.serial);
        Self::with(state, KeyStorage::new(Backend::Memory), make_rng(seed, stream), label, None)
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
        match &self.card.storage().backend {
            Backend::File(f) => Some(f.meta()),
            Backend::Memory => None,
        }
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
        let storage = self.card.storage_mut();
        storage
            .faults
            .get_or_insert_with(|| {
                let f = Faults::default();
                f.attach(&state);
                f
            })
            .clone()
    }

    /// One command through the key's defect and faults to the card. `Err` when the command
    /// got no answer: the power was lost (the card is back, unpowered, as its storage holds
    /// it) or the key was pulled out.
    fn run(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        let faults = self.card.storage().faults.clone();
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
        match f.end(&mut self.card.storage_mut().backend) {
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

    /// The card, for the simulator's own provisioning (scenarios). Hosts use APDUs.
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

/// A virtual key shared by several users in one process (a front-end serving it, an agent
/// offering it, a test looking at it). As a [`Transport`] it takes the lock per APDU.
#[derive(Clone, Debug)]
pub struct SharedKey(std::sync::Arc<std::sync::Mutex<VirtualKey>>);

impl SharedKey {
    pub fn new(key: VirtualKey) -> SharedKey {
        SharedKey(std::sync::Arc::new(std::sync::Mutex::new(key)))
    }
    /// The key itself; a panic while it was held does not make it unusable.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, VirtualKey> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Transport for SharedKey {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.lock().transmit(apdu)
    }
    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        self.lock().reset()
    }
    fn is_present(&mut self) -> bool {
        self.lock().is_present()
    }
    fn name(&self) -> String {
        self.lock().name()
    }
    fn may_block(&self) -> bool {
        self.lock().may_block()
    }
}
