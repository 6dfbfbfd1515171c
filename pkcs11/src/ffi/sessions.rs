//! Sessions, login and the PIN.

use std::os::raw::c_void;

use cryptoki_sys::*;

use super::cabi::*;
use super::state::*;

#[no_mangle]
pub unsafe extern "C" fn C_SetPIN(
    h: CK_SESSION_HANDLE,
    old: *mut CK_UTF8CHAR,
    old_len: CK_ULONG,
    new: *mut CK_UTF8CHAR,
    new_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let (old, new) = (pin_bytes(old, old_len)?, pin_bytes(new, new_len)?);
        on_session(h, |s| s.set_pin(h, old, new))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    _app: *mut c_void,
    _notify: CK_NOTIFY,
    session: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    guard(|| {
        let session = out(session)?;
        let h = on_slot(slot, |s| s.open_session(flags))?;
        with(|m| {
            m.route(h, slot);
            Ok(())
        })?;
        *session = h;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseSession(h: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| {
        on_session(h, |s| s.close_session(h))?;
        with(|m| {
            m.unroute(&[h]);
            Ok(())
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV {
    guard(|| {
        let ended = on_slot(slot, |s| s.close_all())?;
        with(|m| {
            m.unroute(&ended);
            Ok(())
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSessionInfo(h: CK_SESSION_HANDLE, info: *mut CK_SESSION_INFO) -> CK_RV {
    guard(|| {
        let s = on_session(h, |s| s.session_info(h))?;
        *out(info)? = CK_SESSION_INFO { slotID: s.slot, state: s.state, flags: s.flags, ulDeviceError: 0 };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Login(
    h: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let pin = zeroize::Zeroizing::new(pin_bytes(pin, len)?.to_vec());
        on_session(h, |s| s.login(h, user, &pin))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Logout(h: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| on_session(h, |s| s.logout(h)))
}
