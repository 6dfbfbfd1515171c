//! Run a selection of the catalog against one key.

use std::time::Instant;

use crate::card::Card;
use crate::catalog::{Check, Verdict};
use crate::checks::catalog;
use crate::report::{KeyIdentity, Outcome, Report};

/// Which checks to run: `only` and `skip` take IDs (`PIV-VERIFY-004`), ID prefixes ending in
/// `*` (`PIV-VERIFY-*`) and family names (`verify`); destructive checks only when asked.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub only: Vec<String>,
    pub skip: Vec<String>,
    pub destructive: bool,
    /// The key was made for this run (`--sim`): destructive checks run, and the PUK is tried
    /// even where its count cannot be read.
    pub throwaway: bool,
    /// The PUK was typed for this key (`--puk`): it is tried once even where its count cannot
    /// be read (a plain PIV card); a wrong one costs one of its tries.
    pub try_puk: bool,
}

fn matches(pattern: &str, check: &Check) -> bool {
    let p = pattern.trim();
    if let Some(prefix) = p.strip_suffix('*') {
        return check.id.to_ascii_uppercase().starts_with(&prefix.to_ascii_uppercase());
    }
    p.eq_ignore_ascii_case(check.id) || p.eq_ignore_ascii_case(check.family.name())
}

impl Selection {
    /// Patterns that name no check: a typo should not silently run nothing.
    pub fn unknown(&self) -> Vec<String> {
        let all = catalog();
        self.only.iter().chain(&self.skip).filter(|p| !all.iter().any(|c| matches(p, c))).cloned().collect()
    }

    pub fn picks(&self, check: &Check) -> bool {
        (self.only.is_empty() || self.only.iter().any(|p| matches(p, check)))
            && !self.skip.iter().any(|p| matches(p, check))
    }
}

/// Run the selected checks, each from a fresh reset and SELECT, calling `progress` after each.
pub fn run(card: &mut Card, selection: &Selection, progress: &mut dyn FnMut(usize, usize, &Outcome)) -> Report {
    let key = identify(card);
    card.throwaway = selection.throwaway;
    card.try_puk = selection.try_puk;
    let destructive = selection.destructive || selection.throwaway;
    card.leave = destructive;
    let chosen: Vec<Check> = catalog().into_iter().filter(|c| selection.picks(c)).collect();
    let mut outcomes = Vec::new();
    let mut gone: Option<String> = None;
    let mut restoration = None;
    for (n, check) in chosen.iter().enumerate() {
        card.take_seen();
        let started = Instant::now();
        if gone.is_none() && !card.is_present() {
            gone =
                Some(outcomes.last().map_or("before the first check".into(), |o: &Outcome| format!("during {}", o.id)));
        }
        let verdict = if let Some(when) = &gone {
            // Nothing more can be learnt of a key that is not there; say so once per check.
            Verdict::Skipped(format!("not run: the key was removed {when}"))
        } else if check.destructive && !destructive {
            Verdict::Skipped("destructive: run with --destructive".into())
        } else {
            card.during = check.id.to_string();
            // Every check is bracketed by the PIN's and PUK's tries: what it spent is given
            // back after it, or written down.
            let tries = crate::tries::Tries::read(card);
            // A destructive check is bracketed: the key read before, put back and read again after.
            let before = check.destructive.then(|| crate::restore::snapshot(card));
            let verdict = match tries.as_ref().map_err(Verdict::fail).and_then(|_| card.fresh().map_err(Verdict::fail))
            {
                Ok(()) => {
                    card.take_seen();
                    (check.run)(card)
                }
                Err(v) => v,
            };
            let seen = card.take_seen();
            restoration = before.map(|b| crate::restore::restore(card, &b));
            if let Ok(tries) = tries {
                tries.settle(card);
            }
            card.take_seen();
            for sw in seen {
                card.note_seen(sw);
            }
            verdict
        };
        let mut outcome = Outcome::new(check, verdict, &card.take_seen(), started.elapsed().as_millis());
        outcome.restoration = restoration.take();
        progress(n + 1, chosen.len(), &outcome);
        outcomes.push(outcome);
    }
    Report { key, outcomes, secrets: card.changes().to_vec(), guard_refused: card.guard_refused() }
}

/// Who the key says it is (what it cannot say stays empty).
pub fn identify(card: &mut Card) -> KeyIdentity {
    let name = card.name();
    let _ = card.fresh();
    let atr = hex::encode_upper(&card.atr);
    let aid = card.piv().select().ok().and_then(|a| a.aid).map(hex::encode_upper);
    let version = card.piv().version().ok().map(|v| format!("{}.{}.{}", v[0], v[1], v[2]));
    let serial = card.piv().serial().ok();
    let guid = card
        .piv()
        .read_object(0x5FC102)
        .ok()
        .flatten()
        .and_then(|chuid| proto::tlv::find(&chuid, 0x34).ok().flatten().map(hex::encode_upper));
    card.take_seen();
    KeyIdentity { name, atr, aid, version, serial, guid }
}
