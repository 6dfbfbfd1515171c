//! The key under test: a PIV client over any `Transport`, with every status word the key
//! answered recorded (the report shows, per check, what the key said).

use std::sync::{Arc, Mutex};

use host_driver::{MgmtKey, Piv, PivError};
use proto::secret::{Pin, Puk};
use proto::status::Sw;
use proto::transport::{PowerSwitch, Transport, TransportError};

use crate::guard::{Change, Known, Secret, SharedGate};

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

/// Why the key did not answer as asked, or a secret could not be put back or given back.
/// The texts are the report's: a check's verdict quotes them.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// The transport failed (or the guard's gate stopped the APDU).
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("an answer of {0} bytes, without a status word")]
    NoStatusWord(usize),
    /// The driver's exchange (61xx followed, long data chained) or a query through it failed.
    #[error(transparent)]
    Piv(#[from] PivError),
    #[error("reset: {0}")]
    Reset(TransportError),
    #[error("SELECT PIV after reset: {0}")]
    Select(PivError),
    /// Changing a secret back was not tried: a wrong `current` could cost a try it cannot spare.
    #[error("the {} may now be {current}: {left} tries left, not risked to find out", .secret.name())]
    NotRisked { secret: Secret, current: String, left: u8 },
    /// Changing a secret back failed; `why` says how.
    #[error("the {} is now {current}: {why}", .secret.name())]
    LeftChanged { secret: Secret, current: String, why: String },
    /// A value the key may have taken as the PIN was not tried (too few tries, or unknown).
    #[error("{left:?} tries left: {candidate} is not tried")]
    CandidateNotTried { candidate: String, left: Option<u8> },
    #[error("{candidate} is not the PIN either ({sw:04X})")]
    NotThePin { candidate: String, sw: u16 },
    #[error("the right {} is not known", .0.name())]
    RightUnknown(Secret),
    /// The given secret, known right, was refused: it is used no more in the run.
    #[error("the {} given, right before, was refused ({sw:04X})", .secret.name())]
    RightRefused { secret: Secret, sw: u16 },
}

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
    pub fn raw(&mut self, apdu: &[u8]) -> Result<Answer, CardError> {
        let mut r = self.piv.transport().transmit(apdu)?;
        if r.len() < 2 {
            return Err(CardError::NoStatusWord(r.len()));
        }
        let sw = Sw::from_bytes(r[r.len() - 2], r[r.len() - 1]);
        r.truncate(r.len() - 2);
        Ok((r, sw))
    }

    /// A whole command through the driver (61xx followed, long data chained).
    pub fn cmd(&mut self, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Result<Answer, CardError> {
        Ok(self.piv.exchange(ins, p1, p2, data)?)
    }

    /// Warm reset, then SELECT PIV: the state every check starts from.
    pub fn fresh(&mut self) -> Result<(), CardError> {
        self.atr = self.piv.transport().reset().map_err(CardError::Reset)?;
        self.piv.select().map(|_| ()).map_err(CardError::Select)
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

    /// The secret's tries left, read without spending one: the PIN's from VERIFY with no data
    /// (`None` while it is verified), the PUK's from GET METADATA (`None` without it).
    pub fn tries(&mut self, s: Secret) -> Result<Option<u8>, CardError> {
        match s {
            Secret::Pin => match self.piv.pin_status() {
                Ok(host_driver::PinStatus::NotVerified { retries_left }) => Ok(Some(retries_left)),
                Ok(host_driver::PinStatus::Verified) => Ok(None),
                Ok(host_driver::PinStatus::Blocked) => Ok(Some(0)),
                Err(e) => Err(e.into()),
            },
            Secret::Puk => Ok(self.piv.metadata(0x81).ok().and_then(|m| m.retries_remaining)),
        }
    }

    /// The PIN's tries left (see [`Card::tries`]).
    pub fn pin_tries(&mut self) -> Result<Option<u8>, CardError> {
        self.tries(Secret::Pin)
    }

    pub(crate) fn known(&mut self, s: Secret) -> &mut Known {
        match s {
            Secret::Pin => &mut self.pin,
            Secret::Puk => &mut self.puk,
        }
    }

    /// The APDU that sends the given secret as itself: VERIFY of the PIN; CHANGE REFERENCE
    /// DATA of the PUK to itself (which also resets its count).
    pub(crate) fn right_apdu(&self, s: Secret) -> Vec<u8> {
        let (pin, puk) = (self.secrets.pin.expose().as_bytes(), self.secrets.puk.expose().as_bytes());
        match s {
            Secret::Pin => [&[0x00, 0x20, 0x00, 0x80, 0x08][..], &pin_block(pin)].concat(),
            Secret::Puk => [&[0x00, 0x24, 0x00, 0x81, 0x10][..], &pin_block(puk), &pin_block(puk)].concat(),
        }
    }

    /// One APDU through the gate.
    pub(crate) fn through_gate(&mut self, apdu: &[u8]) -> Result<Answer, CardError> {
        let gate = self.gate.clone();
        gate.through(|| self.raw(apdu))
    }

    /// A check changed `s` to `current` (a value it chose, the key accepted): change it back
    /// to the one given, trying twice (after a fresh reset) when the key does not answer. The
    /// report names the value the secret is left with when that fails, and the secret is used
    /// no more.
    pub fn put_back(&mut self, s: Secret, current: &str) -> Result<(), CardError> {
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
                let e = CardError::NotRisked { secret: s, current: current.into(), left: n };
                self.stop(s, e.to_string());
                return Err(e);
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
        Err(CardError::LeftChanged { secret: s, current: current.into(), why: last })
    }

    /// After the given PIN was refused, see whether the key took `candidate` (a value a check
    /// sent as a new PIN, which a broken key may have taken while saying no): VERIFY with it,
    /// only with two or more tries left, and if it is the PIN now, put the given one back.
    pub fn recover_pin(&mut self, candidate: &str) -> Result<(), CardError> {
        let _ = self.fresh();
        match self.tries(Secret::Pin)? {
            Some(n) if n >= 2 => {}
            left => return Err(CardError::CandidateNotTried { candidate: candidate.into(), left }),
        }
        let mut apdu = vec![0x00, 0x20, 0x00, 0x80, 0x08];
        apdu.extend(pin_block(candidate.as_bytes()));
        let (_, sw) = self.through_gate(&apdu)?;
        if sw.0 != 0x9000 {
            return Err(CardError::NotThePin { candidate: candidate.into(), sw: sw.0 });
        }
        self.note(Secret::Pin, format!("the key had taken {candidate} as the PIN; put back to the one given"));
        self.put_back(Secret::Pin, candidate)
    }

    /// Give back the tries a check spent: the right secret once more (the PIN verified, the
    /// PUK changed to itself), which resets the count.
    pub fn give_back(&mut self, s: Secret) -> Result<(), CardError> {
        if self.known(s) != &Known::Right {
            return Err(CardError::RightUnknown(s));
        }
        self.fresh()?;
        let apdu = self.right_apdu(s);
        let (_, sw) = self.through_gate(&apdu)?;
        if sw.0 == 0x9000 {
            Ok(())
        } else {
            let e = CardError::RightRefused { secret: s, sw: sw.0 };
            self.stop(s, e.to_string());
            Err(e)
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
