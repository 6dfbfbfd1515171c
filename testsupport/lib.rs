//! What ukey's tests share. Every test that needs a third-party judge or a service (openssl,
//! pcscd with vpcd, PostgreSQL, Chromium, p11test, a QEMU guest, root to become another user)
//! and finds it missing goes through [`skip`]: under `CI=true` that fails the test (a green CI
//! must have run every judge), elsewhere the test says SKIPPED, passes, and is counted in
//! `target/<profile>/skipped-judges.log`, which `scripts/test.sh` sums up after the run.
//!
//! [`Tap`] writes a card's behaviour as a closure in front of a transport.
//!
//! The vpcd and served-key helpers (`vpcd.rs`, `served.rs`) and the Debug-leak checks
//! (`leaks.rs`) are included by path instead: they use host-driver and token-sim, whose own
//! tests include them, and a crate here would be a second copy of those crates there.

use std::io::Write;
use std::path::PathBuf;

pub mod tap;
pub use tap::Tap;

/// The test cannot run here because `what` is missing. Under CI: a panic saying so. Else a
/// SKIPPED line on standard error, and one line in the skip log; the caller then returns.
#[track_caller]
pub fn skip(what: impl std::fmt::Display) {
    if std::env::var_os("CI").is_some() {
        panic!("under CI this test needs {what} (scripts/test.sh installs and starts what the tests use)");
    }
    eprintln!("SKIPPED: needs {what}");
    if let Some(log) = skip_log() {
        let test = std::thread::current().name().unwrap_or("?").to_string();
        // The test binary's name without cargo's hash (`qemu-a0f6...` -> `qemu`).
        let binary = std::env::current_exe().ok().and_then(|e| {
            let stem = e.file_stem()?.to_string_lossy().into_owned();
            Some(stem.rsplit_once('-').map_or(stem.clone(), |(name, _)| name.to_string()))
        });
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = writeln!(f, "{}::{test}: {what}", binary.unwrap_or_default());
        }
    }
}

/// `target/<profile>/skipped-judges.log`, beside the test binaries' `deps/`.
pub fn skip_log() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    Some(deps.parent()?.join("skipped-judges.log"))
}
