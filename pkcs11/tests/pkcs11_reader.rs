//! The module with a PIV key in a PC/SC reader (a virtual key served on vpcd through pcscd):
//! pkcs11-tool lists the reader's token beside an empty reader, signs with its 9A key, and
//! openssl verifies the signature with the certificate read back. Needs pcscd with
//! vsmartcard-vpcd, pkcs11-tool and openssl; under CI=true a missing one fails the test.

#[path = "../../testsupport/served.rs"]
mod served;
#[path = "../../testsupport/vpcd.rs"]
mod vpcd_support;

use std::process::Command;

use proto::clock::FixedClock;
use served::Served;
use token_sim::scenario::{self, Scenario};
use token_sim::{KeySpec, VirtualKey};
use vpcd_support::{begin, READER};

fn module() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps, deps.parent().unwrap()].iter().map(|d| d.join("libukey_pkcs11.so")).find(|p| p.exists()).unwrap()
}

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
    key.card_mut()
        .update_state(|st, rng| {
            scenario::apply(st, Scenario::Provisioned, Some(&ca), "CN=reader key,O=Example", &now, rng)
        })
        .unwrap()
        .unwrap();
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
}
