//! C_GetAttributeValue by PKCS#11 3.0 §5.7, and the lengths a caller gives believed no further
//! than the attribute can go, called through the module's C functions on a directory key.

mod common;

use std::ptr;
use std::sync::Mutex;

use cryptoki_sys::*;
use token_sim::scenario::Scenario;

/// The module is one per process: one test at a time initialises it.
static MODULE: Mutex<()> = Mutex::new(());

fn f() -> &'static CK_FUNCTION_LIST {
    let mut list: *mut CK_FUNCTION_LIST = ptr::null_mut();
    assert_eq!(unsafe { ukey_pkcs11::C_GetFunctionList(&mut list) }, CKR_OK);
    unsafe { &*list }
}

/// The module on a provisioned directory key: a logged-in session on its slot.
fn session(root: &std::path::Path) -> CK_SESSION_HANDLE {
    let dir = common::key(root, "key", Scenario::Provisioned, "Jo");
    std::env::set_var("UKEY_PKCS11_KEYS", &dir);
    std::env::set_var("UKEY_PKCS11_READERS", "off");
    let f = f();
    let mut h = 0;
    unsafe {
        assert_eq!(f.C_Initialize.unwrap()(ptr::null_mut()), CKR_OK);
        assert_eq!(f.C_OpenSession.unwrap()(0, CKF_SERIAL_SESSION, ptr::null_mut(), None, &mut h), CKR_OK);
        let mut pin = *b"123456";
        assert_eq!(f.C_Login.unwrap()(h, CKU_USER, pin.as_mut_ptr(), 6), CKR_OK);
    }
    h
}

/// The object of `class` with CKA_ID 01.
fn object(h: CK_SESSION_HANDLE, class: CK_OBJECT_CLASS) -> CK_OBJECT_HANDLE {
    let f = f();
    let (class, id) = (class.to_ne_bytes(), [1u8]);
    let mut t = [
        CK_ATTRIBUTE { type_: CKA_CLASS, pValue: class.as_ptr() as *mut _, ulValueLen: 8 },
        CK_ATTRIBUTE { type_: CKA_ID, pValue: id.as_ptr() as *mut _, ulValueLen: 1 },
    ];
    let (mut o, mut n) = (0, 0);
    unsafe {
        assert_eq!(f.C_FindObjectsInit.unwrap()(h, t.as_mut_ptr(), 2), CKR_OK);
        assert_eq!(f.C_FindObjects.unwrap()(h, &mut o, 1, &mut n), CKR_OK);
        assert_eq!(f.C_FindObjectsFinal.unwrap()(h), CKR_OK);
    }
    assert_eq!(n, 1);
    o
}

fn attr(type_: CK_ATTRIBUTE_TYPE, buf: &mut [u8], len: CK_ULONG) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE { type_, pValue: buf.as_mut_ptr() as *mut _, ulValueLen: len }
}

#[test]
fn a_short_buffer_gets_unavailable_information_and_the_other_attributes_are_still_answered() {
    let _one = MODULE.lock().unwrap_or_else(|p| p.into_inner());
    let root = tempfile::tempdir().unwrap();
    let h = session(root.path());
    let f = f();
    let cert = object(h, CKO_CERTIFICATE);
    let (mut label, mut id) = ([0xAAu8; 4], [0xAAu8; 16]);
    let mut t = [
        attr(CKA_LABEL, &mut label, 4),
        // Far more than the real buffer: only the value's one byte may be written.
        attr(CKA_ID, &mut id, CK_ULONG::MAX / 2),
        CK_ATTRIBUTE { type_: CKA_CLASS, pValue: ptr::null_mut(), ulValueLen: 0 },
    ];
    assert_eq!(unsafe { f.C_GetAttributeValue.unwrap()(h, cert, t.as_mut_ptr(), 3) }, CKR_BUFFER_TOO_SMALL);
    assert_eq!(t[0].ulValueLen, CK_UNAVAILABLE_INFORMATION, "a short buffer's length says unavailable");
    assert_eq!(label, [0xAA; 4], "nothing is written into a short buffer");
    assert_eq!((t[1].ulValueLen, id[0]), (1, 1), "the next attribute is answered");
    assert_eq!(id[1..], [0xAA; 15], "nothing is written past the value");
    assert_eq!(t[2].ulValueLen, 8, "a null buffer gets the length");

    // Sensitive, unknown and short in one call: each says so, the answerable one is answered.
    let key = object(h, CKO_PRIVATE_KEY);
    let (mut value, mut bogus, mut label, mut id) = ([0u8; 64], [0u8; 8], [0u8; 2], [0u8; 1]);
    let mut t = [
        attr(CKA_VALUE, &mut value, 64),
        attr(0x8000_7777, &mut bogus, 8),
        attr(CKA_LABEL, &mut label, 2),
        attr(CKA_ID, &mut id, 1),
    ];
    let rv = unsafe { f.C_GetAttributeValue.unwrap()(h, key, t.as_mut_ptr(), 4) };
    assert!([CKR_ATTRIBUTE_SENSITIVE, CKR_ATTRIBUTE_TYPE_INVALID, CKR_BUFFER_TOO_SMALL].contains(&rv), "{rv:#x}");
    for (i, a) in t[..3].iter().enumerate() {
        assert_eq!(a.ulValueLen, CK_UNAVAILABLE_INFORMATION, "attribute {i}");
    }
    assert_eq!((t[3].ulValueLen, id[0]), (1, 1));
    unsafe { assert_eq!(f.C_Finalize.unwrap()(ptr::null_mut()), CKR_OK) };
}

/// `len` bytes whose end is the end of readable memory: a read past them faults.
struct Guarded {
    base: *mut u8,
    page: usize,
}

impl Guarded {
    fn new() -> Guarded {
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                2 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        assert_eq!(unsafe { libc::mprotect((base as *mut u8).add(page) as *mut _, page, libc::PROT_NONE) }, 0);
        Guarded { base: base as *mut u8, page }
    }

    /// `value` copied to the last bytes before the guard page.
    fn at_end(&self, value: &[u8]) -> *mut u8 {
        let p = unsafe { self.base.add(self.page - value.len()) };
        unsafe { ptr::copy_nonoverlapping(value.as_ptr(), p, value.len()) };
        p
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.base as *mut _, 2 * self.page) };
    }
}

#[test]
fn a_length_beyond_what_the_attribute_can_be_is_refused_before_it_is_read() {
    let _one = MODULE.lock().unwrap_or_else(|p| p.into_inner());
    let root = tempfile::tempdir().unwrap();
    let h = session(root.path());
    let f = f();
    let mem = Guarded::new();
    // A CK_ULONG at the very end of readable memory, its length said to be a page.
    let class = mem.at_end(&CKO_CERTIFICATE.to_ne_bytes());
    let mut t = [CK_ATTRIBUTE { type_: CKA_CLASS, pValue: class as *mut _, ulValueLen: 4096 }];
    assert_eq!(unsafe { f.C_FindObjectsInit.unwrap()(h, t.as_mut_ptr(), 1) }, CKR_ATTRIBUTE_VALUE_INVALID);
    // A label is a byte string: still no longer than any value here.
    let label = mem.at_end(b"Certificate for PIV Authentication");
    let mut t = [CK_ATTRIBUTE { type_: CKA_LABEL, pValue: label as *mut _, ulValueLen: 1 << 20 }];
    assert_eq!(unsafe { f.C_FindObjectsInit.unwrap()(h, t.as_mut_ptr(), 1) }, CKR_ATTRIBUTE_VALUE_INVALID);
    // The same, with their true lengths, find the certificate.
    let mut t = [CK_ATTRIBUTE { type_: CKA_LABEL, pValue: label as *mut _, ulValueLen: 34 }];
    let (mut o, mut n) = (0, 0);
    unsafe {
        assert_eq!(f.C_FindObjectsInit.unwrap()(h, t.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(f.C_FindObjects.unwrap()(h, &mut o, 1, &mut n), CKR_OK);
        assert_eq!(f.C_FindObjectsFinal.unwrap()(h), CKR_OK);
    }
    assert_eq!(n, 1);
    // A PIN longer than any PIN or key in hex.
    let pin = mem.at_end(b"123456");
    unsafe {
        assert_eq!(f.C_Logout.unwrap()(h), CKR_OK);
        assert_eq!(f.C_Login.unwrap()(h, CKU_USER, pin, 1 << 20), CKR_PIN_LEN_RANGE);
        assert_eq!(f.C_Finalize.unwrap()(ptr::null_mut()), CKR_OK);
    }
}
