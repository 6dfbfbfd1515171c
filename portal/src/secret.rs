//! Random tokens (session cookies, CSRF tokens, challenges), their hashes, and comparison in
//! constant time: what sessions and the rules that check a secret share.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use sha2::{Digest, Sha256};

/// A fresh random token (cookie value, CSRF token, nonce), base64url.
pub fn random_token() -> String {
    B64URL.encode(rand::random::<[u8; 32]>())
}

/// What the store keeps of a token: its SHA-256, hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// `a == b` in time that does not depend on where they differ.
pub fn subtle_eq(a: &[u8], b: &[u8]) -> subtle::Choice {
    use subtle::ConstantTimeEq;
    if a.len() != b.len() {
        return subtle::Choice::from(0);
    }
    a.ct_eq(b)
}
