//! Borrowed secrets: the PIN block as the card compares it, and a secret's bytes in place.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Equality in constant time (subtle), so comparing two secrets takes the same time whatever
/// they hold; only their lengths may show.
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// A PIN or PUK as PIV carries it: 8 bytes, the value padded with FF.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PinBlock([u8; 8]);

impl PinBlock {
    /// Pad a 6- to 8-byte PIN/PUK (SP 800-73-4: no FF inside); `None` if not allowed.
    pub fn pad(value: &[u8]) -> Option<PinBlock> {
        if !(6..=8).contains(&value.len()) || value.contains(&0xFF) {
            return None;
        }
        let mut out = [0xFF; 8];
        out[..value.len()].copy_from_slice(value);
        Some(PinBlock(out))
    }

    /// An already padded block as VERIFY carries it; `None` unless it is 6 to 8 bytes of
    /// value followed only by FF.
    pub fn from_padded(block: &[u8]) -> Option<PinBlock> {
        let block: [u8; 8] = block.try_into().ok()?;
        let len = block.iter().position(|b| *b == 0xFF).unwrap_or(8);
        if len < 6 || block[len..].iter().any(|b| *b != 0xFF) {
            return None;
        }
        Some(PinBlock(block))
    }

    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl PartialEq for PinBlock {
    fn eq(&self, other: &Self) -> bool {
        same(&self.0, &other.0)
    }
}
impl Eq for PinBlock {}

impl fmt::Debug for PinBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinBlock(<redacted>)")
    }
}

/// Secret bytes borrowed from a command being parsed (a key to set, a scalar to import):
/// printable as `<redacted>` only.
#[derive(Clone, Copy)]
pub struct SecretRef<'a>(pub &'a [u8]);

impl SecretRef<'_> {
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq for SecretRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        same(self.0, other.0)
    }
}
impl Eq for SecretRef<'_> {}

impl fmt::Debug for SecretRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretRef(<redacted {} bytes>)", self.0.len())
    }
}
