//! The key-login token as it travels from the agent to the portal (modelled on Web eID's
//! authentication token): the key's certificate and an ES256 signature, made on the key,
//! over SHA256(SHA256(origin) || SHA256(nonce)). The portal verifies it (`portal::token`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

pub const FORMAT: &str = "ukey-auth:1";
/// ECDSA P-256 over SHA-256, signature as r || s (64 bytes).
pub const ALGORITHM: &str = "ES256";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthToken {
    pub format: String,
    /// The key's certificate, base64 DER.
    pub certificate: String,
    pub algorithm: String,
    /// base64 of r || s.
    pub signature: String,
}

/// What the key signs for a login: SHA256(SHA256(origin) || SHA256(nonce)).
pub fn signed_digest(origin: &str, nonce: &[u8]) -> [u8; 32] {
    Sha256::digest(signed_message(origin, nonce)).into()
}

/// SHA256(origin) || SHA256(nonce): the message whose SHA-256 is [`signed_digest`], for
/// verifiers that hash the message themselves (ECDSA with SHA-256 over it checks the same).
pub fn signed_message(origin: &str, nonce: &[u8]) -> [u8; 64] {
    let mut m = [0u8; 64];
    m[..32].copy_from_slice(&Sha256::digest(origin.as_bytes()));
    m[32..].copy_from_slice(&Sha256::digest(nonce));
    m
}

/// A token from a certificate and an r || s signature.
pub fn make(cert_der: &[u8], signature_rs: &[u8]) -> AuthToken {
    AuthToken {
        format: FORMAT.into(),
        certificate: B64.encode(cert_der),
        algorithm: ALGORITHM.into(),
        signature: B64.encode(signature_rs),
    }
}
