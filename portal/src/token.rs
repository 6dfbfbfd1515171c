//! Verifying the key-login token (format in `host_driver::login_token`, modelled on Web eID's
//! authentication token): the key's certificate and an ECDSA signature, made on the key, over
//! SHA256(SHA256(origin) || SHA256(nonce)).
//!
//! [`check`] judges a token against values the portal holds itself — its origin, the nonce it
//! issued (taken from the store, never read from the client), its CA and its clock — in an
//! order that tells an untrusted sender nothing: size and form first, then the chain to our
//! CA, then validity and key usage, last the signature. Revocation and binding are the
//! caller's (they need the store).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use der::{Decode, Encode};
use p256::ecdsa::VerifyingKey;
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest, Sha256};
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::Certificate;

pub use host_driver::login_token::{make, signed_digest, signed_message, AuthToken, ALGORITHM, FORMAT};

/// Anything larger is refused before it is decoded.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

const CLIENT_AUTH: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.2");

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token too large ({0} bytes)")]
    TooLarge(usize),
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("unsupported token format {0:?}")]
    Format(String),
    #[error("unsupported signature algorithm {0:?}")]
    Algorithm(String),
    #[error("certificate not issued by this system's CA")]
    Untrusted,
    #[error("certificate not valid before {0}")]
    NotYetValid(i64),
    #[error("certificate expired at {0}")]
    Expired(i64),
    #[error("certificate not for client authentication (key usage)")]
    KeyUsage,
    #[error("signature does not verify")]
    BadSignature,
}

/// What a good token proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// SHA-256 of the certificate DER, hex: how the portal names the key.
    pub fingerprint: String,
    pub serial: String,
    pub subject: String,
    /// The subject's organizationIdentifier: the credit code of the enterprise the
    /// certificate was issued for (what binding checks).
    pub organization_id: Option<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub der: Vec<u8>,
}

pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The fingerprint of the certificate a token carries, before the token is judged (`None` if
/// it is oversized or not base64: judging will say why). Lets the portal look the key up while
/// it reads the session.
pub fn claimed_fingerprint(token: &AuthToken) -> Option<String> {
    if token.certificate.len() > MAX_TOKEN_BYTES {
        return None;
    }
    B64.decode(&token.certificate).ok().map(|der| fingerprint(&der))
}

fn unix(t: &x509_cert::time::Time) -> i64 {
    t.to_unix_duration().as_secs() as i64
}

/// Decode a token from its JSON, refusing oversized input first.
pub fn parse(json: &[u8]) -> Result<AuthToken, TokenError> {
    if json.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge(json.len()));
    }
    serde_json::from_slice(json).map_err(|_| TokenError::Malformed("not a token object"))
}

/// Judge `token` for a login at `origin` with the `nonce` this portal issued.
pub fn check(
    token: &AuthToken,
    origin: &str,
    nonce: &[u8],
    ca: &VerifyingKey,
    now: i64,
) -> Result<Verified, TokenError> {
    check_with(token, origin, nonce, now, &|der| ca::verify_signed_by(der, ca))
}

/// [`check`] with the chain test supplied, so a caller can remember certificates it has
/// already found issued by its CA (the same DER always verifies the same way).
pub fn check_with(
    token: &AuthToken,
    origin: &str,
    nonce: &[u8],
    now: i64,
    issued_by_ca: &dyn Fn(&[u8]) -> bool,
) -> Result<Verified, TokenError> {
    let size = token.certificate.len() + token.signature.len() + token.format.len() + token.algorithm.len();
    if size > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge(size));
    }
    if token.format != FORMAT {
        return Err(TokenError::Format(token.format.clone()));
    }
    if token.algorithm != ALGORITHM {
        return Err(TokenError::Algorithm(token.algorithm.clone()));
    }
    let der = B64.decode(&token.certificate).map_err(|_| TokenError::Malformed("certificate is not base64"))?;
    let sig = B64.decode(&token.signature).map_err(|_| TokenError::Malformed("signature is not base64"))?;
    let cert = Certificate::from_der(&der).map_err(|_| TokenError::Malformed("certificate is not DER X.509"))?;

    if !issued_by_ca(&der) {
        return Err(TokenError::Untrusted);
    }
    let tbs = &cert.tbs_certificate;
    let (not_before, not_after) = (unix(&tbs.validity.not_before), unix(&tbs.validity.not_after));
    if now < not_before {
        return Err(TokenError::NotYetValid(not_before));
    }
    if now > not_after {
        return Err(TokenError::Expired(not_after));
    }
    match tbs.get::<KeyUsage>() {
        Ok(Some((_, ku))) if ku.0.contains(KeyUsages::DigitalSignature) => {}
        _ => return Err(TokenError::KeyUsage),
    }
    match tbs.get::<ExtendedKeyUsage>() {
        Ok(Some((_, eku))) if !eku.0.contains(&CLIENT_AUTH) => return Err(TokenError::KeyUsage),
        Err(_) => return Err(TokenError::KeyUsage),
        _ => {}
    }

    let spki = tbs.subject_public_key_info.to_der().map_err(|_| TokenError::Malformed("public key"))?;
    let key = VerifyingKey::from_public_key_der(&spki).map_err(|_| TokenError::Malformed("not a P-256 key"))?;
    // ring verifies about 3x faster than the pure-Rust p256 (login throughput is bound by it);
    // ECDSA-SHA256 over signed_message is exactly the check of signed_digest.
    let point = key.to_encoded_point(false);
    let ring_key = ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point.as_bytes());
    ring_key.verify(&signed_message(origin, nonce), &sig).map_err(|_| TokenError::BadSignature)?;

    Ok(Verified {
        fingerprint: fingerprint(&der),
        serial: hex::encode_upper(tbs.serial_number.as_bytes()),
        subject: host_driver::certinfo::display_name(&tbs.subject),
        organization_id: host_driver::certinfo::organization_id(&tbs.subject),
        not_before,
        not_after,
        der,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::ecdsa::{Signature, SigningKey};
    use p256::pkcs8::EncodePublicKey;
    use proto::clock::FixedClock;

    const NOW: i64 = 1_790_000_000;
    const ORIGIN: &str = "https://portal.example";

    struct Setup {
        _dir: tempfile::TempDir,
        ca: ca::Ca,
        key: SigningKey,
        cert: Vec<u8>,
    }

    fn setup(nb: i64, na: i64) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca::Ca::create(dir.path(), "CN=Portal CA", 3650, &FixedClock(NOW as u64 - 1000)).unwrap();
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let spki = key.verifying_key().to_public_key_der().unwrap();
        let cert = ca.issue(&ca::parse_name("CN=Zhang San").unwrap(), spki.as_bytes(), nb as u64, na as u64).unwrap();
        Setup { _dir: dir, ca, key, cert }
    }

    fn sign(key: &SigningKey, origin: &str, nonce: &[u8]) -> Vec<u8> {
        let s: Signature = key.sign_prehash(&signed_digest(origin, nonce)).unwrap();
        s.to_bytes().to_vec()
    }

    #[test]
    fn a_good_token_verifies_and_names_the_key() {
        let s = setup(NOW - 10, NOW + 86_400);
        let t = make(&s.cert, &sign(&s.key, ORIGIN, b"nonce-1"));
        let v = check(&t, ORIGIN, b"nonce-1", s.ca.verifying_key(), NOW).unwrap();
        assert_eq!(v.fingerprint, fingerprint(&s.cert));
        assert_eq!(v.subject, "CN=Zhang San");
        assert_eq!(v.not_after, NOW + 86_400);
        let json = serde_json::to_vec(&t).unwrap();
        assert_eq!(parse(&json).unwrap(), t);
    }

    #[test]
    fn every_kind_of_bad_token_is_refused_for_its_reason() {
        let s = setup(NOW - 10, NOW + 86_400);
        let ca = s.ca.verifying_key();
        let good = sign(&s.key, ORIGIN, b"n");
        let t = make(&s.cert, &good);
        assert_eq!(check(&t, "https://evil.example", b"n", ca, NOW), Err(TokenError::BadSignature), "other origin");
        assert_eq!(check(&t, ORIGIN, b"other nonce", ca, NOW), Err(TokenError::BadSignature));
        let mut tampered = good.clone();
        tampered[10] ^= 1;
        assert_eq!(check(&make(&s.cert, &tampered), ORIGIN, b"n", ca, NOW), Err(TokenError::BadSignature));
        assert_eq!(check(&make(&s.cert, &good[..63]), ORIGIN, b"n", ca, NOW), Err(TokenError::BadSignature));

        let foreign = setup(NOW - 10, NOW + 86_400);
        assert_eq!(check(&t, ORIGIN, b"n", foreign.ca.verifying_key(), NOW), Err(TokenError::Untrusted));
        assert_eq!(check(&t, ORIGIN, b"n", ca, NOW + 86_401), Err(TokenError::Expired(NOW + 86_400)));
        assert_eq!(check(&t, ORIGIN, b"n", ca, NOW - 11), Err(TokenError::NotYetValid(NOW - 10)));

        let mut bad = t.clone();
        bad.format = "web-eid:1.0".into();
        assert!(matches!(check(&bad, ORIGIN, b"n", ca, NOW), Err(TokenError::Format(_))));
        let mut bad = t.clone();
        bad.algorithm = "RS256".into();
        assert!(matches!(check(&bad, ORIGIN, b"n", ca, NOW), Err(TokenError::Algorithm(_))));
        let mut bad = t.clone();
        bad.certificate = "%%%".into();
        assert!(matches!(check(&bad, ORIGIN, b"n", ca, NOW), Err(TokenError::Malformed(_))));
        let mut bad = t.clone();
        bad.certificate = B64.encode(b"not a certificate");
        assert!(matches!(check(&bad, ORIGIN, b"n", ca, NOW), Err(TokenError::Malformed(_))));
        let mut bad = t.clone();
        bad.signature = "A".repeat(MAX_TOKEN_BYTES);
        assert!(matches!(check(&bad, ORIGIN, b"n", ca, NOW), Err(TokenError::TooLarge(_))));
        assert!(matches!(parse(&vec![b' '; MAX_TOKEN_BYTES + 1]), Err(TokenError::TooLarge(_))));
        assert!(matches!(parse(b"{\"format\": 1}"), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn the_ca_itself_is_not_a_login_certificate() {
        // The CA certificate verifies under its own key but has no client-auth key usage.
        let s = setup(NOW - 10, NOW + 86_400);
        let ca_der = s.ca.certificate_der();
        let t = make(&ca_der, &[0u8; 64]);
        assert_eq!(check(&t, ORIGIN, b"n", s.ca.verifying_key(), NOW), Err(TokenError::KeyUsage));
    }
}
