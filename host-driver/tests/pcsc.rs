//! The host driver over PC/SC, against virtual keys served through pcscd's vpcd driver: the
//! same key suite as in-process, plus what only a reader has (presence, events, transactions).
//!
//! Needs pcscd with vsmartcard-vpcd (readers "Virtual PCD 00 00" / "00 01"). Without it the
//! tests say so and pass locally; under CI=true they fail.

#[path = "../../testsupport/served.rs"]
mod served;
mod suite;
#[path = "../../testsupport/vpcd.rs"]
mod vpcd_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use host_driver::pcsc::{Monitor, Pcsc, PcscError, PcscTransport, ReaderEvent};
use host_driver::{PinOutcome, PinStatus, Piv, PivError};
use proto::clock::FixedClock;
use proto::{Transport, TransportError};
use served::{Served, IN_USE};
use suite::{Maker, NOW};
use token_sim::{KeySpec, VirtualKey};
use vpcd_support::{begin, wait_card, READER};

/// The driver's transport plus the key behind it (kept alive as long as the transport).
struct OverPcsc {
    transport: Option<PcscTransport>,
    served: Option<Served>,
}

impl OverPcsc {
    fn t(&mut self) -> &mut PcscTransport {
        self.transport.as_mut().expect("connected")
    }
}

impl Drop for OverPcsc {
    fn drop(&mut self) {
        // Disconnect before the key goes away.
        self.transport.take();
        self.served.take();
    }
}

impl Transport for OverPcsc {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.t().transmit(apdu)
    }
    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        self.t().reset()
    }
    fn is_present(&mut self) -> bool {
        self.t().is_present()
    }
    fn name(&self) -> String {
        self.transport.as_ref().map(|t| t.name()).unwrap_or_default()
    }
}

struct ViaVpcd;

impl Maker for ViaVpcd {
    type T = OverPcsc;
    fn make(&self, spec: KeySpec) -> Piv<OverPcsc> {
        let n = IN_USE.iter().position(|u| !u.load(Ordering::SeqCst)).expect("a free vpcd reader");
        let served = Served::start(VirtualKey::in_memory(&spec, &FixedClock(NOW)).unwrap(), n);
        let transport = PcscTransport::connect(served.reader).unwrap();
        Piv::new(OverPcsc { transport: Some(transport), served: Some(served) })
    }
}

/// The in-process suite, over PC/SC. Each test skips (locally) when pcscd is missing.
mod suite_over_pcsc {
    use super::*;

    struct IfReady;
    impl IfReady {
        fn run(&self, f: impl FnOnce(&ViaVpcd)) {
            if let Some(_one_at_a_time) = begin() {
                f(&ViaVpcd)
            }
        }
    }

    macro_rules! over_pcsc {
        ($($name:ident),*) => {
            $(
                #[test]
                fn $name() {
                    IfReady.run(|m| suite::$name(m))
                }
            )*
        };
    }

    over_pcsc!(
        verify_pin_outcomes,
        change_and_unblock,
        management_key_auth_and_change,
        generate_sign_verify_with_p256,
        csr_from_the_card_is_issued_by_the_ca_and_stored_back,
        csr_without_pin_reports_the_card_error,
        self_signed_certificate_verifies,
        large_certificate_round_trips,
        yubico_extensions_and_plain_fallback,
        attestation_chains_to_the_f9_certificate,
        ecdh_and_random,
        random_keeps_management_key_authentication,
        random_with_an_aes_management_key,
        reset_after_blocking_both,
        set_pin_retries_through_the_driver
    );
}

#[test]
fn readers_atr_and_select() {
    let Some(_one_at_a_time) = begin() else { return };
    let mut p = ViaVpcd.fresh();
    let states = Pcsc::establish().unwrap().reader_states().unwrap();
    let st = states.iter().find(|s| s.name == READER[0]).unwrap();
    assert_eq!(st.atr.as_deref(), Some(hex::encode_upper(token_sim::piv::ATR).as_str()));
    assert!(!st.mute);
    let applet = p.select().unwrap();
    assert_eq!(applet.aid.as_deref(), Some(&proto::piv::PIV_AID[5..]));
    assert_eq!(p.transport().reset().unwrap(), token_sim::piv::ATR.to_vec());
}

#[test]
fn finding_readers_by_name() {
    let Some(_one_at_a_time) = begin() else { return };
    let pcsc = Pcsc::establish().unwrap();
    assert_eq!(pcsc.find_reader("Virtual PCD 00 01").unwrap(), READER[1]);
    assert_eq!(pcsc.find_reader("pcd 00 00").unwrap(), READER[0], "unique case-insensitive part");
    assert!(matches!(pcsc.find_reader("virtual pcd"), Err(PcscError::AmbiguousReader { .. })));
    let err = pcsc.find_reader("no such reader").unwrap_err();
    assert!(err.to_string().contains("Virtual PCD 00 00"), "lists the readers there are: {err}");
    wait_card(READER[1], false);
    assert!(matches!(PcscTransport::connect(READER[1]), Err(PcscError::NoCard { .. })));
}

#[test]
fn removal_mid_session_is_reported_and_the_state_is_gone_after_reinsertion() {
    let Some(_one_at_a_time) = begin() else { return };
    let mut p = ViaVpcd.fresh();
    p.select().unwrap();
    assert_eq!(p.verify_pin(&"123456".into()).unwrap(), PinOutcome::Ok);
    let key = p.transport().served.as_ref().unwrap().key.clone();
    p.transport().served.as_ref().unwrap().inserted.send_replace(false);
    wait_card(READER[0], false);
    let err = p.pin_status().unwrap_err();
    assert!(matches!(err, PivError::Transport(TransportError::Removed(_))), "{err}");
    assert!(!p.transport().is_present());
    // Plug it back in: a new connection, a new session.
    p.transport().served.as_ref().unwrap().inserted.send_replace(true);
    wait_card(READER[0], true);
    p.transport().transport.take();
    p.transport().transport = Some(PcscTransport::connect(READER[0]).unwrap());
    p.select().unwrap();
    assert_eq!(p.pin_status().unwrap(), PinStatus::NotVerified { retries_left: 3 });
    // The counter lives on the key, not in the connection.
    assert_eq!(p.verify_pin(&"000000".into()).unwrap(), PinOutcome::WrongPin { retries_left: 2 });
    assert_eq!(key.lock().card().state().pin.counter.remaining, 2);
}

#[test]
fn monitor_reports_insert_and_remove() {
    let Some(_one_at_a_time) = begin() else { return };
    wait_card(READER[1], false);
    let mut mon = Monitor::new().unwrap();
    assert!(mon.readers().iter().any(|r| r.name == READER[1] && !r.card_present));
    let key = VirtualKey::in_memory(&KeySpec { seed: Some(3), ..KeySpec::default() }, &FixedClock(NOW)).unwrap();
    let served = Served::start(key, 1);
    let events =
        wait_events(&mut mon, |e| matches!(e, ReaderEvent::CardInserted { reader, .. } if reader == READER[1]));
    let atr = events.iter().find_map(|e| match e {
        ReaderEvent::CardInserted { atr, .. } => atr.clone(),
        _ => None,
    });
    assert_eq!(atr, Some(hex::encode_upper(token_sim::piv::ATR)));
    served.inserted.send_replace(false);
    wait_events(&mut mon, |e| *e == ReaderEvent::CardRemoved { reader: READER[1].into() });

    // A waker ends a wait early, with no events.
    let waker = mon.waker();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        waker.wake();
    });
    let started = Instant::now();
    assert!(mon.wait(Duration::from_secs(30)).unwrap().is_empty());
    assert!(started.elapsed() < Duration::from_secs(20));
    t.join().unwrap();
}

fn wait_events(mon: &mut Monitor, want: impl Fn(&ReaderEvent) -> bool) -> Vec<ReaderEvent> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        seen.extend(mon.wait(Duration::from_millis(500)).unwrap());
        if seen.iter().any(&want) {
            return seen;
        }
    }
    panic!("event never came; saw {seen:?}");
}

#[test]
fn a_transaction_keeps_other_programs_out_until_it_ends() {
    let Some(_one_at_a_time) = begin() else { return };
    let mut p = ViaVpcd.fresh();
    assert_eq!(p.verify_pin(&"123456".into()).unwrap(), PinOutcome::Ok);
    let (tx, rx) = std::sync::mpsc::channel();
    let other = std::thread::spawn(move || {
        // Blocks in SCardBeginTransaction while the first connection holds the card.
        let t = PcscTransport::connect(READER[0]).unwrap();
        tx.send(()).unwrap();
        let mut piv = Piv::new(t);
        piv.select().unwrap();
        piv.pin_status().unwrap()
    });
    assert!(rx.recv_timeout(Duration::from_millis(700)).is_err(), "second program waits for the transaction");
    assert_eq!(p.pin_status().unwrap(), PinStatus::Verified, "nothing slipped in between");
    // The first program logs out before it lets go: the PIN state does not pass on.
    p.logout().unwrap();
    p.transport().transport.take();
    rx.recv_timeout(Duration::from_secs(10)).expect("second program gets the card");
    assert_eq!(other.join().unwrap(), PinStatus::NotVerified { retries_left: 3 });
}
