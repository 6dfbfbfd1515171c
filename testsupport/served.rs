//! A virtual key served on a vpcd port by a runtime on its own thread, for tests that reach
//! it through pcscd (included with #[path], beside `vpcd.rs` as `vpcd_support`).
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};

use token_sim::frontends::vpcd::{self, Control, LinkState};
use token_sim::{SharedKey, VirtualKey};
use tokio::sync::watch;

use crate::vpcd_support::{wait_card, READER};

/// Which vpcd readers a key of this test is on.
pub static IN_USE: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];

/// A virtual key served on a vpcd port by a runtime on its own thread.
pub struct Served {
    pub key: SharedKey,
    pub inserted: watch::Sender<bool>,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub reader: &'static str,
    n: usize,
}

impl Served {
    pub fn start(key: VirtualKey, n: usize) -> Served {
        let key = SharedKey::new(key);
        let (inserted, inserted_rx) = watch::channel(true);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let addr = format!("127.0.0.1:{}", vpcd::DEFAULT_PORT as usize + n);
        let k = key.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (state, _) = watch::channel(LinkState::Connecting);
            rt.block_on(vpcd::serve(k, addr, Control { inserted: inserted_rx, shutdown: shutdown_rx }, state));
        });
        IN_USE[n].store(true, Ordering::SeqCst);
        let s = Served { key, inserted, shutdown, thread: Some(thread), reader: READER[n], n };
        wait_card(s.reader, true);
        s
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The next test must not find this card still listed.
        wait_card(self.reader, false);
        IN_USE[self.n].store(false, Ordering::SeqCst);
    }
}
