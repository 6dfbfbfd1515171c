//! PUT DATA and large objects: command chaining in, 61xx GET RESPONSE out, extended length.
//! The checks write to an object the key does not hold (a retired-key certificate's) and delete
//! it after: the key is left as it was found.

use super::support::{refused, step, tried};
use crate::card::Card;
use crate::catalog::{Check, Family, Severity, Verdict};

/// Retired key 20's certificate: the last of key history, absent on nearly every key.
const SCRATCH: u32 = 0x5FC120;

fn put_apdu_data(tag: u32, value: &[u8]) -> Vec<u8> {
    let t = tag.to_be_bytes();
    let mut data = vec![0x5C, 0x03, t[1], t[2], t[3]];
    data.extend(proto::tlv::to_vec(0x53, value));
    data
}

/// The scratch object is free; a verdict if the key holds something there (left alone).
fn scratch_free(card: &mut Card) -> Result<(), Verdict> {
    match card.piv().read_object(SCRATCH) {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(Verdict::Skipped("the key holds an object in 5FC120; not overwriting it".into())),
        Err(e) => Err(Verdict::Fail(format!("reading 5FC120: {e}"))),
    }
}

/// Write `value` to the scratch object through the driver (chained when long), read it back,
/// delete it.
fn round_trip(card: &mut Card, value: &[u8]) -> Verdict {
    tried!(scratch_free(card));
    tried!(card.mgmt_auth());
    let (_, sw) = step!(card.cmd(0xDB, 0x3F, 0xFF, &put_apdu_data(SCRATCH, value)));
    // The scratch container is optional (SP 800-73-4 Part 1 §3.3.4), and its listed size is
    // 1895 bytes: a card without it, or without the room, says so; that is not a failure.
    if matches!(sw.0, 0x6A82 | 0x6A81 | 0x6A84) {
        return Verdict::NotSupported(format!(
            "the key does not hold {} bytes in the optional object 5FC120 ({:04X})",
            value.len(),
            sw.0
        ));
    }
    if sw.0 != 0x9000 {
        return Verdict::Fail(format!("PUT DATA of {} bytes answered {:04X}", value.len(), sw.0));
    }
    let back = card.piv().read_object(SCRATCH);
    let deleted = card.cmd(0xDB, 0x3F, 0xFF, &put_apdu_data(SCRATCH, &[]));
    match (back, deleted) {
        (Ok(Some(b)), Ok((_, d))) if b == value && d.0 == 0x9000 => Verdict::Pass,
        (Ok(Some(b)), _) if b != value => {
            Verdict::Fail(format!("wrote {} bytes, read back {} that differ", value.len(), b.len()))
        }
        (Ok(None), _) => Verdict::Fail("the object written is not there".into()),
        (Err(e), _) => Verdict::Fail(format!("reading it back: {e}")),
        (_, Ok((_, d))) => Verdict::Fail(format!("deleting it (empty 53) answered {:04X}", d.0)),
        (_, Err(e)) => Verdict::fail(e),
    }
}

fn small_object(card: &mut Card) -> Verdict {
    round_trip(card, &(0..100u8).collect::<Vec<_>>())
}

fn large_object(card: &mut Card) -> Verdict {
    // Over 255 bytes both ways: command chaining (CLA 10) in, GET RESPONSE (61xx) out.
    let value: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let v = round_trip(card, &value);
    if v == Verdict::Pass && !card.seen_so_far().iter().any(|sw| sw >> 8 == 0x61) {
        return Verdict::Fail("3000 bytes came back without GET RESPONSE (no 61xx)".into());
    }
    v
}

fn needs_management_key(card: &mut Card) -> Verdict {
    tried!(scratch_free(card));
    let (_, sw) = step!(card.cmd(0xDB, 0x3F, 0xFF, &put_apdu_data(SCRATCH, b"not allowed")));
    if sw.0 == 0x9000 {
        // Undo before saying so.
        if card.mgmt_auth().is_ok() {
            let _ = card.cmd(0xDB, 0x3F, 0xFF, &put_apdu_data(SCRATCH, &[]));
        }
        return Verdict::Fail("PUT DATA without management-key authentication was accepted".into());
    }
    refused(sw, "PUT DATA before management-key authentication")
}

fn extended_length(card: &mut Card) -> Verdict {
    // GET DATA of the CHUID as one extended-length APDU (Lc 3 bytes, Le 2 bytes).
    let apdu = [0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x00, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x02, 0x00, 0x00];
    let (data, sw) = step!(card.raw(&apdu));
    match sw.0 {
        0x9000 if !data.is_empty() => Verdict::Pass,
        0x9000 => Verdict::Fail("an extended GET DATA answered no data".into()),
        w if w >> 8 == 0x61 => {
            Verdict::Fail(format!("an extended Le of 65536 answered {w:04X} instead of the whole object"))
        }
        0x6700 | 0x6D00 | 0x6E00 => Verdict::NotSupported(format!("no extended-length APDUs ({:04X})", sw.0)),
        0x6A82 => Verdict::Skipped("no CHUID to read".into()),
        w => Verdict::Fail(format!("an extended GET DATA answered {w:04X}")),
    }
}

pub const CHECKS: &[Check] = &[
    Check {
        id: "PIV-PUT-001",
        title: "PUT DATA writes an object that GET DATA reads back, and an empty one deletes it",
        clause: "SP 800-73-4 Part 2 §3.3.1: PUT DATA completely replaces the object's content",
        family: Family::PutData,
        severity: Severity::Must,
        destructive: false,
        run: small_object,
    },
    Check {
        id: "PIV-PUT-002",
        title: "a 3000-byte object goes in chained and comes back through GET RESPONSE",
        clause: "ISO 7816-4 §5.1.1.1, §7.6.1; SP 800-73-4 Part 2 §3.3.2",
        family: Family::PutData,
        severity: Severity::Must,
        destructive: false,
        run: large_object,
    },
    Check {
        id: "PIV-PUT-003",
        title: "PUT DATA needs management-key authentication",
        clause: "SP 800-73-4 Part 1 §3, Part 2 §3.3.2",
        family: Family::PutData,
        severity: Severity::Must,
        destructive: false,
        run: needs_management_key,
    },
    Check {
        id: "PIV-PUT-004",
        title: "an extended-length GET DATA answers the whole object at once",
        clause: "ISO 7816-4 §5.1; SP 800-73-4 Part 2 §2.3",
        family: Family::PutData,
        severity: Severity::Should,
        destructive: false,
        run: extended_length,
    },
];
