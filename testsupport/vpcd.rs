//! Shared by the test crates that need pcscd with vsmartcard-vpcd (included with #[path]).
//! Under CI=true a missing pcscd fails the test; elsewhere the test says SKIPPED and passes.
#![allow(dead_code)]

use std::fs::File;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use host_driver::pcsc::Pcsc;

pub const READER: [&str; 2] = ["Virtual PCD 00 00", "Virtual PCD 00 01"];

/// Whether pcscd with vpcd is here; panics under CI when it is not.
pub fn pcscd_ready() -> bool {
    let why = match Pcsc::establish().and_then(|p| p.readers()) {
        Ok(r) if READER.iter().all(|n| r.iter().any(|x| x == n)) => return true,
        Ok(r) => format!("pcscd has no vpcd readers (readers: {r:?}); install vsmartcard-vpcd and restart pcscd"),
        Err(e) => e.to_string(),
    };
    testsupport::skip(format_args!("pcscd with vsmartcard-vpcd ({why})"));
    false
}

/// vpcd has two readers machine-wide: one test at a time uses them, and one test binary (the
/// file lock, held until this process ends, keeps out other binaries run in parallel).
pub fn exclusive() -> MutexGuard<'static, ()> {
    static FILE: OnceLock<File> = OnceLock::new();
    static TESTS: Mutex<()> = Mutex::new(());
    let guard = TESTS.lock().unwrap_or_else(|p| p.into_inner());
    FILE.get_or_init(|| {
        let f = File::create(std::env::temp_dir().join("ukey-vpcd-tests.lock")).unwrap();
        f.lock().unwrap();
        f
    });
    guard
}

/// Start a vpcd test: one at a time, pcscd there (else `None`: skip; under CI, panic), and
/// no card left in the readers by anything else.
pub fn begin() -> Option<MutexGuard<'static, ()>> {
    let one = exclusive();
    if !pcscd_ready() {
        return None;
    }
    readers_empty();
    Some(one)
}

/// Both vpcd readers empty: a card left there (a forgotten `ukey sim serve`) would answer in
/// place of the test's key.
pub fn readers_empty() {
    let pcsc = Pcsc::establish().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while pcsc.reader_states().unwrap().iter().any(|s| READER.contains(&s.name.as_str()) && s.card_present) {
        assert!(
            Instant::now() < deadline,
            "a card is already in a vpcd reader: stop whatever serves it (`pkill -f 'ukey sim serve'`)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until pcscd sees a card in `reader` (or sees none).
pub fn wait_card(reader: &str, present: bool) {
    let pcsc = Pcsc::establish().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let states = pcsc.reader_states().unwrap();
        if states.iter().any(|s| s.name == reader && s.card_present == present) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pcscd never saw the card in {reader} {}",
            if present { "arrive" } else { "leave" }
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
