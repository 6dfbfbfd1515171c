//! GET DATA: the objects a PIV card carries, and the status words of the command.

use der::Decode;
use proto::piv::cert_object;
use proto::tlv;

use super::support::{expect, get_data_apdu, step, tried};
use crate::card::Card;
use crate::catalog::{Check, Family, Severity, Verdict};

const CHUID: u32 = 0x5FC102;
const DISCOVERY: u32 = 0x7E;
const CERT_9A: u32 = 0x5FC105;
/// Key history's first retired-key certificate: absent on nearly every key.
const RETIRED_1: u32 = 0x5FC10D;

/// The object's value (inside 53), `None` when the key says it has none (6A82).
fn object(card: &mut Card, tag: u32) -> Result<Option<Vec<u8>>, Verdict> {
    let apdu = get_data_apdu(tag);
    // Through the driver: a long object comes back in 61xx pieces.
    let (data, sw) = card.cmd(apdu[1], apdu[2], apdu[3], &apdu[5..10]).map_err(Verdict::fail)?;
    match sw.0 {
        0x9000 => {}
        0x6A82 => return Ok(None),
        other => return Err(Verdict::Fail(format!("GET DATA {tag:06X} answered {other:04X}"))),
    }
    let outer = if tag == DISCOVERY { 0x7E } else { 0x53 };
    tlv::parse_exact(&data, outer)
        .map(|v| Some(v.to_vec()))
        .map_err(|e| Verdict::Fail(format!("GET DATA {tag:06X}: not one {outer:02X} TLV ({e:?})")))
}

/// Every TLV of `body` parses, to the last byte.
fn well_formed(body: &[u8]) -> Result<Vec<(u32, usize)>, String> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (t, tail) =
            tlv::parse(rest).map_err(|e| format!("BER-TLV breaks at byte {}: {e:?}", body.len() - rest.len()))?;
        out.push((t.tag, t.value.len()));
        rest = tail;
    }
    Ok(out)
}

fn chuid_present(card: &mut Card) -> Verdict {
    match object(card, CHUID) {
        Ok(Some(_)) => Verdict::Pass,
        Ok(None) => Verdict::Fail("no Card Holder Unique Identifier (6A82)".into()),
        Err(v) => v,
    }
}

fn chuid_layout(card: &mut Card) -> Verdict {
    let body = match object(card, CHUID) {
        Ok(Some(b)) => b,
        Ok(None) => return Verdict::Skipped("the key has no CHUID".into()),
        Err(v) => return v,
    };
    let fields = match well_formed(&body) {
        Ok(f) => f,
        Err(e) => return Verdict::Fail(format!("CHUID: {e}")),
    };
    let len = |tag| fields.iter().find(|(t, _)| *t == tag).map(|(_, l)| *l);
    let mut wrong = Vec::new();
    match len(0x30) {
        Some(25) => {}
        Some(n) => wrong.push(format!("FASC-N (30) is {n} bytes, not 25")),
        None => wrong.push("no FASC-N (30)".into()),
    }
    match len(0x34) {
        Some(16) => {}
        Some(n) => wrong.push(format!("GUID (34) is {n} bytes, not 16")),
        None => wrong.push("no GUID (34)".into()),
    }
    match tlv::find(&body, 0x35) {
        Ok(Some(d)) if d.len() == 8 && d.iter().all(u8::is_ascii_digit) => {}
        Ok(Some(d)) => wrong.push(format!("expiration date (35) is not YYYYMMDD: {}", hex::encode_upper(d))),
        _ => wrong.push("no expiration date (35)".into()),
    }
    if len(0x3E).is_none() {
        wrong.push("no issuer signature (3E)".into());
    }
    if len(0xFE).is_none() {
        wrong.push("no error detection code (FE)".into());
    }
    if wrong.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail(format!("CHUID: {}", wrong.join("; ")))
    }
}

fn discovery(card: &mut Card) -> Verdict {
    let body = match object(card, DISCOVERY) {
        Ok(Some(b)) => b,
        Ok(None) => return Verdict::NotSupported("no Discovery Object".into()),
        Err(v) => return v,
    };
    match (tlv::find(&body, 0x4F), tlv::find(&body, 0x5F2F)) {
        (Ok(Some(aid)), Ok(Some(policy))) if proto::piv::PIV_AID.starts_with(aid) && policy.len() == 2 => Verdict::Pass,
        (Ok(Some(aid)), _) if !proto::piv::PIV_AID.starts_with(aid) => {
            Verdict::Fail(format!("Discovery's AID (4F) is {}", hex::encode_upper(aid)))
        }
        _ => Verdict::Fail("Discovery lacks the PIV AID (4F) or the 2-byte PIN usage policy (5F2F)".into()),
    }
}

fn absent_object(card: &mut Card) -> Verdict {
    let (_, sw) = step!(card.raw(&get_data_apdu(RETIRED_1)));
    if sw.0 == 0x9000 {
        return Verdict::Skipped("this key holds a retired-key certificate in 5FC10D".into());
    }
    expect(sw, &[0x6A82], "GET DATA of an object the key does not hold")
}

fn wrong_p1p2(card: &mut Card) -> Verdict {
    let mut apdu = get_data_apdu(CHUID);
    apdu[2] = 0x00;
    apdu[3] = 0x00;
    let (_, sw) = step!(card.raw(&apdu));
    expect(sw, &[0x6A86], "GET DATA with P1-P2 other than 3FFF")
}

fn bad_tag_list(card: &mut Card) -> Verdict {
    let (_, sw) = step!(card.raw(&[0x00, 0xCB, 0x3F, 0xFF, 0x04, 0x5C, 0x02, 0x5F, 0xC1, 0x00]));
    expect(sw, &[0x6A80, 0x6A82], "GET DATA whose tag list (5C) is not a PIV object tag")
}

fn certificate_9a(card: &mut Card) -> Verdict {
    let body = match object(card, CERT_9A) {
        Ok(Some(b)) => b,
        Ok(None) => return Verdict::NotSupported("no certificate in 9A".into()),
        Err(v) => return v,
    };
    let object = match cert_object::decode_body(&body) {
        Ok(o) => o,
        Err(_) => return Verdict::Fail("the certificate object has no certificate (70)".into()),
    };
    match object.cert_info {
        Some([info]) if info & 0x01 == 0 => {}
        Some([info]) => return Verdict::NotSupported(format!("a compressed certificate (71 = {info:02X})")),
        _ => return Verdict::Fail("no one-byte CertInfo (71)".into()),
    }
    match x509_cert::Certificate::from_der(object.certificate) {
        Ok(_) => Verdict::Pass,
        Err(e) => Verdict::Fail(format!("the 9A certificate does not parse as X.509: {e}")),
    }
}

/// The 9A certificate's validity window (not before, not after), as unix times.
fn validity_9a(card: &mut Card) -> Result<(u64, u64), Verdict> {
    let der = match card.piv().read_certificate(proto::piv::Slot::Authentication) {
        Ok(Some(d)) => d,
        Ok(None) => return Err(Verdict::NotSupported("no certificate in 9A".into())),
        Err(e) => return Err(Verdict::Fail(e.to_string())),
    };
    let cert = x509_cert::Certificate::from_der(&der).map_err(|e| Verdict::Fail(format!("9A certificate: {e}")))?;
    let v = &cert.tbs_certificate.validity;
    Ok((v.not_before.to_unix_duration().as_secs(), v.not_after.to_unix_duration().as_secs()))
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn cert_valid_now(card: &mut Card) -> Verdict {
    let (from, until) = tried!(validity_9a(card));
    let now = now();
    if now < from {
        return Verdict::Fail(format!(
            "the 9A certificate is not valid yet (from {})",
            host_driver::certinfo::format_time(from)
        ));
    }
    if now > until {
        return Verdict::Fail(format!("the 9A certificate expired {}", host_driver::certinfo::format_time(until)));
    }
    Verdict::Pass
}

fn cert_not_expiring(card: &mut Card) -> Verdict {
    let (_, until) = tried!(validity_9a(card));
    let days = until.saturating_sub(now()) / 86_400;
    if days < 30 {
        return Verdict::Fail(format!(
            "the 9A certificate expires in {days} days ({}): renew it",
            host_driver::certinfo::format_time(until)
        ));
    }
    Verdict::Pass
}

fn ccc(card: &mut Card) -> Verdict {
    match object(card, 0x5FC107) {
        Ok(Some(body)) => match well_formed(&body) {
            Ok(_) => Verdict::Pass,
            Err(e) => Verdict::Fail(format!("CCC: {e}")),
        },
        Ok(None) => Verdict::NotSupported("no Card Capability Container".into()),
        Err(v) => v,
    }
}

fn key_history(card: &mut Card) -> Verdict {
    let body = match object(card, 0x5FC10C) {
        Ok(Some(b)) => b,
        Ok(None) => return Verdict::NotSupported("no Key History object".into()),
        Err(v) => return v,
    };
    match (tlv::find(&body, 0xC1), tlv::find(&body, 0xC2)) {
        (Ok(Some(on)), Ok(Some(off))) if on.len() == 1 && off.len() == 1 && on[0] <= 20 && off[0] <= 20 => {
            Verdict::Pass
        }
        _ => Verdict::Fail("Key History lacks one-byte counts (C1, C2) of at most 20".into()),
    }
}

fn printed_information(card: &mut Card) -> Verdict {
    // Printed Information may be read only after the PIN.
    if card.verify_pin().is_err() {
        return Verdict::Skipped("the PIN is needed to read Printed Information".into());
    }
    match object(card, 0x5FC109) {
        Ok(Some(body)) => match well_formed(&body) {
            Ok(_) => Verdict::Pass,
            Err(e) => Verdict::Fail(format!("Printed Information: {e}")),
        },
        Ok(None) => Verdict::NotSupported("no Printed Information".into()),
        Err(v) => v,
    }
}

fn discovery_policy(card: &mut Card) -> Verdict {
    let body = match object(card, DISCOVERY) {
        Ok(Some(b)) => b,
        Ok(None) => return Verdict::NotSupported("no Discovery Object".into()),
        Err(v) => return v,
    };
    match tlv::find(&body, 0x5F2F) {
        Ok(Some([first, _])) if first & 0x40 != 0 => Verdict::Pass,
        Ok(Some([first, _])) => {
            Verdict::Fail(format!("PIN usage policy {first:02X}: the PIV PIN is not marked as satisfying access (40)"))
        }
        _ => Verdict::Fail("no two-byte PIN usage policy (5F2F)".into()),
    }
}

fn chuid_not_expired(card: &mut Card) -> Verdict {
    let body = match object(card, CHUID) {
        Ok(Some(b)) => b,
        Ok(None) => return Verdict::Skipped("the key has no CHUID".into()),
        Err(v) => return v,
    };
    let Ok(Some(date)) = tlv::find(&body, 0x35) else { return Verdict::Fail("no expiration date (35)".into()) };
    let Ok(text) = std::str::from_utf8(date) else { return Verdict::Fail("the expiration date is not text".into()) };
    let today = host_driver::certinfo::format_time(now());
    let today: String = today.chars().filter(char::is_ascii_digit).take(8).collect();
    if text >= today.as_str() {
        Verdict::Pass
    } else {
        Verdict::Fail(format!("the CHUID expired on {text}"))
    }
}

fn cert_subject(card: &mut Card) -> Verdict {
    let der = match card.piv().read_certificate(proto::piv::Slot::Authentication) {
        Ok(Some(d)) => d,
        Ok(None) => return Verdict::NotSupported("no certificate in 9A".into()),
        Err(e) => return Verdict::Fail(e.to_string()),
    };
    match x509_cert::Certificate::from_der(&der) {
        Ok(c) if !c.tbs_certificate.subject.0.is_empty() => Verdict::Pass,
        Ok(_) => Verdict::Fail("the 9A certificate names no subject".into()),
        Err(e) => Verdict::Fail(format!("9A certificate: {e}")),
    }
}

pub const CHECKS: &[Check] = &[
    Check {
        id: "PIV-OBJ-001",
        title: "the Card Holder Unique Identifier is present",
        clause: "SP 800-73-4 Part 1 §3.1.2",
        family: Family::Objects,
        severity: Severity::Must,
        destructive: false,
        run: chuid_present,
    },
    Check {
        id: "PIV-OBJ-002",
        title: "the CHUID has FASC-N, GUID, expiry, signature and EDC, well formed",
        clause: "SP 800-73-4 Part 1 Table 9",
        family: Family::Objects,
        severity: Severity::Should,
        destructive: false,
        run: chuid_layout,
    },
    Check {
        id: "PIV-OBJ-003",
        title: "the Discovery Object names PIV and its PIN usage policy",
        clause: "SP 800-73-4 Part 1 §3.3.2",
        family: Family::Objects,
        severity: Severity::Should,
        destructive: false,
        run: discovery,
    },
    Check {
        id: "PIV-OBJ-004",
        title: "GET DATA of an absent object is 6A82",
        clause: "SP 800-73-4 Part 2 §3.1.2 (status word table: 6A82 data object not found)",
        family: Family::Objects,
        severity: Severity::Should,
        destructive: false,
        run: absent_object,
    },
    Check {
        id: "PIV-OBJ-005",
        title: "GET DATA with P1-P2 other than 3FFF is 6A86",
        clause: "SP 800-73-4 Part 2 §3.1.2 (P1-P2 3FFF; no status word mandated for others)",
        family: Family::Objects,
        severity: Severity::Should,
        destructive: false,
        run: wrong_p1p2,
    },
    Check {
        id: "PIV-OBJ-006",
        title: "GET DATA with a malformed tag list is refused",
        clause: "SP 800-73-4 Part 2 §3.1.2",
        family: Family::Objects,
        severity: Severity::Should,
        destructive: false,
        run: bad_tag_list,
    },
    Check {
        id: "PIV-OBJ-007",
        title: "the 9A certificate object holds an X.509 certificate and CertInfo",
        clause: "SP 800-73-4 Part 1 Table 10",
        family: Family::Objects,
        severity: Severity::Must,
        destructive: false,
        run: certificate_9a,
    },
    Check {
        id: "PIV-OBJ-008",
        title: "the 9A certificate is within its validity period",
        clause: "SP 800-73-4 Part 1 §3.1; RFC 5280 §4.1.2.5",
        family: Family::Objects,
        // An expired certificate is the key's state, not its conformance: a warning.
        severity: Severity::Should,
        destructive: false,
        run: cert_valid_now,
    },
    Check {
        id: "PIV-OBJ-009",
        title: "the 9A certificate has 30 days or more left",
        clause: "RFC 5280 §4.1.2.5 (renewal warning)",
        family: Family::Objects,
        severity: Severity::Info,
        destructive: false,
        run: cert_not_expiring,
    },
    Check {
        id: "PIV-OBJ-010",
        title: "the Card Capability Container, when present, is well-formed BER-TLV",
        clause: "SP 800-73-4 Part 1 §3.1.1",
        family: Family::Objects,
        severity: Severity::Info,
        destructive: false,
        run: ccc,
    },
    Check {
        id: "PIV-OBJ-011",
        title: "Key History, when present, counts retired keys in C1 and C2",
        clause: "SP 800-73-4 Part 1 §3.3.3 (Key History)",
        family: Family::Objects,
        severity: Severity::Info,
        destructive: false,
        run: key_history,
    },
    Check {
        id: "PIV-OBJ-012",
        title: "Printed Information, when present, is well-formed BER-TLV",
        clause: "SP 800-73-4 Part 1 §3.3.1 (Printed Information, optional)",
        family: Family::Objects,
        severity: Severity::Info,
        destructive: false,
        run: printed_information,
    },
    Check {
        id: "PIV-OBJ-013",
        title: "the Discovery Object's PIN usage policy marks the PIV PIN",
        clause: "SP 800-73-4 Part 1 §3.3.2",
        family: Family::Objects,
        severity: Severity::Should,
        destructive: false,
        run: discovery_policy,
    },
    Check {
        id: "PIV-OBJ-014",
        title: "the CHUID's expiration date is not past",
        clause: "SP 800-73-4 Part 1 Table 9",
        family: Family::Objects,
        severity: Severity::Should,
        destructive: false,
        run: chuid_not_expired,
    },
    Check {
        id: "PIV-OBJ-015",
        title: "the 9A certificate names its subject (the key's holder)",
        clause: "SP 800-73-4 Part 1 §3.1; RFC 5280 §4.1.2.6",
        family: Family::Objects,
        severity: Severity::Info,
        destructive: false,
        run: cert_subject,
    },
];
