//! The module of this process behind its lock (held only to find a slot or route a session,
//! never while a card is used), the fork handlers, and what every entry point runs in: the
//! panic guard, the module, a slot, a session's slot.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once};

use cryptoki_sys::*;

use crate::module::Module;
use crate::slot::{Slot, SlotState};
use crate::token::Rv;

/// The module of this process, if initialised.
pub(super) enum State {
    Off,
    /// C_Initialize of process `pid` is opening the keys (without the lock: a reader another
    /// program holds makes it wait).
    Opening {
        pid: u32,
    },
    On(Module),
}

pub(super) static MODULE: Mutex<State> = Mutex::new(State::Off);
/// Notified when an [`State::Opening`] ends.
pub(super) static OPENED: Condvar = Condvar::new();

pub(super) fn lock() -> MutexGuard<'static, State> {
    MODULE.lock().unwrap_or_else(|p| p.into_inner())
}

thread_local! {
    /// The module's lock, held by the thread calling fork() from just before to just after it.
    static FORKING: RefCell<Option<MutexGuard<'static, State>>> = const { RefCell::new(None) };
}

/// A fork() while another thread holds the module's lock would give the child a lock no thread
/// of its own can let go, and its C_Initialize would wait forever. So the lock is taken before
/// any fork and let go after it, in parent and child (pthread_atfork). It is only ever held
/// briefly (never while a card is used), so a fork waits little.
pub(super) fn watch_forks() {
    extern "C" fn before() {
        let _ = FORKING.try_with(|f| *f.borrow_mut() = Some(lock()));
    }
    extern "C" fn after() {
        let _ = FORKING.try_with(|f| drop(f.borrow_mut().take()));
    }
    static ONCE: Once = Once::new();
    // Safety: the handlers are plain functions of this library; glibc drops them if it is unloaded.
    ONCE.call_once(|| unsafe {
        libc::pthread_atfork(Some(before), Some(after), Some(after));
    });
}

/// Run `f` with a panic guard.
pub(super) fn guard(f: impl FnOnce() -> Rv<()>) -> CK_RV {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(rv)) => rv,
        Err(_) => {
            tracing::error!("a panic inside the module was caught");
            CKR_GENERAL_ERROR
        }
    }
}

/// Run `f` on the initialised module (of this process: a forked child has none until it
/// calls C_Initialize itself), under the module's lock: `f` must not touch a card.
pub(super) fn with<T>(f: impl FnOnce(&mut Module) -> Rv<T>) -> Rv<T> {
    match &mut *lock() {
        State::On(m) if m.pid == std::process::id() => f(m),
        _ => Err(CKR_CRYPTOKI_NOT_INITIALIZED),
    }
}

/// The slot `id`, found under the module's lock.
pub(super) fn slot(id: CK_SLOT_ID) -> Rv<Arc<Slot>> {
    with(|m| m.slot(id))
}

/// Run `f` on slot `id`, under that slot's lock alone.
pub(super) fn on_slot<T>(id: CK_SLOT_ID, f: impl FnOnce(&mut SlotState) -> Rv<T>) -> Rv<T> {
    slot(id)?.run(f)
}

/// Run `f` on the slot of session `h`, under that slot's lock alone.
pub(super) fn on_session<T>(h: CK_SESSION_HANDLE, f: impl FnOnce(&mut SlotState) -> Rv<T>) -> Rv<T> {
    with(|m| m.slot_of_session(h))?.run(f)
}

/// Readers' cards that came or went (see [`Slot::refresh`]), outside the module's lock.
pub(super) fn refresh() -> Rv<()> {
    let mut ended = Vec::new();
    for (slot, source) in with(|m| Ok(m.readers()))? {
        ended.extend(slot.refresh(&source));
    }
    if !ended.is_empty() {
        with(|m| {
            m.unroute(&ended);
            Ok(())
        })?;
    }
    Ok(())
}

/// Slot `id` has a token (known without waiting for an operation on it).
pub(super) fn present(id: CK_SLOT_ID) -> Rv<()> {
    if slot(id)?.is_present() {
        Ok(())
    } else {
        Err(CKR_TOKEN_NOT_PRESENT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread holds the module's lock (as a call does, briefly) while another forks: the
    /// child finds the lock free. Without the fork handlers it would be taken for ever.
    #[test]
    fn a_child_forked_while_another_thread_holds_the_modules_lock_finds_it_free() {
        watch_forks();
        let (held, hold) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let guard = lock();
            held.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(guard);
        });
        hold.recv().unwrap();
        // Safety: the child only tries the lock and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let free = MODULE.try_lock().is_ok();
            unsafe { libc::_exit(if free { 0 } else { 1 }) };
        }
        holder.join().unwrap();
        let mut status = 0;
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child found the lock taken");
    }
}
