//! The ledger's bookkeeping around each check: the PIN's and PUK's tries read before it, and
//! after it what was spent given back with the right secret, or written down (see
//! [`crate::guard`]).

use crate::card::{Card, CardError};
use crate::guard::{Known, Secret};

/// The PIN's and PUK's tries before a check, to settle with after it.
#[derive(Debug, Clone, Copy)]
pub struct Tries {
    pin: Option<u8>,
    puk: Option<u8>,
}

impl Tries {
    /// Read from a fresh key (spending nothing); a second time when the first read fails (a
    /// reader's passing error must not leave a check's spent tries unsettled).
    pub fn read(card: &mut Card) -> Result<Tries, CardError> {
        let mut once = || -> Result<Tries, CardError> {
            card.fresh()?;
            let pin = card.tries(Secret::Pin)?;
            let puk = card.tries(Secret::Puk)?;
            card.fresh()?;
            Ok(Tries { pin, puk })
        };
        once().or_else(|first| once().map_err(|_| first))
    }

    fn of(&self, s: Secret) -> Option<u8> {
        match s {
            Secret::Pin => self.pin,
            Secret::Puk => self.puk,
        }
    }

    /// After the check: tries it spent are given back with the right secret; what cannot be
    /// given back, and any other change of count, goes in the ledger.
    pub fn settle(&self, card: &mut Card) {
        let now = match Tries::read(card) {
            Ok(t) => t,
            Err(e) => {
                // A key gone or failing says so in its checks; the ledger says what is unknown.
                for s in [Secret::Pin, Secret::Puk] {
                    if self.of(s).is_some() {
                        card.note(s, format!("{} tries unreadable after the check ({e}): not settled", s.name()));
                    }
                }
                return;
            }
        };
        for s in [Secret::Pin, Secret::Puk] {
            let (Some(before), Some(mut after)) = (self.of(s), now.of(s)) else { continue };
            if after < before {
                let given_back = card.give_back(s);
                after = Tries::read(card).ok().and_then(|t| t.of(s)).unwrap_or(after);
                if after < before {
                    let why = match (card.knowledge(s), given_back) {
                        (Known::Wrong, _) => {
                            format!("the {} given is not this key's, and one try was spent finding out", s.name())
                        }
                        (_, Err(e)) => e.to_string(),
                        (_, Ok(())) => "the right one did not restore the count".into(),
                    };
                    card.note(s, format!("{} tries {before} -> {after}, not given back: {why}", s.name()));
                    continue;
                }
            }
            if after != before {
                card.note(
                    s,
                    format!("{} tries {before} -> {after} (the right {} resets its count)", s.name(), s.name()),
                );
            }
        }
    }
}
