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
/// How many data objects the card can hold.
pub const MAX_OBJECTS: usize = 24;
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

/// A stored data object: its tag and the whole `53 L ...` value as written by PUT DATA.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DataObject {
    pub tag: u32,
    pub value: Vec<u8, MAX_OBJECT>,
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
    pub objects: Vec<DataObject, MAX_OBJECTS>,
}

impl PersistentState {
    pub fn key(&self, slot: Slot) -> Option<&KeySlot> {
        self.keys[slot.index()].as_ref()
    }

    pub fn object(&self, tag: u32) -> Option<&[u8]> {
        self.objects.iter().find(|o| o.tag == tag).map(|o| &o.value[..])
    }

    /// Store (or with an empty value, delete) an object. `Err` when the card is full.
    pub fn set_object(&mut self, tag: u32, value: &[u8]) -> Result<(), ()> {
        self.objects.retain(|o| o.tag != tag);
        if value.is_empty() {
            return Ok(());
        }
        let value = Vec::from_slice(value).map_err(|_| ())?;
        self.objects.push(DataObject { tag, value }).map_err(|_| ())
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
