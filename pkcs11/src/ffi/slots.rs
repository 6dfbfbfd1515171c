//! Slots, tokens and mechanisms, and C_WaitForSlotEvent.

use std::os::raw::c_void;

use cryptoki_sys::*;

use crate::module::MECHANISMS;

use super::cabi::*;
use super::state::*;

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
