//! C arguments taken apart and results written back: fixed-width fields, byte buffers, out
//! pointers, the two-call list convention, PINs.

use cryptoki_sys::*;

use crate::token::Rv;

/// `s`, space-padded or cut (at a character boundary) to `N` bytes, as PKCS#11's fixed fields.
pub(super) fn pad<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [b' '; N];
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out
}

pub(super) unsafe fn bytes<'a>(p: *const u8, n: CK_ULONG) -> Rv<&'a [u8]> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    Ok(std::slice::from_raw_parts(p, n as usize))
}

pub(super) unsafe fn out<'a, T>(p: *mut T) -> Rv<&'a mut T> {
    p.as_mut().ok_or(CKR_ARGUMENTS_BAD)
}

/// A list by the two-call convention.
pub(super) unsafe fn give_list<T: Copy>(items: &[T], buf: *mut T, count: *mut CK_ULONG) -> Rv<()> {
    let count = out(count)?;
    if buf.is_null() {
        *count = items.len() as CK_ULONG;
        return Ok(());
    }
    if (*count as usize) < items.len() {
        *count = items.len() as CK_ULONG;
        return Err(CKR_BUFFER_TOO_SMALL);
    }
    std::ptr::copy_nonoverlapping(items.as_ptr(), buf, items.len());
    *count = items.len() as CK_ULONG;
    Ok(())
}

pub(super) const VERSION: CK_VERSION = CK_VERSION { major: 0, minor: 1 };

/// The longest PIN or SO PIN (a management key in hex, 64 digits for AES-256) worth reading.
pub(super) const MAX_PIN_LEN: CK_ULONG = 64;

/// A PIN from the caller: one longer than any PIN or key is refused before it is read.
pub(super) unsafe fn pin_bytes<'a>(p: *const u8, n: CK_ULONG) -> Rv<&'a [u8]> {
    if n > MAX_PIN_LEN {
        return Err(CKR_PIN_LEN_RANGE);
    }
    bytes(p, n)
}
