//! A certificate only for a key pair generated on a USB-Key: an application is confirmed with
//! the key's CSR *and* the key's attestation of it (the ATTEST certificate and the F9
//! certificate, see [`ca::attestation`]), and this is the rule that judges them. A CSR made in
//! software has a valid self-signature too; only a manufacturer's chain tells them apart.

use ca::attestation::{self, AttestationError, Attested, Roots};
use proto::piv::PinPolicy;
use serde::{Deserialize, Serialize};

/// Where the key pair of an application was made, from its attestation: stored with the
/// application and its certificate, shown to staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyOrigin {
    /// The token's serial number, when the attestation names it.
    pub serial: Option<i64>,
    /// The token's firmware ("5.4.3"), when named.
    pub firmware: Option<String>,
    /// The manufacturer CA the attestation chains to.
    pub manufacturer: String,
}

/// Why a key pair is not accepted as generated on a USB-Key.
#[derive(Debug, thiserror::Error)]
pub enum KeyRefusal {
    /// No attestation came with the request: a software key, or a card that cannot attest.
    #[error("no attestation of the key pair was sent (a key made in software, or a card that cannot attest)")]
    NoAttestation,
    #[error("attestation and F9 certificate come together; only one was sent")]
    Incomplete,
    #[error("{0}")]
    Attestation(AttestationError),
    #[error("the attestation is about another key than the certificate request's")]
    OtherKey,
    /// The key works without its PIN, or the attestation does not say.
    #[error("the key's PIN policy is {}: a login key must ask for its PIN", .0.map_or("not attested", |p| match p {
        PinPolicy::Never => "never",
        PinPolicy::Once => "once",
        PinPolicy::Always => "always",
    }))]
    PinPolicy(Option<PinPolicy>),
}

/// Check that `attestation` and `f9` (DER) prove the key of `csr_spki` was generated on a token
/// made by one of `roots`, and that the key asks for its PIN.
pub fn check(
    csr_spki: &x509_cert::spki::SubjectPublicKeyInfoOwned,
    attestation: Option<&[u8]>,
    f9: Option<&[u8]>,
    roots: &Roots,
    now: u64,
) -> Result<KeyOrigin, KeyRefusal> {
    let (attestation, f9) = match (attestation, f9) {
        (Some(a), Some(f)) => (a, f),
        (None, None) => return Err(KeyRefusal::NoAttestation),
        _ => return Err(KeyRefusal::Incomplete),
    };
    let a: Attested = attestation::verify(attestation, f9, roots, now).map_err(KeyRefusal::Attestation)?;
    if !a.certifies(csr_spki) {
        return Err(KeyRefusal::OtherKey);
    }
    match a.pin_policy {
        Some(PinPolicy::Once | PinPolicy::Always) => {}
        other => return Err(KeyRefusal::PinPolicy(other)),
    }
    Ok(KeyOrigin {
        serial: a.serial.and_then(|s| i64::try_from(s).ok()),
        firmware: a.firmware_string(),
        manufacturer: a.manufacturer,
    })
}
