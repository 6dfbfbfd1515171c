//! What an SM2 key signs: not the message but e = SM3(Z_A ‖ M), where Z_A = SM3(ENTL ‖ ID ‖ a ‖
//! b ‖ xG ‖ yG ‖ xA ‖ yA) binds the signer's public key and distinguishing ID (GM/T 0003.2 §5.5).
//! SKF splits the work this way: the host computes e (SKF_DigestInit with the public key and
//! the ID), the key signs the 32 bytes. The ID is almost always the default one.

use primeorder::PrimeCurveParams;
use sm2::elliptic_curve::ff::PrimeField;
use sm2::elliptic_curve::sec1::ToEncodedPoint;
use sm2::Sm2;
use sm3::{Digest, Sm3};

/// The distinguishing ID everyone uses unless told otherwise (GM/T 0009).
pub const DEFAULT_ID: &[u8] = b"1234567812345678";

/// Why a Z_A cannot be computed.
#[derive(Debug, thiserror::Error)]
#[error("the distinguishing ID is {0} bytes; it must be shorter than 8,192 (its length in bits is two bytes)")]
pub struct IdTooLong(usize);

/// Z_A of `public` with distinguishing ID `id`.
pub fn z_a(public: &sm2::PublicKey, id: &[u8]) -> Result<[u8; 32], IdTooLong> {
    let bits = u16::try_from(id.len() * 8).map_err(|_| IdTooLong(id.len()))?;
    let point = public.to_encoded_point(false);
    let mut h = Sm3::new();
    h.update(bits.to_be_bytes());
    h.update(id);
    // The curve's a, b and generator, as the sm2 crate defines them (GM/T 0003.5).
    for field in [Sm2::EQUATION_A, Sm2::EQUATION_B, Sm2::GENERATOR.0, Sm2::GENERATOR.1] {
        h.update(field.to_repr());
    }
    h.update(point.x().expect("uncompressed"));
    h.update(point.y().expect("uncompressed"));
    Ok(h.finalize().into())
}

/// e = SM3(Z_A ‖ message): the 32 bytes the key signs.
pub fn digest(public: &sm2::PublicKey, id: &[u8], message: &[u8]) -> Result<[u8; 32], IdTooLong> {
    let mut h = Sm3::new();
    h.update(z_a(public, id)?);
    h.update(message);
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::skf::signature::Signature;
    use sm2::dsa::signature::hazmat::PrehashSigner;
    use sm2::dsa::signature::Verifier;

    /// A signature over our e, made by the key alone (as the card makes it), verifies with the
    /// `sm2` crate's whole-message verification, which computes Z_A itself: our e is its e.
    /// Through every fixed-size form of proto::skf::signature, too.
    #[test]
    fn a_prehash_signature_over_our_digest_verifies_as_a_message_signature() {
        for seed in 1u8..=8 {
            let secret = sm2::SecretKey::from_bytes(&[seed; 32].into()).unwrap();
            let signer = sm2::dsa::SigningKey::new("1234567812345678", &secret).unwrap();
            let verifier = sm2::dsa::VerifyingKey::new("1234567812345678", secret.public_key()).unwrap();
            let message = format!("login challenge {seed}");
            let e = digest(&secret.public_key(), DEFAULT_ID, message.as_bytes()).unwrap();
            let sig: sm2::dsa::Signature = signer.sign_prehash(&e).unwrap();
            verifier.verify(message.as_bytes(), &sig).expect("our e is the crate's e");
            assert!(verifier.verify(b"another message", &sig).is_err());

            let raw: [u8; 64] = sig.to_bytes();
            let forms = Signature::from_raw(&raw).unwrap();
            let back = Signature::from_blob(&forms.blob()).and_then(|s| Signature::from_answer(&s.answer())).unwrap();
            let again = sm2::dsa::Signature::from_bytes(&back.raw()).unwrap();
            verifier.verify(message.as_bytes(), &again).unwrap();
        }
        // Another ID is another e.
        let secret = sm2::SecretKey::from_bytes(&[9; 32].into()).unwrap();
        assert_ne!(
            digest(&secret.public_key(), b"ALICE123@YAHOO.COM", b"m").unwrap(),
            digest(&secret.public_key(), DEFAULT_ID, b"m").unwrap()
        );
        assert!(z_a(&secret.public_key(), &[0; 8192]).is_err());
    }
}
