//! Secrets by type. A PIN, a PUK or a management key is held in one of these from where it
//! enters (a flag, a prompt, a request body, an APDU) to where it is used: `{:?}` shows
//! `<redacted>`, never the bytes in any encoding, and the memory is wiped when it is dropped.

mod block;
#[cfg(feature = "alloc")]
mod owned;

pub use block::{PinBlock, SecretRef};
#[cfg(feature = "alloc")]
pub use owned::{KeyBytes, KeyHex, Password, Pin, Puk};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_rules() {
        assert_eq!(PinBlock::pad(b"123456").unwrap().as_bytes(), b"123456\xFF\xFF");
        assert_eq!(PinBlock::pad(b"12345678").unwrap().as_bytes(), b"12345678");
        assert!(PinBlock::pad(b"12345").is_none() && PinBlock::pad(b"123456789").is_none());
        assert!(PinBlock::pad(b"1234\xFF6").is_none());
        assert!(PinBlock::from_padded(b"123456\xFF\xFF").is_some());
        assert!(PinBlock::from_padded(b"12345\xFF\xFF\xFF").is_none());
        assert!(PinBlock::from_padded(b"1234\xFF567\xFF").is_none());
        assert!(PinBlock::from_padded(b"123456\xFF").is_none());
    }
}
