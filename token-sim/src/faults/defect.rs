//! Defect profiles: a running key that departs from the standard in one named way.
//!
//! Most defects are a layer in front of the card ([`DefectLayer`]), changing commands on
//! their way in or answers on their way out; the card core under it is the same as always,
//! so the card's security rules hold even inside a defective key: a "key that accepts any
//! management key" answers the authentication with 9000, but the card behind it stays
//! unauthenticated. Two defects act as the card's surroundings would: "reset allowed with the
//! PIN unblocked" blocks PIN and PUK with wrong values before passing RESET on (the card
//! still resets only a blocked key), and "decrement after compare" is a storage that holds
//! the try's write back until the answer is known (see [`super::inject`]).

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
    /// After a SELECT the PIN reports its full count again, as if the counter lived in RAM.
    CounterResetOnSelect,
    /// The try of a VERIFY is written only after the PIN was compared, and only when it was
    /// wrong: a power cut timed on that write costs no try.
    DecrementAfterCompare,
    /// RESET (Yubico FB) wipes the key though its PIN and PUK are not blocked.
    ResetWithPinUnblocked,
    /// The second step of management-key authentication answers 9000 to a witness shorter
    /// than the block (a card comparing only the bytes sent: CVE-2025-25201's class).
    AcceptsWitnessPrefix,
    /// 9C signs without the PIN just before it: the key sends the last PIN again itself.
    PinAlwaysIgnored,
    /// A response longer than Le comes whole, as if Le had been 0 (extended).
    LeIgnored,
}

impl Defect {
    pub const ALL: [Defect; 18] = [
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
        Defect::CounterResetOnSelect,
        Defect::DecrementAfterCompare,
        Defect::ResetWithPinUnblocked,
        Defect::AcceptsWitnessPrefix,
        Defect::PinAlwaysIgnored,
        Defect::LeIgnored,
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
            Defect::CounterResetOnSelect => "counter-reset-on-select",
            Defect::DecrementAfterCompare => "decrement-after-compare",
            Defect::ResetWithPinUnblocked => "reset-with-pin-unblocked",
            Defect::AcceptsWitnessPrefix => "accepts-witness-prefix",
            Defect::PinAlwaysIgnored => "pin-always-ignored",
            Defect::LeIgnored => "le-ignored",
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
            Defect::CounterResetOnSelect => "after SELECT the PIN reports all its tries again",
            Defect::DecrementAfterCompare => "VERIFY writes the try after comparing, and only when wrong",
            Defect::ResetWithPinUnblocked => "RESET wipes the key though PIN and PUK are not blocked",
            Defect::AcceptsWitnessPrefix => "9B authentication answers 9000 to a witness shorter than the block",
            Defect::PinAlwaysIgnored => "9C signs again without a new PIN (PIN-always ignored)",
            Defect::LeIgnored => "answers longer than Le come whole",
        }
    }

    /// The conformance check that names this defect's symptom (`ukey conformance --list`).
    pub fn caught_by(self) -> &'static str {
        match self {
            Defect::AcceptsAnyMgmtKey => "PIV-MGMT-002",
            Defect::NoRetryDecrement => "PIV-VERIFY-002",
            Defect::WrongSwWhenBlocked | Defect::LockoutNeverReached => "PIV-VERIFY-009",
            Defect::GetDataIgnoresP1P2 => "PIV-OBJ-005",
            Defect::GetResponseBroken | Defect::ChainingBroken => "PIV-PUT-002",
            Defect::UnknownInsAccepted => "PIV-ROBUST-001",
            Defect::SignsWrongData => "PIV-SIGN-001",
            Defect::ChuidMalformed => "PIV-OBJ-001",
            Defect::MetadataWrongRetries => "PIV-YK-003",
            Defect::ChangeAcceptsWrongPin => "PIV-CHANGE-001",
            Defect::CounterResetOnSelect => "PIV-VERIFY-013",
            Defect::DecrementAfterCompare => "PIV-VERIFY-012",
            Defect::ResetWithPinUnblocked => "PIV-YK-008",
            Defect::AcceptsWitnessPrefix => "PIV-MGMT-003",
            Defect::PinAlwaysIgnored => "PIV-SIGN-003",
            Defect::LeIgnored => "PIV-ROBUST-013",
        }
    }

    /// Whether this defect is in the card's storage rather than in front of the card: the
    /// key's writes during `apdu` are held back until its answer is known.
    pub(crate) fn defers_writes(self, apdu: &[u8]) -> bool {
        self == Defect::DecrementAfterCompare && apdu.get(1) == Some(&0x20) && apdu.len() > 5
    }

    pub fn parse(name: &str) -> Result<Defect, String> {
        Defect::ALL.into_iter().find(|d| d.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Defect::ALL.iter().map(|d| d.name()).collect();
            format!("no defect {name:?}; `ukey sim defects` lists them: {}", names.join(", "))
        })
    }
}

/// What the card behind a defect is like, read before each command.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CardView {
    /// The PIN's retry limit.
    pub pin_limit: u8,
}

/// A defect in front of a card: `exchange` takes each command and the card to pass it to.
#[derive(Debug)]
pub(crate) struct DefectLayer {
    defect: Defect,
    /// The count the last status query saw (for the counting defects).
    last_count: Option<u8>,
    /// Wrong PINs since the last SELECT (for the counter that SELECT "resets").
    since_select: Option<u8>,
    /// The last VERIFY that opened the PIN, command and all (for PIN-always ignored).
    last_verify: Option<zeroize::Zeroizing<Vec<u8>>>,
}

/// Values no PIN or PUK is likely to be, to block them; the second is tried when the first
/// turns out to be the secret.
const JUNK: [&[u8; 8]; 2] = [b"~!~!~!~!", b"!~!~!~!~"];

fn sw(answer: &[u8]) -> u16 {
    match answer {
        [.., a, b] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

/// A command whose Le asks for fewer than 256 bytes.
fn le_below_256(apdu: &[u8]) -> bool {
    proto::apdu::CommandApdu::parse(apdu).is_ok_and(|a| a.le.is_some_and(|le| le < 256))
}

/// A second 9B step (7C with 80 and 81) whose witness (80) is shorter than any block.
fn short_witness(apdu: &[u8]) -> bool {
    // 00 87 alg 9B Lc 7C len 80 wlen ...
    matches!(apdu.get(5..9), Some([0x7C, _, 0x80, w]) if *w > 0 && *w < 8)
        || matches!(apdu.get(5..9), Some([0x7C, _, 0x80, w]) if *w > 8 && *w < 16)
}

fn with_sw(mut answer: Vec<u8>, sw: u16) -> Vec<u8> {
    let n = answer.len().saturating_sub(2);
    answer.truncate(n);
    answer.extend(sw.to_be_bytes());
    answer
}

impl DefectLayer {
    pub fn new(defect: Defect) -> DefectLayer {
        DefectLayer { defect, last_count: None, since_select: None, last_verify: None }
    }

    pub fn defect(&self) -> Defect {
        self.defect
    }

    /// The session is gone (reset, power off).
    pub fn reset(&mut self) {
        self.last_count = None;
        self.since_select = None;
        self.last_verify = None;
    }

    /// One command through the defect; `card` runs an APDU on the card behind it.
    pub fn exchange(&mut self, apdu: &[u8], view: CardView, card: &mut dyn FnMut(&[u8]) -> Vec<u8>) -> Vec<u8> {
        let (cla, ins) = (apdu.first().copied().unwrap_or(0), apdu.get(1).copied().unwrap_or(0));
        let (p1, p2) = (apdu.get(2).copied().unwrap_or(0), apdu.get(3).copied().unwrap_or(0));
        let verify_pin = ins == 0x20 && p1 == 0x00 && p2 == 0x80;
        match self.defect {
            Defect::AcceptsAnyMgmtKey
                if ins == 0x87 && p2 == 0x9B && apdu.len() > 8 && apdu[7] == 0x80 && apdu[8] > 0 =>
            {
                return vec![0x90, 0x00];
            }
            Defect::AcceptsWitnessPrefix if ins == 0x87 && p2 == 0x9B && short_witness(apdu) => {
                return vec![0x90, 0x00];
            }
            Defect::PinAlwaysIgnored if verify_pin && apdu.len() > 5 => {
                let answer = card(apdu);
                if sw(&answer) == 0x9000 {
                    self.last_verify = Some(zeroize::Zeroizing::new(apdu.to_vec()));
                }
                return answer;
            }
            Defect::PinAlwaysIgnored if ins == 0x87 && p2 == 0x9C => {
                if let Some(v) = self.last_verify.clone() {
                    let _ = card(&v);
                }
            }
            Defect::LeIgnored if ins != 0xC0 && le_below_256(apdu) => {
                // Gather what the card has, as if Le had asked for all of it.
                let mut answer = card(apdu);
                let mut whole = Vec::new();
                while sw(&answer) & 0xFF00 == 0x6100 {
                    whole.extend_from_slice(&answer[..answer.len() - 2]);
                    answer = card(&[0x00, 0xC0, 0x00, 0x00, 0x00]);
                }
                whole.extend_from_slice(&answer);
                return whole;
            }
            Defect::GetDataIgnoresP1P2 if ins == 0xCB && (p1, p2) != (0x3F, 0xFF) => {
                let mut fixed = apdu.to_vec();
                fixed[2] = 0x3F;
                fixed[3] = 0xFF;
                return card(&fixed);
            }
            Defect::ChainingBroken if cla & 0x10 != 0 => return vec![0x90, 0x00],
            Defect::UnknownInsAccepted if matches!(ins, 0x02 | 0x04 | 0x06) => return vec![0x90, 0x00],
            Defect::ChangeAcceptsWrongPin if ins == 0x24 && p2 == 0x80 && apdu.len() == 21 => {
                // Only a wrong old PIN gets the false yes: the card says whether it was wrong.
                let answer = card(apdu);
                return if sw(&answer) & 0xFFF0 == 0x63C0 { vec![0x90, 0x00] } else { answer };
            }
            Defect::SignsWrongData if ins == 0x87 && p1 == 0x11 && apdu.len() > 12 => {
                let mut changed = apdu.to_vec();
                let last = changed.len() - 2;
                changed[last] ^= 0x01;
                return card(&changed);
            }
            Defect::ResetWithPinUnblocked if ins == 0xFB => {
                // Block both with wrong values, so the card's own rule lets the reset through.
                for (head, len) in [([0x00, 0x20, 0x00, 0x80], 8), ([0x00, 0x2C, 0x00, 0x80], 16)] {
                    let mut pick = 0;
                    for _ in 0..32 {
                        let mut cmd = head.to_vec();
                        cmd.push(len as u8);
                        cmd.extend(JUNK[pick].iter().cycle().take(len));
                        match sw(&card(&cmd)) {
                            0x6983 => break,
                            0x9000 => pick = 1,
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
        let answer = card(apdu);
        let s = sw(&answer);
        if self.defect == Defect::CounterResetOnSelect {
            return self.select_resets(apdu, answer, view);
        }
        match self.defect {
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
        }
    }

    /// Counts as if SELECT had put the PIN's counter back to its limit: the tries reported
    /// are the limit less the wrong PINs since. The card behind still counts them all.
    fn select_resets(&mut self, apdu: &[u8], answer: Vec<u8>, view: CardView) -> Vec<u8> {
        let s = sw(&answer);
        let ins = apdu.get(1).copied().unwrap_or(0);
        if ins == 0xA4 && s == 0x9000 {
            self.since_select = Some(0);
            return answer;
        }
        let Some(spent) = self.since_select else { return answer };
        let is_pin = apdu.get(2..4) == Some(&[0x00, 0x80]);
        if ins == 0x20 && is_pin && s & 0xFFF0 == 0x63C0 {
            let spent = spent + u8::from(apdu.len() > 5);
            self.since_select = Some(spent);
            return with_sw(answer, 0x63C0 | u16::from(view.pin_limit.saturating_sub(spent).max(1)));
        }
        if ins == 0x20 && is_pin && s == 0x9000 && apdu.len() > 5 {
            self.since_select = Some(0);
        }
        if ins == 0xF7 && apdu.get(3) == Some(&0x80) && s == 0x9000 {
            let mut more = answer;
            if let Some(i) = more.windows(2).position(|w| w == [0x06, 0x02]) {
                if let Some(r) = more.get_mut(i + 3) {
                    *r = view.pin_limit.saturating_sub(spent).max(1);
                }
            }
            return more;
        }
        answer
    }
}
