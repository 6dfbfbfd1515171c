//! The suite on a key someone owns costs nothing: whatever the key does wrong, after a run the
//! PIN and PUK have the tries and values they had, or the report says exactly what changed and
//! why. Every selection (the whole catalog, each family) runs against keys with 1, 2 and 3
//! tries left, honest and with lenient or failing behaviours a real card may have (VERIFY
//! ignoring P1, short PINs padded and compared, an I/O error once after a change, a card that
//! changes the PIN despite a wrong old one).

use conformance::{run, Card, Family, Report, Secrets, Selection};
use host_driver::Piv;
use proto::clock::FixedClock;
use proto::secret::{Pin, Puk};
use proto::transport::{Transport, TransportError};
use token_sim::{KeySpec, SharedKey, VirtualKey};

const PIN: &str = "654321";
const PUK: &str = "87651234";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Honest,
    /// VERIFY with any P1 counts as VERIFY (P1 00).
    VerifyIgnoresP1,
    /// A PIN shorter than 6, or a block not 8 bytes, is padded and compared: a wrong try.
    ShortPinCompared,
    /// The command after a CHANGE REFERENCE DATA the key took fails with an I/O error, once.
    IoErrorAfterChange,
    /// CHANGE REFERENCE DATA of the PIN with a wrong old PIN changes it, and says 63C2.
    ChangesDespiteWrongOld,
}

struct Lenient {
    key: SharedKey,
    how: Behaviour,
    fail_next: bool,
}

fn block(v: &str) -> Vec<u8> {
    let mut b = v.as_bytes().to_vec();
    b.resize(8, 0xFF);
    b
}

impl Transport for Lenient {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        if std::mem::take(&mut self.fail_next) {
            return Err(TransportError::Io("the reader dropped the command".into()));
        }
        let mut apdu = apdu.to_vec();
        let verify_with_data = apdu.len() > 5 && apdu[1] == 0x20;
        match self.how {
            Behaviour::VerifyIgnoresP1 if verify_with_data && apdu[2] != 0x00 && apdu[2] != 0xFF => apdu[2] = 0x00,
            Behaviour::ShortPinCompared if verify_with_data && apdu[3] == 0x80 => {
                let data = &apdu[5..];
                let digits = data.iter().take_while(|&&b| b != 0xFF).count();
                if data.len() != 8 || digits < 6 {
                    apdu = [&[0x00, 0x20, 0x00, 0x80, 0x08][..], &block("000000")].concat();
                }
            }
            Behaviour::ChangesDespiteWrongOld
                if apdu.len() == 21 && apdu[1] == 0x24 && apdu[3] == 0x80 && apdu[5..13] != block(PIN)[..] =>
            {
                apdu[5..13].copy_from_slice(&block(PIN));
                let r = self.key.transmit(&apdu)?;
                return Ok(if r.ends_with(&[0x90, 0x00]) { vec![0x63, 0xC2] } else { r });
            }
            _ => {}
        }
        let r = self.key.transmit(&apdu)?;
        if self.how == Behaviour::IoErrorAfterChange && apdu[1] == 0x24 && r.ends_with(&[0x90, 0x00]) {
            self.fail_next = true;
        }
        Ok(r)
    }
    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        self.key.reset()
    }
    fn is_present(&mut self) -> bool {
        self.key.is_present()
    }
    fn name(&self) -> String {
        format!("{:?} key", self.how)
    }
}

/// A key with PIN and PUK not the factory ones, `tries` tries left on each.
fn key(tries: u8) -> SharedKey {
    let spec = KeySpec { seed: Some(5), pin: Pin::new(PIN), puk: Puk::new(PUK), ..KeySpec::default() };
    let key = SharedKey::new(VirtualKey::in_memory(&spec, &FixedClock(1_790_000_000)).unwrap());
    let mut piv = Piv::new(key.clone());
    piv.select().unwrap();
    for _ in tries..3 {
        piv.verify_pin(&Pin::new("000000")).unwrap();
        piv.unblock_pin(&Puk::new("00000000"), &Pin::new(PIN)).unwrap();
    }
    key
}

/// (PIN tries, PUK tries, the PIN still the given one, the PUK still the given one), read
/// through the key itself, after the counts (the value checks reset them).
fn state(key: &SharedKey) -> (Option<u8>, Option<u8>, bool, bool) {
    let mut piv = Piv::new(key.clone());
    piv.reset().ok();
    piv.select().unwrap();
    let (pin, _) = piv.pin_retries().unwrap();
    let puk = piv.puk_retries().unwrap();
    let pin_ok = pin == Some(0) || piv.verify_pin(&Pin::new(PIN)).unwrap() == host_driver::PinOutcome::Ok;
    let puk_ok =
        puk == Some(0) || piv.change_puk(&Puk::new(PUK), &Puk::new(PUK)).unwrap() == host_driver::PinOutcome::Ok;
    (pin, puk, pin_ok, puk_ok)
}

/// The report's account of `secret`'s tries: the count its last "tries A -> B" names, if any.
fn reported_tries(r: &Report, secret: &str) -> Option<u8> {
    r.secrets
        .iter()
        .filter(|c| c.secret.name() == secret)
        .rev()
        .find_map(|c| c.what.split(" tries ").nth(1)?.split(" -> ").nth(1)?.split([',', ' ']).next()?.parse().ok())
}

fn judge(how: Behaviour, tries: u8, only: Vec<String>) {
    let key = key(tries);
    let before = state(&key);
    assert_eq!(before, (Some(tries), Some(tries), true, true));
    // Reading the state verified both: back to `tries` for the run.
    let key = self::key(tries);
    let secrets =
        Secrets { pin: Pin::new(PIN), puk: Puk::new(PUK), pin_given: true, puk_given: true, ..Secrets::default() };
    let mut card = Card::new(Box::new(Lenient { key: key.clone(), how, fail_next: false }), secrets);
    let selection = Selection { only: only.clone(), ..Selection::default() };
    let r = run(&mut card, &selection, &mut |_, _, _| {});
    let (pin, puk, pin_value, puk_value) = state(&key);
    let what = format!("{how:?}, {tries} tries, {only:?}:\n{}", r.table());
    assert!(r.guard_refused.is_empty(), "no secret went around the guard: {what}");
    for (name, after) in [("PIN", pin), ("PUK", puk)] {
        match reported_tries(&r, name) {
            None => assert_eq!(after, Some(tries), "{name} tries changed unreported: {what}"),
            Some(n) => assert_eq!(after, Some(n), "{name}: the report's last count is not the key's: {what}"),
        }
    }
    for (name, kept) in [("PIN", pin_value), ("PUK", puk_value)] {
        if !kept {
            assert!(
                r.secrets.iter().any(|c| c.secret.name() == name && c.what.contains(" is now ")),
                "{name} value changed unreported: {what}"
            );
        }
    }
}

fn selections() -> Vec<Vec<String>> {
    let mut all = vec![Vec::new()];
    all.extend(Family::ALL.iter().map(|f| vec![f.name().to_string()]));
    all
}

fn every_selection_and_count(how: Behaviour) {
    for tries in [1, 2, 3] {
        for only in selections() {
            judge(how, tries, only);
        }
    }
}

#[test]
fn an_honest_key_keeps_its_tries_and_secrets() {
    every_selection_and_count(Behaviour::Honest);
}

#[test]
fn a_key_whose_verify_ignores_p1() {
    every_selection_and_count(Behaviour::VerifyIgnoresP1);
}

#[test]
fn a_key_that_pads_and_compares_short_pins() {
    every_selection_and_count(Behaviour::ShortPinCompared);
}

#[test]
fn a_key_that_fails_once_after_a_change() {
    every_selection_and_count(Behaviour::IoErrorAfterChange);
}

#[test]
fn a_key_that_changes_the_pin_despite_a_wrong_old_one() {
    every_selection_and_count(Behaviour::ChangesDespiteWrongOld);
}

/// The guard refuses what goes around it: nothing is sent.
#[test]
fn a_pin_sent_around_the_guard_never_reaches_the_key() {
    let key = key(3);
    let secrets =
        Secrets { pin: Pin::new(PIN), puk: Puk::new(PUK), pin_given: true, puk_given: true, ..Secrets::default() };
    let mut card = Card::new(Box::new(key.clone()), secrets);
    card.fresh().unwrap();
    assert!(card.raw(&[&[0x00, 0x20, 0x00, 0x80, 0x08][..], &block("000000")].concat()).is_err());
    assert!(card.piv().verify_pin(&Pin::new("000000")).is_err());
    assert_eq!(card.guard_refused().len(), 2);
    assert_eq!(state(&key).0, Some(3), "no try spent");
}

/// Without --pin and --puk nothing is sent: on a key someone owns the factory values are not
/// guessed, and a run of the select family does not touch the PIN at all.
#[test]
fn secrets_not_given_are_never_sent() {
    let key = key(3);
    let mut card = Card::new(Box::new(key.clone()), Secrets::default());
    let r = run(&mut card, &Selection::default(), &mut |_, _, _| {});
    assert!(r.secrets.is_empty(), "{}", r.table());
    let pin_checks = r.outcomes.iter().filter(|o| o.verdict.detail().contains("no PIN given")).count();
    assert!(pin_checks >= 10, "{}", r.table());
    assert_eq!(state(&key), (Some(3), Some(3), true, true));
}
