//! The key under test: a PIV client over any `Transport`, with every status word the key
//! answered recorded (the report shows, per check, what the key said).

use std::sync::{Arc, Mutex};

use host_driver::{MgmtKey, Piv, PivError};
use proto::secret::{Pin, Puk};
use proto::status::Sw;
use proto::transport::{PowerSwitch, Transport, TransportError};

use crate::catalog::Verdict;
use crate::guard::{Change, Known, Secret, SharedGate, Use};

/// The key's secrets as the person running the suite gives them. A PIN or PUK not given is
/// never sent to a key someone owns (the factory value stands in only on a key made for the
/// run); the management key defaults to the factory one (a wrong one costs no try).
#[derive(Clone, Debug)]
pub struct Secrets {
    pub pin: Pin,
    pub puk: Puk,
    pub mgmt: MgmtKey,
    pub pin_given: bool,
    pub puk_given: bool,
}

impl Default for Secrets {
    fn default() -> Self {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Secrets {
            pin: Pin::new(s(proto::piv::defaults::PIN)),
            puk: Puk::new(s(proto::piv::defaults::PUK)),
            mgmt: MgmtKey::default(),
            pin_given: false,
            puk_given: false,
        }
    }
}

impl Secrets {
    /// The factory PIN and PUK, given as this key's (a key known to have them).
    pub fn factory() -> Secrets {
        Secrets { pin_given: true, puk_given: true, ..Secrets::default() }
    }
}

/// A transport that notes the status word of every answer, under the guard's gate.
pub struct Recorder {
    inner: Box<dyn Transport>,
    seen: Arc<Mutex<Vec<u16>>>,
    gate: SharedGate,
}

impl Transport for Recorder {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        if !self.gate.admits(apdu) {
            return Err(TransportError::Io(
                "the suite's guard stopped an APDU carrying a PIN or PUK outside its rules".into(),
            ));
        }
        let r = self.inner.transmit(apdu)?;
        if r.len() >= 2 {
            let sw = u16::from_be_bytes([r[r.len() - 2], r[r.len() - 1]]);
            self.seen.lock().unwrap_or_else(|p| p.into_inner()).push(sw);
        }
        Ok(r)
    }
    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        self.inner.reset()
    }
    fn is_present(&mut self) -> bool {
        self.inner.is_present()
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn may_block(&self) -> bool {
        self.inner.may_block()
    }
}

/// An APDU's answer: its data and status word.
pub type Answer = (Vec<u8>, Sw);

/// The key under test.
pub struct Card {
    piv: Piv<Recorder>,
    seen: Arc<Mutex<Vec<u16>>>,
    gate: SharedGate,
    pub secrets: Secrets,
    /// The ATR of the last reset.
    pub atr: Vec<u8>,
    pin: Known,
    puk: Known,
    /// The PUK may be tried once where its count cannot be read (it was typed for this key).
    pub try_puk: bool,
    /// What the run did to the PIN and PUK and did not undo.
    changes: Vec<Change>,
    /// The check running (for the ledger).
    pub during: String,
    /// A hand on the key's power, when it has one (a simulated key).
    power: Option<Box<dyn PowerSwitch>>,
    /// The key was made for this run: checks that leave it changed for good may run.
    pub throwaway: bool,
    /// Destructive checks were allowed (they may reset the key).
    pub leave: bool,
}

impl Card {
    pub fn new(transport: Box<dyn Transport>, secrets: Secrets) -> Card {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let gate = SharedGate::default();
        let piv = Piv::new(Recorder { inner: transport, seen: seen.clone(), gate: gate.clone() });
        let known = |given: bool| if given { Known::Untried } else { Known::NotGiven };
        Card {
            piv,
            seen,
            gate,
            pin: known(secrets.pin_given),
            puk: known(secrets.puk_given),
            secrets,
            atr: Vec::new(),
            try_puk: false,
            changes: Vec::new(),
            during: "before the checks".into(),
            power: None,
            throwaway: false,
            leave: false,
        }
    }

    /// The key's power can be cut by the suite (a simulated key): the checks of what a card
    /// writes before it answers run too.
    pub fn with_power(mut self, power: Box<dyn PowerSwitch>) -> Card {
        self.power = Some(power);
        self
    }

    /// Cut the power at the card's next write; `false` when the key has no power switch.
    pub fn cut_power_at_next_write(&mut self) -> bool {
        self.power.as_mut().map(|p| p.cut_at_next_write()).is_some()
    }

    /// Nothing is cut any more.
    pub fn cancel_power_cut(&mut self) {
        if let Some(p) = self.power.as_mut() {
            p.cancel();
        }
    }

    /// The host driver's PIV client on this key (it follows 61xx and chains long data).
    pub fn piv(&mut self) -> &mut Piv<Recorder> {
        &mut self.piv
    }

    /// Whether the key is (still) there.
    pub fn is_present(&mut self) -> bool {
        self.piv.transport().is_present()
    }

    /// What a person calls this key or reader.
    pub fn name(&mut self) -> String {
        self.piv.transport().name()
    }

    /// One raw APDU exactly as given (nothing followed, nothing chained): for checks of how
    /// the key answers malformed or unusual commands.
    pub fn raw(&mut self, apdu: &[u8]) -> Result<Answer, String> {
        let mut r = self.piv.transport().transmit(apdu).map_err(|e| e.to_string())?;
        if r.len() < 2 {
            return Err(format!("an answer of {} bytes, without a status word", r.len()));
        }
        let sw = Sw::from_bytes(r[r.len() - 2], r[r.len() - 1]);
        r.truncate(r.len() - 2);
        Ok((r, sw))
    }

    /// A whole command through the driver (61xx followed, long data chained).
    pub fn cmd(&mut self, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Result<Answer, String> {
        self.piv.exchange(ins, p1, p2, data).map_err(|e| e.to_string())
    }

    /// Warm reset, then SELECT PIV: the state every check starts from.
    pub fn fresh(&mut self) -> Result<(), String> {
        self.atr = self.piv.transport().reset().map_err(|e| format!("reset: {e}"))?;
        self.piv.select().map(|_| ()).map_err(|e| format!("SELECT PIV after reset: {e}"))
    }

    /// The status words answered so far in this check, kept for the report.
    pub fn seen_so_far(&self) -> Vec<u16> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Note a status word as answered (the runner keeps a check's own apart from those of
    /// putting the key back).
    pub fn note_seen(&mut self, sw: u16) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).push(sw);
    }

    /// The status words answered since the last call.
    pub fn take_seen(&mut self) -> Vec<u16> {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Authenticate with the given management key; a verdict when it is not this key's.
    pub fn mgmt_auth(&mut self) -> Result<(), Verdict> {
        match self.authenticate() {
            Ok(()) => Ok(()),
            Err(PivError::NotAuthorized { .. }) => {
                Err(Verdict::Skipped("the management key given is not this key's; pass --mgmt-key".into()))
            }
            Err(PivError::Input(why)) => Err(Verdict::Skipped(format!(
                "the management key given does not fit the key's algorithm ({why}); pass --mgmt-key"
            ))),
            Err(PivError::Card { sw: Sw::INCORRECT_P1P2, .. }) => {
                Err(crate::preconditions::other_algorithm(self.secrets.mgmt.bytes().len()))
            }
            Err(e) => Err(Verdict::Fail(format!("management-key authentication: {e}"))),
        }
    }

    /// The secret's tries left, read without spending one: the PIN's from VERIFY with no data
    /// (`None` while it is verified), the PUK's from GET METADATA (`None` without it).
    pub fn tries(&mut self, s: Secret) -> Result<Option<u8>, String> {
        match s {
            Secret::Pin => match self.piv.pin_status() {
                Ok(host_driver::PinStatus::NotVerified { retries_left }) => Ok(Some(retries_left)),
                Ok(host_driver::PinStatus::Verified) => Ok(None),
                Ok(host_driver::PinStatus::Blocked) => Ok(Some(0)),
                Err(e) => Err(e.to_string()),
            },
            Secret::Puk => Ok(self.piv.metadata(0x81).ok().and_then(|m| m.retries_remaining)),
        }
    }

    /// The PIN's tries left (see [`Card::tries`]).
    pub fn pin_tries(&mut self) -> Result<Option<u8>, String> {
        self.tries(Secret::Pin)
    }

    fn known(&mut self, s: Secret) -> &mut Known {
        match s {
            Secret::Pin => &mut self.pin,
            Secret::Puk => &mut self.puk,
        }
    }

    /// Whether the given secret may be sent: known right, found out now on first need (and
    /// only where two or more tries are left, so a wrong one cannot block the key). The key
    /// is left fresh when it was tried.
    pub fn usable(&mut self, s: Secret) -> Result<(), Verdict> {
        let name = s.name();
        let flag = if s == Secret::Pin { "--pin" } else { "--puk" };
        match self.known(s).clone() {
            Known::Right => Ok(()),
            Known::NotGiven if !self.throwaway => Err(Verdict::Skipped(format!(
                "no {name} given: pass {flag} (the factory value is never tried on a key someone owns)"
            ))),
            Known::NotGiven | Known::Untried => {
                let found = self.find_out(s);
                *self.known(s) = found;
                self.usable(s)
            }
            Known::Wrong => Err(Verdict::Skipped(format!(
                "the {name} given is not this key's (one try spent finding out); pass {flag}"
            ))),
            Known::Untriable(why) => Err(Verdict::Skipped(format!("the {name} was not tried: {why}"))),
            Known::Stopped(why) => Err(Verdict::Skipped(format!("no more {name} use in this run: {why}"))),
        }
    }

    /// Try the given secret once, where that is safe.
    fn find_out(&mut self, s: Secret) -> Known {
        if let Err(e) = self.fresh() {
            return Known::Untriable(e);
        }
        let tries = match self.tries(s) {
            Ok(t) => t,
            Err(e) => return Known::Untriable(e),
        };
        let allowed = match (s, tries) {
            (_, Some(n)) if n >= 2 => true,
            (_, Some(n)) => return Known::Untriable(format!("only {n} tries left, and a wrong one must not block it")),
            (Secret::Pin, None) => return Known::Untriable("the key does not say how many tries are left".into()),
            (Secret::Puk, None) => self.throwaway || self.try_puk,
        };
        if !allowed {
            return Known::Untriable(
                "the key cannot say how many PUK tries it has left: pass --puk to try it once anyway".into(),
            );
        }
        let apdu = self.right_apdu(s);
        let sw = self.through_gate(&apdu).map(|(_, sw)| sw);
        let found = match sw {
            Ok(sw) if sw.0 == 0x9000 => Known::Right,
            Ok(sw) if sw.0 & 0xFFF0 == 0x63C0 || sw.0 == 0x6983 => Known::Wrong,
            Ok(sw) => Known::Untriable(format!("trying it answered {:04X}", sw.0)),
            Err(e) => Known::Untriable(e),
        };
        let _ = self.fresh();
        found
    }

    /// The APDU that sends the given secret as itself: VERIFY of the PIN; CHANGE REFERENCE
    /// DATA of the PUK to itself (which also resets its count).
    fn right_apdu(&self, s: Secret) -> Vec<u8> {
        let (pin, puk) = (self.secrets.pin.expose().as_bytes(), self.secrets.puk.expose().as_bytes());
        match s {
            Secret::Pin => [&[0x00, 0x20, 0x00, 0x80, 0x08][..], &pin_block(pin)].concat(),
            Secret::Puk => [&[0x00, 0x24, 0x00, 0x81, 0x10][..], &pin_block(puk), &pin_block(puk)].concat(),
        }
    }

    /// One APDU through the gate.
    fn through_gate(&mut self, apdu: &[u8]) -> Result<Answer, String> {
        let gate = self.gate.clone();
        gate.through(|| self.raw(apdu))
    }

    /// Send an APDU that carries a PIN or PUK, under the rules: [`Use::Right`] once the
    /// secret is known right (if the key refuses it then, the secret is used no more in this
    /// run); [`Use::Risk`] only with two or more tries left (a PUK's count unreadable: only on
    /// a key made for the run) and the right one at hand, which gives the try back after the
    /// check; [`Use::Exhaust`] as it says. The outer error: the rules say no (a verdict); the
    /// inner result: what the key answered, or why it did not.
    pub fn send_secret(&mut self, how: Use, apdu: &[u8]) -> Result<Result<Answer, String>, Verdict> {
        let s = match how {
            Use::Right(s) | Use::Risk(s) | Use::Exhaust(s) => s,
        };
        self.usable(s)?;
        match how {
            Use::Right(_) => {}
            Use::Risk(_) => match self.tries(s).map_err(Verdict::Fail)? {
                Some(n) if n >= 2 => {}
                // A card that cannot tell its PUK's tries (a plain PIV card): only on a key
                // made for the run, or with --puk typed for it. The given PUK was right when
                // last sent, which reset its count; each wrong try is given back at once.
                None if s == Secret::Puk && (self.throwaway || self.try_puk) => {}
                Some(n) => {
                    return Err(Verdict::Skipped(format!(
                        "the {} has {n} tries left: none is risked below two",
                        s.name()
                    )))
                }
                None => {
                    return Err(Verdict::Skipped(format!(
                        "the {}'s tries cannot be read now: none is risked",
                        s.name()
                    )))
                }
            },
            Use::Exhaust(Secret::Pin) => {
                if !(self.leave || self.throwaway) {
                    return Err(Verdict::Skipped("blocks the PIN: only with --destructive".into()));
                }
                self.usable(Secret::Puk)?;
            }
            Use::Exhaust(Secret::Puk) => {
                if !self.throwaway {
                    return Err(Verdict::Skipped(
                        "blocks the PUK for good: only on a key made for the run (--sim)".into(),
                    ));
                }
            }
        }
        let answer = self.through_gate(apdu);
        if let (Use::Right(_), Ok((_, sw))) = (how, &answer) {
            if sw.0 & 0xFFF0 == 0x63C0 || sw.0 == 0x6983 {
                self.stop(s, format!("the {} given, right before, was refused ({:04X})", s.name(), sw.0));
            }
        }
        Ok(answer)
    }

    /// A check changed `s` to `current` (a value it chose, the key accepted): change it back
    /// to the one given, trying twice (after a fresh reset) when the key does not answer. The
    /// report names the value the secret is left with when that fails, and the secret is used
    /// no more.
    pub fn put_back(&mut self, s: Secret, current: &str) -> Result<(), String> {
        let given = match s {
            Secret::Pin => self.secrets.pin.expose().to_string(),
            Secret::Puk => self.secrets.puk.expose().to_string(),
        };
        let mut data = pin_block(current.as_bytes());
        data.extend(pin_block(given.as_bytes()));
        let mut apdu = vec![0x00, 0x24, 0x00, s.reference(), data.len() as u8];
        apdu.extend(data);
        // A wrong `current` (a key that said it changed and did not) costs a try: only with
        // two or more left.
        let _ = self.fresh();
        if let Ok(Some(n)) = self.tries(s) {
            if n < 2 {
                let why = format!("the {} may now be {current}: {n} tries left, not risked to find out", s.name());
                self.stop(s, why.clone());
                return Err(why);
            }
        }
        let mut last = String::new();
        // Twice only when the key did not answer; a refusal is its answer.
        for _ in 0..2 {
            match self.through_gate(&apdu) {
                Ok((_, sw)) if sw.0 == 0x9000 => {
                    *self.known(s) = Known::Right;
                    return Ok(());
                }
                Ok((_, sw)) => {
                    last = format!("changing it back answered {:04X}", sw.0);
                    break;
                }
                Err(e) => last = format!("changing it back: {e}"),
            }
            let _ = self.fresh();
        }
        self.stop(s, format!("the {} is now {current} ({last})", s.name()));
        Err(format!("the {} is now {current}: {last}", s.name()))
    }

    /// After the given PIN was refused, see whether the key took `candidate` (a value a check
    /// sent as a new PIN, which a broken key may have taken while saying no): VERIFY with it,
    /// only with two or more tries left, and if it is the PIN now, put the given one back.
    pub fn recover_pin(&mut self, candidate: &str) -> Result<(), String> {
        let _ = self.fresh();
        match self.tries(Secret::Pin)? {
            Some(n) if n >= 2 => {}
            n => return Err(format!("{n:?} tries left: {candidate} is not tried")),
        }
        let mut apdu = vec![0x00, 0x20, 0x00, 0x80, 0x08];
        apdu.extend(pin_block(candidate.as_bytes()));
        let (_, sw) = self.through_gate(&apdu)?;
        if sw.0 != 0x9000 {
            return Err(format!("{candidate} is not the PIN either ({:04X})", sw.0));
        }
        self.note(Secret::Pin, format!("the key had taken {candidate} as the PIN; put back to the one given"));
        self.put_back(Secret::Pin, candidate)
    }

    /// An APDU that resets the key's secrets (Yubico RESET, SET PIN RETRIES): for destructive
    /// checks only, run with leave.
    pub fn send_reset(&mut self, apdu: &[u8]) -> Result<Answer, Verdict> {
        if !(self.leave || self.throwaway) {
            return Err(Verdict::Skipped("resets the key: only with --destructive".into()));
        }
        self.through_gate(apdu).map_err(Verdict::Fail)
    }

    /// Give back the tries a check spent: the right secret once more (the PIN verified, the
    /// PUK changed to itself), which resets the count.
    pub fn give_back(&mut self, s: Secret) -> Result<(), String> {
        if self.known(s) != &Known::Right {
            return Err(format!("the right {} is not known", s.name()));
        }
        self.fresh()?;
        let apdu = self.right_apdu(s);
        let (_, sw) = self.through_gate(&apdu)?;
        if sw.0 == 0x9000 {
            Ok(())
        } else {
            let why = format!("the {} given, right before, was refused ({:04X})", s.name(), sw.0);
            self.stop(s, why.clone());
            Err(why)
        }
    }

    /// No more use of `s` in this run, and why (in the report).
    pub fn stop(&mut self, s: Secret, why: String) {
        let during = self.during.clone();
        *self.known(s) = Known::Stopped(format!("{why} during {during}"));
        self.changes.push(Change { secret: s, during, what: why });
    }

    /// Write down a change the run made to `s` and did not undo.
    pub fn note(&mut self, s: Secret, what: String) {
        self.changes.push(Change { secret: s, during: self.during.clone(), what });
    }

    /// What the run did to the PIN and PUK and did not undo.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// APDUs the gate stopped: a check that tried to send a secret around the rules.
    pub fn guard_refused(&self) -> Vec<String> {
        self.gate.refused()
    }

    /// What is known of `s` (for the runner).
    pub fn knowledge(&self, s: Secret) -> &Known {
        match s {
            Secret::Pin => &self.pin,
            Secret::Puk => &self.puk,
        }
    }

    /// Why the PUK may not be sent, if it may not.
    pub fn puk_usable(&mut self) -> Result<(), Verdict> {
        self.usable(Secret::Puk)
    }

    /// Why the PIN may not be sent, if it may not.
    pub fn pin_usable(&mut self) -> Result<(), Verdict> {
        self.usable(Secret::Pin)
    }

    /// VERIFY with the given PIN, once it is known to be right.
    pub fn verify_pin(&mut self) -> Result<(), Verdict> {
        let apdu = self.right_apdu(Secret::Pin);
        let (_, sw) = self.send_secret(Use::Right(Secret::Pin), &apdu)?.map_err(Verdict::Fail)?;
        if sw.0 == 0x9000 {
            Ok(())
        } else {
            Err(Verdict::Fail(format!("the PIN that worked before is refused now ({:04X})", sw.0)))
        }
    }

    /// Management-key authentication with the given key.
    pub fn authenticate(&mut self) -> Result<(), PivError> {
        let key = self.secrets.mgmt.clone();
        self.piv.authenticate_auto(&key)
    }
}

/// A PIN or PUK as the card takes it: the characters, padded with FF to 8 bytes.
pub fn pin_block(value: &[u8]) -> Vec<u8> {
    let mut b = value.to_vec();
    b.resize(8, 0xFF);
    b
}
