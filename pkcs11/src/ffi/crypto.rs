//! Signing and randomness.

use cryptoki_sys::*;

use crate::slot::SignOut;
use crate::token::Rv;

use super::cabi::*;
use super::state::*;

#[no_mangle]
pub unsafe extern "C" fn C_SignInit(
    h: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let mech = out(mechanism)?.mechanism;
        on_session(h, |s| s.sign_init(h, mech, key))
    })
}

/// A signature (or its length) into the caller's buffer.
pub(super) unsafe fn signature(result: SignOut, sig: *mut CK_BYTE, len: *mut CK_ULONG) -> Rv<()> {
    let len = out(len)?;
    match result {
        SignOut::Length(n) => {
            *len = n as CK_ULONG;
            Ok(())
        }
        SignOut::Signature(pending) => {
            // Outside the slot's lock: the token's other calls go on meanwhile.
            let s = pending.run()?;
            std::ptr::copy_nonoverlapping(s.as_ptr(), sig, s.len());
            *len = s.len() as CK_ULONG;
            Ok(())
        }
    }
}

/// The caller's room for a signature: `None` for a length query (a null buffer).
pub(super) unsafe fn room(sig: *mut CK_BYTE, len: *mut CK_ULONG) -> Rv<Option<usize>> {
    let len = out(len)?;
    Ok((!sig.is_null()).then_some(*len as usize))
}

#[no_mangle]
pub unsafe extern "C" fn C_Sign(
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    sig: *mut CK_BYTE,
    sig_len: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let data = bytes(data, data_len)?;
        let space = room(sig, sig_len)?;
        match on_session(h, |s| s.sign(h, data, space)) {
            Err(CKR_BUFFER_TOO_SMALL) => {
                *out(sig_len)? = crate::slot::SIGNATURE_LEN as CK_ULONG;
                Err(CKR_BUFFER_TOO_SMALL)
            }
            r => signature(r?, sig, sig_len),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignUpdate(h: CK_SESSION_HANDLE, part: *mut CK_BYTE, len: CK_ULONG) -> CK_RV {
    guard(|| {
        let part = bytes(part, len)?;
        on_session(h, |s| s.sign_update(h, part))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SignFinal(h: CK_SESSION_HANDLE, sig: *mut CK_BYTE, sig_len: *mut CK_ULONG) -> CK_RV {
    guard(|| {
        let space = room(sig, sig_len)?;
        match on_session(h, |s| s.sign_final(h, space)) {
            Err(CKR_BUFFER_TOO_SMALL) => {
                *out(sig_len)? = crate::slot::SIGNATURE_LEN as CK_ULONG;
                Err(CKR_BUFFER_TOO_SMALL)
            }
            r => signature(r?, sig, sig_len),
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_SeedRandom(h: CK_SESSION_HANDLE, _seed: *mut CK_BYTE, _len: CK_ULONG) -> CK_RV {
    guard(|| {
        on_session(h, |s| s.session_info(h).map(|_| ()))?;
        Err(CKR_RANDOM_SEED_NOT_SUPPORTED)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GenerateRandom(h: CK_SESSION_HANDLE, buf: *mut CK_BYTE, len: CK_ULONG) -> CK_RV {
    guard(|| {
        if buf.is_null() && len > 0 {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let r = on_session(h, |s| s.random(h, len as usize))?;
        std::ptr::copy_nonoverlapping(r.as_ptr(), buf, r.len().min(len as usize));
        Ok(())
    })
}
