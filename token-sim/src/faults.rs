//! Defect profiles: a running key that departs from the standard in one named way, for testing
//! hosts and the conformance suite against keys that are wrong. Chosen when the key is opened
//! and never stored in a key file.
//!
//! A defect is a layer in front of the card ([`Defective`]), changing commands on their way
//! in or answers on their way out. The card core under it is the same as always, so the card's
//! security rules hold even inside a defective key: a "key that accepts any management key"
//! answers the authentication with 9000, but the card behind it stays unauthenticated.
//! Defects that would need the card's own state changed (a counter reset on SELECT) are not
//! among these.

use proto::transport::{Transport, TransportError};

/// One way of being wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// The second step of management-key authentication always succeeds.
    AcceptsAnyMgmtKey,
    /// A wrong PIN is answered as if no try was spent (63C at the count before).
    NoRetryDecrement,
    /// A blocked PIN answers 63C0 rather than 6983 to the right PIN.
    WrongSwWhenBlocked,
    /// The PIN never blocks: at zero tries the key still says one is left.
    LockoutNeverReached,
    /// GET DATA answers the CHUID whatever P1-P2 say.
    GetDataIgnoresP1P2,
    /// GET RESPONSE loses the last byte of each piece.
    GetResponseBroken,
    /// Chained command pieces are acknowledged but never reach the card.
    ChainingBroken,
    /// An unknown instruction is answered 9000.
    UnknownInsAccepted,
    /// Signatures are made over a digest other than the one sent.
    SignsWrongData,
    /// The CHUID comes back cut short.
    ChuidMalformed,
    /// The PIN's metadata reports one more try than VERIFY counts.
    MetadataWrongRetries,
    /// CHANGE REFERENCE DATA answers 9000 to a wrong old PIN (and changes nothing).
    ChangeAcceptsWrongPin,
}

impl Defect {
    pub const ALL: [Defect; 12] = [
        Defect::AcceptsAnyMgmtKey,
        Defect::NoRetryDecrement,
        Defect::WrongSwWhenBlocked,
        Defect::LockoutNeverReached,
        Defect::GetDataIgnoresP1P2,
        Defect::GetResponseBroken,
        Defect::ChainingBroken,
        Defect::UnknownInsAccepted,
        Defect::SignsWrongData,
        Defect::ChuidMalformed,
        Defect::MetadataWrongRetries,
        Defect::ChangeAcceptsWrongPin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Defect::AcceptsAnyMgmtKey => "accepts-any-mgmt-key",
            Defect::NoRetryDecrement => "no-retry-decrement",
            Defect::WrongSwWhenBlocked => "wrong-sw-when-blocked",
            Defect::LockoutNeverReached => "lockout-never-reached",
            Defect::GetDataIgnoresP1P2 => "get-data-ignores-p1p2",
            Defect::GetResponseBroken => "get-response-broken",
            Defect::ChainingBroken => "chaining-broken",
            Defect::UnknownInsAccepted => "unknown-ins-accepted",
            Defect::SignsWrongData => "signs-wrong-data",
            Defect::ChuidMalformed => "chuid-malformed",
            Defect::MetadataWrongRetries => "metadata-wrong-retries",
            Defect::ChangeAcceptsWrongPin => "change-accepts-wrong-pin",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Defect::AcceptsAnyMgmtKey => "the second step of 9B authentication answers 9000 whatever was sent",
            Defect::NoRetryDecrement => "a wrong PIN is answered with the count from before it",
            Defect::WrongSwWhenBlocked => "a blocked PIN answers 63C0, not 6983, to the right PIN",
            Defect::LockoutNeverReached => "at zero tries the key says one is left",
            Defect::GetDataIgnoresP1P2 => "GET DATA answers whatever P1-P2 say",
            Defect::GetResponseBroken => "GET RESPONSE loses the last byte of each piece",
            Defect::ChainingBroken => "chained pieces are acknowledged and dropped",
            Defect::UnknownInsAccepted => "an unknown instruction answers 9000",
            Defect::SignsWrongData => "GENERAL AUTHENTICATE signs a digest other than the one sent",
            Defect::ChuidMalformed => "the CHUID comes back cut short",
            Defect::MetadataWrongRetries => "the PIN's metadata says one try more than VERIFY",
            Defect::ChangeAcceptsWrongPin => "CHANGE REFERENCE DATA answers 9000 to a wrong old PIN",
        }
    }

    pub fn parse(name: &str) -> Result<Defect, String> {
        Defect::ALL.into_iter().find(|d| d.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Defect::ALL.iter().map(|d| d.name()).collect();
            format!("no defect {name:?}; `ukey sim defects` lists them: {}", names.join(", "))
        })
    }
}

/// A key with `defect`, in front of `inner`.
pub struct Defective<T> {
    inner: T,
    defect: Defect,
    /// The count the last status query saw (for the counting defects).
    last_count: Option<u8>,
}

impl<T: Transport> Defective<T> {
    pub fn new(inner: T, defect: Defect) -> Defective<T> {
        Defective { inner, defect, last_count: None }
    }
}

fn sw(answer: &[u8]) -> u16 {
    match answer {
        [.., a, b] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

fn with_sw(mut answer: Vec<u8>, sw: u16) -> Vec<u8> {
    let n = answer.len().saturating_sub(2);
    answer.truncate(n);
    answer.extend(sw.to_be_bytes());
    answer
}

impl<T: Transport> Transport for Defective<T> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        let (cla, ins) = (apdu.first().copied().unwrap_or(0), apdu.get(1).copied().unwrap_or(0));
        let (p1, p2) = (apdu.get(2).copied().unwrap_or(0), apdu.get(3).copied().unwrap_or(0));
        let verify_pin = ins == 0x20 && p1 == 0x00 && p2 == 0x80;
        match self.defect {
            Defect::AcceptsAnyMgmtKey
                if ins == 0x87 && p2 == 0x9B && apdu.len() > 8 && apdu[7] == 0x80 && apdu[8] > 0 =>
            {
                return Ok(vec![0x90, 0x00]);
            }
            Defect::GetDataIgnoresP1P2 if ins == 0xCB && (p1, p2) != (0x3F, 0xFF) => {
                let mut fixed = apdu.to_vec();
                fixed[2] = 0x3F;
                fixed[3] = 0xFF;
                return self.inner.transmit(&fixed);
            }
            Defect::ChainingBroken if cla & 0x10 != 0 => return Ok(vec![0x90, 0x00]),
            Defect::UnknownInsAccepted if matches!(ins, 0x02 | 0x04 | 0x06) => return Ok(vec![0x90, 0x00]),
            Defect::ChangeAcceptsWrongPin if ins == 0x24 && p2 == 0x80 && apdu.len() == 21 => {
                // Only a wrong old PIN gets the false yes: the card says whether it was wrong.
                let answer = self.inner.transmit(apdu)?;
                return Ok(if sw(&answer) & 0xFFF0 == 0x63C0 { vec![0x90, 0x00] } else { answer });
            }
            Defect::SignsWrongData if ins == 0x87 && p1 == 0x11 && apdu.len() > 12 => {
                let mut changed = apdu.to_vec();
                let last = changed.len() - 2;
                changed[last] ^= 0x01;
                return self.inner.transmit(&changed);
            }
            _ => {}
        }
        let answer = self.inner.transmit(apdu)?;
        let s = sw(&answer);
        Ok(match self.defect {
            Defect::NoRetryDecrement if verify_pin => {
                let status = apdu.len() == 4;
                if s & 0xFFF0 == 0x63C0 {
                    // The count first seen stays what the key says, whatever is spent.
                    let seen = (s & 0x0F) as u8 + u8::from(!status);
                    let kept = *self.last_count.get_or_insert(seen);
                    with_sw(answer, 0x63C0 | kept as u16)
                } else {
                    if s == 0x9000 {
                        self.last_count = None;
                    }
                    answer
                }
            }
            Defect::WrongSwWhenBlocked if verify_pin && s == 0x6983 => with_sw(answer, 0x63C0),
            Defect::LockoutNeverReached if verify_pin && (s == 0x6983 || s == 0x63C0) => with_sw(answer, 0x63C1),
            Defect::GetResponseBroken if ins == 0xC0 && answer.len() > 2 => {
                let mut cut = answer;
                cut.remove(cut.len() - 3);
                cut
            }
            Defect::ChuidMalformed if ins == 0xCB && apdu.get(7..10) == Some(&[0x5F, 0xC1, 0x02]) && s == 0x9000 => {
                let mut cut = answer;
                let keep = cut.len().saturating_sub(2) / 2;
                cut.drain(keep..cut.len() - 2);
                cut
            }
            Defect::MetadataWrongRetries if ins == 0xF7 && p2 == 0x80 && s == 0x9000 => {
                let mut more = answer;
                // 06 02 <total> <remaining>: one more remaining.
                if let Some(i) = more.windows(2).position(|w| w == [0x06, 0x02]) {
                    if let Some(r) = more.get_mut(i + 3) {
                        *r = r.saturating_add(1);
                    }
                }
                more
            }
            _ => answer,
        })
    }

    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        self.last_count = None;
        self.inner.reset()
    }

    fn is_present(&mut self) -> bool {
        self.inner.is_present()
    }

    fn name(&self) -> String {
        format!("{} (defect {})", self.inner.name(), self.defect.name())
    }

    fn may_block(&self) -> bool {
        self.inner.may_block()
    }
}
