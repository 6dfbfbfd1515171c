//! The module judged by OpenSC's pkcs11-tool, unchanged, on virtual key directories: tokens
//! listed, objects as OpenSC's PIV module names them, mechanisms, ECDSA signatures that
//! openssl verifies with the certificate read back through the module, wrong PINs with the
//! count flags, lockout, and a PIN change. Under CI=true a missing pkcs11-tool or openssl
//! fails the test; elsewhere it says SKIPPED.

mod common;

use std::path::Path;
use std::process::Command;

use common::{have, module};
use token_sim::scenario::Scenario;

/// A key directory in `s`, its holder named as the directory.
fn key(root: &Path, name: &str, s: Scenario) -> std::path::PathBuf {
    common::key(root, name, s, name)
}

fn tools_ready() -> bool {
    have(&["pkcs11-tool", "openssl"])
}

struct Out {
    ok: bool,
    text: String,
}

fn tool(keys: &[&Path], args: &[&str]) -> Out {
    tool_env(keys, &[], args)
}

/// pkcs11-tool with more of the module's environment.
fn tool_env(keys: &[&Path], env: &[(&str, &str)], args: &[&str]) -> Out {
    let joined: Vec<String> = keys.iter().map(|k| k.display().to_string()).collect();
    let o = Command::new("pkcs11-tool")
        .arg("--module")
        .arg(module())
        .args(args)
        .env("UKEY_PKCS11_KEYS", joined.join(":"))
        // Directories only: the readers have their own test (pkcs11_reader.rs).
        .env("UKEY_PKCS11_READERS", "off")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Out {
        ok: o.status.success(),
        text: format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
    }
}

fn ok(keys: &[&Path], args: &[&str]) -> String {
    let o = tool(keys, args);
    assert!(o.ok, "pkcs11-tool {args:?} failed:\n{}", o.text);
    o.text
}

fn openssl(args: &[&str]) -> Out {
    let o = Command::new("openssl").args(args).output().unwrap();
    Out {
        ok: o.status.success(),
        text: format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
    }
}

#[test]
fn tokens_objects_and_mechanisms_are_listed() {
    if !tools_ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let alice = key(root.path(), "alice", Scenario::Full);
    let fresh = key(root.path(), "blank", Scenario::Fresh);
    let slots = ok(&[&alice, &fresh], &["-L"]);
    assert!(slots.contains("token label        : alice"), "{slots}");
    assert!(
        slots.contains("token label        : blank"),
        "a key without certificate is labelled by its directory: {slots}"
    );
    assert!(slots.contains("login required") && slots.contains("rng"), "{slots}");
    let objects = ok(&[&alice], &["-O"]);
    for want in
        ["Certificate for PIV Authentication", "PIV AUTH pubkey", "SIGN pubkey", "KEY MAN pubkey", "CARD AUTH pubkey"]
    {
        assert!(objects.contains(want), "{want}:\n{objects}");
    }
    assert!(!objects.contains("Private Key Object"), "private keys are private until login:\n{objects}");
    let logged_in = ok(&[&alice], &["-O", "--login", "--pin", "123456"]);
    assert!(logged_in.contains("Private Key Object; EC") && logged_in.contains("PIV AUTH key"), "{logged_in}");
    let mechanisms = ok(&[&alice], &["-M"]);
    assert!(mechanisms.contains("ECDSA,") && mechanisms.contains("ECDSA-SHA256"), "{mechanisms}");
}

#[test]
fn signatures_verify_with_the_certificate_read_back() {
    if !tools_ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let alice = key(root.path(), "alice", Scenario::Provisioned);
    let r = root.path();
    std::fs::write(r.join("data"), b"the message ukey signs").unwrap();
    ok(&[&alice], &["--read-object", "--type", "cert", "--id", "01", "-o", r.join("cert.der").to_str().unwrap()]);
    let pubkey = openssl(&["x509", "-inform", "DER", "-in", r.join("cert.der").to_str().unwrap(), "-pubkey", "-noout"]);
    assert!(pubkey.ok, "{}", pubkey.text);
    std::fs::write(r.join("pub.pem"), &pubkey.text).unwrap();
    for mech in ["ECDSA-SHA256", "ECDSA"] {
        let input = if mech == "ECDSA" {
            let d = openssl(&[
                "dgst",
                "-sha256",
                "-binary",
                "-out",
                r.join("digest").to_str().unwrap(),
                r.join("data").to_str().unwrap(),
            ]);
            assert!(d.ok, "{}", d.text);
            r.join("digest")
        } else {
            r.join("data")
        };
        let sig = r.join(format!("{mech}.sig"));
        ok(
            &[&alice],
            &[
                "--login",
                "--pin",
                "123456",
                "--sign",
                "-m",
                mech,
                "--id",
                "01",
                "--signature-format",
                "openssl",
                "-i",
                input.to_str().unwrap(),
                "-o",
                sig.to_str().unwrap(),
            ],
        );
        let v = openssl(&[
            "dgst",
            "-sha256",
            "-verify",
            r.join("pub.pem").to_str().unwrap(),
            "-signature",
            sig.to_str().unwrap(),
            r.join("data").to_str().unwrap(),
        ]);
        assert!(v.ok && v.text.contains("Verified OK"), "{mech}: {}", v.text);
    }
}

#[test]
fn wrong_pins_say_incorrect_then_locked_and_the_pin_changes() {
    if !tools_ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let bob = key(root.path(), "bob", Scenario::Provisioned);
    let wrong = tool(&[&bob], &["--login", "--pin", "000000", "-O"]);
    assert!(!wrong.ok && wrong.text.contains("CKR_PIN_INCORRECT"), "{}", wrong.text);
    let slots = ok(&[&bob], &["-L"]);
    assert!(slots.contains("PIN count low"), "{slots}");
    let _ = tool(&[&bob], &["--login", "--pin", "000000", "-O"]);
    let slots = ok(&[&bob], &["-L"]);
    assert!(slots.contains("final user PIN try"), "{slots}");
    // The right PIN resets the count; a change takes, and the old PIN no longer works.
    ok(&[&bob], &["--login", "--pin", "123456", "--change-pin", "--new-pin", "24681357"]);
    let old = tool(&[&bob], &["--login", "--pin", "123456", "-O"]);
    assert!(!old.ok && old.text.contains("CKR_PIN_INCORRECT"), "{}", old.text);
    ok(&[&bob], &["--login", "--pin", "24681357", "-O"]);
    for _ in 0..3 {
        let _ = tool(&[&bob], &["--login", "--pin", "000000", "-O"]);
    }
    let locked = tool(&[&bob], &["--login", "--pin", "24681357", "-O"]);
    assert!(!locked.ok && locked.text.contains("CKR_PIN_LOCKED"), "{}", locked.text);
    assert!(ok(&[&bob], &["-L"]).contains("user PIN locked"));
    let short = tool(&[&bob], &["--login", "--pin", "12345", "-O"]);
    assert!(!short.ok && short.text.contains("CKR_PIN_LEN_RANGE"), "{}", short.text);
}

/// The factory management key: the security officer's "PIN".
const SO_PIN: &str = "010203040506070801020304050607080102030405060708";

#[test]
fn the_pin_always_key_signs_after_a_context_login_and_ecdh_agrees_with_openssl() {
    if !tools_ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let carol = key(root.path(), "carol", Scenario::Full);
    let r = root.path();
    let p = |name: &str| r.join(name).to_str().unwrap().to_string();
    std::fs::write(r.join("data"), b"signed with 9C").unwrap();
    ok(&[&carol], &["--read-object", "--type", "cert", "--id", "02", "-o", &p("sign.der")]);
    std::fs::write(
        r.join("sign.pem"),
        openssl(&["x509", "-inform", "DER", "-in", &p("sign.der"), "-pubkey", "-noout"]).text,
    )
    .unwrap();
    // pkcs11-tool sees CKA_ALWAYS_AUTHENTICATE and logs in again (context-specific) to sign.
    ok(
        &[&carol],
        &[
            "--login",
            "--pin",
            "123456",
            "--sign",
            "-m",
            "ECDSA-SHA256",
            "--id",
            "02",
            "--signature-format",
            "openssl",
            "-i",
            &p("data"),
            "-o",
            &p("sign.sig"),
        ],
    );
    let v = openssl(&["dgst", "-sha256", "-verify", &p("sign.pem"), "-signature", &p("sign.sig"), &p("data")]);
    assert!(v.ok && v.text.contains("Verified OK"), "{}", v.text);

    // ECDH with 9D: the secret the module derives is the one openssl computes.
    ok(&[&carol], &["--read-object", "--type", "cert", "--id", "03", "-o", &p("kex.der")]);
    std::fs::write(
        r.join("kex.pem"),
        openssl(&["x509", "-inform", "DER", "-in", &p("kex.der"), "-pubkey", "-noout"]).text,
    )
    .unwrap();
    assert!(openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &p("peer.pem")]).ok);
    assert!(openssl(&["ec", "-in", &p("peer.pem"), "-pubout", "-outform", "DER", "-out", &p("peer.der")]).ok);
    let e =
        openssl(&["pkeyutl", "-derive", "-inkey", &p("peer.pem"), "-peerkey", &p("kex.pem"), "-out", &p("expected")]);
    assert!(e.ok, "{}", e.text);
    ok(
        &[&carol],
        &[
            "--login",
            "--pin",
            "123456",
            "--derive",
            "-m",
            "ECDH1-DERIVE",
            "--id",
            "03",
            "--input-file",
            &p("peer.der"),
            "--output-file",
            &p("secret"),
        ],
    );
    assert_eq!(std::fs::read(r.join("secret")).unwrap(), std::fs::read(r.join("expected")).unwrap());
}

#[test]
fn the_security_officer_makes_keys_and_writes_and_deletes_certificates() {
    if !tools_ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dave = key(root.path(), "dave", Scenario::Provisioned);
    let r = root.path();
    let p = |name: &str| r.join(name).to_str().unwrap().to_string();
    let so = ["--login", "--login-type", "so", "--so-pin", SO_PIN];
    // Without the management key: refused.
    let refused =
        tool(&[&dave], &["--keypairgen", "--key-type", "EC:prime256v1", "--id", "03", "--login", "--pin", "123456"]);
    assert!(!refused.ok && refused.text.contains("CKR_USER_NOT_LOGGED_IN"), "{}", refused.text);
    let wrong = tool(
        &[&dave],
        &[
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--id",
            "03",
            "--login",
            "--login-type",
            "so",
            "--so-pin",
            &"00".repeat(24),
        ],
    );
    assert!(!wrong.ok && wrong.text.contains("CKR_PIN_INCORRECT"), "{}", wrong.text);
    let made = ok(&[&dave], &[&so[..], &["--keypairgen", "--key-type", "EC:prime256v1", "--id", "03"]].concat());
    assert!(made.contains("Public Key Object; EC") && made.contains("KEY MAN pubkey"), "{made}");
    let listed = ok(&[&dave], &["-O"]);
    assert!(listed.contains("KEY MAN pubkey") && !listed.contains("Certificate for Key Management"), "{listed}");
    // The 9A certificate, written to 9C too, shows there; deleted, it goes again.
    ok(&[&dave], &["--read-object", "--type", "cert", "--id", "01", "-o", &p("auth.der")]);
    ok(&[&dave], &[&so[..], &["--write-object", &p("auth.der"), "--type", "cert", "--id", "02"]].concat());
    assert!(ok(&[&dave], &["-O"]).contains("Certificate for Digital Signature"));
    ok(&[&dave], &[&so[..], &["--delete-object", "--type", "cert", "--id", "02"]].concat());
    assert!(!ok(&[&dave], &["-O"]).contains("Certificate for Digital Signature"));
}

#[test]
fn a_forked_child_gets_its_own_module_and_the_parent_keeps_the_key() {
    if !tools_ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let erin = key(root.path(), "erin", Scenario::Provisioned);
    // The child initialises a fresh module at once (the parent keeps the key directory), and
    // the parent goes on using the key after the child finalised.
    let fork = ok(&[&erin], &["--test-fork", "-L"]);
    assert!(fork.contains("forked child") && fork.contains("held by process"), "{fork}");
    assert!(fork.contains("token label        : erin"), "{fork}");
}

/// `--test-threads`: three threads call C_Initialize (with and without OS locking), C_GetInfo,
/// C_GetSlotList and C_GetTokenInfo while the main thread initialises and lists; every thread
/// ends with CKR_OK. (pkcs11-tool 0.23 waits 30 s of its own when a thread has not finished
/// by the time the main thread is done; it does so with SoftHSMv2 as well.)
#[test]
fn pkcs11_tools_test_threads_all_end_with_ckr_ok() {
    if !tools_ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let fay = key(root.path(), "fay", Scenario::Provisioned);
    let out = ok(
        &[&fay],
        &[
            "--test-threads",
            "IL:GI:SL:T0",
            "--test-threads",
            "IN:GI:SL:T0",
            "--test-threads",
            "IL:SL:T0:GI",
            "-L",
            "-M",
        ],
    );
    assert!(out.contains("test_threads all threads have ended with CKR_OK"), "{out}");
    for t in 0..3 {
        assert!(out.contains(&format!("Test thread {t} C_GetSlotList returned CKR_OK")), "thread {t}:\n{out}");
        assert!(out.contains(&format!("test_threads thread:{t} state:-1, rv:CKR_OK")), "thread {t}:\n{out}");
    }
    // The main thread lists the slots (-L) before the threads start: its label is the CN.
    let labels: Vec<&str> = out.lines().filter_map(|l| l.trim().strip_prefix("token label        : ")).collect();
    assert_eq!(labels.len(), 4, "three threads and the main one:\n{out}");
    assert_eq!(labels[0], "fay", "{out}");
    // The threads' own label lines are no judge: pkcs11-tool converts every field through one
    // static buffer (p11_utf8_to_local), so a thread may print what another thread converted
    // meanwhile (the serial number was seen). Each thread got the token info (no failure line).
    assert!(!out.contains("C_GetTokenInfo() failed"), "{out}");
}

/// `--test-ec` on a blank key, with the management key in the module's configuration
/// (`UKEY_PKCS11_MGMT_KEY`), so the logged-in user may make and delete keys: it generates a
/// P-256 pair in 9D, reads its parameters and point, signs (ECDSA-SHA1, with a length query
/// and a short buffer first), and destroys both keys, which deletes the key from the card
/// (MOVE KEY). Without the configured key the same run stops at key generation.
#[test]
fn pkcs11_tools_test_ec_makes_signs_with_and_deletes_a_key() {
    if !tools_ready() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let gil = key(root.path(), "gil", Scenario::Fresh);
    let run = |mgmt: Option<&str>, args: &[&str]| {
        let env: Vec<(&str, &str)> = mgmt.map(|k| ("UKEY_PKCS11_MGMT_KEY", k)).into_iter().collect();
        let o = tool_env(&[&gil], &env, args);
        (o.ok, o.text)
    };
    let test_ec =
        ["--login", "--pin", "123456", "--session-rw", "--test-ec", "--id", "03", "--key-type", "EC:prime256v1"];
    let (ok, out) = run(None, &test_ec);
    assert!(!ok && out.contains("C_GenerateKeyPair") && out.contains("CKR_USER_NOT_LOGGED_IN"), "{out}");
    let mgmt = "010203040506070801020304050607080102030405060708";
    let (ok, out) = run(Some(mgmt), &test_ec);
    assert!(ok && out.contains("*** Doing a signature ***") && out.contains("==> OK"), "{out}");
    assert!(!out.contains("C_Sign() didn't return CKR_BUFFER_TO_SMALL"), "{out}");
    // The key is gone from the card: a new module sees no key objects in 9D.
    let (ok, objects) = run(None, &["--login", "--pin", "123456", "-O"]);
    assert!(ok && !objects.contains("KEY MAN"), "{objects}");
    // A wrong configured key is refused like a wrong PIN.
    let (ok, out) = run(Some("000000000000000000000000000000000000000000000000"), &test_ec);
    assert!(!ok && out.contains("CKR_PIN_INCORRECT"), "{out}");
}
