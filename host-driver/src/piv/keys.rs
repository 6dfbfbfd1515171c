//! The slots' key pairs: generate (and replace, under one policy for the old certificate),
//! import, sign, ECDH.

use p256::elliptic_curve::sec1::ToEncodedPoint;
use proto::piv::{ins, Algorithm, PinPolicy, Slot, TouchPolicy};
use proto::{tlv, Sw, Transport};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::client::Piv;
use crate::error::{PivError, Result};

/// An ECDSA signature in both encodings hosts need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcdsaSignature {
    /// ASN.1 DER `SEQUENCE { r, s }`, as the card returns it (openssl's format).
    pub der: Vec<u8>,
    /// r || s, 64 bytes (WebCrypto's format).
    pub raw: [u8; 64],
}

/// Where a slot's public key was learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The caller's (a file the user kept), agreeing with the metadata where the card has them.
    Given,
    /// The card's metadata (Yubico GET METADATA).
    Metadata,
    /// The certificate in the slot (which names the slot's key only until it is replaced).
    Certificate,
}

/// Why the metadata did not tell a slot's public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataGap {
    /// The card has metadata, without a public key for the slot.
    NoPublicKey,
    /// No GET METADATA (a plain PIV card): what it answered.
    NotSupported(Sw),
    /// The card refused GET METADATA for the slot.
    Refused(Sw),
}

/// What is known about the public key of a slot's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotKey {
    Known(p256::PublicKey, KeySource),
    /// Nothing on the card tells it: why the metadata did not, and the slot's certificate
    /// (`None`: there is none; `Some(why)`: it names no P-256 key).
    Unknown {
        metadata: MetadataGap,
        certificate: Option<String>,
    },
    /// The given key is not the one the card's metadata name for the slot.
    Contradicted {
        given: p256::PublicKey,
        card: p256::PublicKey,
    },
}

/// What becomes of a slot's certificate when its key pair is replaced. Each caller states
/// its own: the CLI and the agent remove it (a certificate left behind names a key the card
/// no longer has, and every program reading the slot takes it for the slot's key); the agent
/// first refuses unless the holder asked to replace; the PKCS#11 module keeps it (there a
/// certificate is an object of its own, which the application deletes or replaces, as with
/// any PIV card's module).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OldCertificate {
    Keep,
    /// Deleted when it does not name the new key (which, for a new pair, it never does).
    RemoveIfStale,
    /// The slot is not regenerated while it holds a certificate ([`PivError::SlotInUse`]).
    RefuseIfPresent,
}

/// A slot's new key pair, and what became of its old certificate.
#[derive(Debug)]
pub struct Regenerated {
    pub public: p256::PublicKey,
    /// `Some` when a stale certificate was there: removed (`Ok`), or not (`Err`). Not an
    /// error of the regeneration: the new key exists either way, and its public key must
    /// reach the caller (on a card without metadata nothing else can tell it later).
    pub stale_certificate: Option<Result<()>>,
}

impl<T: Transport> Piv<T> {
    /// The public key of the key in `slot`, from where a card offers it: `given` (checked
    /// against the card's metadata when the card has them), else the metadata, else the slot's
    /// certificate. A slot the metadata report empty is [`PivError::Empty`].
    pub fn slot_public_key(&mut self, slot: Slot, given: Option<p256::PublicKey>) -> Result<SlotKey> {
        let (from_card, gap) = match self.metadata(slot.key_ref()) {
            Ok(m) => match m.public_key {
                Some(point) => (
                    Some(p256::PublicKey::from_sec1_bytes(&point).map_err(|_| {
                        PivError::malformed("get metadata", format!("slot {slot}'s public key is not a P-256 point"))
                    })?),
                    MetadataGap::NoPublicKey,
                ),
                None => (None, MetadataGap::NoPublicKey),
            },
            Err(e @ PivError::Empty { .. }) => return Err(e),
            Err(PivError::NotSupported { sw, .. }) => (None, MetadataGap::NotSupported(sw)),
            Err(PivError::Card { sw, .. }) => (None, MetadataGap::Refused(sw)),
            Err(e) => return Err(e),
        };
        match (given, from_card) {
            (Some(given), Some(card)) if given != card => return Ok(SlotKey::Contradicted { given, card }),
            (Some(given), _) => return Ok(SlotKey::Known(given, KeySource::Given)),
            (None, Some(card)) => return Ok(SlotKey::Known(card, KeySource::Metadata)),
            (None, None) => {}
        }
        Ok(match self.read_certificate(slot)? {
            Some(der) => match crate::certinfo::public_key(&der) {
                Ok(public) => SlotKey::Known(public, KeySource::Certificate),
                Err(e) => SlotKey::Unknown { metadata: gap, certificate: Some(e.to_string()) },
            },
            None => SlotKey::Unknown { metadata: gap, certificate: None },
        })
    }

    /// Replace the key pair in `slot` (GENERATE, after management-key authentication), and
    /// treat the certificate there as `old` says.
    pub fn regenerate(
        &mut self,
        slot: Slot,
        pin: Option<PinPolicy>,
        touch: Option<TouchPolicy>,
        old: OldCertificate,
    ) -> Result<Regenerated> {
        let certificate = match old {
            OldCertificate::Keep => None,
            _ => self.read_certificate(slot)?,
        };
        if old == OldCertificate::RefuseIfPresent && certificate.is_some() {
            return Err(PivError::SlotInUse { slot });
        }
        let public = self.generate(slot, pin, touch)?;
        let stale = certificate.filter(|der| crate::certinfo::public_key(der).ok() != Some(public));
        let stale_certificate = stale.map(|_| self.delete_certificate(slot));
        Ok(Regenerated { public, stale_certificate })
    }

    /// GENERATE ASYMMETRIC KEY PAIR (P-256). Needs management-key authentication.
    pub fn generate(
        &mut self,
        slot: Slot,
        pin: Option<PinPolicy>,
        touch: Option<TouchPolicy>,
    ) -> Result<p256::PublicKey> {
        const OP: &str = "generate key";
        let mut inner = vec![0x80, 0x01, Algorithm::EccP256 as u8];
        if let Some(p) = pin {
            inner.extend([0xAA, 0x01, p as u8]);
        }
        if let Some(t) = touch {
            inner.extend([0xAB, 0x01, t as u8]);
        }
        let resp = self.call(OP, ins::GENERATE, 0x00, slot.key_ref(), &tlv::to_vec(0xAC, &inner))?;
        let body = tlv::parse_exact(&resp, 0x7F49).map_err(|e| PivError::malformed(OP, format!("{e:?}")))?;
        let point = tlv::find(body, 0x86).ok().flatten().ok_or_else(|| PivError::malformed(OP, "no public point"))?;
        p256::PublicKey::from_sec1_bytes(point).map_err(|e| PivError::malformed(OP, e.to_string()))
    }

    /// IMPORT KEY (Yubico): put a P-256 private key in `slot`.
    pub fn import_key(
        &mut self,
        slot: Slot,
        key: &p256::SecretKey,
        pin: Option<PinPolicy>,
        touch: Option<TouchPolicy>,
    ) -> Result<()> {
        let scalar = Zeroizing::new(key.to_bytes());
        let mut data = Zeroizing::new(Vec::with_capacity(40));
        tlv::write(&mut *data, 0x06, &scalar[..]).map_err(|_| PivError::Input("key too long".into()))?;
        if let Some(p) = pin {
            data.extend([0xAA, 0x01, p as u8]);
        }
        if let Some(t) = touch {
            data.extend([0xAB, 0x01, t as u8]);
        }
        self.call("import key", ins::IMPORT_KEY, Algorithm::EccP256 as u8, slot.key_ref(), &data).map(|_| ())
    }

    /// Sign a digest of up to 32 bytes with the key in `slot`.
    pub fn sign_digest(&mut self, slot: Slot, digest: &[u8]) -> Result<EcdsaSignature> {
        const OP: &str = "sign";
        if digest.is_empty() || digest.len() > 32 {
            return Err(PivError::Input(format!("digest must be 1 to 32 bytes, got {}", digest.len())));
        }
        let mut inner = vec![0x82, 0x00];
        inner.extend(tlv::to_vec(0x81, digest));
        let der = self.general_authenticate(OP, slot, &inner, 0x82)?;
        let sig = p256::ecdsa::Signature::from_der(&der).map_err(|e| PivError::malformed(OP, e.to_string()))?;
        Ok(EcdsaSignature { der, raw: sig.to_bytes().into() })
    }

    /// SHA-256 the message on the host, sign the digest on the card.
    pub fn sign_message(&mut self, slot: Slot, message: &[u8]) -> Result<EcdsaSignature> {
        self.sign_digest(slot, &Sha256::digest(message))
    }

    /// ECDH with the key in `slot`; returns the shared x-coordinate.
    pub fn ecdh(&mut self, slot: Slot, peer: &p256::PublicKey) -> Result<Vec<u8>> {
        const OP: &str = "key agreement";
        let mut inner = vec![0x82, 0x00];
        inner.extend(tlv::to_vec(0x85, peer.to_encoded_point(false).as_bytes()));
        self.general_authenticate(OP, slot, &inner, 0x82)
    }

    /// GENERAL AUTHENTICATE with a P-256 key: send `7C { inner }`, return the value of
    /// `want` inside the `7C` answer.
    fn general_authenticate(&mut self, op: &'static str, slot: Slot, inner: &[u8], want: u32) -> Result<Vec<u8>> {
        let alg = Algorithm::EccP256 as u8;
        let resp = self.call(op, ins::GENERAL_AUTHENTICATE, alg, slot.key_ref(), &tlv::to_vec(0x7C, inner))?;
        tlv::parse_exact(&resp, 0x7C)
            .ok()
            .and_then(|b| tlv::find(b, want).ok().flatten())
            .map(<[u8]>::to_vec)
            .ok_or_else(|| PivError::malformed(op, format!("no {want:02X} inside the 7C answer")))
    }
}
