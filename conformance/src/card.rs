//! The key under test: a PIV client over any `Transport`, with every status word the key
//! answered recorded (the report shows, per check, what the key said).

use std::sync::{Arc, Mutex};

use host_driver::{MgmtKey, Piv, PivError};
use proto::secret::{Pin, Puk};
use proto::status::Sw;
use proto::transport::{PowerSwitch, Transport, TransportError};

use crate::report::Verdict;

/// The key's secrets as the person running the suite gives them (default: factory values).
#[derive(Clone, Debug)]
pub struct Secrets {
    pub pin: Pin,
    pub puk: Puk,
    pub mgmt: MgmtKey,
}

impl Default for Secrets {
    fn default() -> Self {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Secrets {
            pin: Pin::new(s(proto::piv::defaults::PIN)),
            puk: Puk::new(s(proto::piv::defaults::PUK)),
            mgmt: MgmtKey::default(),
        }
    }
}

/// A transport that notes the status word of every answer.
pub struct Recorder {
    inner: Box<dyn Transport>,
    seen: Arc<Mutex<Vec<u16>>>,
}

impl Transport for Recorder {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
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
    pub secrets: Secrets,
    /// The ATR of the last reset.
    pub atr: Vec<u8>,
    /// Whether the PIN given is this key's, found once before the checks ([`Card::probe_pin`]):
    /// no check sends a PIN that is not known to be right, so a wrong `--pin` costs one try,
    /// not one per check.
    pub pin_ok: Option<bool>,
    /// The same for the PUK ([`Card::probe_puk`]).
    pub puk_ok: Option<bool>,
    /// Why the PIN or PUK could not be tried, when the key failed while they were.
    pub probe_failed: Option<String>,
    /// A hand on the key's power, when it has one (a simulated key).
    power: Option<Box<dyn PowerSwitch>>,
    /// The key was made for this run: checks that leave it changed for good may run.
    pub throwaway: bool,
}

impl Card {
    pub fn new(transport: Box<dyn Transport>, secrets: Secrets) -> Card {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let piv = Piv::new(Recorder { inner: transport, seen: seen.clone() });
        Card {
            piv,
            seen,
            secrets,
            atr: Vec::new(),
            pin_ok: None,
            puk_ok: None,
            probe_failed: None,
            power: None,
            throwaway: false,
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

    /// The PIN's tries left, read without spending one (VERIFY with no data).
    pub fn pin_tries(&mut self) -> Result<Option<u8>, String> {
        match self.piv.pin_status() {
            Ok(host_driver::PinStatus::NotVerified { retries_left }) => Ok(Some(retries_left)),
            Ok(host_driver::PinStatus::Verified) => Ok(None),
            Ok(host_driver::PinStatus::Blocked) => Ok(Some(0)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Try the given PIN once, if at least two tries are left (a wrong one must not lock the
    /// key): what the checks then know of it. The card is left fresh.
    pub fn probe_pin(&mut self) -> Result<(), String> {
        self.fresh()?;
        self.pin_ok = match self.pin_tries()? {
            Some(n) if n >= 2 => Some(matches!(self.verify_pin_now()?, host_driver::PinOutcome::Ok)),
            Some(_) => None,
            None => Some(true),
        };
        self.fresh()
    }

    /// Try the given PUK once (CHANGE REFERENCE DATA to itself, which also resets its
    /// counter), if the key's metadata says at least two tries are left, or `throwaway` (a
    /// key made for the run): PIV has no way to read the PUK's count without spending a try.
    pub fn probe_puk(&mut self, throwaway: bool) -> Result<(), String> {
        self.fresh()?;
        let left = self.piv.metadata(0x81).ok().and_then(|m| m.retries_remaining);
        self.puk_ok = if throwaway || left.is_some_and(|n| n >= 2) {
            let puk = self.secrets.puk.clone();
            match self.piv.change_puk(&puk, &puk) {
                Ok(host_driver::PinOutcome::Ok) => Some(true),
                Ok(_) => Some(false),
                Err(e) => return Err(e.to_string()),
            }
        } else {
            None
        };
        self.fresh()
    }

    /// Why the PUK may not be sent, if it may not.
    pub fn puk_usable(&self) -> Result<(), Verdict> {
        match self.puk_ok {
            Some(true) => Ok(()),
            Some(false) => {
                Err(Verdict::Skipped("the PUK given is not this key's (one try spent finding out); pass --puk".into()))
            }
            None => Err(Verdict::Skipped(match &self.probe_failed {
                Some(e) => format!("the PUK could not be tried: {e}"),
                None => "the PUK was not tried: the key cannot say how many tries it has left".into(),
            })),
        }
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
                Err(crate::checks::other_algorithm(self.secrets.mgmt.bytes().len()))
            }
            Err(e) => Err(Verdict::Fail(format!("management-key authentication: {e}"))),
        }
    }

    /// Why the PIN may not be sent, if it may not.
    pub fn pin_usable(&self) -> Result<(), Verdict> {
        match self.pin_ok {
            Some(true) => Ok(()),
            Some(false) => {
                Err(Verdict::Skipped("the PIN given is not this key's (one try spent finding out); pass --pin".into()))
            }
            None => Err(Verdict::Skipped(match &self.probe_failed {
                Some(e) => format!("the PIN could not be tried: {e}"),
                None => "the PIN was not tried: fewer than two tries left".into(),
            })),
        }
    }

    fn verify_pin_now(&mut self) -> Result<host_driver::PinOutcome, String> {
        let pin = self.secrets.pin.clone();
        self.piv.verify_pin(&pin).map_err(|e| e.to_string())
    }

    /// VERIFY with the given PIN, once it is known to be right.
    pub fn verify_pin(&mut self) -> Result<(), Verdict> {
        self.pin_usable()?;
        match self.verify_pin_now() {
            Ok(host_driver::PinOutcome::Ok) => Ok(()),
            Ok(other) => Err(Verdict::Fail(format!("the PIN that worked before is refused now: {other:?}"))),
            Err(e) => Err(Verdict::Fail(e)),
        }
    }

    /// Management-key authentication with the given key.
    pub fn authenticate(&mut self) -> Result<(), PivError> {
        let key = self.secrets.mgmt.clone();
        self.piv.authenticate_auto(&key)
    }
}
