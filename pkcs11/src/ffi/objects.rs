//! Objects: attributes, search, certificates written and deleted, key pairs made and
//! derived secrets.

use cryptoki_sys::*;

use crate::objects::Attr;
use crate::token::Rv;

use super::cabi::*;
use super::state::*;

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
pub(super) unsafe fn give_attribute(a: &mut CK_ATTRIBUTE, value: Attr) -> Rv<()> {
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
pub(super) unsafe fn template(t: *const CK_ATTRIBUTE, count: CK_ULONG) -> Rv<Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>> {
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
pub(super) const MAX_VALUE_LEN: CK_ULONG = 16 * 1024;

/// Whether `len` can be the length of a value of attribute `t`: a CK_ULONG's size for the
/// numbers, one byte for the booleans, at most [`MAX_VALUE_LEN`] for the rest.
pub(super) fn attribute_len_ok(t: CK_ATTRIBUTE_TYPE, len: CK_ULONG) -> bool {
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
