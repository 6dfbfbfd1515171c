//! Certificates signed by the key itself: PKCS#10 requests and self-signed certificates.
//! The private key stays on the card; the x509-cert builders call back into it to sign.

use std::cell::RefCell;

use der::asn1::AnyRef;
use der::Encode;
use p256::ecdsa::{DerSignature, VerifyingKey};
use proto::piv::Slot;
use proto::Transport;
use spki::{AlgorithmIdentifier, SignatureAlgorithmIdentifier, SubjectPublicKeyInfoOwned};
use x509_cert::builder::{Builder, CertificateBuilder, Profile, RequestBuilder};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

use crate::error::{PivError, Result};
use crate::piv::Piv;

const ECDSA_WITH_SHA256: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// A signer whose private half is the key in a card slot.
struct CardSigner<'a, T> {
    piv: RefCell<&'a mut Piv<T>>,
    slot: Slot,
    public: VerifyingKey,
    /// The first card error, kept so the caller sees it rather than a generic signature error.
    error: RefCell<Option<PivError>>,
}

impl<T> signature::Keypair for CardSigner<'_, T> {
    type VerifyingKey = VerifyingKey;
    fn verifying_key(&self) -> VerifyingKey {
        self.public
    }
}

impl<T> SignatureAlgorithmIdentifier for CardSigner<'_, T> {
    type Params = AnyRef<'static>;
    const SIGNATURE_ALGORITHM_IDENTIFIER: AlgorithmIdentifier<AnyRef<'static>> =
        AlgorithmIdentifier { oid: ECDSA_WITH_SHA256, parameters: None };
}

impl<T: Transport> signature::Signer<DerSignature> for CardSigner<'_, T> {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<DerSignature, signature::Error> {
        let result = self.piv.borrow_mut().sign_message(self.slot, msg);
        match result {
            Ok(sig) => DerSignature::from_bytes(&sig.der),
            Err(e) => {
                self.error.borrow_mut().replace(e);
                Err(signature::Error::new())
            }
        }
    }
}

fn signer<'a, T: Transport>(piv: &'a mut Piv<T>, slot: Slot, public: &p256::PublicKey) -> CardSigner<'a, T> {
    CardSigner { piv: RefCell::new(piv), slot, public: VerifyingKey::from(public), error: RefCell::new(None) }
}

fn parse_name(subject: &str) -> Result<Name> {
    use std::str::FromStr;
    Name::from_str(subject).map_err(|e| {
        PivError::Input(format!("subject {subject:?} is not an RFC 4514 name ({e}); e.g. \"CN=Alice,O=Example\""))
    })
}

fn build_error<T>(s: &CardSigner<'_, T>, e: impl std::fmt::Display) -> PivError {
    s.error.borrow_mut().take().unwrap_or_else(|| PivError::Input(format!("building the request failed: {e}")))
}

/// That the card's signature over `signed` verifies with `public`: else `public` is not the
/// key in `slot` (a stale certificate, the wrong file) and what was built names another key.
fn check_signed_by(slot: Slot, public: &p256::PublicKey, signed: &[u8], signature: &[u8]) -> Result<()> {
    use signature::Verifier;
    let ok = p256::ecdsa::Signature::from_der(signature)
        .is_ok_and(|sig| VerifyingKey::from(public).verify(signed, &sig).is_ok());
    if ok {
        Ok(())
    } else {
        Err(PivError::NotTheSlotKey { slot })
    }
}

/// A PKCS#10 request (DER) for the key in `slot`, signed on the card (PIN as the slot demands).
/// `public` must be that key's public half: a request naming another key is refused
/// ([`PivError::NotTheSlotKey`]), never returned.
pub fn certificate_request<T: Transport>(
    piv: &mut Piv<T>,
    slot: Slot,
    public: &p256::PublicKey,
    subject: &str,
) -> Result<Vec<u8>> {
    let name = parse_name(subject)?;
    let s = signer(piv, slot, public);
    let builder = RequestBuilder::new(name, &s).map_err(|e| build_error(&s, e))?;
    let req = builder.build::<DerSignature>().map_err(|e| build_error(&s, e))?;
    let info = req.info.to_der().map_err(|e| PivError::Input(e.to_string()))?;
    check_signed_by(slot, public, &info, req.signature.raw_bytes())?;
    req.to_der().map_err(|e| PivError::Input(e.to_string()))
}

/// A self-signed certificate for the key in `slot` (whose public half `public` must be, as for
/// [`certificate_request`]), valid from `not_before` to `not_after`.
pub fn self_signed_certificate<T: Transport>(
    piv: &mut Piv<T>,
    slot: Slot,
    public: &p256::PublicKey,
    subject: &str,
    not_before: u64,
    not_after: u64,
) -> Result<Vec<u8>> {
    let name = parse_name(subject)?;
    let spki = SubjectPublicKeyInfoOwned::from_key(*public).map_err(|e| PivError::Input(e.to_string()))?;
    let time = |t| ca_time(t);
    let validity = Validity { not_before: time(not_before)?, not_after: time(not_after)? };
    let mut serial = [0u8; 16];
    p256::elliptic_curve::rand_core::RngCore::fill_bytes(&mut p256::elliptic_curve::rand_core::OsRng, &mut serial);
    serial[0] = (serial[0] & 0x7F) | 1;
    let serial = SerialNumber::new(&serial).map_err(|e| PivError::Input(e.to_string()))?;
    let s = signer(piv, slot, public);
    let builder =
        CertificateBuilder::new(Profile::Root, serial, validity, name, spki, &s).map_err(|e| build_error(&s, e))?;
    let cert = builder.build::<DerSignature>().map_err(|e| build_error(&s, e))?;
    let tbs = cert.tbs_certificate.to_der().map_err(|e| PivError::Input(e.to_string()))?;
    check_signed_by(slot, public, &tbs, cert.signature.raw_bytes())?;
    cert.to_der().map_err(|e| PivError::Input(e.to_string()))
}

fn ca_time(unix: u64) -> Result<x509_cert::time::Time> {
    let dt = der::DateTime::from_unix_duration(std::time::Duration::from_secs(unix))
        .map_err(|e| PivError::Input(format!("time out of range: {e}")))?;
    Ok(if dt.year() < 2050 {
        x509_cert::time::Time::UtcTime(
            der::asn1::UtcTime::from_date_time(dt).map_err(|e| PivError::Input(e.to_string()))?,
        )
    } else {
        x509_cert::time::Time::GeneralTime(der::asn1::GeneralizedTime::from_date_time(dt))
    })
}
