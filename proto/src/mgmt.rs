//! The management-key (9B) block cipher: one block of 3DES-EDE3 or AES, as PIV's
//! challenge-response authentication uses it. The card and the host call the same code.

use crate::piv::Algorithm;
use cipher::{generic_array::GenericArray, BlockDecrypt, BlockEncrypt, KeyInit};

/// Encrypt (or decrypt) one block in place. `None` if key or block length does not fit `alg`.
pub fn crypt_block(alg: Algorithm, key: &[u8], block: &mut [u8], encrypt: bool) -> Option<()> {
    if Some(key.len()) != alg.key_len() || Some(block.len()) != alg.block_len() {
        return None;
    }
    fn run<C: KeyInit + BlockEncrypt + BlockDecrypt>(key: &[u8], block: &mut [u8], encrypt: bool) -> Option<()> {
        let c = C::new_from_slice(key).ok()?;
        let b = GenericArray::from_mut_slice(block);
        if encrypt {
            c.encrypt_block(b)
        } else {
            c.decrypt_block(b)
        }
        Some(())
    }
    match alg {
        Algorithm::Tdes => run::<des::TdesEde3>(key, block, encrypt),
        Algorithm::Aes128 => run::<aes::Aes128>(key, block, encrypt),
        Algorithm::Aes192 => run::<aes::Aes192>(key, block, encrypt),
        Algorithm::Aes256 => run::<aes::Aes256>(key, block, encrypt),
        Algorithm::EccP256 => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tdes_known_answer_and_round_trip() {
        // 3DES-EDE3 with K1=K2=K3 degenerates to single DES: FIPS 81 example
        // (key 0123456789ABCDEF, "Now is t" -> 3FA40E8A984D4815).
        let k = [0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF];
        let key: [u8; 24] = core::array::from_fn(|i| k[i % 8]);
        let mut block = *b"Now is t";
        crypt_block(Algorithm::Tdes, &key, &mut block, true).unwrap();
        assert_eq!(block, [0x3F, 0xA4, 0x0E, 0x8A, 0x98, 0x4D, 0x48, 0x15]);
        crypt_block(Algorithm::Tdes, &key, &mut block, false).unwrap();
        assert_eq!(&block, b"Now is t");
    }

    #[test]
    fn aes128_known_answer() {
        // FIPS 197 appendix C.1.
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let mut block: [u8; 16] = core::array::from_fn(|i| (i as u8) * 0x11);
        crypt_block(Algorithm::Aes128, &key, &mut block, true).unwrap();
        assert_eq!(
            block,
            [0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5, 0x5a]
        );
    }

    #[test]
    fn wrong_sizes_are_refused() {
        assert!(crypt_block(Algorithm::Tdes, &[0; 16], &mut [0; 8], true).is_none());
        assert!(crypt_block(Algorithm::Aes256, &[0; 32], &mut [0; 8], true).is_none());
        assert!(crypt_block(Algorithm::EccP256, &[0; 32], &mut [0; 16], true).is_none());
    }
}
