//! SELECT of the PIV application and its application property template.

use proto::piv::PIV_AID;
use proto::tlv;

use super::support::{self, expect, step, tried};
use crate::card::Card;
use crate::catalog::{Check, Family, Severity, Verdict};

fn select_apdu(aid: &[u8]) -> Vec<u8> {
    support::apdu(0xA4, 0x04, 0x00, aid, Some(256))
}

fn full_aid(card: &mut Card) -> Verdict {
    let (_, sw) = step!(card.raw(&select_apdu(&PIV_AID)));
    expect(sw, &[0x9000], "SELECT with the full PIV AID")
}

fn truncated_aid(card: &mut Card) -> Verdict {
    let (_, sw) = step!(card.raw(&select_apdu(&PIV_AID[..5])));
    expect(sw, &[0x9000], "SELECT with the AID right-truncated to its RID")
}

/// The template of a full-AID SELECT, or the verdict that it is not one.
fn template(card: &mut Card) -> Result<Vec<u8>, Verdict> {
    let (data, sw) = card.raw(&select_apdu(&PIV_AID)).map_err(Verdict::fail)?;
    if sw.0 != 0x9000 {
        return Err(Verdict::Fail(format!("SELECT answered {:04X}", sw.0)));
    }
    tlv::parse_exact(&data, 0x61)
        .map(|b| b.to_vec())
        .map_err(|e| Verdict::Fail(format!("the answer is not an application property template (61): {e:?}")))
}

fn template_aid(card: &mut Card) -> Verdict {
    let body = tried!(template(card));
    match tlv::find(&body, 0x4F) {
        Ok(Some(aid)) if PIV_AID.ends_with(aid) || PIV_AID.starts_with(aid) => Verdict::Pass,
        Ok(Some(aid)) => Verdict::Fail(format!("4F is {}, not the PIV PIX or AID", hex::encode_upper(aid))),
        Ok(None) => Verdict::Fail("no application identifier (4F) in the template".into()),
        Err(e) => Verdict::Fail(format!("the template is not BER-TLV: {e:?}")),
    }
}

fn template_authority(card: &mut Card) -> Verdict {
    let body = tried!(template(card));
    let authority = match tlv::find(&body, 0x79) {
        Ok(Some(a)) => a,
        Ok(None) => return Verdict::Fail("no coexistent tag allocation authority (79) in the template".into()),
        Err(e) => return Verdict::Fail(format!("the template is not BER-TLV: {e:?}")),
    };
    match tlv::find(authority, 0x4F) {
        Ok(Some(a)) if a == &PIV_AID[..5] => Verdict::Pass,
        Ok(Some(a)) => Verdict::Fail(format!("79/4F is {}, not NIST's RID A000000308", hex::encode_upper(a))),
        _ => Verdict::Fail("79 holds no authority identifier (4F)".into()),
    }
}

fn unknown_aid(card: &mut Card) -> Verdict {
    let (_, sw) = step!(card.raw(&select_apdu(&[0xA0, 0x00, 0x00, 0x06, 0x47, 0x2F, 0x00, 0x99])));
    let v = expect(sw, &[0x6A82], "SELECT of an application the key does not have");
    if v != Verdict::Pass {
        return v;
    }
    // ISO 7816-4: a failed SELECT leaves the current application selected.
    let (_, sw) = step!(card.raw(&[0x00, 0x20, 0x00, 0x80]));
    if sw.0 == 0x9000 || sw.0 & 0xFFF0 == 0x63C0 || sw.0 == 0x6983 {
        Verdict::Pass
    } else {
        Verdict::Fail(format!("after the failed SELECT the PIV application is gone (VERIFY answered {:04X})", sw.0))
    }
}

fn wrong_p1(card: &mut Card) -> Verdict {
    let mut apdu = select_apdu(&PIV_AID);
    apdu[2] = 0x02;
    let (_, sw) = step!(card.raw(&apdu));
    if sw.0 == 0x9000 {
        return Verdict::Fail("SELECT with P1=02 (select by file identifier) answered 9000 for the PIV AID".into());
    }
    Verdict::Pass
}

fn label(card: &mut Card) -> Verdict {
    let body = tried!(template(card));
    match tlv::find(&body, 0x50) {
        Ok(Some(l)) if !l.is_empty() => Verdict::Pass,
        _ => Verdict::NotSupported("no application label (50)".into()),
    }
}

pub const CHECKS: &[Check] = &[
    Check {
        id: "PIV-SELECT-001",
        title: "SELECT with the full PIV AID succeeds",
        clause: "SP 800-73-4 Part 2 §3.1.1",
        family: Family::Select,
        severity: Severity::Must,
        destructive: false,
        run: full_aid,
    },
    Check {
        id: "PIV-SELECT-002",
        title: "SELECT with the right-truncated AID succeeds",
        clause: "SP 800-73-4 Part 1 §2.2",
        family: Family::Select,
        severity: Severity::Should,
        destructive: false,
        run: truncated_aid,
    },
    Check {
        id: "PIV-SELECT-003",
        title: "the property template names the PIV application (4F)",
        clause: "SP 800-73-4 Part 2 §3.1.1 Table 3",
        family: Family::Select,
        severity: Severity::Must,
        destructive: false,
        run: template_aid,
    },
    Check {
        id: "PIV-SELECT-004",
        title: "the property template names NIST as tag allocation authority (79)",
        clause: "SP 800-73-4 Part 2 §3.1.1 Table 3",
        family: Family::Select,
        severity: Severity::Must,
        destructive: false,
        run: template_authority,
    },
    Check {
        id: "PIV-SELECT-005",
        title: "SELECT of an unknown AID is 6A82 and leaves PIV selected",
        clause: "ISO 7816-4 §11.2.2",
        family: Family::Select,
        severity: Severity::Should,
        destructive: false,
        run: unknown_aid,
    },
    Check {
        id: "PIV-SELECT-006",
        title: "SELECT with a P1 other than by-name is not taken as selecting PIV",
        clause: "ISO 7816-4 §11.2.2; SP 800-73-4 Part 2 §3.1.1",
        family: Family::Select,
        severity: Severity::Should,
        destructive: false,
        run: wrong_p1,
    },
    Check {
        id: "PIV-SELECT-007",
        title: "the property template carries an application label (50)",
        clause: "SP 800-73-4 Part 2 §3.1.1 Table 3",
        family: Family::Select,
        severity: Severity::Info,
        destructive: false,
        run: label,
    },
];
