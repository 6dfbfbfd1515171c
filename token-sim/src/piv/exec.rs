//! Execution: a typed [`Command`] runs against the card state and writes its answer.
//! The security rules of DESIGN.md live here: counters persisted before a PIN is compared,
//! constant-time comparison, blocked stays blocked, private keys never leave.

use rand_core::CryptoRngCore;

use proto::piv::{defaults, key_ref, object, Algorithm, PinPolicy, Slot, TouchPolicy};
use proto::secret::PinBlock;
use proto::tlv::{self, Sink};
use proto::Sw;

use super::command::{AuthRequest, Command, PinRef};
use super::objects;
use super::persisted::Persisted;
use super::reply::Reply;
use super::state::{
    pad_pin, Block, Counter, Credential, Flavor, KeySlot, MgmtChallenge, MgmtKey, Origin, PersistentState, Secret,
    Session, MAX_RETRIES,
};
use super::storage::{Storage, StorageError};

/// The PIV application: state, session, and the injected storage and randomness.
pub struct PivApp<S, R> {
    pub(crate) state: PersistentState,
    pub(crate) session: Session,
    storage: S,
    rng: R,
    /// Set when storage failed: the card answers 6581 until it is reopened from storage,
    /// so memory and storage can never silently disagree.
    faulted: bool,
}

/// Shorthand: a result whose error is the status word to answer.
type Res = Result<(), Sw>;

impl<S: Storage, R: CryptoRngCore> PivApp<S, R> {
    pub fn new(state: PersistentState, storage: S, rng: R) -> Self {
        PivApp { state, session: Session::default(), storage, rng, faulted: false }
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Power was lost: what was in RAM is gone (session, a storage fault) and the card runs
    /// `state`, read back from its storage.
    pub fn reboot(&mut self, state: PersistentState) {
        self.state = state;
        self.session = Session::default();
        self.faulted = false;
    }

    pub fn is_faulted(&self) -> bool {
        self.faulted
    }

    /// Change the state outside any APDU (the simulator's factory and scenarios), then
    /// write it through as every command does.
    pub fn update<X>(&mut self, f: impl FnOnce(&mut PersistentState, &mut R) -> X) -> Result<X, StorageError> {
        let x = f(&mut self.state, &mut self.rng);
        self.persist().map_err(|_| StorageError)?;
        Ok(x)
    }

    pub fn clear_session(&mut self) {
        self.session = Session::default();
    }

    /// Take the PIN-always grant: whatever command arrives next spends or drops it.
    pub fn take_pin_always(&mut self) -> bool {
        core::mem::take(&mut self.session.pin_always)
    }

    /// Run one command, writing response data to `out`; returns the status word.
    /// `pin_always` is the grant taken (with [`take_pin_always`](Self::take_pin_always)) when
    /// this command's first APDU arrived: a PIN-always key signs only with it.
    pub fn execute(&mut self, cmd: Command<'_>, pin_always: bool, out: &mut Reply) -> Sw {
        if self.faulted {
            return Sw::MEMORY_FAILURE;
        }
        let result = match cmd {
            Command::SelectPiv => objects::write_property_template(out).map_err(|_| Sw::UNKNOWN),
            // No other application lives on this card: answer "not found", keep PIV selected.
            Command::SelectOther => Err(Sw::FILE_NOT_FOUND),
            Command::GetData { tag } => self.get_data(tag, out),
            Command::PutData { tag, value } => self.put_data(tag, value),
            Command::VerifyStatus => self.verify_status(),
            Command::Verify { pin } => self.verify(&pin),
            Command::Logout => {
                self.session.pin_verified = false;
                Ok(())
            }
            Command::ChangeReference { which, old, new } => self.change_reference(which, &old, &new),
            Command::ResetRetry { puk, new_pin } => self.reset_retry(&puk, &new_pin),
            Command::Generate { slot, pin_policy, touch_policy } => self.generate(slot, pin_policy, touch_policy, out),
            Command::Authenticate { alg, request } => self.authenticate(alg, request, pin_always, out),
            Command::GetVersion => match self.state.flavor {
                Flavor::Yubico { version } => out.put(&version).map_err(|_| Sw::UNKNOWN),
                Flavor::Plain => Err(Sw::INS_NOT_SUPPORTED),
            },
            Command::GetSerial => out.put(&self.state.serial.to_be_bytes()).map_err(|_| Sw::UNKNOWN),
            Command::GetMetadata { reference } => self.metadata(reference, out),
            Command::SetMgmKey { alg, key, touch } => self.set_mgmt_key(alg, key.0, touch),
            Command::ImportKey { slot, scalar, pin_policy, touch_policy } => {
                self.import_key(slot, scalar.0, pin_policy, touch_policy)
            }
            Command::Attest { slot } => self.attest(slot, out),
            Command::SetPinRetries { pin, puk } => self.set_pin_retries(pin, puk),
            Command::Reset => self.reset(),
            Command::MoveKey { from, to } => self.move_key(from, to),
        };
        match result {
            Ok(()) => Sw::OK,
            Err(sw) => {
                out.clear();
                sw
            }
        }
    }

    /// Write the persistent state through; on failure the card faults (6581).
    fn persist(&mut self) -> Res {
        match self.storage.persist(&self.state) {
            Ok(()) => Ok(()),
            Err(_) => {
                self.faulted = true;
                self.session = Session::default();
                Err(Sw::MEMORY_FAILURE)
            }
        }
    }

    fn random<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.rng.fill_bytes(&mut b);
        b
    }

    // ---- data objects ----

    fn get_data(&mut self, tag: u32, out: &mut Reply) -> Res {
        if tag == object::DISCOVERY {
            return objects::write_discovery(out).map_err(|_| Sw::UNKNOWN);
        }
        // PIN-protected objects say 6982 until the PIN is verified, even when absent
        // (OpenSC reads them to learn the PIN state).
        if object::pin_protected(tag) && !self.session.pin_verified {
            return Err(Sw::SECURITY_STATUS_NOT_SATISFIED);
        }
        let value = self.state.object(tag).ok_or(Sw::FILE_NOT_FOUND)?;
        out.put(value).map_err(|_| Sw::UNKNOWN)
    }

    fn put_data(&mut self, tag: u32, value: &[u8]) -> Res {
        self.require_mgmt()?;
        // `53 00` deletes the object.
        let value = if value == [0x53, 0x00] { &[][..] } else { value };
        self.state.set_object(tag, value).map_err(|_| Sw::NOT_ENOUGH_MEMORY)?;
        self.persist()
    }

    // ---- PIN and PUK ----

    fn verify_status(&self) -> Res {
        let c = self.state.pin.counter;
        if c.blocked() {
            Err(Sw::AUTH_METHOD_BLOCKED)
        } else if self.session.pin_verified {
            Ok(())
        } else {
            Err(Sw::verify_failed(c.remaining))
        }
    }

    /// The one place a PIN or PUK is compared. The try is counted and persisted first, so
    /// pulling the key mid-command can never yield a free guess; success restores the counter.
    fn check_credential(&mut self, which: PinRef, candidate: &PinBlock) -> Res {
        let spent = self.spend_try(which)?;
        let cred = self.credential(which);
        if cred.secret.matches(candidate, spent) {
            cred.counter.remaining = cred.counter.limit;
            self.persist()
        } else {
            let left = cred.counter.remaining;
            // A failed PIN comparison, by any command, ends the PIN's security status
            // (SP 800-73-4 says so for VERIFY; doing it everywhere leaves no way around it).
            if which == PinRef::Pin {
                self.session.pin_verified = false;
            }
            Err(Sw::verify_failed(left))
        }
    }

    /// Spend one try of `which` and write it down: the only way to the proof a comparison
    /// takes, so no PIN or PUK is compared before its try is durable.
    fn spend_try(&mut self, which: PinRef) -> Result<Persisted, Sw> {
        let cred = self.credential(which);
        if cred.counter.blocked() {
            return Err(Sw::AUTH_METHOD_BLOCKED);
        }
        cred.counter.remaining -= 1;
        Persisted::after(|| self.persist())
    }

    fn credential(&mut self, which: PinRef) -> &mut Credential {
        match which {
            PinRef::Pin => &mut self.state.pin,
            PinRef::Puk => &mut self.state.puk,
        }
    }

    fn verify(&mut self, pin: &PinBlock) -> Res {
        self.check_credential(PinRef::Pin, pin)?;
        self.session.pin_verified = true;
        self.session.pin_always = true;
        Ok(())
    }

    fn set_secret(&mut self, which: PinRef, new: &PinBlock, is_default: bool) {
        let salt = self.random::<16>();
        let cred = self.credential(which);
        cred.secret = Secret::new(new, salt);
        cred.is_default = is_default;
    }

    fn change_reference(&mut self, which: PinRef, old: &PinBlock, new: &PinBlock) -> Res {
        self.check_credential(which, old)?;
        self.set_secret(which, new, false);
        self.persist()
    }

    fn reset_retry(&mut self, puk: &PinBlock, new_pin: &PinBlock) -> Res {
        self.check_credential(PinRef::Puk, puk)?;
        self.set_secret(PinRef::Pin, new_pin, false);
        self.state.pin.counter.remaining = self.state.pin.counter.limit;
        // Unblocking does not log the holder in.
        self.session.pin_verified = false;
        self.persist()
    }

    // ---- management key ----

    fn require_mgmt(&self) -> Res {
        if self.session.mgmt_authenticated {
            Ok(())
        } else {
            Err(Sw::SECURITY_STATUS_NOT_SATISFIED)
        }
    }

    fn mgmt_crypt(&self, block: &mut [u8], encrypt: bool) -> Res {
        let m = &self.state.mgmt;
        proto::mgmt::crypt_block(m.algorithm(), &m.key, block, encrypt).ok_or(Sw::WRONG_DATA)
    }

    fn authenticate(&mut self, alg: Algorithm, request: AuthRequest<'_>, pin_always: bool, out: &mut Reply) -> Res {
        match request {
            AuthRequest::Sign { slot, digest } => return self.sign(slot, digest, pin_always, out),
            AuthRequest::Ecdh { slot, point } => return self.ecdh(slot, point, pin_always, out),
            _ => {}
        }
        // Management-key authentication: any step that does not continue the pending one
        // starts over, and any failure leaves the card unauthenticated.
        let pending = self.session.mgmt_pending.take();
        self.session.mgmt_authenticated = false;
        let key_alg = self.state.mgmt.algorithm();
        if alg != key_alg {
            return Err(Sw::INCORRECT_P1P2);
        }
        let block_len = key_alg.block_len().ok_or(Sw::UNKNOWN)?;
        match request {
            AuthRequest::MgmtWitness => {
                let fresh = zeroize::Zeroizing::new(self.random::<16>());
                let witness = Block::from_slice(&fresh[..block_len]).map_err(|_| Sw::UNKNOWN)?;
                let mut enc = witness.clone();
                self.mgmt_crypt(&mut enc, true)?;
                self.session.mgmt_pending = Some(MgmtChallenge::Witness(witness));
                write_template(out, 0x80, &enc)
            }
            AuthRequest::MgmtWitnessResponse { witness, challenge } => {
                let Some(MgmtChallenge::Witness(expected)) = pending else {
                    return Err(Sw::CONDITIONS_NOT_SATISFIED);
                };
                if challenge.len() != block_len {
                    return Err(Sw::WRONG_DATA);
                }
                if !ct_eq(witness, &expected) {
                    return Err(Sw::SECURITY_STATUS_NOT_SATISFIED);
                }
                let mut resp = Block::from_slice(challenge).map_err(|_| Sw::WRONG_DATA)?;
                self.mgmt_crypt(&mut resp, true)?;
                self.session.mgmt_authenticated = true;
                write_template(out, 0x82, &resp)
            }
            AuthRequest::MgmtChallenge => {
                let fresh = zeroize::Zeroizing::new(self.random::<16>());
                let challenge = Block::from_slice(&fresh[..block_len]).map_err(|_| Sw::UNKNOWN)?;
                self.session.mgmt_pending = Some(MgmtChallenge::Challenge(challenge.clone()));
                write_template(out, 0x81, &challenge)
            }
            AuthRequest::MgmtChallengeResponse { response } => {
                let Some(MgmtChallenge::Challenge(challenge)) = pending else {
                    return Err(Sw::CONDITIONS_NOT_SATISFIED);
                };
                let mut expected = challenge;
                self.mgmt_crypt(&mut expected, true)?;
                if !ct_eq(response, &expected) {
                    return Err(Sw::SECURITY_STATUS_NOT_SATISFIED);
                }
                self.session.mgmt_authenticated = true;
                Ok(())
            }
            AuthRequest::Sign { .. } | AuthRequest::Ecdh { .. } => Err(Sw::UNKNOWN),
        }
    }

    fn set_mgmt_key(&mut self, alg: Algorithm, key: &[u8], touch: bool) -> Res {
        self.require_mgmt()?;
        let mut new = MgmtKey::new(alg, key).ok_or(Sw::WRONG_DATA)?;
        new.touch = touch;
        self.state.mgmt = new;
        self.persist()
    }

    // ---- keys ----

    fn store_key(
        &mut self,
        slot: Slot,
        secret: &p256::SecretKey,
        pin: Option<PinPolicy>,
        touch: Option<TouchPolicy>,
        origin: Origin,
    ) -> Res {
        let pin = pin.unwrap_or(slot.default_pin_policy());
        let touch = touch.unwrap_or(TouchPolicy::Never);
        self.state.keys[slot.index()] = Some(KeySlot::new(secret, pin, touch, origin));
        self.persist()
    }

    fn generate(&mut self, slot: Slot, pin: Option<PinPolicy>, touch: Option<TouchPolicy>, out: &mut Reply) -> Res {
        self.require_mgmt()?;
        let secret = p256::SecretKey::random(&mut self.rng);
        self.store_key(slot, &secret, pin, touch, Origin::Generated)?;
        // The stored key's point: k·G from the generator table (see piv/generator.rs).
        let point = self.state.keys[slot.index()].as_ref().map(KeySlot::public_point).ok_or(Sw::UNKNOWN)?;
        // Short length form, exactly `7F49 43 86 41 04..`: libykpiv reads fixed offsets.
        out.put(&[0x7F, 0x49, 0x43, 0x86, 0x41]).map_err(|_| Sw::UNKNOWN)?;
        out.put(&point).map_err(|_| Sw::UNKNOWN)
    }

    /// MOVE KEY (Yubico 5.7): the management key moves a slot's key to an empty slot, or
    /// deletes it; what was there is gone for good.
    fn move_key(&mut self, from: Slot, to: Option<Slot>) -> Res {
        self.require_mgmt()?;
        if self.state.keys[from.index()].is_none() {
            return Err(Sw::REFERENCE_NOT_FOUND);
        }
        if to.is_some_and(|to| self.state.keys[to.index()].is_some()) {
            return Err(Sw::CONDITIONS_NOT_SATISFIED);
        }
        let key = self.state.keys[from.index()].take();
        if let Some(to) = to {
            self.state.keys[to.index()] = key;
        }
        self.persist()
    }

    fn import_key(&mut self, slot: Slot, scalar: &[u8], pin: Option<PinPolicy>, touch: Option<TouchPolicy>) -> Res {
        self.require_mgmt()?;
        let secret = p256::SecretKey::from_slice(scalar).map_err(|_| Sw::WRONG_DATA)?;
        self.store_key(slot, &secret, pin, touch, Origin::Imported)
    }

    /// Whether the PIN policy of `key` allows a private-key operation now.
    fn key_usable(&self, key: &KeySlot, pin_always: bool) -> Res {
        let ok = match key.pin_policy() {
            PinPolicy::Never => true,
            PinPolicy::Once => self.session.pin_verified,
            PinPolicy::Always => self.session.pin_verified && pin_always,
        };
        if ok {
            Ok(())
        } else {
            Err(Sw::SECURITY_STATUS_NOT_SATISFIED)
        }
    }

    fn sign(&mut self, slot: Slot, digest: &[u8], pin_always: bool, out: &mut Reply) -> Res {
        let key = self.state.key(slot).ok_or(Sw::REFERENCE_NOT_FOUND)?;
        self.key_usable(key, pin_always)?;
        // The digest is read as a big-endian integer: shorter ones (SHA-1, SHA-224) are
        // left-padded, longer ones are refused.
        if digest.len() > 32 {
            return Err(Sw::WRONG_DATA);
        }
        let mut prehash = [0u8; 32];
        prehash[32 - digest.len()..].copy_from_slice(digest);
        let sig = key.sign_prehash(&prehash).ok_or(Sw::WRONG_DATA)?;
        write_template(out, 0x82, sig.to_der().as_bytes())
    }

    fn ecdh(&mut self, slot: Slot, point: &[u8], pin_always: bool, out: &mut Reply) -> Res {
        let key = self.state.key(slot).ok_or(Sw::REFERENCE_NOT_FOUND)?;
        self.key_usable(key, pin_always)?;
        let peer = p256::PublicKey::from_sec1_bytes(point).map_err(|_| Sw::WRONG_DATA)?;
        let shared = p256::ecdh::diffie_hellman(key.secret().to_nonzero_scalar(), peer.as_affine());
        write_template(out, 0x82, shared.raw_secret_bytes())
    }

    fn attest(&mut self, slot: Slot, out: &mut Reply) -> Res {
        let key = self.state.key(slot).ok_or(Sw::REFERENCE_NOT_FOUND)?;
        if key.origin != Origin::Generated {
            return Err(Sw::WRONG_DATA);
        }
        let attester = self.state.key(Slot::Attestation).ok_or(Sw::REFERENCE_NOT_FOUND)?;
        let issuer_cert = self.state.object(object::ATTESTATION_CERT).ok_or(Sw::REFERENCE_NOT_FOUND)?;
        super::attest::write_attestation(&self.state, slot, key, attester, issuer_cert, out)
    }

    // ---- Yubico administration ----

    fn metadata(&self, reference: u8, out: &mut Reply) -> Res {
        use proto::piv::metadata::{KeyAlgorithm, Metadata, Origin as MetaOrigin};
        let m = match reference {
            key_ref::PIN | key_ref::PUK => {
                let cred = if reference == key_ref::PIN { &self.state.pin } else { &self.state.puk };
                Metadata {
                    algorithm: Some(KeyAlgorithm::Pin),
                    is_default: Some(cred.is_default),
                    retries_total: Some(cred.counter.limit),
                    retries_remaining: Some(cred.counter.remaining),
                    ..Default::default()
                }
            }
            key_ref::MANAGEMENT => {
                let m = &self.state.mgmt;
                Metadata {
                    algorithm: Some(KeyAlgorithm::from_byte(m.alg)),
                    has_policy: true,
                    touch_policy: Some(if m.touch { TouchPolicy::Always } else { TouchPolicy::Never }),
                    is_default: Some(m.is_default()),
                    ..Default::default()
                }
            }
            r => {
                let slot = Slot::from_key_ref(r).ok_or(Sw::REFERENCE_NOT_FOUND)?;
                let key = self.state.key(slot).ok_or(Sw::REFERENCE_NOT_FOUND)?;
                Metadata {
                    algorithm: Some(KeyAlgorithm::Piv(Algorithm::EccP256)),
                    has_policy: true,
                    pin_policy: PinPolicy::from_byte(key.pin_policy),
                    touch_policy: TouchPolicy::from_byte(key.touch_policy),
                    origin: Some(match key.origin {
                        super::state::Origin::Generated => MetaOrigin::Generated,
                        super::state::Origin::Imported => MetaOrigin::Imported,
                    }),
                    public_key: heapless::Vec::from_slice(&key.public_point()).ok(),
                    ..Default::default()
                }
            }
        };
        m.encode(out).map_err(|_| Sw::UNKNOWN)
    }

    fn set_pin_retries(&mut self, pin: u8, puk: u8) -> Res {
        self.require_mgmt()?;
        if !self.session.pin_verified {
            return Err(Sw::SECURITY_STATUS_NOT_SATISFIED);
        }
        if !(1..=MAX_RETRIES).contains(&pin) || !(1..=MAX_RETRIES).contains(&puk) {
            return Err(Sw::INCORRECT_P1P2);
        }
        // As on a YubiKey: new limits, and PIN and PUK back to their defaults.
        self.set_secret(PinRef::Pin, &pad_pin(defaults::PIN).ok_or(Sw::UNKNOWN)?, true);
        self.set_secret(PinRef::Puk, &pad_pin(defaults::PUK).ok_or(Sw::UNKNOWN)?, true);
        self.state.pin.counter = Counter::full(pin);
        self.state.puk.counter = Counter::full(puk);
        self.session.pin_verified = false;
        self.persist()
    }

    fn reset(&mut self) -> Res {
        if !(self.state.pin.counter.blocked() && self.state.puk.counter.blocked()) {
            return Err(Sw::CONDITIONS_NOT_SATISFIED);
        }
        let attestation_key = self.state.keys[Slot::Attestation.index()].take();
        let attestation_cert = self
            .state
            .object(object::ATTESTATION_CERT)
            .map(heapless::Vec::<u8, { super::state::MAX_OBJECT }>::from_slice);
        let fresh = factory_state(self.state.serial, self.state.flavor, &Defaults::factory(), &mut self.rng)
            .ok_or(Sw::UNKNOWN)?;
        self.state = fresh;
        self.state.keys[Slot::Attestation.index()] = attestation_key;
        if let Some(Ok(cert)) = attestation_cert {
            self.state.set_object(object::ATTESTATION_CERT, &cert).map_err(|_| Sw::UNKNOWN)?;
        }
        self.session = Session::default();
        self.persist()
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// `7C { tag value }` — the answer shape of GENERAL AUTHENTICATE.
fn write_template(out: &mut Reply, tag: u32, value: &[u8]) -> Res {
    tlv::write_header(out, 0x7C, tlv::header_len(tag, value.len()) + value.len()).map_err(|_| Sw::UNKNOWN)?;
    tlv::write(out, tag, value).map_err(|_| Sw::UNKNOWN)
}

/// Credentials a new (or reset) card starts with.
#[derive(Clone)]
pub struct Defaults<'a> {
    pub pin: &'a [u8],
    pub puk: &'a [u8],
    pub mgmt_alg: Algorithm,
    pub mgmt_key: &'a [u8],
    pub pin_retries: u8,
    pub puk_retries: u8,
}

impl Defaults<'static> {
    pub const fn factory() -> Self {
        Defaults {
            pin: defaults::PIN,
            puk: defaults::PUK,
            mgmt_alg: Algorithm::Tdes,
            mgmt_key: &defaults::MANAGEMENT_KEY,
            pin_retries: defaults::RETRIES,
            puk_retries: defaults::RETRIES,
        }
    }
}

impl core::fmt::Debug for Defaults<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Defaults(<redacted>)")
    }
}

/// A fresh card: credentials from `d`, new CHUID and CCC, no keys. `None` if `d` is invalid.
pub fn factory_state<R: CryptoRngCore>(
    serial: u32,
    flavor: Flavor,
    d: &Defaults<'_>,
    rng: &mut R,
) -> Option<PersistentState> {
    let mut salt = [0u8; 16];
    let mut cred = |secret: &[u8], limit: u8, default: &[u8]| -> Option<Credential> {
        if !(1..=MAX_RETRIES).contains(&limit) {
            return None;
        }
        rng.fill_bytes(&mut salt);
        Some(Credential {
            secret: Secret::new(&pad_pin(secret)?, salt),
            counter: Counter::full(limit),
            is_default: secret == default,
        })
    };
    let pin = cred(d.pin, d.pin_retries, defaults::PIN)?;
    let puk = cred(d.puk, d.puk_retries, defaults::PUK)?;
    let mut state = PersistentState {
        serial,
        flavor,
        pin,
        puk,
        mgmt: MgmtKey::new(d.mgmt_alg, d.mgmt_key)?,
        keys: Default::default(),
        objects: Default::default(),
    };
    let mut guid = [0u8; 16];
    rng.fill_bytes(&mut guid);
    let mut card_id = [0u8; 14];
    rng.fill_bytes(&mut card_id);
    state.set_object(object::CHUID, &objects::chuid(&guid)).ok()?;
    state.set_object(object::CCC, &objects::ccc(&card_id)).ok()?;
    state.set_object(object::KEY_HISTORY, &objects::key_history()).ok()?;
    Some(state)
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::super::state::comparisons;
    use super::super::{Card, StorageError};
    use super::*;

    /// Storage whose every write fails.
    struct Broken;
    impl Storage for Broken {
        fn persist(&mut self, _: &PersistentState) -> Result<(), StorageError> {
            Err(StorageError)
        }
    }

    fn apdu(ins: u8, p2: u8, data: &[u8]) -> std::vec::Vec<u8> {
        proto::CommandApdu::new(0, ins, 0, p2, data, None).to_vec()
    }

    /// The try must be on disk before the candidate is compared: with a write that fails,
    /// no PIN or PUK comparison happens at all, right or wrong, and the host learns nothing.
    #[test]
    fn no_comparison_without_the_spent_try_written() {
        extern crate std;
        let pin = *b"123456\xFF\xFF";
        let wrong = *b"000000\xFF\xFF";
        let puk = *b"12345678";
        let cases: [(&str, std::vec::Vec<u8>); 5] = [
            ("VERIFY right PIN", apdu(0x20, 0x80, &pin)),
            ("VERIFY wrong PIN", apdu(0x20, 0x80, &wrong)),
            ("CHANGE REFERENCE PIN", apdu(0x24, 0x80, &[pin, wrong].concat())),
            ("CHANGE REFERENCE PUK", apdu(0x24, 0x81, &[puk, puk].concat())),
            ("RESET RETRY COUNTER", apdu(0x2C, 0x80, &[puk, pin].concat())),
        ];
        for (what, cmd) in cases {
            let mut rng = crate::rng::make_rng(Some(5), 0);
            let state = factory_state(7, Flavor::Plain, &Defaults::factory(), &mut rng).unwrap();
            let mut card = Card::new(state, Broken, rng);
            let before = comparisons::made();
            let answer = card.transmit(&cmd);
            assert_eq!(&answer[..], &Sw::MEMORY_FAILURE.to_bytes(), "{what}");
            assert_eq!(comparisons::made(), before, "{what}: compared although the try was not written");
        }
        // And with storage that works, each of them does compare.
        let mut rng = crate::rng::make_rng(Some(5), 0);
        let state = factory_state(7, Flavor::Plain, &Defaults::factory(), &mut rng).unwrap();
        let mut card = Card::new(state, super::super::NoStorage, rng);
        let before = comparisons::made();
        assert_eq!(&card.transmit(&apdu(0x20, 0x80, &pin))[..], &Sw::OK.to_bytes());
        assert_eq!(comparisons::made(), before + 1);
    }
}
