//! State that lasts: counters persisted before the compare, restarts, damaged files.

mod common;
use common::*;

use proto::clock::FixedClock;
use proto::Sw;
use std::sync::{Arc, Mutex};
use token_sim::piv::state::PersistentState;
use token_sim::piv::{Storage, StorageError};
use token_sim::store::{StoreError, STATE_FILE};
use token_sim::virtual_key::KeyError;
use token_sim::VirtualKey;

/// Records the PIN counter at every write, and can be told to fail.
#[derive(Clone, Default)]
struct Recorder {
    writes: Arc<Mutex<Vec<u8>>>,
    puk_writes: Arc<Mutex<Vec<u8>>>,
    fail: Arc<Mutex<bool>>,
}

impl Storage for Recorder {
    fn persist(&mut self, state: &PersistentState) -> Result<(), StorageError> {
        if *self.fail.lock().unwrap() {
            return Err(StorageError);
        }
        self.writes.lock().unwrap().push(state.pin.counter.remaining);
        self.puk_writes.lock().unwrap().push(state.puk.counter.remaining);
        Ok(())
    }
}

#[test]
fn decrement_is_persisted_before_the_compare_and_restored_after() {
    let rec = Recorder::default();
    let mut c = card_with(&spec(5), rec.clone());
    assert_eq!(verify(&mut c, b"000000"), Sw(0x63C2));
    assert_eq!(*rec.writes.lock().unwrap(), vec![2], "the wrong try was written down");
    assert_eq!(verify(&mut c, PIN), Sw::OK);
    assert_eq!(*rec.writes.lock().unwrap(), vec![2, 1, 3], "decrement first, restore on success");
}

fn reset_retry<S: Storage>(c: &mut token_sim::piv::Card<S, token_sim::rng::SimRng>, puk: &[u8]) -> Sw {
    sw(c, &apdu(0x2C, 0, 0x80, &[padded(puk), padded(b"222222")].concat()))
}

/// The PUK's tries follow the PIN's rule: decrement written first, by both commands that
/// take the PUK, and a wrong PUK's decrement is what the next open finds.
#[test]
fn puk_decrement_is_persisted_before_the_compare() {
    let rec = Recorder::default();
    let mut c = card_with(&spec(13), rec.clone());
    assert_eq!(reset_retry(&mut c, b"00000000"), Sw(0x63C2));
    assert_eq!(*rec.puk_writes.lock().unwrap(), vec![2], "RESET RETRY: the wrong PUK's try was written");
    let change_puk = apdu(0x24, 0, 0x81, &[padded(b"00000000"), padded(b"87654321")].concat());
    assert_eq!(sw(&mut c, &change_puk), Sw(0x63C1));
    assert_eq!(*rec.puk_writes.lock().unwrap(), vec![2, 1], "CHANGE REFERENCE: the same");
    assert_eq!(reset_retry(&mut c, PUK), Sw::OK);
    assert_eq!(*rec.puk_writes.lock().unwrap(), vec![2, 1, 0, 3, 3], "decrement first, restore on success");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    let mut k = VirtualKey::create(&path, &spec(14), &FixedClock(NOW)).unwrap();
    assert_eq!(reset_retry(k.card_mut(), b"00000000"), Sw(0x63C2));
    std::mem::forget(k); // no destructor, no flush: what is on disk is all there is
    let (_, state) = token_sim::store::read_state(&path.join(STATE_FILE)).unwrap();
    assert_eq!(state.puk.counter.remaining, 2);
}

#[test]
fn failed_write_means_no_compare_and_a_faulted_card() {
    let rec = Recorder::default();
    let mut c = card_with(&spec(6), rec.clone());
    assert!(!c.is_faulted(), "a card whose writes succeed is not faulted");
    *rec.fail.lock().unwrap() = true;
    assert_eq!(verify(&mut c, PIN), Sw::MEMORY_FAILURE, "even the right PIN is not compared");
    *rec.fail.lock().unwrap() = false;
    assert_eq!(sw(&mut c, &[0, 0x20, 0, 0x80]), Sw::MEMORY_FAILURE, "the card stays faulted");
    assert!(c.is_faulted());
}

#[test]
fn key_survives_restart_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key1");
    let mut k = VirtualKey::create(&path, &spec(7), &FixedClock(NOW)).unwrap();
    let before = k.card().state().clone();
    let file_before = std::fs::read(path.join(STATE_FILE)).unwrap();
    drop(k);
    k = VirtualKey::open(&path).unwrap();
    assert_eq!(k.card().state(), &before);
    drop(k);
    assert_ne!(std::fs::read(path.join(STATE_FILE)).unwrap(), file_before, "a deterministic key counts its opens");
    let (_, state) = token_sim::store::read_state(&path.join(STATE_FILE)).unwrap();
    assert_eq!(state, before, "and nothing else changed");

    // A key with OS randomness has nothing to count: opening writes nothing.
    let path = dir.path().join("key2");
    drop(VirtualKey::create(&path, &token_sim::KeySpec::default(), &FixedClock(NOW)).unwrap());
    let file_before = std::fs::read(path.join(STATE_FILE)).unwrap();
    drop(VirtualKey::open(&path).unwrap());
    assert_eq!(std::fs::read(path.join(STATE_FILE)).unwrap(), file_before, "opening writes nothing");
}

#[test]
fn blocked_pin_stays_blocked_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    let mut k = VirtualKey::create(&path, &spec(8), &FixedClock(NOW)).unwrap();
    for expect in [0x63C2, 0x63C1, 0x63C0] {
        assert_eq!(verify(k.card_mut(), b"000000"), Sw(expect));
    }
    drop(k);
    let mut k = VirtualKey::open(&path).unwrap();
    assert_eq!(verify(k.card_mut(), PIN), Sw::AUTH_METHOD_BLOCKED);
    assert_eq!(sw(k.card_mut(), &[0, 0x20, 0, 0x80]), Sw::AUTH_METHOD_BLOCKED);
}

#[test]
fn wrong_try_survives_a_crash_right_after_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    let mut k = VirtualKey::create(&path, &spec(9), &FixedClock(NOW)).unwrap();
    assert_eq!(verify(k.card_mut(), b"000000"), Sw(0x63C2));
    std::mem::forget(k); // no destructor, no flush: what is on disk is all there is
    let (_, state) = token_sim::store::read_state(&path.join(STATE_FILE)).unwrap();
    assert_eq!(state.pin.counter.remaining, 2);
}

#[test]
fn damaged_or_newer_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    drop(VirtualKey::create(&path, &spec(10), &FixedClock(NOW)).unwrap());
    let file = path.join(STATE_FILE);
    let good = std::fs::read(&file).unwrap();

    let mut flipped = good.clone();
    let n = flipped.len() / 2;
    flipped[n] ^= 0x01;
    std::fs::write(&file, &flipped).unwrap();
    let err = VirtualKey::open(&path).unwrap_err();
    assert!(matches!(err, KeyError::Store(StoreError::Corrupt { .. })), "{err}");
    assert!(err.to_string().contains(&file.display().to_string()), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), flipped, "left untouched");

    std::fs::write(&file, &good[..good.len() - 10]).unwrap();
    assert!(VirtualKey::open(&path).unwrap_err().to_string().contains("truncated"));

    let mut newer = good.clone();
    newer[8..10].copy_from_slice(&99u16.to_be_bytes());
    std::fs::write(&file, &newer).unwrap();
    let err = VirtualKey::open(&path).unwrap_err().to_string();
    assert!(err.contains("newer") && err.contains("99"), "{err}");

    std::fs::write(&file, b"hello").unwrap();
    assert!(VirtualKey::open(&path).unwrap_err().to_string().contains("magic"));

    let err = VirtualKey::open(&dir.path().join("nothing")).unwrap_err().to_string();
    assert!(err.contains("ukey sim new"), "{err}");
}

#[test]
fn creating_over_an_existing_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    drop(VirtualKey::create(&path, &spec(11), &FixedClock(NOW)).unwrap());
    let err = VirtualKey::create(&path, &spec(12), &FixedClock(NOW)).unwrap_err();
    assert!(matches!(err, KeyError::Store(StoreError::Exists { .. })), "{err}");
}

#[test]
fn deterministic_mode_repeats_itself() {
    let dir = tempfile::tempdir().unwrap();
    let a = VirtualKey::create(&dir.path().join("a"), &spec(42), &FixedClock(NOW)).unwrap();
    let b = VirtualKey::create(&dir.path().join("b"), &spec(42), &FixedClock(NOW)).unwrap();
    assert_eq!(a.serial(), b.serial());
    assert_eq!(a.card().state(), b.card().state());
}

#[test]
fn bad_settings_are_explained() {
    let s = token_sim::KeySpec { pin: "123".into(), ..spec(1) };
    let err = VirtualKey::in_memory(&s, &FixedClock(NOW)).unwrap_err().to_string();
    assert!(err.contains("6 to 8"), "{err}");
    let s = token_sim::KeySpec { pin_retries: 16, ..spec(1) };
    assert!(VirtualKey::in_memory(&s, &FixedClock(NOW)).is_err());
}

#[test]
fn only_a_key_kept_on_disk_says_its_exchanges_may_block() {
    use proto::Transport;
    let dir = tempfile::tempdir().unwrap();
    let on_disk = VirtualKey::create(&dir.path().join("k"), &spec(9), &FixedClock(NOW)).unwrap();
    assert!(on_disk.may_block(), "counters are synced to disk");
    let in_memory = VirtualKey::in_memory(&spec(9), &FixedClock(NOW)).unwrap();
    assert!(!in_memory.may_block(), "an in-memory key only computes");
    assert!(!token_sim::virtual_key::SharedKey::new(in_memory).may_block());
}
