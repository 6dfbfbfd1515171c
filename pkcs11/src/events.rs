//! C_WaitForSlotEvent: a slot whose token came or went since the caller last heard. Waiting
//! blocks on PC/SC's own change notification (or, with no readers, on C_Finalize alone), never
//! holding the module's lock; C_Finalize wakes every waiter, which then answers
//! CKR_CRYPTOKI_NOT_INITIALIZED.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use host_driver::pcsc::{Monitor, MonitorWaker};

/// Bumped by every C_Initialize and C_Finalize: a waiter that sees it change stops.
pub static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Waiters blocked in PC/SC, to be woken by C_Finalize.
static WAKERS: Mutex<Vec<(u64, MonitorWaker)>> = Mutex::new(Vec::new());
/// Waiters without PC/SC sleep here until C_Finalize.
static QUIET: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());

/// How long one wait lasts before the module is asked again: a change PC/SC reported while
/// no one was waiting is seen at the latest then.
const ROUND: Duration = Duration::from_secs(2);

/// Wake every waiter (C_Finalize, after bumping [`GENERATION`]).
pub fn wake_all() {
    for (_, w) in WAKERS.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        w.wake();
    }
    let _guard = QUIET.0.lock().unwrap_or_else(|p| p.into_inner());
    QUIET.1.notify_all();
}

/// Block until something may have changed: a reader event, C_Finalize, or a round passed.
pub fn wait(generation: u64) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if let Ok(mut monitor) = Monitor::new() {
        let me = NEXT.fetch_add(1, Ordering::Relaxed);
        WAKERS.lock().unwrap_or_else(|p| p.into_inner()).push((me, monitor.waker()));
        if GENERATION.load(Ordering::SeqCst) == generation {
            let _ = monitor.wait(ROUND);
        }
        WAKERS.lock().unwrap_or_else(|p| p.into_inner()).retain(|(id, _)| *id != me);
        return;
    }
    let guard = QUIET.0.lock().unwrap_or_else(|p| p.into_inner());
    if GENERATION.load(Ordering::SeqCst) == generation {
        let _ = QUIET.1.wait_timeout(guard, ROUND);
    }
}
