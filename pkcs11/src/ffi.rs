//! The functions a PKCS#11 caller gets from `C_GetFunctionList` (2.40) and `C_GetInterface`
//! (3.0): the one place with raw pointers. Each takes its C arguments apart, runs the
//! operation on its slot ([`Slot`], under the slot's lock) or on the [`Module`] (under the
//! module's lock, held only to find a slot), and writes the results back; a panic inside is
//! caught and answered CKR_GENERAL_ERROR, never unwound into the caller.
#![allow(non_snake_case, clippy::missing_safety_doc)]

use std::cell::RefCell;
use std::os::raw::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once};

use cryptoki_sys::*;

use crate::module::{Module, MECHANISMS};
use crate::objects::Attr;
use crate::slot::{SignOut, Slot, SlotState};
use crate::token::Rv;

/// The module of this process, if initialised.
enum State {
    Off,
    /// C_Initialize of process `pid` is opening the keys (without the lock: a reader another
    /// program holds makes it wait).
    Opening {
        pid: u32,
    },
    On(Module),
}

static MODULE: Mutex<State> = Mutex::new(State::Off);
/// Notified when an [`State::Opening`] ends.
static OPENED: Condvar = Condvar::new();

fn lock() -> MutexGuard<'static, State> {
    MODULE.lock().unwrap_or_else(|p| p.into_inner())
}

thread_local! {
    /// The module's lock, held by the thread calling fork() from just before to just after it.
    static FORKING: RefCell<Option<MutexGuard<'static, State>>> = const { RefCell::new(None) };
}

/// A fork() while another thread holds the module's lock would give the child a lock no thread
/// of its own can let go, and its C_Initialize would wait forever. So the lock is taken before
/// any fork and let go after it, in parent and child (pthread_atfork). It is only ever held
/// briefly (never while a card is used), so a fork waits little.
fn watch_forks() {
    extern "C" fn before() {
        let _ = FORKING.try_with(|f| *f.borrow_mut() = Some(lock()));
    }
    extern "C" fn after() {
        let _ = FORKING.try_with(|f| drop(f.borrow_mut().take()));
    }
    static ONCE: Once = Once::new();
    // Safety: the handlers are plain functions of this library; glibc drops them if it is unloaded.
    ONCE.call_once(|| unsafe {
        libc::pthread_atfork(Some(before), Some(after), Some(after));
    });
}

/// Run `f` with a panic guard.
fn guard(f: impl FnOnce() -> Rv<()>) -> CK_RV {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(rv)) => rv,
        Err(_) => {
            tracing::error!("a panic inside the module was caught");
            CKR_GENERAL_ERROR
        }
    }
}

/// Run `f` on the initialised module (of this process: a forked child has none until it
/// calls C_Initialize itself), under the module's lock: `f` must not touch a card.
fn with<T>(f: impl FnOnce(&mut Module) -> Rv<T>) -> Rv<T> {
    match &mut *lock() {
        State::On(m) if m.pid == std::process::id() => f(m),
        _ => Err(CKR_CRYPTOKI_NOT_INITIALIZED),
    }
}

/// The slot `id`, found under the module's lock.
fn slot(id: CK_SLOT_ID) -> Rv<Arc<Slot>> {
    with(|m| m.slot(id))
}

/// Run `f` on slot `id`, under that slot's lock alone.
fn on_slot<T>(id: CK_SLOT_ID, f: impl FnOnce(&mut SlotState) -> Rv<T>) -> Rv<T> {
    slot(id)?.run(f)
}

/// Run `f` on the slot of session `h`, under that slot's lock alone.
fn on_session<T>(h: CK_SESSION_HANDLE, f: impl FnOnce(&mut SlotState) -> Rv<T>) -> Rv<T> {
    with(|m| m.slot_of_session(h))?.run(f)
}

/// Readers' cards that came or went (see [`Slot::refresh`]), outside the module's lock.
fn refresh() -> Rv<()> {
    let mut ended = Vec::new();
    for (slot, source) in with(|m| Ok(m.readers()))? {
        ended.extend(slot.refresh(&source));
    }
    if !ended.is_empty() {
        with(|m| {
            m.unroute(&ended);
            Ok(())
        })?;
    }
    Ok(())
}

/// Slot `id` has a token (known without waiting for an operation on it).
fn present(id: CK_SLOT_ID) -> Rv<()> {
    if slot(id)?.is_present() {
        Ok(())
    } else {
        Err(CKR_TOKEN_NOT_PRESENT)
    }
}

/// `s`, space-padded or cut (at a character boundary) to `N` bytes, as PKCS#11's fixed fields.
fn pad<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [b' '; N];
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out[..end].copy_from_slice(&s.as_bytes()[..end]);
    out
}

unsafe fn bytes<'a>(p: *const u8, n: CK_ULONG) -> Rv<&'a [u8]> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    Ok(std::slice::from_raw_parts(p, n as usize))
}

unsafe fn out<'a, T>(p: *mut T) -> Rv<&'a mut T> {
    p.as_mut().ok_or(CKR_ARGUMENTS_BAD)
}

/// A list by the two-call convention.
unsafe fn give_list<T: Copy>(items: &[T], buf: *mut T, count: *mut CK_ULONG) -> Rv<()> {
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

const VERSION: CK_VERSION = CK_VERSION { major: 0, minor: 1 };

#[no_mangle]
pub unsafe extern "C" fn C_Initialize(args: *mut c_void) -> CK_RV {
    guard(|| {
        if let Some(a) = (args as *const CK_C_INITIALIZE_ARGS).as_ref() {
            if !a.pReserved.is_null() {
                return Err(CKR_ARGUMENTS_BAD);
            }
            let some =
                [a.CreateMutex.is_some(), a.DestroyMutex.is_some(), a.LockMutex.is_some(), a.UnlockMutex.is_some()];
            // All four or none (PKCS#11 §5.4); with them, the caller must also allow OS locks,
            // which are what this module uses.
            if some.iter().any(|x| *x) && !some.iter().all(|x| *x) {
                return Err(CKR_ARGUMENTS_BAD);
            }
            if some[0] && a.flags & CKF_OS_LOCKING_OK == 0 {
                return Err(CKR_CANT_LOCK);
            }
        }
        crate::log::init();
        watch_forks();
        let me = std::process::id();
        let inherited = {
            let mut m = lock();
            loop {
                match &*m {
                    State::On(x) if x.pid == me => return Err(CKR_CRYPTOKI_ALREADY_INITIALIZED),
                    // Another thread is initialising: its module is this caller's too.
                    State::Opening { pid } if *pid == me => m = OPENED.wait(m).unwrap_or_else(|p| p.into_inner()),
                    _ => break,
                }
            }
            std::mem::replace(&mut *m, State::Opening { pid: me })
        };
        // Should opening panic, the module is off again rather than opening for ever.
        struct Opening(bool);
        impl Drop for Opening {
            fn drop(&mut self) {
                if !self.0 {
                    *lock() = State::Off;
                    OPENED.notify_all();
                }
            }
        }
        let mut opening = Opening(false);
        // A forked child's copy of the parent's module is dropped without touching the keys
        // the parent still uses (no state written, no lock let go).
        let parent = std::mem::ManuallyDrop::new(match inherited {
            State::On(p) => Some(p),
            _ => None,
        });
        let module = Module::new(parent.as_ref());
        *lock() = State::On(module);
        opening.0 = true;
        crate::events::GENERATION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        OPENED.notify_all();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_Finalize(reserved: *mut c_void) -> CK_RV {
    guard(|| {
        if !reserved.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let module = {
            let mut m = lock();
            match &*m {
                State::On(x) if x.pid == std::process::id() => {}
                _ => return Err(CKR_CRYPTOKI_NOT_INITIALIZED),
            }
            let State::On(module) = std::mem::replace(&mut *m, State::Off) else { unreachable!() };
            crate::events::GENERATION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            module
        };
        crate::events::wake_all();
        // The tokens are logged out, so the cards are left locked.
        module.finalize();
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInfo(info: *mut CK_INFO) -> CK_RV {
    guard(|| {
        with(|_| Ok(()))?;
        *out(info)? = CK_INFO {
            cryptokiVersion: CK_VERSION { major: 2, minor: 40 },
            manufacturerID: pad("ukey"),
            flags: 0,
            libraryDescription: pad("ukey PKCS#11 (virtual USB-Keys)"),
            libraryVersion: VERSION,
        };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    guard(|| {
        *out(list)? = &FUNCTIONS as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotList(token_present: CK_BBOOL, list: *mut CK_SLOT_ID, count: *mut CK_ULONG) -> CK_RV {
    guard(|| {
        refresh()?;
        let slots = with(|m| Ok(m.slot_list(token_present != 0)))?;
        give_list(&slots, list, count)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetSlotInfo(slot_id: CK_SLOT_ID, info: *mut CK_SLOT_INFO) -> CK_RV {
    guard(|| {
        let s = slot(slot_id)?;
        let (description, present) = (s.description.clone(), s.is_present());
        *out(info)? = CK_SLOT_INFO {
            slotDescription: pad(&description),
            manufacturerID: pad("ukey"),
            flags: CKF_REMOVABLE_DEVICE | CKF_HW_SLOT | if present { CKF_TOKEN_PRESENT } else { 0 },
            hardwareVersion: VERSION,
            firmwareVersion: VERSION,
        };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    guard(|| {
        let filled = on_slot(slot, |s| {
            let (sessions, rw) = s.session_counts();
            let t = s.token()?;
            let pin = t.pin_flags()?;
            Ok(CK_TOKEN_INFO {
                label: pad(&t.label),
                manufacturerID: pad(&t.manufacturer),
                model: pad(&t.model),
                serialNumber: pad(&t.serial),
                flags: CKF_RNG | CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED | CKF_TOKEN_INITIALIZED | pin,
                ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
                ulSessionCount: sessions as CK_ULONG,
                ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
                ulRwSessionCount: rw as CK_ULONG,
                ulMaxPinLen: 8,
                ulMinPinLen: 6,
                ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
                ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
                ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
                ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
                hardwareVersion: VERSION,
                firmwareVersion: CK_VERSION { major: t.firmware[0], minor: t.firmware[1] },
                utcTime: [b' '; 16],
            })
        })?;
        *out(info)? = filled;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        present(slot)?;
        let all: Vec<CK_MECHANISM_TYPE> = MECHANISMS.iter().map(|(m, _)| *m).collect();
        give_list(&all, list, count)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    kind: CK_MECHANISM_TYPE,
    info: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    guard(|| {
        present(slot)?;
        let (_, flags) = MECHANISMS.iter().find(|(m, _)| *m == kind).ok_or(CKR_MECHANISM_INVALID)?;
        *out(info)? = CK_MECHANISM_INFO { ulMinKeySize: 256, ulMaxKeySize: 256, flags: *flags };
        Ok(())
    })
}

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

#[no_mangle]
pub unsafe extern "C" fn C_GetAttributeValue(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard(|| {
        if template.is_null() && count > 0 {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let template = if count == 0 { &mut [][..] } else { std::slice::from_raw_parts_mut(template, count as usize) };
        let types: Vec<CK_ATTRIBUTE_TYPE> = template.iter().map(|a| a.type_).collect();
        let values = on_session(h, |s| s.attributes(h, object, &types))?;
        // Every attribute is answered; the call says the first that could not be (§5.7 lets it
        // say any of them).
        let mut result = Ok(());
        for (a, value) in template.iter_mut().zip(values) {
            if let Err(rv) = give_attribute(a, value) {
                result = result.and(Err(rv));
            }
        }
        result
    })
}

/// One attribute of C_GetAttributeValue, as PKCS#11 3.0 §5.7 lists the cases: a sensitive or
/// unknown attribute, or a buffer too short for the value, gets CK_UNAVAILABLE_INFORMATION; a
/// null buffer gets the length; else the value is copied. Exactly the value's bytes are written:
/// a ulValueLen larger than the caller's real buffer is never written up to.
unsafe fn give_attribute(a: &mut CK_ATTRIBUTE, value: Attr) -> Rv<()> {
    let (len, rv) = match value {
        Attr::Sensitive => (CK_UNAVAILABLE_INFORMATION, Err(CKR_ATTRIBUTE_SENSITIVE)),
        Attr::Invalid => (CK_UNAVAILABLE_INFORMATION, Err(CKR_ATTRIBUTE_TYPE_INVALID)),
        Attr::Value(v) if a.pValue.is_null() => (v.len() as CK_ULONG, Ok(())),
        Attr::Value(v) if (a.ulValueLen as usize) < v.len() => (CK_UNAVAILABLE_INFORMATION, Err(CKR_BUFFER_TOO_SMALL)),
        Attr::Value(v) => {
            std::ptr::copy_nonoverlapping(v.as_ptr(), a.pValue as *mut u8, v.len());
            (v.len() as CK_ULONG, Ok(()))
        }
    };
    a.ulValueLen = len;
    rv
}

/// A template's attributes and values, copied out of the caller's memory. A ulValueLen is
/// believed only as far as the attribute can go ([`attribute_len_ok`]): past that the module
/// would read memory the caller never gave it.
unsafe fn template(t: *const CK_ATTRIBUTE, count: CK_ULONG) -> Rv<Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>> {
    if t.is_null() && count > 0 {
        return Err(CKR_ARGUMENTS_BAD);
    }
    let attrs = if count == 0 { &[][..] } else { std::slice::from_raw_parts(t, count as usize) };
    attrs
        .iter()
        .map(|a| {
            if !attribute_len_ok(a.type_, a.ulValueLen) {
                return Err(CKR_ATTRIBUTE_VALUE_INVALID);
            }
            Ok((a.type_, bytes(a.pValue as *const u8, a.ulValueLen)?.to_vec()))
        })
        .collect()
}

/// The longest value of any attribute: a certificate, which a PIV data object holds (4 KiB
/// on the virtual key, about 3 KiB on a YubiKey), with room to spare.
const MAX_VALUE_LEN: CK_ULONG = 16 * 1024;

/// Whether `len` can be the length of a value of attribute `t`: a CK_ULONG's size for the
/// numbers, one byte for the booleans, at most [`MAX_VALUE_LEN`] for the rest.
fn attribute_len_ok(t: CK_ATTRIBUTE_TYPE, len: CK_ULONG) -> bool {
    match t {
        CKA_CLASS
        | CKA_KEY_TYPE
        | CKA_CERTIFICATE_TYPE
        | CKA_CERTIFICATE_CATEGORY
        | CKA_VALUE_LEN
        | CKA_KEY_GEN_MECHANISM => len as usize == std::mem::size_of::<CK_ULONG>(),
        CKA_TOKEN
        | CKA_PRIVATE
        | CKA_MODIFIABLE
        | CKA_COPYABLE
        | CKA_DESTROYABLE
        | CKA_TRUSTED
        | CKA_LOCAL
        | CKA_SENSITIVE
        | CKA_ALWAYS_SENSITIVE
        | CKA_EXTRACTABLE
        | CKA_NEVER_EXTRACTABLE
        | CKA_ALWAYS_AUTHENTICATE
        | CKA_ENCRYPT
        | CKA_DECRYPT
        | CKA_SIGN
        | CKA_VERIFY
        | CKA_SIGN_RECOVER
        | CKA_VERIFY_RECOVER
        | CKA_WRAP
        | CKA_UNWRAP
        | CKA_DERIVE => len == 1,
        _ => len <= MAX_VALUE_LEN,
    }
}

/// The longest PIN or SO PIN (a management key in hex, 64 digits for AES-256) worth reading.
const MAX_PIN_LEN: CK_ULONG = 64;

/// A PIN from the caller: one longer than any PIN or key is refused before it is read.
unsafe fn pin_bytes<'a>(p: *const u8, n: CK_ULONG) -> Rv<&'a [u8]> {
    if n > MAX_PIN_LEN {
        return Err(CKR_PIN_LEN_RANGE);
    }
    bytes(p, n)
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsInit(h: CK_SESSION_HANDLE, t: *mut CK_ATTRIBUTE, count: CK_ULONG) -> CK_RV {
    guard(|| {
        let wanted = template(t, count)?;
        on_session(h, |s| s.find_init(h, &wanted))
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_CreateObject(
    h: CK_SESSION_HANDLE,
    t: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    object: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let object = out(object)?;
        let t = template(t, count)?;
        *object = on_session(h, |s| s.create_object(h, &t))?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DestroyObject(h: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> CK_RV {
    guard(|| on_session(h, |s| s.destroy_object(h, object)))
}

#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn C_GenerateKeyPair(
    h: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    public: *mut CK_ATTRIBUTE,
    public_count: CK_ULONG,
    private: *mut CK_ATTRIBUTE,
    private_count: CK_ULONG,
    public_key: *mut CK_OBJECT_HANDLE,
    private_key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let mech = out(mechanism)?.mechanism;
        let (public, private) = (template(public, public_count)?, template(private, private_count)?);
        let (public_key, private_key) = (out(public_key)?, out(private_key)?);
        (*public_key, *private_key) = on_session(h, |s| s.generate_key_pair(h, mech, &public, &private))?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_DeriveKey(
    h: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    base: CK_OBJECT_HANDLE,
    t: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        let mech = out(mechanism)?;
        if mech.mechanism != CKM_ECDH1_DERIVE {
            return Err(CKR_MECHANISM_INVALID);
        }
        if mech.pParameter.is_null() || (mech.ulParameterLen as usize) < std::mem::size_of::<CK_ECDH1_DERIVE_PARAMS>() {
            return Err(CKR_MECHANISM_PARAM_INVALID);
        }
        let params = &*(mech.pParameter as *const CK_ECDH1_DERIVE_PARAMS);
        if params.kdf != CKD_NULL || params.ulSharedDataLen != 0 {
            return Err(CKR_MECHANISM_PARAM_INVALID);
        }
        // A P-256 point, raw (65 bytes) or in its DER OCTET STRING (67): nothing longer is read.
        if params.ulPublicDataLen > 67 {
            return Err(CKR_MECHANISM_PARAM_INVALID);
        }
        let peer = bytes(params.pPublicData, params.ulPublicDataLen)?.to_vec();
        let t = template(t, count)?;
        let key = out(key)?;
        *key = on_session(h, |s| s.derive(h, base, &peer, &t))?;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjects(
    h: CK_SESSION_HANDLE,
    objects: *mut CK_OBJECT_HANDLE,
    max: CK_ULONG,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        let count = out(count)?;
        if objects.is_null() && max > 0 {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let found = on_session(h, |s| s.find(h, max as usize))?;
        if !found.is_empty() {
            std::ptr::copy_nonoverlapping(found.as_ptr(), objects, found.len());
        }
        *count = found.len() as CK_ULONG;
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_FindObjectsFinal(h: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| on_session(h, |s| s.find_final(h)))
}

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
unsafe fn signature(result: SignOut, sig: *mut CK_BYTE, len: *mut CK_ULONG) -> Rv<()> {
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
unsafe fn room(sig: *mut CK_BYTE, len: *mut CK_ULONG) -> Rv<Option<usize>> {
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

#[no_mangle]
pub unsafe extern "C" fn C_WaitForSlotEvent(flags: CK_FLAGS, slot: *mut CK_SLOT_ID, _reserved: *mut c_void) -> CK_RV {
    guard(|| {
        let slot = out(slot)?;
        let generation = crate::events::GENERATION.load(std::sync::atomic::Ordering::SeqCst);
        loop {
            refresh()?;
            if let Some(s) = with(|m| Ok(m.next_event()))? {
                *slot = s;
                return Ok(());
            }
            if flags & CKF_DONT_BLOCK != 0 {
                return Err(CKR_NO_EVENT);
            }
            if crate::events::GENERATION.load(std::sync::atomic::Ordering::SeqCst) != generation {
                return Err(CKR_CRYPTOKI_NOT_INITIALIZED);
            }
            crate::events::wait(generation);
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInterfaceList(list: *mut CK_INTERFACE, count: *mut CK_ULONG) -> CK_RV {
    guard(|| {
        let all = interfaces();
        give_list(&all, list, count)
    })
}

#[no_mangle]
pub unsafe extern "C" fn C_GetInterface(
    name: *mut CK_UTF8CHAR,
    version: *mut CK_VERSION,
    interface: *mut *mut CK_INTERFACE,
    _flags: CK_FLAGS,
) -> CK_RV {
    guard(|| {
        let interface = out(interface)?;
        if !name.is_null() {
            let wanted = std::ffi::CStr::from_ptr(name as *const std::os::raw::c_char);
            if wanted.to_bytes() != b"PKCS 11" {
                return Err(CKR_ARGUMENTS_BAD);
            }
        }
        let want = version.as_ref().map(|v| (v.major, v.minor));
        let pick = match want {
            None | Some((3, 0)) => &INTERFACE_3_0,
            Some((2, 40)) => &INTERFACE_2_40,
            _ => return Err(CKR_ARGUMENTS_BAD),
        };
        *interface = pick.0.get();
        Ok(())
    })
}

/// The interfaces as C wants them: static, with pointers into static data.
struct Interface(std::cell::UnsafeCell<CK_INTERFACE>);
// The interfaces are never written after they are made; callers only read them.
unsafe impl Sync for Interface {}

static NAME: &[u8; 8] = b"PKCS 11\0";
static INTERFACE_3_0: Interface = Interface(std::cell::UnsafeCell::new(CK_INTERFACE {
    pInterfaceName: NAME.as_ptr() as *mut CK_CHAR,
    pFunctionList: &FUNCTIONS_3_0 as *const CK_FUNCTION_LIST_3_0 as *mut c_void,
    flags: 0,
}));
static INTERFACE_2_40: Interface = Interface(std::cell::UnsafeCell::new(CK_INTERFACE {
    pInterfaceName: NAME.as_ptr() as *mut CK_CHAR,
    pFunctionList: &FUNCTIONS as *const CK_FUNCTION_LIST as *mut c_void,
    flags: 0,
}));

fn interfaces() -> [CK_INTERFACE; 2] {
    // Safety: read-only statics.
    unsafe { [*INTERFACE_3_0.0.get(), *INTERFACE_2_40.0.get()] }
}

/// Functions this module does not have: CKR_FUNCTION_NOT_SUPPORTED, as PKCS#11 lets a token say.
macro_rules! not_supported {
    ($($name:ident($($t:ty),*);)*) => {
        $(
            #[no_mangle]
            pub unsafe extern "C" fn $name($(_: $t),*) -> CK_RV {
                CKR_FUNCTION_NOT_SUPPORTED
            }
        )*
    };
}

not_supported! {
    C_InitToken(CK_SLOT_ID, *mut CK_UTF8CHAR, CK_ULONG, *mut CK_UTF8CHAR);
    C_InitPIN(CK_SESSION_HANDLE, *mut CK_UTF8CHAR, CK_ULONG);
    C_GetOperationState(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_SetOperationState(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE);
    C_CopyObject(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_GetObjectSize(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ULONG);
    C_SetAttributeValue(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, *mut CK_ATTRIBUTE, CK_ULONG);
    C_EncryptInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_Encrypt(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_EncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_EncryptFinal(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_Decrypt(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptFinal(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_DigestInit(CK_SESSION_HANDLE, *mut CK_MECHANISM);
    C_Digest(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DigestUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG);
    C_DigestKey(CK_SESSION_HANDLE, CK_OBJECT_HANDLE);
    C_DigestFinal(CK_SESSION_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_SignRecoverInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_SignRecover(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_VerifyInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_Verify(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_VerifyUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG);
    C_VerifyFinal(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG);
    C_VerifyRecoverInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_VerifyRecover(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DigestEncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptDigestUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_SignEncryptUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptVerifyUpdate(CK_SESSION_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_GenerateKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_WrapKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE, *mut CK_BYTE, *mut CK_ULONG);
    C_UnwrapKey(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE, *mut CK_BYTE, CK_ULONG, *mut CK_ATTRIBUTE, CK_ULONG, *mut CK_OBJECT_HANDLE);
    C_GetFunctionStatus(CK_SESSION_HANDLE);
    C_CancelFunction(CK_SESSION_HANDLE);
    C_LoginUser(CK_SESSION_HANDLE, CK_USER_TYPE, *mut CK_UTF8CHAR, CK_ULONG, *mut CK_UTF8CHAR, CK_ULONG);
    C_SessionCancel(CK_SESSION_HANDLE, CK_FLAGS);
    C_MessageEncryptInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_EncryptMessage(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_EncryptMessageBegin(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_EncryptMessageNext(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG, CK_FLAGS);
    C_MessageEncryptFinal(CK_SESSION_HANDLE);
    C_MessageDecryptInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_DecryptMessage(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_DecryptMessageBegin(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_DecryptMessageNext(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG, CK_FLAGS);
    C_MessageDecryptFinal(CK_SESSION_HANDLE);
    C_MessageSignInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_SignMessage(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_SignMessageBegin(CK_SESSION_HANDLE, *mut c_void, CK_ULONG);
    C_SignMessageNext(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, *mut CK_ULONG);
    C_MessageSignFinal(CK_SESSION_HANDLE);
    C_MessageVerifyInit(CK_SESSION_HANDLE, *mut CK_MECHANISM, CK_OBJECT_HANDLE);
    C_VerifyMessage(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_VerifyMessageBegin(CK_SESSION_HANDLE, *mut c_void, CK_ULONG);
    C_VerifyMessageNext(CK_SESSION_HANDLE, *mut c_void, CK_ULONG, *mut CK_BYTE, CK_ULONG, *mut CK_BYTE, CK_ULONG);
    C_MessageVerifyFinal(CK_SESSION_HANDLE);
}

/// The two function lists: every 2.40 function in both, the 3.0 ones in the 3.0 list only.
macro_rules! function_lists {
    ($($f:ident),* ; $($x:ident),*) => {
        /// The PKCS#11 2.40 function list.
        pub static FUNCTIONS: CK_FUNCTION_LIST =
            CK_FUNCTION_LIST { version: CK_VERSION { major: 2, minor: 40 }, $($f: Some($f),)* };
        /// The PKCS#11 3.0 function list (C_GetInterface).
        pub static FUNCTIONS_3_0: CK_FUNCTION_LIST_3_0 = CK_FUNCTION_LIST_3_0 {
            version: CK_VERSION { major: 3, minor: 0 },
            $($f: Some($f),)*
            $($x: Some($x),)*
        };
    };
}

function_lists!(
    C_Initialize, C_Finalize, C_GetInfo, C_GetFunctionList, C_GetSlotList, C_GetSlotInfo, C_GetTokenInfo,
    C_GetMechanismList, C_GetMechanismInfo, C_InitToken, C_InitPIN, C_SetPIN, C_OpenSession, C_CloseSession,
    C_CloseAllSessions, C_GetSessionInfo, C_GetOperationState, C_SetOperationState, C_Login, C_Logout,
    C_CreateObject, C_CopyObject, C_DestroyObject, C_GetObjectSize, C_GetAttributeValue, C_SetAttributeValue,
    C_FindObjectsInit, C_FindObjects, C_FindObjectsFinal, C_EncryptInit, C_Encrypt, C_EncryptUpdate,
    C_EncryptFinal, C_DecryptInit, C_Decrypt, C_DecryptUpdate, C_DecryptFinal, C_DigestInit, C_Digest,
    C_DigestUpdate, C_DigestKey, C_DigestFinal, C_SignInit, C_Sign, C_SignUpdate, C_SignFinal,
    C_SignRecoverInit, C_SignRecover, C_VerifyInit, C_Verify, C_VerifyUpdate, C_VerifyFinal,
    C_VerifyRecoverInit, C_VerifyRecover, C_DigestEncryptUpdate, C_DecryptDigestUpdate, C_SignEncryptUpdate,
    C_DecryptVerifyUpdate, C_GenerateKey, C_GenerateKeyPair, C_WrapKey, C_UnwrapKey, C_DeriveKey,
    C_SeedRandom, C_GenerateRandom, C_GetFunctionStatus, C_CancelFunction, C_WaitForSlotEvent;
    C_GetInterfaceList, C_GetInterface, C_LoginUser, C_SessionCancel, C_MessageEncryptInit, C_EncryptMessage,
    C_EncryptMessageBegin, C_EncryptMessageNext, C_MessageEncryptFinal, C_MessageDecryptInit,
    C_DecryptMessage, C_DecryptMessageBegin, C_DecryptMessageNext, C_MessageDecryptFinal, C_MessageSignInit,
    C_SignMessage, C_SignMessageBegin, C_SignMessageNext, C_MessageSignFinal, C_MessageVerifyInit,
    C_VerifyMessage, C_VerifyMessageBegin, C_VerifyMessageNext, C_MessageVerifyFinal
);

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread holds the module's lock (as a call does, briefly) while another forks: the
    /// child finds the lock free. Without the fork handlers it would be taken for ever.
    #[test]
    fn a_child_forked_while_another_thread_holds_the_modules_lock_finds_it_free() {
        watch_forks();
        let (held, hold) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let guard = lock();
            held.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(guard);
        });
        hold.recv().unwrap();
        // Safety: the child only tries the lock and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let free = MODULE.try_lock().is_ok();
            unsafe { libc::_exit(if free { 0 } else { 1 }) };
        }
        holder.join().unwrap();
        let mut status = 0;
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child found the lock taken");
    }
}
