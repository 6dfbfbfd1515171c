//! Fault injection on a key kept in a directory: the power fails during or after each write
//! of a command, the storage fails, the key is pulled out mid-command. After every loss the
//! file reads back whole, memory and disk agree, no try is ever given back, a loss at the
//! first write leaves the key exactly as before, and a loss after the last write leaves it
//! exactly as a twin that ran the command to the end.

mod common;

use common::*;
use proto::clock::FixedClock;
use proto::piv::Algorithm;
use proto::{Transport, TransportError};
use token_sim::faults::Fault;
use token_sim::piv::PersistentState;
use token_sim::store::{read_state, STATE_FILE};
use token_sim::VirtualKey;

/// A command of the case, with the setup it needs (on the card directly, nothing armed).
struct Case {
    name: &'static str,
    setup: fn(&mut VirtualKey),
    apdu: fn() -> Vec<u8>,
}

fn nothing(_: &mut VirtualKey) {}
fn one_wrong_pin(k: &mut VirtualKey) {
    assert_eq!(verify(k.card_mut(), b"999999").0 & 0xFFF0, 0x63C0);
}
fn authenticated(k: &mut VirtualKey) {
    assert!(mgmt_auth(k.card_mut(), Algorithm::Tdes, &MGMT).is_ok());
}

fn cases() -> Vec<Case> {
    vec![
        Case { name: "wrong VERIFY", setup: nothing, apdu: || apdu(0x20, 0, 0x80, &padded(b"999999")) },
        Case {
            name: "right VERIFY after a wrong one",
            setup: one_wrong_pin,
            apdu: || apdu(0x20, 0, 0x80, &padded(PIN)),
        },
        Case {
            name: "CHANGE REFERENCE DATA",
            setup: nothing,
            apdu: || apdu(0x24, 0, 0x80, &[padded(PIN), padded(b"654321")].concat()),
        },
        Case {
            name: "RESET RETRY COUNTER",
            setup: one_wrong_pin,
            apdu: || apdu(0x2C, 0, 0x80, &[padded(PUK), padded(b"246810")].concat()),
        },
        Case {
            name: "PUT DATA",
            setup: authenticated,
            apdu: || apdu(0xDB, 0x3F, 0xFF, &put_data_body(0x5FC10D, &[0x53, 0x03, 0x01, 0x02, 0x03])),
        },
        Case { name: "GENERATE", setup: authenticated, apdu: || apdu(0x47, 0, 0x9A, &[0xAC, 0x03, 0x80, 0x01, 0x11]) },
    ]
}

fn disk(dir: &std::path::Path) -> PersistentState {
    read_state(&dir.join(STATE_FILE)).expect("the state file always reads back whole").1
}

fn make(dir: &std::path::Path, case: &Case) -> VirtualKey {
    let mut k = VirtualKey::create(dir, &spec(7), &FixedClock(NOW)).unwrap();
    (case.setup)(&mut k);
    k
}

#[test]
fn a_power_loss_at_any_write_leaves_the_state_before_or_after_that_write() {
    let root = tempfile::tempdir().unwrap();
    for case in cases() {
        // The twin runs the command to the end: what "after" looks like.
        let twin_dir = root.path().join(format!("{}-twin", case.name));
        let mut twin = make(&twin_dir, &case);
        let answer = twin.transmit(&(case.apdu)()).unwrap();
        let expected: &[u8] = if case.name == "wrong VERIFY" { &[0x63, 0xC2] } else { &[0x90, 0x00] };
        assert_eq!(&answer[answer.len() - 2..], expected, "{}", case.name);
        let after = disk(&twin_dir);
        let mut writes = 0;
        for n in 1.. {
            for fault in [Fault::PowerLossAtWrite(n), Fault::PowerLossAfterWrite(n)] {
                let dir = root.path().join(format!("{}-{fault}", case.name));
                let mut key = make(&dir, &case);
                let before = disk(&dir);
                let faults = key.faults();
                faults.arm(fault);
                match key.transmit(&(case.apdu)()) {
                    Err(TransportError::Reset(_)) => {}
                    Ok(a) => {
                        // Fewer writes than n: the command ran whole.
                        assert!(
                            matches!(fault, Fault::PowerLossAtWrite(_)) && n > 1,
                            "{}: {fault} answered {a:02X?}",
                            case.name
                        );
                        assert_eq!(disk(&dir), after, "{}: a command that ran whole", case.name);
                        writes = n - 1;
                        break;
                    }
                    Err(e) => panic!("{}: {fault}: {e}", case.name),
                }
                assert_eq!(faults.power_losses(), 1);
                let now = disk(&dir);
                assert!(key.card().state() == &now, "{}: {fault}: memory and disk disagree", case.name);
                assert!(
                    now.pin.counter.remaining <= before.pin.counter.remaining.max(after.pin.counter.remaining),
                    "{}: {fault} gave a try back",
                    case.name
                );
                if fault == Fault::PowerLossAtWrite(1) {
                    assert!(now == before, "{}: a loss at the first write changed the key", case.name);
                }
                // The key works on: power up, and the PIN (old or new) verifies.
                key.reset().unwrap();
                let ok = [PIN, b"654321", b"246810"].iter().any(|p| verify(key.card_mut(), p).is_ok());
                assert!(ok, "{}: {fault}: no PIN verifies after the loss", case.name);
                drop(key);
                // And reopened from its directory, it is what the running key was.
                let reopened = VirtualKey::open(&dir).unwrap();
                assert_eq!(reopened.card().state().serial, now.serial);
            }
            if writes > 0 {
                break;
            }
            assert!(n < 10, "{}: more than 9 writes?", case.name);
        }
        // A loss after the last write: exactly the twin's state.
        let dir = root.path().join(format!("{}-last", case.name));
        let mut key = make(&dir, &case);
        key.faults().arm(Fault::PowerLossAfterWrite(writes));
        assert!(matches!(key.transmit(&(case.apdu)()), Err(TransportError::Reset(_))));
        assert!(disk(&dir) == after, "{}: a loss after the last write is the command done", case.name);
    }
}

#[test]
fn a_storage_error_faults_the_card_until_it_is_reopened_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().join("k");
    let mut key = VirtualKey::create(&dir, &spec(3), &FixedClock(NOW)).unwrap();
    let before = disk(&dir);
    let faults = key.faults();
    faults.arm(Fault::StorageError);
    let wrong = key.transmit(&apdu(0x20, 0, 0x80, &padded(b"999999"))).unwrap();
    assert_eq!(wrong, [0x65, 0x81], "a try that cannot be written is no try: memory failure");
    faults.disarm();
    // Until reopened the card trusts neither memory nor storage: everything is 6581.
    assert_eq!(key.transmit(&apdu(0x20, 0, 0x80, &padded(PIN))).unwrap(), [0x65, 0x81]);
    assert!(disk(&dir) == before);
    drop(key);
    let mut key = VirtualKey::open(&dir).unwrap();
    assert!(verify(key.card_mut(), PIN).is_ok(), "reopened, the key works and no try was spent");
}

#[test]
fn a_key_pulled_out_mid_command_loses_that_command_and_stays_out_until_put_back() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().join("k");
    let mut key = VirtualKey::create(&dir, &spec(5), &FixedClock(NOW)).unwrap();
    let faults = key.faults();
    faults.arm(Fault::RemovedMidCommand(2));
    assert_eq!(key.transmit(&[0x00, 0x20, 0x00, 0x80]).unwrap(), [0x63, 0xC3]);
    let pulled = key.transmit(&apdu(0x20, 0, 0x80, &padded(b"999999")));
    assert!(matches!(pulled, Err(TransportError::Removed(_))), "{pulled:?}");
    assert!(!key.is_present());
    assert!(matches!(key.transmit(&[0x00, 0x20, 0x00, 0x80]), Err(TransportError::NoCard(_))));
    assert_eq!(disk(&dir).pin.counter.remaining, 3, "the pulled command's write never happened");
    key.insert();
    assert_eq!(key.transmit(&[0x00, 0x20, 0x00, 0x80]).unwrap(), [0x63, 0xC3]);
    assert_eq!(faults.armed(), None, "a removal happens once");
}
