//! Running `ukey` and the third-party judges from tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub fn ukey(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ukey"))
        .args(args)
        .env("UKEY_HOME", home)
        .env_remove("UKEY_PIN")
        .env_remove("UKEY_KEY")
        .env_remove("UKEY_READER")
        .output()
        .expect("ukey runs")
}

pub fn ok(home: &Path, args: &[&str]) -> String {
    let out = ukey(home, args);
    assert!(
        out.status.success(),
        "ukey {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

pub fn openssl_available() -> bool {
    let present = Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success());
    if !present && std::env::var_os("CI").is_some() {
        panic!("openssl is required under CI (install the openssl package)");
    }
    present
}

/// `openssl dgst -sha256 -verify PUB -signature SIG DOC`.
pub fn openssl_dgst_verify(pubkey: &Path, sig: &Path, doc: &Path) -> Output {
    Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(pubkey)
        .arg("-signature")
        .arg(sig)
        .arg(doc)
        .output()
        .unwrap()
}
