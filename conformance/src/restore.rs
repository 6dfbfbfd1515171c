//! Putting a key back as it was found, after each destructive check: what could be read of it
//! before (PIN count, data objects, slots' public keys) is compared with what is there after,
//! objects that changed are written back, and the whole is read again to verify it. What
//! cannot be put back (a private key GENERATE replaced) is said, not hidden.

use serde::Serialize;

use crate::card::Card;

/// The objects a destructive check could change and PUT DATA can put back.
const OBJECTS: [(u32, &str); 8] = [
    (0x5FC102, "CHUID"),
    (0x5FC107, "CCC"),
    (0x5FC105, "9A certificate"),
    (0x5FC10A, "9C certificate"),
    (0x5FC10B, "9D certificate"),
    (0x5FC101, "9E certificate"),
    (0x5FC10C, "Key History"),
    (0x5FC106, "Security Object"),
];

/// The slots whose keys a check may replace.
const SLOTS: [(u8, &str); 5] = [(0x9A, "9A"), (0x9C, "9C"), (0x9D, "9D"), (0x9E, "9E"), (0x95, "95")];

/// An object as read: present, absent, or why it could not be read.
type Read = Result<Option<Vec<u8>>, String>;

/// What could be read of the key before a destructive check.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pin_tries: Option<u8>,
    /// Each object as read: `Err` when it could not be read (never written back: PUT DATA of
    /// nothing would delete what may have been there).
    objects: Vec<(u32, &'static str, Read)>,
    /// Public keys from the metadata (a Yubico extension; empty without it).
    keys: Vec<(&'static str, Option<Vec<u8>>)>,
}

/// What putting the key back did, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restoration {
    /// What changed and was put back.
    pub restored: Vec<String>,
    /// What changed and cannot be put back.
    pub lost: Vec<String>,
    /// Read again after putting back: everything that could be put back is as found (and the
    /// PIN verifies where it did before).
    pub verified: bool,
    /// Why it is not verified, when it is not.
    pub problems: Vec<String>,
    /// Whether the slots' public keys could be compared (they are read from the Yubico
    /// metadata; a key without it may have had one replaced unseen).
    pub keys_compared: bool,
}

impl Restoration {
    /// One line for the terminal table.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.restored.is_empty() && self.lost.is_empty() {
            parts.push("nothing to put back".to_string());
        }
        if !self.restored.is_empty() {
            parts.push(format!("put back: {}", self.restored.join(", ")));
        }
        if !self.lost.is_empty() {
            parts.push(format!("not restorable: {}", self.lost.join(", ")));
        }
        if !self.keys_compared {
            parts.push("slots' keys not compared (no GET METADATA)".into());
        }
        parts.push(if self.verified {
            "verified".into()
        } else {
            format!("NOT verified ({})", self.problems.join("; "))
        });
        parts.join("; ")
    }
}

fn read(card: &mut Card) -> Snapshot {
    let _ = card.fresh();
    let pin_tries = card.pin_tries().ok().flatten();
    let objects = OBJECTS
        .iter()
        .map(|&(tag, name)| (tag, name, card.piv().read_object(tag).map_err(|e| e.to_string())))
        .collect();
    let keys = SLOTS
        .iter()
        .filter_map(|&(r, name)| match card.piv().metadata(r) {
            Ok(m) => Some((name, m.public_key.map(|p| p.to_vec()))),
            Err(e) if e.is_not_supported() => None,
            Err(_) => Some((name, None)),
        })
        .collect();
    Snapshot { pin_tries, objects, keys }
}

/// Read what can be read of the key, before a destructive check.
pub fn snapshot(card: &mut Card) -> Snapshot {
    let s = read(card);
    card.take_seen();
    s
}

/// Put the key back as `before` found it, as far as PIV allows, and verify.
pub fn restore(card: &mut Card, before: &Snapshot) -> Restoration {
    let after = read(card);
    let mut r = Restoration {
        restored: Vec::new(),
        lost: Vec::new(),
        verified: true,
        problems: Vec::new(),
        keys_compared: !before.keys.is_empty(),
    };
    let mut changed = Vec::new();
    for (b, a) in before.objects.iter().zip(&after.objects) {
        match &b.2 {
            Ok(found) if Ok(found) != a.2.as_ref() => changed.push((b.0, b.1, found.clone())),
            Ok(_) => {}
            Err(e) => r.problems.push(format!("{} could not be read before ({e}): not put back", b.1)),
        }
    }
    if !changed.is_empty() {
        match card.authenticate() {
            Ok(()) => {
                for (tag, name, value) in &changed {
                    match card.piv().write_object(*tag, value.as_deref().unwrap_or_default()) {
                        Ok(()) => r.restored.push((*name).to_string()),
                        Err(e) => r.problems.push(format!("writing {name} back: {e}")),
                    }
                }
            }
            Err(e) => r.problems.push(format!("management-key authentication to write objects back: {e}")),
        }
    }
    for ((name, b), (_, a)) in before.keys.iter().zip(&after.keys) {
        match (b, a) {
            (b, a) if b == a => {}
            (None, Some(_)) => r.lost.push(format!("{name} holds a new key pair (PIV cannot delete one)")),
            _ => r.lost.push(format!("{name}'s key pair (replaced; PIV cannot put a private key back)")),
        }
    }
    // The PIN: the check puts it back itself (unblocks it with the PUK); here it is verified.
    let pin_known = card.knowledge(crate::guard::Secret::Pin) == &crate::guard::Known::Right;
    if pin_known {
        if let Err(v) = card.verify_pin() {
            r.problems.push(format!("the PIN no longer verifies: {}", v.detail()));
        }
    }
    let again = read(card);
    if pin_known && again.pin_tries.is_some() && again.pin_tries < before.pin_tries {
        r.problems.push(format!("the PIN has {:?} tries left, not {:?}", again.pin_tries, before.pin_tries));
    }
    for ((_, name, b), (_, _, a)) in before.objects.iter().zip(&again.objects) {
        if b.is_ok() && b != a {
            r.problems.push(format!("{name} differs from what was found"));
        }
    }
    r.verified = r.problems.is_empty();
    card.take_seen();
    r
}
