//! What a check needs before it may go on, and the verdict when it may not (skipped, with
//! why): the rules every PIN or PUK sent follows (see [`crate::guard`]), destructive checks
//! only when allowed, the management key given fitting the key. These are [`Card`]'s methods,
//! kept apart from the card (which answers with a [`crate::card::CardError`], never a verdict).

use host_driver::PivError;
use proto::status::Sw;

use crate::card::{Answer, Card, CardError};
use crate::catalog::Verdict;
use crate::guard::{Known, Secret, Use};

impl Card {
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
            Err(PivError::Card { sw: Sw::INCORRECT_P1P2, .. }) => Err(other_algorithm(self.secrets.mgmt.bytes().len())),
            Err(e) => Err(Verdict::Fail(format!("management-key authentication: {e}"))),
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
            return Known::Untriable(e.to_string());
        }
        let tries = match self.tries(s) {
            Ok(t) => t,
            Err(e) => return Known::Untriable(e.to_string()),
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
            Err(e) => Known::Untriable(e.to_string()),
        };
        let _ = self.fresh();
        found
    }

    /// Send an APDU that carries a PIN or PUK, under the rules: [`Use::Right`] once the
    /// secret is known right (if the key refuses it then, the secret is used no more in this
    /// run); [`Use::Risk`] only with two or more tries left (a PUK's count unreadable: only on
    /// a key made for the run) and the right one at hand, which gives the try back after the
    /// check; [`Use::Exhaust`] as it says. The outer error: the rules say no (a verdict); the
    /// inner result: what the key answered, or why it did not.
    pub fn send_secret(&mut self, how: Use, apdu: &[u8]) -> Result<Result<Answer, CardError>, Verdict> {
        let s = match how {
            Use::Right(s) | Use::Risk(s) | Use::Exhaust(s) => s,
        };
        self.usable(s)?;
        match how {
            Use::Right(_) => {}
            Use::Risk(_) => match self.tries(s).map_err(Verdict::fail)? {
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

    /// An APDU that resets the key's secrets (Yubico RESET, SET PIN RETRIES): for destructive
    /// checks only, run with leave.
    pub fn send_reset(&mut self, apdu: &[u8]) -> Result<Answer, Verdict> {
        if !(self.leave || self.throwaway) {
            return Err(Verdict::Skipped("resets the key: only with --destructive".into()));
        }
        self.through_gate(apdu).map_err(Verdict::fail)
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
        let (_, sw) = self.send_secret(Use::Right(Secret::Pin), &apdu)?.map_err(Verdict::fail)?;
        if sw.0 == 0x9000 {
            Ok(())
        } else {
            Err(Verdict::Fail(format!("the PIN that worked before is refused now ({:04X})", sw.0)))
        }
    }
}

/// The verdict when the key refuses (6A86) every algorithm the given management key fits.
pub fn other_algorithm(len: usize) -> Verdict {
    let fits = match len {
        24 => "3DES and AES-192",
        16 => "AES-128",
        _ => "AES-256",
    };
    Verdict::Skipped(format!(
        "the key refuses {fits} for its management key (6A86): it has a key of another algorithm; pass --mgmt-key"
    ))
}
