//! What the module's tests share: where the module is, which programs are here, and keys.
#![allow(dead_code)]

pub mod p11test;

use std::path::{Path, PathBuf};
use std::process::Command;

use proto::clock::FixedClock;
use token_sim::scenario::Scenario;
use token_sim::{KeySpec, VirtualKey};

/// The module as programs load it: the cdylib cargo builds beside this test's binary.
pub fn module() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    [deps, deps.parent().unwrap()]
        .iter()
        .map(|d| d.join("libukey_pkcs11.so"))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("libukey_pkcs11.so is not built beside {}", exe.display()))
}

/// Whether `programs` are all here; under CI a missing one fails the test.
pub fn have(programs: &[&str]) -> bool {
    let missing: Vec<&&str> = programs
        .iter()
        .filter(|t| {
            !Command::new("sh").args(["-c", &format!("command -v {t}")]).output().is_ok_and(|o| o.status.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    testsupport::skip(format_args!("the PKCS#11 judges {missing:?}"));
    false
}

pub fn now() -> FixedClock {
    FixedClock(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs())
}

/// A key directory `root/name` in `s`, its certificates ("CN=<subject>,O=Example") from a CA
/// made beside it.
pub fn key(root: &Path, name: &str, s: Scenario, subject: &str) -> PathBuf {
    let dir = root.join(name);
    let ca = ca::Ca::create(&root.join(format!("{name}-ca")), "CN=Test CA", 3650, &FixedClock(1_790_000_000)).unwrap();
    let clock = now();
    let mut vk = VirtualKey::create(&dir, &KeySpec::default(), &clock).unwrap();
    let dn = format!("CN={subject},O=Example");
    vk.provision(s, Some(&ca), &dn, &clock).unwrap();
    dir
}
