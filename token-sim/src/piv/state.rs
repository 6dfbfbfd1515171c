//! The card's state, split the way a real token splits it: what survives power-off
//! ([`PersistentState`]) and what a reset wipes ([`Session`]).

use core::fmt;

pub use super::persisted::Persisted;
use heapless::Vec;
use proto::piv::{defaults, Algorithm, PinPolicy, Slot, TouchPolicy};
use proto::secret::PinBlock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Largest data object (a certificate up to ~4 KB with its 53/70/71/FE wrapping).
pub const MAX_OBJECT: usize = 4096;
/// How many data objects the card can hold (the 4 + 20 certificates and the rest).
pub const MAX_OBJECTS: usize = 40;
/// Tools read tries from the low nibble of 63Cx, so limits stay within 1..=15.
pub const MAX_RETRIES: u8 = 15;

/// A PIN or PUK as the card keeps it: salted SHA-256 of its padded form, never the value.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    salt: [u8; 16],
    hash: [u8; 32],
}

impl Secret {
    pub fn new(padded: &PinBlock, salt: [u8; 16]) -> Self {
        Secret { hash: Self::digest(&salt, padded), salt }
    }

    fn digest(salt: &[u8; 16], padded: &PinBlock) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"ukey-pin-v1");
        h.update(salt);
        h.update(padded.as_bytes());
        h.finalize().into()
    }

    /// Constant-time comparison of the stored hash with the hash of `padded`. Only with the
    /// proof that a try was spent and written first, and one comparison per proof.
    pub fn matches(&self, padded: &PinBlock, _spent: Persisted) -> bool {
        #[cfg(all(test, feature = "std"))]
        comparisons::count();
        Self::digest(&self.salt, padded).ct_eq(&self.hash).into()
    }
}

/// How many PIN/PUK comparisons this thread made (unit tests of the ordering rule).
#[cfg(all(test, feature = "std"))]
pub(crate) mod comparisons {
    extern crate std;
    std::thread_local!(static COUNT: core::cell::Cell<usize> = const { core::cell::Cell::new(0) });
    pub fn count() {
        COUNT.with(|c| c.set(c.get() + 1));
    }
    pub fn made() -> usize {
        COUNT.with(|c| c.get())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.salt.zeroize();
        self.hash.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Pad a PIN/PUK to the 8-byte FF-padded form; `None` if its length or bytes are not allowed.
pub fn pad_pin(pin: &[u8]) -> Option<PinBlock> {
    PinBlock::pad(pin)
}

/// A retry counter: `remaining` out of `limit`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub secret: Secret,
    pub counter: Counter,
    pub is_default: bool,
}

/// The symmetric management key (9B).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
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

impl Drop for MgmtKey {
    fn drop(&mut self) {
        self.key.as_mut_slice().zeroize();
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
#[serde(deny_unknown_fields)]
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
        // The scalar was valid when stored, and a state file is validated on load.
        p256::SecretKey::from_bytes(&self.scalar.into()).expect("stored scalar is a valid P-256 key")
    }
    /// ECDSA over a 32-byte prehash, deterministic k (RFC 6979), straight from the scalar: the
    /// steps of ecdsa's `hazmat::sign_prehashed`, with k·G from [`generator`](super::generator).
    pub(crate) fn sign_prehash(&self, z: &[u8; 32]) -> Option<p256::ecdsa::Signature> {
        use p256::elliptic_curve::{ops::Reduce, point::AffineCoordinates, Curve, FieldBytesEncoding, PrimeField};
        use p256::{NistP256, Scalar, U256};
        let d = *self.secret().to_nonzero_scalar();
        let order = NistP256::ORDER.encode_field_bytes();
        let k = rfc6979::generate_k::<Sha256, _>(&d.to_repr(), &order, &(*z).into(), &[]);
        let k = Option::<Scalar>::from(Scalar::from_repr(k))?;
        let k_inv = Option::<Scalar>::from(k.invert())?;
        let r = <Scalar as Reduce<U256>>::reduce_bytes(&super::generator::mul(&k).to_affine().x());
        let z = <Scalar as Reduce<U256>>::reduce_bytes(&(*z).into());
        // from_scalars refuses r = 0 or s = 0.
        p256::ecdsa::Signature::from_scalars(r, k_inv * (z + r * d)).ok()
    }

    pub fn public_point(&self) -> [u8; 65] {
        let public = super::generator::mul(&self.secret().to_nonzero_scalar()).to_affine();
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&public, false);
        let mut out = [0u8; 65];
        out.copy_from_slice(point.as_bytes());
        out
    }
    pub fn pin_policy(&self) -> PinPolicy {
        PinPolicy::from_byte(self.pin_policy).unwrap_or(PinPolicy::Once)
    }
}

impl Drop for KeySlot {
    fn drop(&mut self) {
        self.scalar.zeroize();
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
#[serde(deny_unknown_fields)]
pub struct Objects {
    /// (tag, offset, length) into `pool`.
    index: Vec<(u32, u16, u16), MAX_OBJECTS>,
    pool: super::buf::Buf<OBJECT_POOL>,
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
#[serde(deny_unknown_fields)]
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

/// A management-key authentication in progress. Whoever knows the pending witness could
/// finish it: never printed, wiped when done.
#[derive(Clone)]
pub enum MgmtChallenge {
    /// Mutual: the card sent E(witness) and waits for the witness back (plus a challenge).
    Witness(Block),
    /// External: the card sent a challenge and waits for E(challenge).
    Challenge(Block),
}

impl fmt::Debug for MgmtChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MgmtChallenge::Witness(_) => f.write_str("Witness(<redacted>)"),
            MgmtChallenge::Challenge(_) => f.write_str("Challenge(<redacted>)"),
        }
    }
}

/// One cipher block of a management-key authentication.
pub type Block = super::buf::Buf<16>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The card's signer (k·G from the generator table) gives exactly the signature ecdsa's own
    /// RFC 6979 signer gives, and the public point is p256's.
    #[test]
    fn signatures_are_ecdsas_own_and_verify() {
        use ecdsa::hazmat::SignPrimitive;
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        let mut rng = rand_core::OsRng;
        for i in 0..32u8 {
            let secret = p256::SecretKey::random(&mut rng);
            let slot = KeySlot::new(&secret, PinPolicy::Once, TouchPolicy::Never, Origin::Generated);
            let z: [u8; 32] = if i == 0 { [0xff; 32] } else { Sha256::digest([i]).into() };
            let ours = slot.sign_prehash(&z).unwrap();
            let (theirs, _) = secret.to_nonzero_scalar().try_sign_prehashed_rfc6979::<Sha256>(&z.into(), &[]).unwrap();
            assert_eq!(ours, theirs);
            let public = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
            assert_eq!(slot.public_point()[..], public.as_bytes()[..]);
            p256::ecdsa::VerifyingKey::from(secret.public_key()).verify_prehash(&z, &ours).unwrap();
        }
    }

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

    /// Fill the pool with `n` objects of `len` bytes (tags 1..=n).
    fn filled(n: u32, len: usize) -> Objects {
        let mut o = Objects::default();
        for tag in 1..=n {
            o.set(tag, &vec_of(tag as u8, len)).unwrap();
        }
        o
    }

    fn vec_of(b: u8, len: usize) -> heapless::Vec<u8, MAX_OBJECT> {
        let mut v = heapless::Vec::new();
        v.resize(len, b).unwrap();
        v
    }

    #[test]
    fn object_pool_fills_to_the_byte_and_refuses_without_losing_anything() {
        // 12 objects of 4096 bytes = 48 KiB: the pool exactly.
        let mut o = filled(12, MAX_OBJECT);
        assert_eq!(o.bytes_used(), OBJECT_POOL);
        assert_eq!(o.set(13, &[1]), Err(ObjectMemoryFull), "one byte more");
        assert_eq!(o.bytes_used(), OBJECT_POOL, "a refused object takes no memory");
        // Replacing an object in a full pool counts the space it gives back.
        o.set(5, &vec_of(0x55, MAX_OBJECT)).unwrap();
        assert_eq!(o.get(5), Some(&vec_of(0x55, MAX_OBJECT)[..]));
        o.set(5, &vec_of(0x56, 100)).unwrap();
        o.set(13, &vec_of(13, MAX_OBJECT - 100)).unwrap();
        assert_eq!(o.bytes_used(), OBJECT_POOL);
        // A replacement that does not fit leaves the old value where it was.
        assert_eq!(o.set(5, &vec_of(0x57, 101)), Err(ObjectMemoryFull));
        assert_eq!(o.get(5), Some(&vec_of(0x56, 100)[..]), "old value kept");
        // Deleting what is not there, in a full pool, is fine.
        assert_eq!(o.set(99, &[]), Ok(()));
    }

    #[test]
    fn object_index_full_refuses_only_new_objects() {
        let mut o = filled(MAX_OBJECTS as u32, 10);
        let used = o.bytes_used();
        assert_eq!(o.set(1000, &[1, 2, 3]), Err(ObjectMemoryFull), "no index entry left");
        assert_eq!((o.bytes_used(), o.get(1000)), (used, None), "nothing half-stored");
        o.set(7, &[7; 3]).unwrap();
        assert_eq!(o.get(7), Some(&[7u8; 3][..]), "replacing needs no new entry");
        o.set(1000, &[]).unwrap();
        o.set(8, &[]).unwrap();
        o.set(1000, &[1, 2, 3]).unwrap();
        assert_eq!(o.get(1000), Some(&[1u8, 2, 3][..]), "a deletion frees an entry");
        let mut tags: heapless::Vec<u32, MAX_OBJECTS> = o.tags().collect();
        tags.sort_unstable();
        assert_eq!(tags.len(), MAX_OBJECTS);
        assert!(tags.contains(&1000) && !tags.contains(&8) && tags.contains(&1));
    }

    /// A `53 82 hi lo ...` object of `len` bytes in all.
    fn object_of(len: usize) -> heapless::Vec<u8, { MAX_OBJECT + 8 }> {
        let body = len - 4;
        let mut v = heapless::Vec::from_slice(&[0x53, 0x82, (body >> 8) as u8, body as u8]).unwrap();
        v.resize(len, 0xEE).unwrap();
        v
    }

    #[test]
    fn validation_bounds_each_object_to_the_largest_a_card_stores() {
        let mut o = Objects::default();
        o.set(0x5FC105, &object_of(MAX_OBJECT)).unwrap();
        assert_eq!(o.validate(), Ok(()), "an object of exactly {MAX_OBJECT} bytes");
        // Forged: one byte more than PUT DATA stores, the pool and the TLV otherwise sound.
        let mut forged = Objects::default();
        forged.pool.extend_from_slice(&object_of(MAX_OBJECT + 1)).unwrap();
        forged.index.push((0x5FC105, 0, MAX_OBJECT as u16 + 1)).unwrap();
        assert!(
            matches!(forged.validate(), Err(InvalidState::ObjectBounds { len: 4097, .. })),
            "{:?}",
            forged.validate()
        );
        forged.index[0].2 = 0;
        assert!(matches!(forged.validate(), Err(InvalidState::ObjectBounds { len: 0, .. })));
    }

    #[test]
    fn only_the_factory_3des_key_is_default() {
        let factory = MgmtKey::new(Algorithm::Tdes, &defaults::MANAGEMENT_KEY).unwrap();
        assert!(factory.is_default());
        assert!(!MgmtKey::new(Algorithm::Tdes, &[9; 24]).unwrap().is_default());
        assert!(!MgmtKey::new(Algorithm::Aes192, &defaults::MANAGEMENT_KEY).unwrap().is_default());
        assert_eq!(MgmtKey::new(Algorithm::Aes128, &[1; 24]), None, "wrong length for the algorithm");
    }

    #[test]
    fn debug_shows_what_is_not_secret() {
        extern crate std;
        let mgmt = MgmtKey::new(Algorithm::Aes128, &[0x42; 16]).unwrap();
        let dbg = std::format!("{mgmt:?}");
        assert!(dbg.contains("MgmtKey") && dbg.contains("AES") && !dbg.contains("42"), "{dbg}");
        let sk = p256::SecretKey::from_slice(&[0x11; 32]).unwrap();
        let slot = KeySlot::new(&sk, PinPolicy::Always, TouchPolicy::Never, Origin::Imported);
        let dbg = std::format!("{slot:?}");
        assert!(dbg.contains("KeySlot") && dbg.contains("Imported") && dbg.contains("redacted"), "{dbg}");
        let mut o = Objects::default();
        o.set(0x5FC105, &[0x53, 1, 0]).unwrap();
        assert_eq!(std::format!("{o:?}"), "{6275333: 3}");
        let pending = MgmtChallenge::Witness(Block::from_slice(&[0x42; 8]).unwrap());
        assert_eq!(std::format!("{pending:?}"), "Witness(<redacted>)");
        let pending = MgmtChallenge::Challenge(Block::from_slice(&[0x42; 8]).unwrap());
        assert_eq!(std::format!("{pending:?}"), "Challenge(<redacted>)");
    }

    #[test]
    fn pin_padding_rules() {
        assert_eq!(pad_pin(b"123456").unwrap().as_bytes(), b"123456\xFF\xFF");
        assert_eq!(pad_pin(b"12345678").unwrap().as_bytes(), b"12345678");
        assert_eq!(pad_pin(b"12345"), None);
        assert_eq!(pad_pin(b"123456789"), None);
    }

    #[test]
    fn secret_matches_only_its_pin_and_hides_it() {
        let s = Secret::new(&pad_pin(b"123456").unwrap(), [7; 16]);
        assert!(s.matches(&pad_pin(b"123456").unwrap(), Persisted::for_tests()));
        assert!(!s.matches(&pad_pin(b"123457").unwrap(), Persisted::for_tests()));
        extern crate std;
        let dbg = std::format!("{s:?}");
        assert!(!dbg.contains("123456") && dbg.contains("redacted"));
    }
}

/// Why a decoded state cannot be run: a value no sequence of commands could have produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidState {
    Counter { which: &'static str, remaining: u8, limit: u8 },
    MgmtKey { alg: u8, len: usize },
    KeyScalar { slot: u8 },
    KeyPolicy { slot: u8, pin: u8, touch: u8 },
    ObjectTag { tag: u32 },
    DuplicateObject { tag: u32 },
    ObjectBounds { tag: u32, offset: u16, len: u16, pool: usize },
    ObjectLayout { used: usize, pool: usize },
    ObjectFormat { tag: u32 },
}

impl fmt::Display for InvalidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            InvalidState::Counter { which, remaining, limit } => write!(
                f,
                "{which} counter {remaining} of {limit} (a limit is 1 to {MAX_RETRIES}, what remains at most the limit)"
            ),
            InvalidState::MgmtKey { alg, len } => {
                write!(f, "management key of {len} bytes for algorithm {alg:#04x}")
            }
            InvalidState::KeyScalar { slot } => write!(f, "slot {slot:02X} holds no valid P-256 private key"),
            InvalidState::KeyPolicy { slot, pin, touch } => {
                write!(f, "slot {slot:02X} has PIN policy {pin} / touch policy {touch} (1 to 3 each)")
            }
            InvalidState::ObjectTag { tag } => write!(f, "object {tag:06X} is not a PIV data object"),
            InvalidState::DuplicateObject { tag } => write!(f, "object {tag:06X} is stored twice"),
            InvalidState::ObjectBounds { tag, offset, len, pool } => {
                write!(f, "object {tag:06X} at {offset}+{len} lies outside the {pool}-byte object memory")
            }
            InvalidState::ObjectLayout { used, pool } => {
                write!(f, "objects cover {used} bytes of a {pool}-byte object memory (overlap or gap)")
            }
            InvalidState::ObjectFormat { tag } => write!(f, "object {tag:06X} is not one 53 TLV"),
        }
    }
}

impl Counter {
    fn validate(&self, which: &'static str) -> Result<(), InvalidState> {
        if (1..=MAX_RETRIES).contains(&self.limit) && self.remaining <= self.limit {
            Ok(())
        } else {
            Err(InvalidState::Counter { which, remaining: self.remaining, limit: self.limit })
        }
    }
}

impl MgmtKey {
    fn validate(&self) -> Result<(), InvalidState> {
        let fits = Algorithm::from_byte(self.alg)
            .filter(|a| a.block_len().is_some())
            .and_then(Algorithm::key_len)
            .is_some_and(|n| n == self.key.len());
        if fits {
            Ok(())
        } else {
            Err(InvalidState::MgmtKey { alg: self.alg, len: self.key.len() })
        }
    }
}

impl KeySlot {
    fn validate(&self, slot: u8) -> Result<(), InvalidState> {
        if p256::SecretKey::from_bytes(&self.scalar.into()).is_err() {
            return Err(InvalidState::KeyScalar { slot });
        }
        if PinPolicy::from_byte(self.pin_policy).is_none() || TouchPolicy::from_byte(self.touch_policy).is_none() {
            return Err(InvalidState::KeyPolicy { slot, pin: self.pin_policy, touch: self.touch_policy });
        }
        Ok(())
    }
}

impl Objects {
    /// Every object a PIV tag stored once, inside the pool as one `53` TLV, and the
    /// objects tiling the pool back to back (as `set` and `remove` keep it).
    fn validate(&self) -> Result<(), InvalidState> {
        let pool = self.pool.len();
        let mut by_offset: Vec<(u16, u16), MAX_OBJECTS> = Vec::new();
        for (i, &(tag, offset, len)) in self.index.iter().enumerate() {
            if !proto::piv::object::writable(tag) {
                return Err(InvalidState::ObjectTag { tag });
            }
            if self.index[..i].iter().any(|e| e.0 == tag) {
                return Err(InvalidState::DuplicateObject { tag });
            }
            let end = offset as usize + len as usize;
            if len == 0 || len as usize > MAX_OBJECT || end > pool {
                return Err(InvalidState::ObjectBounds { tag, offset, len, pool });
            }
            if proto::tlv::parse_exact(&self.pool[offset as usize..end], 0x53).is_err() {
                return Err(InvalidState::ObjectFormat { tag });
            }
            let _ = by_offset.push((offset, len));
        }
        by_offset.sort_unstable();
        let mut used = 0usize;
        for (offset, len) in by_offset {
            if offset as usize != used {
                return Err(InvalidState::ObjectLayout { used, pool });
            }
            used += len as usize;
        }
        if used != pool {
            return Err(InvalidState::ObjectLayout { used, pool });
        }
        Ok(())
    }
}

impl PersistentState {
    /// Check every value a state file could carry; a state that passes runs without panics
    /// and means what a card could have come to by commands.
    pub fn validate(&self) -> Result<(), InvalidState> {
        self.pin.counter.validate("PIN")?;
        self.puk.counter.validate("PUK")?;
        self.mgmt.validate()?;
        for (index, key) in self.keys.iter().enumerate() {
            if let (Some(key), Some(slot)) = (key, Slot::from_index(index)) {
                key.validate(slot.key_ref())?;
            }
        }
        self.objects.validate()
    }
}
