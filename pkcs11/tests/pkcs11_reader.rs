//! The module with a PIV key in a PC/SC reader (a virtual key served on vpcd through pcscd):
//! pkcs11-tool lists the reader's token beside an empty reader, signs with its 9A key, and
//! openssl verifies the signature with the certificate read back. Needs pcscd with
//! vsmartcard-vpcd, pkcs11-tool and openssl; under CI=true a missing one fails the test. The
//! other programs (p11tool, NSS, ssh, OpenSSL, p11-kit) run on a reader key in tests/programs.rs.

mod common;
#[path = "../../testsupport/served.rs"]
mod served;
#[path = "../../testsupport/vpcd.rs"]
mod vpcd_support;

use std::process::Command;

use common::module;
use proto::clock::FixedClock;
use served::Served;
use token_sim::scenario::Scenario;
use token_sim::{KeySpec, VirtualKey};
use vpcd_support::{begin, READER};

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let o = Command::new(program)
        .args(args)
        .env_remove("UKEY_PKCS11_KEYS")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (install opensc and openssl)"));
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

#[test]
fn a_key_in_a_reader_is_a_token_that_signs() {
    let Some(_one) = begin() else { return };
    let root = tempfile::tempdir().unwrap();
    let ca = ca::Ca::create(&root.path().join("ca"), "CN=Test CA", 3650, &FixedClock(1_790_000_000)).unwrap();
    let now = FixedClock(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    let mut key = VirtualKey::in_memory(&KeySpec::default(), &now).unwrap();
    key.provision(Scenario::Provisioned, Some(&ca), "CN=reader key,O=Example", &now).unwrap();
    let _served = Served::start(key, 0);
    let m = module();
    let m = m.to_str().unwrap();
    let (ok, slots) = run("pkcs11-tool", &["--module", m, "-L"]);
    assert!(ok, "{slots}");
    assert!(slots.contains(READER[0]) && slots.contains("token label        : reader key"), "{slots}");
    assert!(
        slots.contains(READER[1]) && slots.contains("(empty)"),
        "the empty reader is a slot without a token:\n{slots}"
    );
    let dir = root.path();
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    std::fs::write(dir.join("data"), b"signed in a reader").unwrap();
    let (ok, out) =
        run("pkcs11-tool", &["--module", m, "--read-object", "--type", "cert", "--id", "01", "-o", &p("cert.der")]);
    assert!(ok, "{out}");
    let (ok, pem) = run("openssl", &["x509", "-inform", "DER", "-in", &p("cert.der"), "-pubkey", "-noout"]);
    assert!(ok, "{pem}");
    std::fs::write(dir.join("pub.pem"), pem).unwrap();
    let (ok, out) = run(
        "pkcs11-tool",
        &[
            "--module",
            m,
            "--login",
            "--pin",
            "123456",
            "--sign",
            "-m",
            "ECDSA-SHA256",
            "--id",
            "01",
            "--signature-format",
            "openssl",
            "-i",
            &p("data"),
            "-o",
            &p("sig"),
        ],
    );
    assert!(ok, "{out}");
    let (ok, v) = run("openssl", &["dgst", "-sha256", "-verify", &p("pub.pem"), "-signature", &p("sig"), &p("data")]);
    assert!(ok && v.contains("Verified OK"), "{v}");
    // The other programs find the reader's key through the module as well.
    if common::have(&["p11tool", "ssh-keygen"]) {
        let (ok, certs) = run("p11tool", &["--provider", m, "--list-all-certs"]);
        assert!(
            ok && certs.contains("token=reader%20key") && certs.contains("Certificate for PIV Authentication"),
            "{certs}"
        );
        let (ok, test) = run(
            "p11tool",
            &[
                "--provider",
                m,
                "--login",
                "--set-pin",
                "123456",
                "--test-sign",
                "pkcs11:token=reader%20key;id=%01;type=private",
            ],
        );
        assert!(ok && test.contains("Verifying against public key in the token... ok"), "{test}");
        let (ok, ssh) = run("ssh-keygen", &["-D", m]);
        assert!(
            ok && ssh.lines().any(|l| l.starts_with("ecdsa-sha2-nistp256 ") && l.ends_with("PIV AUTH pubkey")),
            "{ssh}"
        );
    }
}

/// OpenSC's p11test on the module with the same kind of key in a vpcd reader: the results are
/// the directory key's (`p11test_ref.json`; see tests/p11test.rs for what it records).
#[test]
fn p11test_on_a_reader_key_matches_the_reference() {
    let Some(bin) = common::p11test::binary() else { return };
    let Some(_one) = begin() else { return };
    let root = tempfile::tempdir().unwrap();
    let key = VirtualKey::open(&common::key(root.path(), "key", Scenario::Full, "p11test user")).unwrap();
    let _served = Served::start(key, 0);
    let log = common::p11test::run(&bin, &module(), "123456", &[("UKEY_PKCS11_READERS", "on")], root.path());
    common::p11test::assert_matches(&log, "p11test_ref.json");
}

/// The module's function list, called as a C program would.
fn functions() -> &'static cryptoki_sys::CK_FUNCTION_LIST {
    let mut list = std::ptr::null_mut();
    assert_eq!(unsafe { ukey_pkcs11::C_GetFunctionList(&mut list) }, cryptoki_sys::CKR_OK);
    unsafe { &*list }
}

#[test]
fn slot_events_follow_the_card_and_finalize_wakes_a_waiter() {
    use cryptoki_sys::*;
    let Some(_one) = begin() else { return };
    std::env::remove_var("UKEY_PKCS11_KEYS");
    std::env::set_var("UKEY_PKCS11_READERS", "on");
    let now = FixedClock(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    let served = Served::start(VirtualKey::in_memory(&KeySpec::default(), &now).unwrap(), 1);
    let f = functions();
    let wait = |flags| {
        let mut slot = CK_ULONG::MAX;
        let rv = unsafe { f.C_WaitForSlotEvent.unwrap()(flags, &mut slot, std::ptr::null_mut()) };
        (rv, slot)
    };
    unsafe { assert_eq!(f.C_Initialize.unwrap()(std::ptr::null_mut()), CKR_OK) };
    let slot_of = |name: &str| -> CK_SLOT_ID {
        let mut n = 0;
        unsafe { f.C_GetSlotList.unwrap()(0, std::ptr::null_mut(), &mut n) };
        let mut ids = vec![0; n as usize];
        unsafe { f.C_GetSlotList.unwrap()(0, ids.as_mut_ptr(), &mut n) };
        *ids.iter()
            .find(|&&id| {
                let mut info: CK_SLOT_INFO = unsafe { std::mem::zeroed() };
                unsafe { f.C_GetSlotInfo.unwrap()(id, &mut info) };
                String::from_utf8_lossy(&info.slotDescription).trim_end() == name
            })
            .unwrap()
    };
    let ours = slot_of(READER[1]);
    assert_eq!(wait(CKF_DONT_BLOCK).0, CKR_NO_EVENT, "nothing changed since C_Initialize");
    // The card leaves: a blocked waiter hears of its slot.
    let waiter = std::thread::spawn(move || wait(0));
    served.inserted.send_replace(false);
    assert_eq!(waiter.join().unwrap(), (CKR_OK, ours));
    let mut info: CK_SLOT_INFO = unsafe { std::mem::zeroed() };
    unsafe { f.C_GetSlotInfo.unwrap()(ours, &mut info) };
    assert_eq!(info.flags & CKF_TOKEN_PRESENT, 0, "the slot stays, without its token");
    // It comes back: the same slot, with a token again.
    served.inserted.send_replace(true);
    assert_eq!(wait(0), (CKR_OK, ours));
    unsafe { f.C_GetSlotInfo.unwrap()(ours, &mut info) };
    assert_ne!(info.flags & CKF_TOKEN_PRESENT, 0);
    // C_Finalize wakes a waiter with nothing to hear, at once rather than at its next round.
    // (The waiter has no way to say it is blocked: give it a moment to get there.)
    let waiter = std::thread::spawn(move || wait(0));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let finalized = std::time::Instant::now();
    unsafe { assert_eq!(f.C_Finalize.unwrap()(std::ptr::null_mut()), CKR_OK) };
    assert_eq!(waiter.join().unwrap().0, CKR_CRYPTOKI_NOT_INITIALIZED);
    assert!(finalized.elapsed() < std::time::Duration::from_millis(1500), "woken by C_Finalize, not by the round");
}
