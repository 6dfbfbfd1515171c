//! The card's state, split the way a real token splits it: what survives power-off
//! ([`PersistentState`]) and what a reset wipes ([`Session`]).

use core::fmt;

use heapless::Vec;
use proto::piv::{defaults, Algorithm, PinPolicy, Slot, TouchPolicy};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Largest data object (a certificate up to ~4 KB with its 53/70/71/FE wrapping).
pub const MAX_OBJECT: usize = 4096;
/// How many data objects the card can hold (the 4 + 20 certificates and the rest).
pub const MAX_OBJECTS: usize = 40;
/// PIN/PUK length limits (SP 800-73-4: 6 to 8 bytes, padded with FF).
pub const MIN_PIN_LEN: usize = 6;
pub const MAX_PIN_LEN: usize = 8;
/// Tools read tries from the low nibble of 63Cx, so limits stay within 1..=15.
pub const MAX_RETRIES: u8 = 15;

/// A PIN or PUK as the card keeps it: salted SHA-256 of its padded form, never the value.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Secret {
    salt: [u8; 16],
    hash: [u8; 32],
}

impl Secret {
    pub fn new(padded: &[u8; 8], salt: [u8; 16]) -> Self {
        Secret { hash: Self::digest(&salt, padded), salt }
    }

    fn digest(salt: &[u8; 16], padded: &[u8; 8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"ukey-pin-v1");
        h.update(salt);
        h.update(padded);
        h.finalize().into()
    }

    /// Constant-time comparison of the stored hash with the hash of `padded`.
    pub fn matches(&self, padded: &[u8; 8]) -> bool {
        Self::digest(&self.salt, padded).ct_eq(&self.hash).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Pad a PIN/PUK to the 8-byte FF-padded form; `None` if its length or bytes are not allowed.
pub fn pad_pin(pin: &[u8]) -> Option<[u8; 8]> {
    if !(MIN_PIN_LEN..=MAX_PIN_LEN).contains(&pin.len()) || pin.contains(&0xFF) {
        return None;
    }
    let mut out = [0xFF; 8];
    out[..pin.len()].copy_from_slice(pin);
    Some(out)
}

/// Check an already padded 8-byte PIN block as sent in VERIFY.
pub fn check_padded(block: &[u8]) -> Option<[u8; 8]> {
    let block: [u8; 8] = block.try_into().ok()?;
    let len = block.iter().position(|b| *b == 0xFF).unwrap_or(8);
    if len < MIN_PIN_LEN || block[len..].iter().any(|b| *b != 0xFF) {
        return None;
    }
    Some(block)
}

/// A retry counter: `remaining` out of `limit`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counter {
    pub limit: u8,
    pub remaining: u8,
}

impl Counter {
    pub const fn full(limit: u8) -> Self {
        Counter { limit, remaining: limit }
    }
    pub const fn blocked(&self) -> bool {
        self.remaining == 0
    }
}

/// PIN or PUK: its secret, its counter and whether it still has the factory value.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Credential {
    pub secret: Secret,
    pub counter: Counter,
    pub is_default: bool,
}

/// The symmetric management key (9B).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MgmtKey {
    pub alg: u8,
    pub key: Vec<u8, 32>,
    pub touch: bool,
}

impl MgmtKey {
    pub fn new(alg: Algorithm, key: &[u8]) -> Option<Self> {
        if alg.key_len()? != key.len() {
            return None;
        }
        Some(MgmtKey { alg: alg as u8, key: Vec::from_slice(key).ok()?, touch: false })
    }
    pub fn algorithm(&self) -> Algorithm {
        Algorithm::from_byte(self.alg).unwrap_or(Algorithm::Tdes)
    }
    pub fn is_default(&self) -> bool {
        self.alg == Algorithm::Tdes as u8 && self.key[..] == defaults::MANAGEMENT_KEY[..]
    }
}

impl fmt::Debug for MgmtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MgmtKey({}, <redacted>)", self.algorithm().name())
    }
}

/// How a private key came to be on the card.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Origin {
    Generated = 1,
    Imported = 2,
}

/// A P-256 private key in a slot, with its policies.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeySlot {
    scalar: [u8; 32],
    pub pin_policy: u8,
    pub touch_policy: u8,
    pub origin: Origin,
}

impl KeySlot {
    pub fn new(secret: &p256::SecretKey, pin: PinPolicy, touch: TouchPolicy, origin: Origin) -> Self {
        KeySlot { scalar: secret.to_bytes().into(), pin_policy: pin as u8, touch_policy: touch as u8, origin }
    }
    /// The private key. Crate-private: no command path exports it.
    pub(crate) fn secret(&self) -> p256::SecretKey {
        // The scalar was valid when stored; a corrupted store is caught by its checksum.
        p256::SecretKey::from_bytes(&self.scalar.into()).expect("stored scalar is a valid P-256 key")
    }
    /// ECDSA over a 32-byte prehash, deterministic k (RFC 6979), straight from the scalar.
    pub(crate) fn sign_prehash(&self, z: &[u8; 32]) -> Option<p256::ecdsa::Signature> {
        use ecdsa::hazmat::SignPrimitive;
        let scalar = *self.secret().to_nonzero_scalar();
        scalar.try_sign_prehashed_rfc6979::<sha2::Sha256>(&(*z).into(), &[]).ok().map(|(sig, _)| sig)
    }

    pub fn public_point(&self) -> [u8; 65] {
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&self.secret().public_key(), false);
        let mut out = [0u8; 65];
        out.copy_from_slice(point.as_bytes());
        out
    }
    pub fn pin_policy(&self) -> PinPolicy {
        PinPolicy::from_byte(self.pin_policy).unwrap_or(PinPolicy::Once)
    }
}

impl fmt::Debug for KeySlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySlot")
            .field("private", &"<redacted>")
            .field("pin_policy", &self.pin_policy)
            .field("touch_policy", &self.touch_policy)
            .field("origin", &self.origin)
            .finish()
    }
}

/// Data objects in one shared pool, as a token's object memory is: each object's whole
/// `53 L ...` value stored back to back, found through a small index.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Objects {
    /// (tag, offset, length) into `pool`.
    index: Vec<(u32, u16, u16), MAX_OBJECTS>,
    pool: Vec<u8, OBJECT_POOL>,
}

/// Total object memory (a YubiKey 5 has about 51 KB).
pub const OBJECT_POOL: usize = 48 * 1024;

/// Why an object could not be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectMemoryFull;

impl Objects {
    pub fn get(&self, tag: u32) -> Option<&[u8]> {
        let (_, off, len) = self.index.iter().find(|e| e.0 == tag)?;
        self.pool.get(*off as usize..*off as usize + *len as usize)
    }

    /// Store `value` under `tag`, replacing what was there; an empty value deletes.
    pub fn set(&mut self, tag: u32, value: &[u8]) -> Result<(), ObjectMemoryFull> {
        if value.len() > MAX_OBJECT {
            return Err(ObjectMemoryFull);
        }
        let old_len = self.index.iter().find(|e| e.0 == tag).map_or(0, |e| e.2 as usize);
        let is_new = old_len == 0 && !self.index.iter().any(|e| e.0 == tag);
        let fits = self.pool.len() - old_len + value.len() <= OBJECT_POOL;
        if !fits || (is_new && !value.is_empty() && self.index.is_full()) {
            return Err(ObjectMemoryFull);
        }
        self.remove(tag);
        if value.is_empty() {
            return Ok(());
        }
        let off = self.pool.len() as u16;
        self.pool.extend_from_slice(value).map_err(|_| ObjectMemoryFull)?;
        self.index.push((tag, off, value.len() as u16)).map_err(|_| ObjectMemoryFull)
    }

    fn remove(&mut self, tag: u32) {
        let Some(pos) = self.index.iter().position(|e| e.0 == tag) else { return };
        let (_, off, len) = self.index.swap_remove(pos);
        let (off, len) = (off as usize, len as usize);
        self.pool.copy_within(off + len.., off);
        self.pool.truncate(self.pool.len() - len);
        for e in self.index.iter_mut().filter(|e| e.1 as usize > off) {
            e.1 -= len as u16;
        }
    }

    pub fn tags(&self) -> impl Iterator<Item = u32> + '_ {
        self.index.iter().map(|e| e.0)
    }

    pub fn bytes_used(&self) -> usize {
        self.pool.len()
    }
}

impl fmt::Debug for Objects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.index.iter().map(|(t, _, l)| (*t, *l))).finish()
    }
}

/// Which firmware the card presents itself as.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Flavor {
    /// Answers the Yubico extensions and reports this firmware version.
    Yubico { version: [u8; 3] },
    /// A plain PIV card: Yubico instructions answer 6D00.
    Plain,
}

/// Everything that survives power-off. Written to storage before the card answers any
/// command that changed it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PersistentState {
    pub serial: u32,
    pub flavor: Flavor,
    pub pin: Credential,
    pub puk: Credential,
    pub mgmt: MgmtKey,
    pub keys: [Option<KeySlot>; Slot::COUNT],
    pub objects: Objects,
}

impl PersistentState {
    pub fn key(&self, slot: Slot) -> Option<&KeySlot> {
        self.keys[slot.index()].as_ref()
    }

    pub fn object(&self, tag: u32) -> Option<&[u8]> {
        self.objects.get(tag)
    }

    /// Store (or with an empty value, delete) an object. `Err` when the card is full.
    pub fn set_object(&mut self, tag: u32, value: &[u8]) -> Result<(), ObjectMemoryFull> {
        self.objects.set(tag, value)
    }
}

/// What a reset, a power-off or selecting another application wipes.
#[derive(Debug, Default)]
pub struct Session {
    pub pin_verified: bool,
    /// Set by a successful VERIFY; consumed by the very next PIN-always signature.
    pub pin_always: bool,
    pub mgmt_authenticated: bool,
    pub mgmt_pending: Option<MgmtChallenge>,
}

/// A management-key authentication in progress.
#[derive(Debug, Clone)]
pub enum MgmtChallenge {
    /// Mutual: the card sent E(witness) and waits for the witness back (plus a challenge).
    Witness(Vec<u8, 16>),
    /// External: the card sent a challenge and waits for E(challenge).
    Challenge(Vec<u8, 16>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_pool_replaces_deletes_and_compacts() {
        let mut o = Objects::default();
        o.set(1, &[1; 10]).unwrap();
        o.set(2, &[2; 20]).unwrap();
        o.set(3, &[3; 30]).unwrap();
        o.set(2, &[]).unwrap();
        assert_eq!(o.get(2), None);
        assert_eq!(o.get(3), Some(&[3u8; 30][..]));
        o.set(1, &[9; 5]).unwrap();
        assert_eq!((o.get(1), o.get(3)), (Some(&[9u8; 5][..]), Some(&[3u8; 30][..])));
        assert_eq!(o.bytes_used(), 35);
        assert_eq!(o.set(4, &[0; MAX_OBJECT + 1]), Err(ObjectMemoryFull));
        let mut tag = 100;
        while o.set(tag, &[7; MAX_OBJECT]).is_ok() {
            tag += 1;
        }
        assert!(o.bytes_used() <= OBJECT_POOL);
        assert_eq!(o.get(3), Some(&[3u8; 30][..]), "a full pool loses nothing");
    }

    #[test]
    fn pin_padding_rules() {
        assert_eq!(pad_pin(b"123456"), Some(*b"123456\xFF\xFF"));
        assert_eq!(pad_pin(b"12345678"), Some(*b"12345678"));
        assert_eq!(pad_pin(b"12345"), None);
        assert_eq!(pad_pin(b"123456789"), None);
        assert_eq!(check_padded(b"123456\xFF\xFF"), Some(*b"123456\xFF\xFF"));
        assert_eq!(check_padded(b"12345\xFF\xFF\xFF"), None);
        assert_eq!(check_padded(b"1234\xFF567\xFF"), None);
        assert_eq!(check_padded(b"123456\xFF"), None);
    }

    #[test]
    fn secret_matches_only_its_pin_and_hides_it() {
        let s = Secret::new(&pad_pin(b"123456").unwrap(), [7; 16]);
        assert!(s.matches(&pad_pin(b"123456").unwrap()));
        assert!(!s.matches(&pad_pin(b"123457").unwrap()));
        extern crate std;
        let dbg = std::format!("{s:?}");
        assert!(!dbg.contains("123456") && dbg.contains("redacted"));
    }
}
