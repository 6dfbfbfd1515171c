//! The driver over a key that things happen to (token-sim's fault injection): a power loss
//! mid-command, a failed storage, a slow card, a key pulled out mid-command. Each ends the
//! operation with an error that says what happened, nothing hangs, and where the key can go
//! on, the driver goes on with it once the host has reset it (as PC/SC asks after a reset).

use host_driver::{MgmtKey, PinOutcome, PinStatus, Piv, PivError};
use proto::clock::FixedClock;
use proto::piv::Slot;
use proto::{Transport, TransportError};
use token_sim::faults::{Fault, Faults};
use token_sim::{KeySpec, VirtualKey};

const NOW: u64 = 1_790_000_000;

fn key() -> (Piv<VirtualKey>, Faults) {
    let mut k = VirtualKey::in_memory(&KeySpec { seed: Some(11), ..KeySpec::default() }, &FixedClock(NOW)).unwrap();
    let faults = k.faults();
    let mut piv = Piv::new(k);
    piv.select().unwrap();
    (piv, faults)
}

#[test]
fn a_power_loss_mid_command_says_so_and_the_key_works_after_a_reset() {
    let (mut piv, faults) = key();
    faults.arm(Fault::PowerLossAtWrite(1));
    let e = piv.verify_pin(&"123456".into()).unwrap_err();
    assert!(matches!(e, PivError::Transport(TransportError::Reset(_))), "{e:?}");
    assert!(e.to_string().contains("was reset during the command"), "{e}");
    // Until the host resets (reconnects), the key says so again; then it works.
    assert!(matches!(piv.pin_status(), Err(PivError::Transport(TransportError::Reset(_)))));
    piv.transport().reset().unwrap();
    // The lost write was the try: nothing was spent, and the PIN verifies.
    piv.select().unwrap();
    assert_eq!(piv.pin_status().unwrap(), PinStatus::NotVerified { retries_left: 3 });
    assert_eq!(piv.verify_pin(&"123456".into()).unwrap(), PinOutcome::Ok);

    // Lost after a generated key was written: the key is there, the session is not.
    piv.authenticate_auto(&MgmtKey::default()).unwrap();
    faults.arm(Fault::PowerLossAfterWrite(1));
    let e = piv.generate(Slot::Signature, None, None).unwrap_err();
    assert!(matches!(e, PivError::Transport(TransportError::Reset(_))), "{e:?}");
    piv.transport().reset().unwrap();
    piv.select().unwrap();
    assert!(matches!(piv.authenticate_auto(&MgmtKey::default()), Ok(())), "the card authenticates anew");
    assert_eq!(piv.verify_pin(&"123456".into()).unwrap(), PinOutcome::Ok);
    assert!(piv.sign_message(Slot::Signature, b"after the loss").is_ok(), "the key written before the loss signs");
}

#[test]
fn a_storage_error_is_a_memory_failure_that_tells_what_to_do() {
    let (mut piv, faults) = key();
    faults.arm(Fault::StorageError);
    let e = piv.verify_pin(&"123456".into()).unwrap_err();
    assert!(matches!(e, PivError::MemoryFailure { .. }), "{e:?}");
    assert!(e.to_string().contains("memory failed (6581)") && e.to_string().contains("removed and put back"), "{e}");
    // A faulted card stays so: the driver reports it for every operation, never as success.
    faults.disarm();
    assert!(matches!(piv.pin_status(), Err(PivError::MemoryFailure { .. })));
}

#[test]
fn a_key_pulled_out_mid_command_is_removed_and_comes_back_when_put_in() {
    let (mut piv, faults) = key();
    faults.arm(Fault::RemovedMidCommand(1));
    let e = piv.verify_pin(&"654321".into()).unwrap_err();
    assert!(matches!(e, PivError::Transport(TransportError::Removed(_))), "{e:?}");
    assert!(matches!(piv.pin_status(), Err(PivError::Transport(TransportError::NoCard(_)))));
    piv.transport().insert();
    piv.select().unwrap();
    assert_eq!(
        piv.pin_status().unwrap(),
        PinStatus::NotVerified { retries_left: 3 },
        "the pulled try was never written"
    );
}

#[test]
fn a_slow_key_is_waited_for_and_its_answers_are_the_same() {
    let (mut piv, faults) = key();
    faults.arm(Fault::Slow(std::time::Duration::from_millis(20)));
    assert_eq!(piv.verify_pin(&"123456".into()).unwrap(), PinOutcome::Ok);
    assert!(piv.read_certificate(Slot::Authentication).unwrap().is_none(), "a fresh key has no certificate");
    assert_eq!(faults.armed(), Some(Fault::Slow(std::time::Duration::from_millis(20))), "slowness lasts");
}
