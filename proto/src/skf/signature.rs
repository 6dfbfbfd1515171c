//! An SM2 signature (r, s: 256-bit integers) in the fixed-size forms GM/T 0016 and the card
//! use, converted in one place:
//!
//! | form | size | layout |
//! |---|---|---|
//! | raw | 64 | r ‖ s (what WebCrypto-style callers and PyPI `gmssl` take) |
//! | `ECCSIGNATUREBLOB` | 128 | r and s each right-aligned in a 64-byte field (the SKF struct) |
//! | card answer | 68 | BitLen 256 as a big-endian u32 (`00 00 01 00`) ‖ r ‖ s (ECCSignData) |
//!
//! The DER form (`SEQUENCE { INTEGER r, INTEGER s }`, GM/T 0009) is the `sm2` crate's to
//! write and read, on the host.

/// r and s, 32 bytes each, big-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    pub r: [u8; 32],
    pub s: [u8; 32],
}

/// What is wrong with bytes that should be a signature in one of the forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "std", derive(thiserror::Error))]
pub enum FormError {
    #[cfg_attr(feature = "std", error("{got} bytes where the form has {want}"))]
    Length { want: usize, got: usize },
    /// A 64-byte field whose first 32 bytes are not zero: a value longer than 256 bits.
    #[cfg_attr(feature = "std", error("a value wider than 256 bits in a 64-byte field"))]
    TooWide,
    #[cfg_attr(feature = "std", error("bit length {0}, not 256"))]
    BitLength(u32),
}

const BLOB: usize = 128;
const ANSWER: usize = 68;

impl Signature {
    pub fn from_raw(bytes: &[u8]) -> Result<Signature, FormError> {
        let b: &[u8; 64] = bytes.try_into().map_err(|_| FormError::Length { want: 64, got: bytes.len() })?;
        let (r, s) = b.split_at(32);
        Ok(Signature { r: r.try_into().expect("32"), s: s.try_into().expect("32") })
    }

    pub fn raw(&self) -> [u8; 64] {
        let mut out = [0; 64];
        out[..32].copy_from_slice(&self.r);
        out[32..].copy_from_slice(&self.s);
        out
    }

    /// `ECCSIGNATUREBLOB`: each value right-aligned in 64 bytes.
    pub fn blob(&self) -> [u8; BLOB] {
        let mut out = [0; BLOB];
        out[32..64].copy_from_slice(&self.r);
        out[96..].copy_from_slice(&self.s);
        out
    }

    /// An `ECCSIGNATUREBLOB`, refusing a field whose left half is not zero (GmSSL checks the
    /// same when it converts one).
    pub fn from_blob(bytes: &[u8]) -> Result<Signature, FormError> {
        if bytes.len() != BLOB {
            return Err(FormError::Length { want: BLOB, got: bytes.len() });
        }
        if bytes[..32].iter().chain(&bytes[64..96]).any(|b| *b != 0) {
            return Err(FormError::TooWide);
        }
        Ok(Signature { r: bytes[32..64].try_into().expect("32"), s: bytes[96..].try_into().expect("32") })
    }

    /// The card's ECCSignData answer: BitLen (256, big-endian) ‖ r ‖ s.
    pub fn answer(&self) -> [u8; ANSWER] {
        let mut out = [0; ANSWER];
        out[..4].copy_from_slice(&256u32.to_be_bytes());
        out[4..].copy_from_slice(&self.raw());
        out
    }

    pub fn from_answer(bytes: &[u8]) -> Result<Signature, FormError> {
        if bytes.len() != ANSWER {
            return Err(FormError::Length { want: ANSWER, got: bytes.len() });
        }
        let bits = u32::from_be_bytes(bytes[..4].try_into().expect("4"));
        if bits != 256 {
            return Err(FormError::BitLength(bits));
        }
        Signature::from_raw(&bytes[4..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_form_round_trips(r in any::<[u8; 32]>(), s in any::<[u8; 32]>()) {
            let sig = Signature { r, s };
            prop_assert_eq!(Signature::from_raw(&sig.raw()), Ok(sig));
            prop_assert_eq!(Signature::from_blob(&sig.blob()), Ok(sig));
            prop_assert_eq!(Signature::from_answer(&sig.answer()), Ok(sig));
            // The blob is the raw form with 32 zero bytes before each value.
            let blob = sig.blob();
            prop_assert_eq!(&blob[32..64], &sig.raw()[..32]);
            prop_assert_eq!(&blob[96..], &sig.raw()[32..]);
        }

        #[test]
        fn a_blob_with_a_wide_value_is_refused(i in 0usize..32, half in 0usize..2, b in 1u8..) {
            let mut blob = Signature { r: [7; 32], s: [9; 32] }.blob();
            blob[half * 64 + i] = b;
            prop_assert_eq!(Signature::from_blob(&blob), Err(FormError::TooWide));
        }
    }

    #[test]
    fn the_card_answer_starts_with_bit_length_256() {
        let sig = Signature { r: [1; 32], s: [2; 32] };
        assert_eq!(&sig.answer()[..4], &[0x00, 0x00, 0x01, 0x00]);
        let mut other = sig.answer();
        other[2] = 0x02;
        assert_eq!(Signature::from_answer(&other), Err(FormError::BitLength(512)));
        assert_eq!(Signature::from_answer(&other[..67]), Err(FormError::Length { want: 68, got: 67 }));
        assert_eq!(Signature::from_raw(&[0; 63]), Err(FormError::Length { want: 64, got: 63 }));
    }
}
