//! C_Initialize, C_Finalize, C_GetInfo.

use std::os::raw::c_void;

use cryptoki_sys::*;

use crate::module::Module;

use super::cabi::*;
use super::state::*;

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
