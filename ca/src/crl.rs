//! Certificate revocation lists (RFC 5280 section 5): the CA signs the list of certificates it
//! revoked, with the time of the next list, so relying parties (openssl, a TLS server, another
//! portal) can check a certificate without asking the portal. Built from x509-cert's types.

use der::asn1::{BitString, Ia5String, OctetString};
use der::{Decode, Encode};
use p256::ecdsa::DerSignature;
use spki::AlgorithmIdentifierOwned;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::crl::CrlDistributionPoints;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber, CrlReason, SubjectKeyIdentifier};
use x509_cert::ext::{AsExtension, Extension};
use x509_cert::serial_number::SerialNumber;
use x509_cert::Version;

use crate::error::{CaError, Result};
use crate::names::x509_time;

const ECDSA_WITH_SHA256: der::oid::ObjectIdentifier = der::oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// Why a certificate was revoked: the RFC 5280 reasons a portal uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Unspecified,
    KeyCompromise,
    AffiliationChanged,
    /// A new certificate was issued to the same holder for the same enterprise.
    Superseded,
    CessationOfOperation,
    PrivilegeWithdrawn,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::AffiliationChanged,
        Reason::Superseded,
        Reason::CessationOfOperation,
        Reason::PrivilegeWithdrawn,
    ];

    /// RFC 5280's name, as openssl prints it ("keyCompromise").
    pub fn name(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::KeyCompromise => "keyCompromise",
            Reason::AffiliationChanged => "affiliationChanged",
            Reason::Superseded => "superseded",
            Reason::CessationOfOperation => "cessationOfOperation",
            Reason::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }

    pub fn parse(name: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.name().eq_ignore_ascii_case(name))
    }

    fn code(self) -> CrlReason {
        match self {
            Reason::Unspecified => CrlReason::Unspecified,
            Reason::KeyCompromise => CrlReason::KeyCompromise,
            Reason::AffiliationChanged => CrlReason::AffiliationChanged,
            Reason::Superseded => CrlReason::Superseded,
            Reason::CessationOfOperation => CrlReason::CessationOfOperation,
            Reason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        }
    }
}

/// One revoked certificate of this CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// The certificate's serial number, big-endian bytes as in the certificate.
    pub serial: Vec<u8>,
    pub revoked_at: u64,
    pub reason: Reason,
}

fn build(e: impl std::fmt::Display) -> CaError {
    CaError::Build(e.to_string())
}

/// The `cRLDistributionPoints` extension naming `url` (a certificate's pointer to its CRL).
pub(crate) fn distribution_point(url: &str) -> Result<CrlDistributionPoints> {
    let uri = Ia5String::new(url).map_err(|e| CaError::Build(format!("CRL URL {url:?}: {e}")))?;
    Ok(CrlDistributionPoints(vec![DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![GeneralName::UniformResourceIdentifier(uri)])),
        reasons: None,
        crl_issuer: None,
    }]))
}

/// A CRL (DER) of the CA with `key` and certificate `cert`: see [`crate::Ca::crl`].
pub(crate) fn sign(
    key: &p256::ecdsa::SigningKey,
    cert: &x509_cert::Certificate,
    revoked: &[Revoked],
    number: u64,
    this_update: u64,
    next_update: u64,
) -> Result<Vec<u8>> {
    if next_update <= this_update {
        return Err(CaError::EmptyValidity { not_before: this_update, not_after: next_update });
    }
    let issuer = cert.tbs_certificate.subject.clone();
    let mut entries = Vec::with_capacity(revoked.len());
    for r in revoked {
        // RFC 5280 5.3.1: no reason code rather than "unspecified".
        let reason = match r.reason {
            Reason::Unspecified => None,
            other => Some(vec![other.code().to_extension(&issuer, &[]).map_err(build)?]),
        };
        entries.push(RevokedCert {
            serial_number: SerialNumber::new(&r.serial).map_err(build)?,
            revocation_date: x509_time(r.revoked_at)?,
            crl_entry_extensions: reason,
        });
    }
    let mut extensions: Vec<Extension> = Vec::new();
    // RFC 5280 5.2.1: a CRL names the key that signed it.
    if let Some(ski) = subject_key_id(cert) {
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(ski),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        };
        extensions.push(aki.to_extension(&issuer, &[]).map_err(build)?);
    }
    let number = der::asn1::Uint::new(&number.to_be_bytes()).map_err(build)?;
    extensions.push(CrlNumber(number).to_extension(&issuer, &[]).map_err(build)?);
    let algorithm = AlgorithmIdentifierOwned { oid: ECDSA_WITH_SHA256, parameters: None };
    let tbs = TbsCertList {
        version: Version::V2,
        signature: algorithm.clone(),
        issuer,
        this_update: x509_time(this_update)?,
        next_update: Some(x509_time(next_update)?),
        revoked_certificates: if entries.is_empty() { None } else { Some(entries) },
        crl_extensions: Some(extensions),
    };
    let tbs_der = tbs.to_der().map_err(build)?;
    use p256::ecdsa::signature::Signer;
    let sig: DerSignature = key.sign(&tbs_der);
    let list = CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(sig.as_bytes()).map_err(build)?,
    };
    list.to_der().map_err(build)
}

/// The subject key identifier of the CA's certificate, if it has one.
fn subject_key_id(cert: &x509_cert::Certificate) -> Option<OctetString> {
    use der::oid::AssociatedOid;
    let ext = cert.tbs_certificate.extensions.iter().flatten().find(|e| e.extn_id == SubjectKeyIdentifier::OID)?;
    SubjectKeyIdentifier::from_der(ext.extn_value.as_bytes()).ok().map(|s| s.0)
}

/// What a CRL says (read back, for checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    pub this_update: u64,
    pub next_update: Option<u64>,
    /// Revoked serials with their reasons (`None`: no reason code).
    pub entries: Vec<(Vec<u8>, Option<Reason>)>,
}

/// Read a CRL's times and entries (its signature is not checked here).
pub fn parse(der: &[u8]) -> Result<CrlInfo> {
    let bad = |e: der::Error| CaError::BadCsr(format!("CRL: {e}"));
    let list = CertificateList::from_der(der).map_err(bad)?;
    let t = &list.tbs_cert_list;
    let secs = |t: &x509_cert::time::Time| t.to_unix_duration().as_secs();
    let entries = t
        .revoked_certificates
        .iter()
        .flatten()
        .map(|r| {
            let reason = r
                .crl_entry_extensions
                .iter()
                .flatten()
                .find(|e| e.extn_id == der::oid::db::rfc5280::ID_CE_CRL_REASONS)
                .and_then(|e| CrlReason::from_der(e.extn_value.as_bytes()).ok())
                .and_then(|c| Reason::ALL.into_iter().find(|r| r.code() == c));
            (r.serial_number.as_bytes().to_vec(), reason)
        })
        .collect();
    Ok(CrlInfo { this_update: secs(&t.this_update), next_update: t.next_update.as_ref().map(secs), entries })
}
