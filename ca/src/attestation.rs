//! PIV key attestation, as Yubico defines it and ukey's virtual keys follow it: a key pair
//! generated on the token gets an ATTEST certificate signed by the token's own attestation
//! key (slot F9), whose certificate the manufacturer's CA issued. A chain from the attestation
//! up to a manufacturer CA the verifier trusts shows the key pair was made inside a token of
//! that make (a token attests only keys it generated) and cannot be copied out; the
//! attestation's extensions name the token's serial and firmware and the key's PIN and touch
//! policies.
//!
//! The path check is written here over x509-cert: it is one fixed shape (attestation <- F9 <-
//! a trusted CA), and the path-validation crates of the field are built for TLS (name and EKU
//! rules that attestation certificates do not follow) or pull in a TLS crypto backend.
//! Signatures: ECDSA P-256 with SHA-256 (ukey's factory, P-256 tokens) and RSA PKCS#1 v1.5
//! with SHA-256 (Yubico's attestation CAs and the F9 keys of YubiKeys).

use der::oid::ObjectIdentifier;
use der::{Decode, Encode};
use proto::piv::{PinPolicy, TouchPolicy};
use spki::{DecodePublicKey, SubjectPublicKeyInfoOwned};
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::Certificate;

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
/// Yubico's attestation extensions (developers.yubico.com, "PIV attestation").
pub const YUBICO_FIRMWARE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.3");
pub const YUBICO_SERIAL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.7");
pub const YUBICO_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.8");

#[derive(Debug, thiserror::Error)]
pub enum AttestationError {
    #[error("the {which} certificate is malformed: {reason}")]
    Malformed { which: &'static str, reason: String },
    #[error("the attestation certificate is not signed by the key's attestation key (F9)")]
    NotSignedByF9,
    #[error(
        "the key's attestation certificate (F9, issued by \"{issuer}\") does not come from a trusted manufacturer \
         (trusted: {trusted})"
    )]
    Untrusted { issuer: String, trusted: String },
    #[error(
        "the {which} certificate is not valid at this time (valid from {not_before} to {not_after}, Unix seconds)"
    )]
    NotValidNow { which: &'static str, not_before: u64, not_after: u64 },
    #[error("the {which} certificate is signed with {oid}; ukey verifies ECDSA P-256 and RSA with SHA-256")]
    UnsupportedAlgorithm { which: &'static str, oid: String },
    #[error("no attestation roots are configured, so no key can prove where it was made")]
    NoRoots,
    #[error("the attestation roots are unusable: {0}")]
    BadRoots(String),
}

/// The manufacturer CAs a verifier trusts. Every certificate in the set is a trust anchor:
/// for keys whose F9 certificate a manufacturer's intermediate CA issued (YubiKey 5.7 and
/// later), put that intermediate in the set too.
#[derive(Clone, Default)]
pub struct Roots {
    certs: Vec<Certificate>,
}

impl std::fmt::Debug for Roots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.subjects()).finish()
    }
}

impl Roots {
    /// Every `CERTIFICATE` block of a PEM file. Each must be a CA certificate.
    pub fn from_pem(pem: &[u8]) -> Result<Roots, AttestationError> {
        let certs = Certificate::load_pem_chain(pem).map_err(|e| AttestationError::BadRoots(e.to_string()))?;
        if certs.is_empty() {
            return Err(AttestationError::BadRoots("the file holds no PEM certificate".into()));
        }
        let mut roots = Roots::default();
        for cert in certs {
            roots.push(cert)?;
        }
        Ok(roots)
    }

    /// Add one certificate (DER).
    pub fn add_der(&mut self, der: &[u8]) -> Result<(), AttestationError> {
        let cert = Certificate::from_der(der).map_err(|e| AttestationError::BadRoots(e.to_string()))?;
        self.push(cert)
    }

    fn push(&mut self, cert: Certificate) -> Result<(), AttestationError> {
        if !is_ca(&cert) {
            return Err(AttestationError::BadRoots(format!(
                "{} is not a CA certificate (basicConstraints cA is not set)",
                cert.tbs_certificate.subject
            )));
        }
        if !self.certs.contains(&cert) {
            self.certs.push(cert);
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
    pub fn len(&self) -> usize {
        self.certs.len()
    }
    pub fn subjects(&self) -> Vec<String> {
        self.certs.iter().map(|c| c.tbs_certificate.subject.to_string()).collect()
    }
}

/// What a verified attestation says about the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attested {
    /// The attested key: generated on the token, never outside it.
    pub public_key: SubjectPublicKeyInfoOwned,
    /// The token's serial number, when the attestation names it.
    pub serial: Option<u64>,
    /// The token's firmware version, when named.
    pub firmware: Option<[u8; 3]>,
    /// When the token asks for the PIN before using the key; `None` when not named.
    pub pin_policy: Option<PinPolicy>,
    pub touch_policy: Option<TouchPolicy>,
    /// The trusted CA the chain ends at.
    pub manufacturer: String,
}

impl Attested {
    /// Whether the attestation is about the key of `spki` (a CSR's or certificate's).
    pub fn certifies(&self, spki: &SubjectPublicKeyInfoOwned) -> bool {
        self.public_key.algorithm == spki.algorithm && self.public_key.subject_public_key == spki.subject_public_key
    }

    /// "5.4.3".
    pub fn firmware_string(&self) -> Option<String> {
        self.firmware.map(|[a, b, c]| format!("{a}.{b}.{c}"))
    }
}

/// Check `attestation` (the key's ATTEST certificate, DER) and `f9` (the token's attestation
/// certificate, DER) up to `roots`, at time `now` (Unix seconds).
pub fn verify(attestation: &[u8], f9: &[u8], roots: &Roots, now: u64) -> Result<Attested, AttestationError> {
    if roots.is_empty() {
        return Err(AttestationError::NoRoots);
    }
    let leaf = parse("attestation", attestation)?;
    let f9 = parse("F9 attestation", f9)?;
    valid_now("attestation", &leaf, now)?;
    valid_now("F9 attestation", &f9, now)?;
    if leaf.tbs_certificate.issuer != f9.tbs_certificate.subject
        || !signed_by("attestation", &leaf, &f9.tbs_certificate.subject_public_key_info)?
    {
        return Err(AttestationError::NotSignedByF9);
    }
    // The F9 certificate certifies a signing key (a CA, or an old v1 certificate that cannot
    // say): any other certificate a trusted CA issued (a user's, whose key its owner holds)
    // must not pass for one.
    let v1 = f9.tbs_certificate.version == x509_cert::Version::V1;
    if !is_ca(&f9) && !v1 {
        return Err(AttestationError::Malformed {
            which: "F9 attestation",
            reason: "it is not a CA certificate (basicConstraints cA is not set)".into(),
        });
    }
    let manufacturer = issuer_in(&f9, roots, now)?;
    let ext = |oid: ObjectIdentifier| {
        leaf.tbs_certificate.extensions.iter().flatten().find(|e| e.extn_id == oid).map(|e| e.extn_value.as_bytes())
    };
    let malformed = |reason: &str| AttestationError::Malformed { which: "attestation", reason: reason.into() };
    let serial = match ext(YUBICO_SERIAL) {
        Some(v) => Some(u64::from_der(v).map_err(|_| malformed("the serial extension is not an INTEGER"))?),
        None => None,
    };
    let firmware = match ext(YUBICO_FIRMWARE) {
        Some(v) => Some(<[u8; 3]>::try_from(v).map_err(|_| malformed("the firmware extension is not 3 bytes"))?),
        None => None,
    };
    let (pin_policy, touch_policy) = match ext(YUBICO_POLICY) {
        Some([pin, touch, ..]) => (PinPolicy::from_byte(*pin), TouchPolicy::from_byte(*touch)),
        Some(_) => return Err(malformed("the policy extension is shorter than 2 bytes")),
        None => (None, None),
    };
    Ok(Attested {
        public_key: leaf.tbs_certificate.subject_public_key_info,
        serial,
        firmware,
        pin_policy,
        touch_policy,
        manufacturer,
    })
}

fn parse(which: &'static str, der: &[u8]) -> Result<Certificate, AttestationError> {
    Certificate::from_der(der).map_err(|e| AttestationError::Malformed { which, reason: e.to_string() })
}

fn valid_now(which: &'static str, cert: &Certificate, now: u64) -> Result<(), AttestationError> {
    let v = &cert.tbs_certificate.validity;
    let (not_before, not_after) = (v.not_before.to_unix_duration().as_secs(), v.not_after.to_unix_duration().as_secs());
    if now < not_before || now > not_after {
        return Err(AttestationError::NotValidNow { which, not_before, not_after });
    }
    Ok(())
}

fn is_ca(cert: &Certificate) -> bool {
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == BASIC_CONSTRAINTS)
        .and_then(|e| BasicConstraints::from_der(e.extn_value.as_bytes()).ok())
        .is_some_and(|bc| bc.ca)
}

/// The trusted CA that signed `f9`, by subject.
fn issuer_in(f9: &Certificate, roots: &Roots, now: u64) -> Result<String, AttestationError> {
    // The first root that signed it and is valid now: a root renewed with the same key may
    // be there twice, once expired.
    let mut expired = None;
    for root in &roots.certs {
        if root.tbs_certificate.subject == f9.tbs_certificate.issuer
            && signed_by("F9 attestation", f9, &root.tbs_certificate.subject_public_key_info)?
        {
            match valid_now("manufacturer CA", root, now) {
                Ok(()) => return Ok(root.tbs_certificate.subject.to_string()),
                Err(e) => expired = Some(e),
            }
        }
    }
    if let Some(e) = expired {
        return Err(e);
    }
    Err(AttestationError::Untrusted {
        issuer: f9.tbs_certificate.issuer.to_string(),
        trusted: roots.subjects().iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", "),
    })
}

/// Whether `cert`'s signature verifies under `issuer`. A key that cannot be read as the
/// signature algorithm's kind is a failed signature, not an error.
fn signed_by(
    which: &'static str,
    cert: &Certificate,
    issuer: &SubjectPublicKeyInfoOwned,
) -> Result<bool, AttestationError> {
    let malformed = |reason: String| AttestationError::Malformed { which, reason };
    let tbs = cert.tbs_certificate.to_der().map_err(|e| malformed(e.to_string()))?;
    let Some(sig) = cert.signature.as_bytes() else { return Ok(false) };
    let issuer_der = issuer.to_der().map_err(|e| malformed(e.to_string()))?;
    let oid = cert.signature_algorithm.oid;
    Ok(if oid == ECDSA_WITH_SHA256 {
        use p256::ecdsa::signature::Verifier;
        let (Ok(key), Ok(sig)) =
            (p256::ecdsa::VerifyingKey::from_public_key_der(&issuer_der), p256::ecdsa::Signature::from_der(sig))
        else {
            return Ok(false);
        };
        key.verify(&tbs, &sig).is_ok()
    } else if oid == SHA256_WITH_RSA {
        use rsa::signature::Verifier;
        let (Ok(key), Ok(sig)) =
            (rsa::RsaPublicKey::from_public_key_der(&issuer_der), rsa::pkcs1v15::Signature::try_from(sig))
        else {
            return Ok(false);
        };
        rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key).verify(&tbs, &sig).is_ok()
    } else {
        return Err(AttestationError::UnsupportedAlgorithm { which, oid: oid.to_string() });
    })
}
