//! A key in a PC/SC reader is shared with every other program on the machine. The module leaves
//! it locked for them: a management-key authentication lasts one admin operation, and
//! C_Finalize ends the PIN session; seen from a second PC/SC connection, as another program
//! sees the card. And while another program holds the reader (a PC/SC transaction), a call
//! that waits for it waits alone: the module answers other calls, and a process forked
//! meanwhile initialises its own module. Needs pcscd with vsmartcard-vpcd; under CI=true a
//! missing one fails the test.

mod common;
#[path = "../../testsupport/served.rs"]
mod served;
#[path = "../../testsupport/vpcd.rs"]
mod vpcd_support;

use std::ptr;
use std::time::{Duration, Instant};

use cryptoki_sys::*;
use host_driver::pcsc::PcscTransport;
use host_driver::{PinStatus, Piv, PivError};
use proto::piv::object::CHUID;
use proto::transport::{Hold, Transport};
use served::Served;
use token_sim::scenario::Scenario;
use token_sim::{KeySpec, VirtualKey};
use vpcd_support::{begin, READER};

/// The factory management key: the SO's PIN, and the configured `mgmt_key`.
const MGMT_KEY: &str = "010203040506070801020304050607080102030405060708";

fn f() -> &'static CK_FUNCTION_LIST {
    let mut list: *mut CK_FUNCTION_LIST = ptr::null_mut();
    assert_eq!(unsafe { ukey_pkcs11::C_GetFunctionList(&mut list) }, CKR_OK);
    unsafe { &*list }
}

/// A fresh key served in the first vpcd reader.
fn serve() -> Served {
    let now = common::now();
    Served::start(VirtualKey::in_memory(&KeySpec::default(), &now).unwrap(), 0)
}

/// The slot of reader `name`.
fn slot_of(name: &str) -> CK_SLOT_ID {
    let f = f();
    let mut n = 0;
    unsafe { assert_eq!(f.C_GetSlotList.unwrap()(0, ptr::null_mut(), &mut n), CKR_OK) };
    let mut ids = vec![0; n as usize];
    unsafe { assert_eq!(f.C_GetSlotList.unwrap()(0, ids.as_mut_ptr(), &mut n), CKR_OK) };
    *ids.iter()
        .find(|&&id| {
            let mut info: CK_SLOT_INFO = unsafe { std::mem::zeroed() };
            unsafe { f.C_GetSlotInfo.unwrap()(id, &mut info) };
            String::from_utf8_lossy(&info.slotDescription).trim_end() == name
        })
        .unwrap()
}

fn login(h: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &str) -> CK_RV {
    let mut pin = pin.as_bytes().to_vec();
    unsafe { f().C_Login.unwrap()(h, user, pin.as_mut_ptr(), pin.len() as CK_ULONG) }
}

/// Another program on the same card: a PC/SC connection of its own.
struct Other(Piv<PcscTransport>);

impl Other {
    fn connect() -> Other {
        Other(Piv::new(PcscTransport::connect_shared(READER[0]).unwrap()))
    }

    /// Whether the card has the PIN verified (an empty VERIFY: no try is spent).
    fn pin_verified(&mut self) -> bool {
        matches!(self.0.pin_status().unwrap(), PinStatus::Verified)
    }

    /// Whether the card holds a management-key authentication: a write that needs one (the
    /// CHUID, written back as it is) goes through.
    fn mgmt_authenticated(&mut self) -> bool {
        let chuid = self.0.read_object(CHUID).unwrap().expect("the key has a CHUID");
        match self.0.write_object(CHUID, &chuid) {
            Ok(()) => true,
            Err(PivError::NotAuthorized { .. }) => false,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn the_card_is_left_locked_after_each_admin_operation_and_after_c_finalize() {
    let Some(_one) = begin() else { return };
    std::env::remove_var("UKEY_PKCS11_KEYS");
    std::env::set_var("UKEY_PKCS11_READERS", "on");
    std::env::set_var("UKEY_PKCS11_MGMT_KEY", MGMT_KEY);
    let _served = serve();
    let f = f();
    unsafe { assert_eq!(f.C_Initialize.unwrap()(ptr::null_mut()), CKR_OK) };
    let slot = slot_of(READER[0]);
    let mut other = Other::connect();
    assert!(!other.pin_verified() && !other.mgmt_authenticated(), "the card starts locked");
    let mut h = 0;
    unsafe {
        let flags = CKF_SERIAL_SESSION | CKF_RW_SESSION;
        assert_eq!(f.C_OpenSession.unwrap()(slot, flags, ptr::null_mut(), None, &mut h), CKR_OK);
    }
    assert_eq!(login(h, CKU_USER, "123456"), CKR_OK);
    assert!(other.pin_verified(), "a user login is the card's");

    // The user generates with the configured management key: the authentication ends with it.
    let mut mech = CK_MECHANISM { mechanism: CKM_EC_KEY_PAIR_GEN, pParameter: ptr::null_mut(), ulParameterLen: 0 };
    let id = [3u8];
    let mut public = [CK_ATTRIBUTE { type_: CKA_ID, pValue: id.as_ptr() as *mut _, ulValueLen: 1 }];
    let (mut pubkey, mut key) = (0, 0);
    let rv = unsafe {
        f.C_GenerateKeyPair.unwrap()(h, &mut mech, public.as_mut_ptr(), 1, ptr::null_mut(), 0, &mut pubkey, &mut key)
    };
    assert_eq!(rv, CKR_OK);
    assert!(!other.mgmt_authenticated(), "the management key's authentication outlived the generation");
    assert!(other.pin_verified(), "the user is still logged in");
    unsafe { assert_eq!(f.C_Logout.unwrap()(h), CKR_OK) };
    assert!(!other.pin_verified(), "C_Logout ends the PIN session");

    // The security officer: the login checks the key, and each operation authenticates alone.
    assert_eq!(login(h, CKU_SO, "000000000000000000000000000000000000000000000000"), CKR_PIN_INCORRECT);
    assert_eq!(login(h, CKU_SO, MGMT_KEY), CKR_OK);
    assert!(!other.mgmt_authenticated(), "the SO login left the card authenticated");
    unsafe { assert_eq!(f.C_DestroyObject.unwrap()(h, key), CKR_OK) };
    assert!(!other.mgmt_authenticated(), "the key's deletion left the card authenticated");
    unsafe { assert_eq!(f.C_Logout.unwrap()(h), CKR_OK) };

    // C_Finalize logs the user out.
    assert_eq!(login(h, CKU_USER, "123456"), CKR_OK);
    assert!(other.pin_verified());
    unsafe { assert_eq!(f.C_Finalize.unwrap()(ptr::null_mut()), CKR_OK) };
    assert!(!other.pin_verified(), "C_Finalize left the PIN verified on the card");
    std::env::remove_var("UKEY_PKCS11_MGMT_KEY");
}

/// Fork: the child runs `body` and exits with its verdict. The parent waits `within` for it:
/// `Some(verdict)`, or `None` when the child had not ended by then (it is killed).
fn in_child(body: impl FnOnce() -> bool, within: Duration) -> Option<bool> {
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(false);
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let deadline = Instant::now() + within;
    let mut status = 0;
    loop {
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            return Some(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        }
        if Instant::now() > deadline {
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn while_another_program_holds_the_reader_the_module_answers_and_a_forked_child_initialises() {
    let Some(_one) = begin() else { return };
    let root = tempfile::tempdir().unwrap();
    let dir = common::key(root.path(), "child-key", Scenario::Provisioned, "child");
    std::env::remove_var("UKEY_PKCS11_KEYS");
    std::env::remove_var("UKEY_PKCS11_MGMT_KEY");
    std::env::set_var("UKEY_PKCS11_READERS", "on");
    let _served = serve();
    let f = f();
    unsafe { assert_eq!(f.C_Initialize.unwrap()(ptr::null_mut()), CKR_OK) };
    let slot = slot_of(READER[0]);
    let mut h = 0;
    unsafe { assert_eq!(f.C_OpenSession.unwrap()(slot, CKF_SERIAL_SESSION, ptr::null_mut(), None, &mut h), CKR_OK) };

    // Another program holds the card, so a login on its token waits.
    let mut holder = PcscTransport::connect_shared(READER[0]).unwrap();
    assert!(matches!(holder.hold().unwrap(), Hold::Shared { .. }));
    let waiter = std::thread::spawn(move || login(h, CKU_USER, "123456"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(!waiter.is_finished(), "the login waits for the other program's transaction");

    // Meanwhile the module answers another thread...
    let (tx, rx) = std::sync::mpsc::channel();
    let lister = std::thread::spawn(move || {
        let mut n = 0;
        let rv = unsafe { f.C_GetSlotList.unwrap()(0, ptr::null_mut(), &mut n) };
        let _ = tx.send((rv, n));
    });
    let listed = rx.recv_timeout(Duration::from_secs(5));
    // ...and a child forked now initialises a module of its own (on a key directory: the
    // reader is still held). The parent's module read its settings at C_Initialize.
    std::env::set_var("UKEY_PKCS11_KEYS", &dir);
    std::env::set_var("UKEY_PKCS11_READERS", "off");
    // (Forked from a thread of its own: should fork() itself wait for the module, this test
    // still ends, by letting the other program go.)
    let (tx, rx) = std::sync::mpsc::channel();
    let forker = std::thread::spawn(move || {
        let child = in_child(
            || unsafe {
                let mut n = 0;
                f.C_Initialize.unwrap()(ptr::null_mut()) == CKR_OK
                    && f.C_GetSlotList.unwrap()(1, ptr::null_mut(), &mut n) == CKR_OK
                    && n == 1
                    && f.C_Finalize.unwrap()(ptr::null_mut()) == CKR_OK
            },
            Duration::from_secs(10),
        );
        let _ = tx.send(child);
    });
    let child = rx.recv_timeout(Duration::from_secs(12)).ok().flatten();

    holder.release();
    assert_eq!(waiter.join().unwrap(), CKR_OK, "the login goes on once the other program lets go");
    lister.join().unwrap();
    forker.join().unwrap();
    assert!(
        matches!(listed, Ok((CKR_OK, n)) if n >= 1) && child == Some(true),
        "while a login waited for the reader: C_GetSlotList answered {listed:?} (Err: not within 5 s); \
         the forked child's C_Initialize and C_GetSlotList: {child:?} (None: no fork, or not done, within 10 s)"
    );
    unsafe { assert_eq!(f.C_Finalize.unwrap()(ptr::null_mut()), CKR_OK) };
}
