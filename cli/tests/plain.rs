//! The whole `ukey` key surface against `--plain` keys: PIV cards without Yubico's extensions
//! (GET VERSION, GET SERIAL, GET METADATA, ... answer 6D00), as third-party cards are. Every
//! command works, or says precisely which extension it needs and what to pass instead.

mod common;

use common::{json, ok, openssl_available, openssl_dgst_verify, ukey};
use std::path::Path;
use std::process::{Command, Output};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit 2 and an error naming every `needle`.
fn fails_with(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "exit 2 expected: {err}{}", String::from_utf8_lossy(&out.stdout));
    for n in needles {
        assert!(err.contains(n), "the error names {n:?}: {err}");
    }
}

/// The message for a slot whose public key a plain card cannot tell.
const NEEDS_METADATA: &[&str] =
    &["Yubico GET METADATA extension (INS F7)", "it answered 6D00", "no certificate", "pass --pubkey FILE"];

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl").args(args).output().expect("openssl runs")
}

/// `ukey sign` with `slot`, then openssl verifies the signature with `pubkey` (PEM).
fn sign_and_verify(home: &Path, k: &str, slot: &str, pin: &str, pubkey: &Path) {
    let doc = home.join(format!("doc-{slot}.txt"));
    std::fs::write(&doc, format!("signed on a plain PIV card, slot {slot}\n")).unwrap();
    let sig = home.join(format!("doc-{slot}.sig"));
    let out = json(&ukey(
        home,
        &[
            "sign",
            "--key",
            k,
            "--slot",
            slot,
            "--pin",
            pin,
            "--in",
            doc.to_str().unwrap(),
            "--out",
            sig.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(out["slot"], slot);
    if openssl_available() {
        let v = openssl_dgst_verify(pubkey, &sig, &doc);
        assert!(
            v.status.success() && String::from_utf8_lossy(&v.stdout).contains("Verified OK"),
            "openssl verifies the plain card's signature: {}{}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
    }
}

#[test]
fn every_key_command_works_on_a_plain_card() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let p = |name: &str| h.join(name).to_str().unwrap().to_string();
    let keys = h.join("keys");
    let key = keys.join("plain");
    let k = key.to_str().unwrap();

    // sim new, sim info, keys: no firmware, the CHUID's GUID as serial, tries without a total.
    let created = ok(h, &["sim", "new", k, "--plain"]);
    let info = json(&ukey(h, &["sim", "info", "--key", k, "--json"]));
    let guid = info["serial"].as_str().unwrap().to_string();
    assert_eq!(guid.len(), 32, "{info}");
    assert!(created.contains(&format!("serial {guid}")), "sim new shows the serial the card shows: {created}");
    assert!(info["version"].is_null());
    assert_eq!((info["pin_retries"].as_u64(), info["pin_retries_total"].as_u64()), (Some(3), None));
    assert!(ok(h, &["sim", "info", "--key", k]).contains("- (plain PIV)"));
    let listed = json(&ukey(h, &["keys", keys.to_str().unwrap(), "--no-pcsc", "--json"]));
    assert_eq!(listed["keys"][0]["serial"], guid.as_str());
    assert_eq!(listed["keys"][0]["pin_retries"], 3);
    assert!(ok(h, &["keys", keys.to_str().unwrap(), "--no-pcsc"]).contains(&guid));

    // PIN: retries, verify (wrong and right), change, PUK change, lockout, unblock.
    let retries = json(&ukey(h, &["pin", "retries", "--key", k, "--json"]));
    assert_eq!((retries["retries_left"].as_u64(), retries["retries_total"].as_u64()), (Some(3), None));
    let out = ukey(h, &["pin", "verify", "--key", k, "--pin", "000000", "--json"]);
    assert_eq!((out.status.code(), json(&out)["retries_left"].as_u64()), (Some(1), Some(2)));
    let out = ukey(h, &["pin", "verify", "--key", k, "--pin", "123456", "--json"]);
    assert_eq!((out.status.code(), json(&out)["ok"].as_bool()), (Some(0), Some(true)));
    assert_eq!(json(&ukey(h, &["pin", "retries", "--key", k, "--json"]))["retries_left"], 3);
    ok(h, &["pin", "change", "--key", k, "--pin", "123456", "--new-pin", "24682468"]);
    ok(h, &["pin", "change", "--key", k, "--puk-mode", "--pin", "12345678", "--new-pin", "87654321"]);
    for _ in 0..3 {
        ukey(h, &["pin", "verify", "--key", k, "--pin", "000000"]);
    }
    let out = ukey(h, &["pin", "verify", "--key", k, "--pin", "24682468", "--json"]);
    assert_eq!((out.status.code(), json(&out)["blocked"].as_bool()), (Some(1), Some(true)));
    assert!(ok(h, &["pin", "retries", "--key", k]).contains("PIN blocked"));
    let out = ukey(h, &["pin", "unblock", "--key", k, "--puk", "12345678", "--new-pin", "111111", "--json"]);
    assert_eq!((out.status.code(), json(&out)["retries_left"].as_u64()), (Some(1), Some(2)), "the old PUK is wrong");
    ok(h, &["pin", "unblock", "--key", k, "--puk", "87654321", "--new-pin", "135790"]);
    let pin = "135790";
    ok(h, &["pin", "verify", "--key", k, "--pin", pin]);

    // key generate: the public key comes from the generate answer; the card will not tell it
    // again, and the note says what to keep.
    let out = ukey(h, &["key", "generate", "--key", k, "--slot", "9a", "--out", &p("9a.pub.pem")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("GET METADATA") && stderr(&out).contains("--pubkey"), "{}", stderr(&out));
    assert!(std::fs::read_to_string(p("9a.pub.pem")).unwrap().starts_with("-----BEGIN PUBLIC KEY-----"));
    std::fs::write(p("9c.pub.pem"), ok(h, &["key", "generate", "--key", k, "--slot", "9c"])).unwrap();

    // cert request: without the public key it says which extension is missing and what to pass.
    let request = |slot: &str, extra: &[&str]| {
        let mut args = vec!["cert", "request", "--key", k, "--slot", slot, "--subject", "CN=Wang Wu,O=Plain Co"];
        args.extend_from_slice(&["--pin", pin]);
        args.extend_from_slice(extra);
        ukey(h, &args)
    };
    fails_with(&request("9a", &[]), NEEDS_METADATA);
    fails_with(&request("9a", &["--pubkey", &p("9c.pub.pem")]), &["is not the key in slot 9a", "9c.pub.pem"]);
    fails_with(&request("9a", &["--pubkey", &p("nope.pem")]), &["cannot read", "nope.pem"]);
    let out = request("9a", &["--pubkey", &p("9a.pub.pem"), "--out", &p("9a.csr")]);
    assert!(out.status.success(), "{}", stderr(&out));
    if openssl_available() {
        let v = openssl(&["req", "-verify", "-noout", "-in", &p("9a.csr")]);
        assert!(v.status.success(), "openssl accepts the plain card's CSR: {}", String::from_utf8_lossy(&v.stderr));
    }

    // The CA issues; import checks the certificate against the key given.
    ok(h, &["ca", "init"]);
    ok(h, &["ca", "issue", "--csr", &p("9a.csr"), "--out", &p("9a.crt")]);
    let import = |slot: &str, cert: &str, extra: &[&str]| {
        let mut args = vec!["cert", "import", "--key", k, "--slot", slot, "--in", cert];
        args.extend_from_slice(extra);
        ukey(h, &args)
    };
    fails_with(&import("9a", &p("9a.crt"), &["--pubkey", &p("9c.pub.pem")]), &["mismatched", "9c.pub.pem"]);
    let out = import("9a", &p("9a.crt"), &["--pubkey", &p("9a.pub.pem")]);
    assert!(out.status.success() && stderr(&out).is_empty(), "checked and stored: {}", stderr(&out));
    let exported = ok(h, &["cert", "export", "--key", k, "--slot", "9a"]);
    assert_eq!(exported, std::fs::read_to_string(p("9a.crt")).unwrap());
    ok(h, &["cert", "export", "--key", k, "--slot", "9a", "--out", &p("9a.back.crt")]);
    assert_eq!(std::fs::read_to_string(p("9a.back.crt")).unwrap(), exported);
    let listed = json(&ukey(h, &["keys", keys.to_str().unwrap(), "--no-pcsc", "--json"]));
    assert_eq!(listed["keys"][0]["certificates"][0]["subject"], "CN=Wang Wu,O=Plain Co");

    // Now the slot's certificate tells the key: a renewal request needs no --pubkey, and a
    // certificate for another key is refused against it.
    let out = request("9a", &["--out", &p("9a.renew.csr")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let other = keys.join("other");
    ok(h, &["sim", "new", other.to_str().unwrap(), "--plain", "--scenario", "provisioned"]);
    ok(h, &["cert", "export", "--key", other.to_str().unwrap(), "--out", &p("other.crt")]);
    fails_with(&import("9a", &p("other.crt"), &[]), &["mismatched", "certificate now in slot 9a"]);
    // Without any way to check (no metadata, empty slot, no --pubkey) it is stored with a warning.
    let out = import("9c", &p("other.crt"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: not checked") && stderr(&out).contains("--pubkey FILE"),
        "{}",
        stderr(&out)
    );

    // sign, judged by openssl with the certificate's key.
    let cert_pub = h.join("9a.crt.pub.pem");
    if openssl_available() {
        let x = openssl(&["x509", "-in", &p("9a.crt"), "-pubkey", "-noout", "-out", cert_pub.to_str().unwrap()]);
        assert!(x.status.success());
    }
    sign_and_verify(h, k, "9a", pin, &cert_pub);
    sign_and_verify(h, k, "9c", pin, &h.join("9c.pub.pem"));

    // A new key pair in 9a: the old certificate named the old key and is removed, so nothing
    // takes it for the new key's; the request needs the new public key again.
    let out = ukey(h, &["key", "generate", "--key", k, "--slot", "9a", "--out", &p("9a.new.pub.pem")]);
    assert!(stderr(&out).contains("removed the certificate that was in slot 9a"), "{}", stderr(&out));
    let out = ukey(h, &["cert", "export", "--key", k, "--slot", "9a"]);
    fails_with(&out, &["slot 9a holds no certificate"]);
    fails_with(&request("9a", &[]), NEEDS_METADATA);
    fails_with(&request("9a", &["--pubkey", &p("9a.pub.pem")]), &["is not the key in slot 9a"]);
    let out = request("9a", &["--pubkey", &p("9a.new.pub.pem"), "--out", &p("9a.new.csr")]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_plain_card_with_an_aes_management_key_needs_no_algorithm_flag() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let key = h.join("aes");
    let k = key.to_str().unwrap();
    let mgmt = "5a".repeat(24);
    ok(h, &["sim", "new", k, "--plain", "--mgmt-alg", "aes192", "--mgmt-key", &mgmt]);
    // 24 bytes are 3DES or AES-192; the card has no metadata to tell, its 6A86 does.
    let pem = ok(h, &["key", "generate", "--key", k, "--mgmt-key", &mgmt]);
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let out = ukey(h, &["key", "generate", "--key", k, "--mgmt-key", &"11".repeat(24)]);
    fails_with(&out, &["6982", "wrong management key"]);

    let aes128 = "42".repeat(16);
    let key = h.join("aes128");
    let k = key.to_str().unwrap();
    ok(h, &["sim", "new", k, "--plain", "--mgmt-alg", "aes128", "--mgmt-key", &aes128]);
    ok(h, &["key", "generate", "--key", k, "--slot", "9d", "--mgmt-key", &aes128]);
}

#[test]
fn a_provisioned_plain_card_requests_and_signs_from_its_certificate() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let key = h.join("prov");
    let k = key.to_str().unwrap();
    ok(h, &["sim", "new", k, "--plain", "--scenario", "provisioned"]);
    let cert = h.join("cert.pem");
    std::fs::write(&cert, ok(h, &["cert", "export", "--key", k])).unwrap();
    let csr = ok(h, &["cert", "request", "--key", k, "--subject", "CN=renewal", "--pin", "123456"]);
    assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    // --pubkey takes a certificate too.
    let out = ukey(
        h,
        &[
            "cert",
            "request",
            "--key",
            k,
            "--subject",
            "CN=renewal",
            "--pin",
            "123456",
            "--pubkey",
            cert.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let pubkey = h.join("pub.pem");
    if openssl_available() {
        let x =
            openssl(&["x509", "-in", cert.to_str().unwrap(), "-pubkey", "-noout", "-out", pubkey.to_str().unwrap()]);
        assert!(x.status.success());
    }
    sign_and_verify(h, k, "9a", "123456", &pubkey);
}

#[test]
fn a_yubico_card_checks_a_given_public_key_against_its_metadata() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let key = h.join("yk");
    let k = key.to_str().unwrap();
    ok(h, &["sim", "new", k]);
    let fails = ukey(h, &["cert", "request", "--key", k, "--subject", "CN=x", "--pin", "123456"]);
    fails_with(&fails, &["slot 9a has no key", "ukey key generate --slot 9a"]);
    let out = ukey(h, &["key", "generate", "--key", k]);
    assert!(out.status.success() && stderr(&out).is_empty(), "no note: the card can tell: {}", stderr(&out));
    let other = h.join("other.pem");
    std::fs::write(&other, ok(h, &["key", "generate", "--key", k, "--slot", "9c"])).unwrap();
    let out = ukey(
        h,
        &["cert", "request", "--key", k, "--subject", "CN=x", "--pin", "123456", "--pubkey", other.to_str().unwrap()],
    );
    fails_with(&out, &["is not the key in slot 9a", "metadata"]);
}
