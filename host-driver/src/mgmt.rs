//! The management key as the host holds it.

use proto::piv::{defaults, Algorithm};
use proto::secret::KeyBytes;
use zeroize::Zeroizing;

use crate::error::PivError;

/// The key bytes are [`KeyBytes`]: redacted in `{:?}`, wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct MgmtKey {
    pub alg: Algorithm,
    key: KeyBytes,
}

impl std::fmt::Debug for MgmtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MgmtKey({}, <redacted>)", self.alg.name())
    }
}

impl Default for MgmtKey {
    /// The factory key 0102030405060708 x3 (3DES).
    fn default() -> Self {
        MgmtKey { alg: Algorithm::Tdes, key: defaults::MANAGEMENT_KEY[..].into() }
    }
}

impl MgmtKey {
    pub fn new(alg: Algorithm, key: &[u8]) -> Result<MgmtKey, PivError> {
        match alg.key_len() {
            Some(n) if n == key.len() => Ok(MgmtKey { alg, key: key.into() }),
            Some(n) => {
                Err(PivError::Input(format!("a {} management key has {n} bytes, got {}", alg.name(), key.len())))
            }
            None => Err(PivError::Input(format!("{} is not a management-key algorithm", alg.name()))),
        }
    }

    /// Parse hex (spaces and colons allowed). With `alg` None: 3DES for 24 bytes, AES by length
    /// otherwise (pass the algorithm explicitly for an AES-192 key).
    pub fn from_hex(hex_str: &str, alg: Option<Algorithm>) -> Result<MgmtKey, PivError> {
        let clean: Zeroizing<String> =
            Zeroizing::new(hex_str.chars().filter(|c| !c.is_whitespace() && *c != ':').collect());
        let key = Zeroizing::new(hex::decode(&clean).map_err(|e| {
            PivError::Input(format!("management key is not hex ({e}); expected 48 hex digits for 3DES"))
        })?);
        let alg = alg.unwrap_or(match key.len() {
            16 => Algorithm::Aes128,
            32 => Algorithm::Aes256,
            _ => Algorithm::Tdes,
        });
        MgmtKey::new(alg, &key)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.key
    }

    /// The same key bytes under another algorithm (used when the card reports AES-192).
    pub fn with_alg(&self, alg: Algorithm) -> Result<MgmtKey, PivError> {
        MgmtKey::new(alg, &self.key)
    }

    pub fn crypt(&self, block: &mut [u8], encrypt: bool) -> Result<(), PivError> {
        proto::mgmt::crypt_block(self.alg, &self.key, block, encrypt)
            .ok_or_else(|| PivError::Input(format!("block of {} bytes does not fit {}", block.len(), self.alg.name())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_parsing_picks_the_algorithm_by_length() {
        let k = MgmtKey::from_hex("01:02:03:04:05:06:07:08 0102030405060708 0102030405060708", None).unwrap();
        assert_eq!(k, MgmtKey::default());
        assert_eq!(MgmtKey::from_hex(&"00".repeat(16), None).unwrap().alg, Algorithm::Aes128);
        assert_eq!(MgmtKey::from_hex(&"00".repeat(32), None).unwrap().alg, Algorithm::Aes256);
        assert_eq!(MgmtKey::from_hex(&"00".repeat(24), Some(Algorithm::Aes192)).unwrap().alg, Algorithm::Aes192);
        let err = MgmtKey::from_hex("zz", None).unwrap_err().to_string();
        assert!(err.contains("not hex"), "{err}");
        let err = MgmtKey::from_hex(&"00".repeat(10), None).unwrap_err().to_string();
        assert!(err.contains("24 bytes, got 10"), "{err}");
        assert!(format!("{:?}", MgmtKey::default()).contains("redacted"));
    }
}
