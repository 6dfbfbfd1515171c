//! The slots' key pairs: generate, import, sign, ECDH.

use p256::elliptic_curve::sec1::ToEncodedPoint;
use proto::piv::{ins, Algorithm, PinPolicy, Slot, TouchPolicy};
use proto::{tlv, Transport};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::Piv;
use crate::error::{PivError, Result};

/// An ECDSA signature in both encodings hosts need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcdsaSignature {
    /// ASN.1 DER `SEQUENCE { r, s }`, as the card returns it (openssl's format).
    pub der: Vec<u8>,
    /// r || s, 64 bytes (WebCrypto's format).
    pub raw: [u8; 64],
}

impl<T: Transport> Piv<T> {
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
