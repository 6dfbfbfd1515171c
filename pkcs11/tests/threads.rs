//! The module under concurrent sessions, called through its own function list as a C caller
//! would: eight threads, each with its own session on one token, sign at once; every
//! signature verifies with the token's public key, and the login one thread made holds for
//! all (PKCS#11 logs in per token, not per session); the token's info, asked meanwhile, stays
//! the token's.

use std::ptr;

use cryptoki_sys::*;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use proto::clock::FixedClock;
use token_sim::scenario::Scenario;
use token_sim::{KeySpec, VirtualKey};

fn f() -> &'static CK_FUNCTION_LIST {
    let mut list: *mut CK_FUNCTION_LIST = ptr::null_mut();
    assert_eq!(unsafe { ukey_pkcs11::C_GetFunctionList(&mut list) }, CKR_OK);
    unsafe { &*list }
}

#[test]
fn eight_threads_sign_at_once_and_every_signature_verifies() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("k");
    let ca = ca::Ca::create(&root.path().join("ca"), "CN=Test CA", 3650, &FixedClock(1_790_000_000)).unwrap();
    let now = FixedClock(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    let mut vk = VirtualKey::create(&dir, &KeySpec::default(), &now).unwrap();
    vk.provision(Scenario::Provisioned, Some(&ca), "CN=t", &now).unwrap();
    let cert =
        proto::piv::cert_object::decode(vk.card().state().object(0x5FC105).unwrap()).unwrap().certificate.to_vec();
    drop(vk);
    let public = host_driver::certinfo::public_key(&cert).unwrap();
    std::env::set_var("UKEY_PKCS11_KEYS", &dir);
    std::env::set_var("UKEY_PKCS11_READERS", "off");
    let f = f();
    let mut args = CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags: CKF_OS_LOCKING_OK,
        pReserved: ptr::null_mut(),
    };
    unsafe {
        assert_eq!(f.C_Initialize.unwrap()(&mut args as *mut _ as *mut _), CKR_OK);
        let mut first = 0;
        assert_eq!(f.C_OpenSession.unwrap()(0, CKF_SERIAL_SESSION, ptr::null_mut(), None, &mut first), CKR_OK);
        let mut pin = *b"123456";
        assert_eq!(f.C_Login.unwrap()(first, CKU_USER, pin.as_mut_ptr(), 6), CKR_OK);
    }
    let signed: Vec<Vec<([u8; 32], Vec<u8>)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8u8)
            .map(|t| {
                s.spawn(move || unsafe {
                    let mut h = 0;
                    assert_eq!(f.C_OpenSession.unwrap()(0, CKF_SERIAL_SESSION, ptr::null_mut(), None, &mut h), CKR_OK);
                    let class = CKO_PRIVATE_KEY.to_ne_bytes();
                    let mut find = [CK_ATTRIBUTE { type_: CKA_CLASS, pValue: class.as_ptr() as *mut _, ulValueLen: 8 }];
                    assert_eq!(f.C_FindObjectsInit.unwrap()(h, find.as_mut_ptr(), 1), CKR_OK);
                    let (mut key, mut n) = (0, 0);
                    assert_eq!(f.C_FindObjects.unwrap()(h, &mut key, 1, &mut n), CKR_OK);
                    assert_eq!(n, 1, "the login of another session counts for this one");
                    f.C_FindObjectsFinal.unwrap()(h);
                    let mut out = Vec::new();
                    for i in 0..10u8 {
                        // The token's info, asked while the other threads sign: the CN's label.
                        let mut info: CK_TOKEN_INFO = std::mem::zeroed();
                        assert_eq!(f.C_GetTokenInfo.unwrap()(0, &mut info), CKR_OK);
                        assert_eq!(String::from_utf8_lossy(&info.label).trim_end(), "t");
                        let mut digest = [t; 32];
                        digest[0] = i;
                        let mut mech =
                            CK_MECHANISM { mechanism: CKM_ECDSA, pParameter: ptr::null_mut(), ulParameterLen: 0 };
                        assert_eq!(f.C_SignInit.unwrap()(h, &mut mech, key), CKR_OK);
                        let mut sig = [0u8; 64];
                        let mut len = 64;
                        assert_eq!(f.C_Sign.unwrap()(h, digest.as_mut_ptr(), 32, sig.as_mut_ptr(), &mut len), CKR_OK);
                        out.push((digest, sig[..len as usize].to_vec()));
                    }
                    assert_eq!(f.C_CloseSession.unwrap()(h), CKR_OK);
                    out
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let key = p256::ecdsa::VerifyingKey::from(&public);
    for (digest, sig) in signed.iter().flatten() {
        let sig = p256::ecdsa::Signature::from_slice(sig).unwrap();
        key.verify_prehash(digest, &sig).expect("every signature verifies");
    }
    assert_eq!(signed.iter().flatten().count(), 80);
    unsafe {
        assert_eq!(f.C_Finalize.unwrap()(ptr::null_mut()), CKR_OK);
        assert_eq!(f.C_Finalize.unwrap()(ptr::null_mut()), CKR_CRYPTOKI_NOT_INITIALIZED);
    }
}
