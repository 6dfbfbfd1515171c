//! GENERAL AUTHENTICATE with the slots' private keys: ECDSA P-256 signatures and the PIN
//! policies that guard them (SP 800-78-4 §3, SP 800-73-4 Part 2 §3.2.4).

use der::{Decode, Encode};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::pkcs8::DecodePublicKey;
use proto::piv::Slot;

use super::support::{refused, step, tried};
use crate::card::Card;
use crate::catalog::{Check, Family, Severity, Verdict};

/// The public key of the slot's certificate; a verdict when there is none to check against.
fn certificate_key(card: &mut Card, slot: Slot) -> Result<p256::ecdsa::VerifyingKey, Verdict> {
    let der = match card.piv().read_certificate(slot) {
        Ok(Some(d)) => d,
        Ok(None) => return Err(Verdict::NotSupported(format!("no certificate in {slot:?} to check against"))),
        Err(e) => return Err(Verdict::Fail(format!("reading the {slot:?} certificate: {e}"))),
    };
    let cert = x509_cert::Certificate::from_der(&der).map_err(|e| Verdict::Fail(format!("certificate: {e}")))?;
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().map_err(|e| Verdict::Fail(e.to_string()))?;
    p256::ecdsa::VerifyingKey::from_public_key_der(&spki)
        .map_err(|_| Verdict::NotSupported(format!("the {slot:?} certificate is not for a P-256 key")))
}

/// GENERAL AUTHENTICATE of `digest` with `slot`: the DER signature, or the status word.
fn sign(card: &mut Card, slot: Slot, digest: &[u8]) -> Result<Result<Vec<u8>, u16>, String> {
    let mut inner = vec![0x82, 0x00];
    inner.extend(proto::tlv::to_vec(0x81, digest));
    let data = proto::tlv::to_vec(0x7C, &inner);
    let (resp, sw) = card.cmd(0x87, 0x11, slot.key_ref(), &data).map_err(|e| e.to_string())?;
    if !sw.is_ok() {
        return Ok(Err(sw.0));
    }
    let body = proto::tlv::parse_exact(&resp, 0x7C).map_err(|e| format!("the answer is not 7C: {e:?}"))?;
    let sig = proto::tlv::find(body, 0x82).ok().flatten().ok_or("no signature (82) in the answer")?;
    Ok(Ok(sig.to_vec()))
}

fn signature_verifies(card: &mut Card) -> Verdict {
    let key = tried!(certificate_key(card, Slot::Authentication));
    if let Err(v) = pin(card) {
        return v;
    }
    let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(b"ukey conformance PIV-SIGN-001").into();
    let der = match step!(sign(card, Slot::Authentication, &digest)) {
        Ok(d) => d,
        Err(sw) => return Verdict::Fail(format!("signing with 9A after the PIN answered {sw:04X}")),
    };
    let sig = match p256::ecdsa::Signature::from_der(&der) {
        Ok(s) => s,
        Err(e) => return Verdict::Fail(format!("the signature is not DER ECDSA: {e}")),
    };
    match key.verify_prehash(&digest, &sig) {
        Ok(()) => Verdict::Pass,
        Err(_) => Verdict::Fail("the 9A signature does not verify with the 9A certificate's key".into()),
    }
}

fn pin(card: &mut Card) -> Result<(), Verdict> {
    card.verify_pin()
}

fn needs_pin(card: &mut Card) -> Verdict {
    let _ = tried!(certificate_key(card, Slot::Authentication));
    match step!(sign(card, Slot::Authentication, &[0x42; 32])) {
        Ok(_) => Verdict::Fail("9A signed without the PIN".into()),
        Err(sw) => refused(proto::status::Sw(sw), "signing with 9A before the PIN"),
    }
}

fn pin_always(card: &mut Card) -> Verdict {
    if let Err(v) = pin(card) {
        return v;
    }
    match step!(sign(card, Slot::Signature, &[0x42; 32])) {
        Ok(_) => {}
        Err(sw @ (0x6A80 | 0x6A82 | 0x6A88 | 0x6A86)) => {
            return Verdict::NotSupported(format!("no P-256 key in 9C ({sw:04X})"));
        }
        Err(sw) => return Verdict::Fail(format!("signing with 9C after the PIN answered {sw:04X}")),
    }
    match step!(sign(card, Slot::Signature, &[0x43; 32])) {
        Ok(_) => Verdict::Fail("9C signed twice on one PIN verification (PIN-always ignored)".into()),
        Err(sw) => refused(proto::status::Sw(sw), "a second 9C signature without the PIN again"),
    }
}

fn card_auth_without_pin(card: &mut Card) -> Verdict {
    let key = tried!(certificate_key(card, Slot::CardAuthentication));
    let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(b"ukey conformance PIV-SIGN-004").into();
    let der = match step!(sign(card, Slot::CardAuthentication, &digest)) {
        Ok(d) => d,
        Err(sw) => return Verdict::Fail(format!("9E (card authentication) refused to sign without a PIN: {sw:04X}")),
    };
    match p256::ecdsa::Signature::from_der(&der).map(|sig| key.verify_prehash(&digest, &sig)) {
        Ok(Ok(())) => Verdict::Pass,
        _ => Verdict::Fail("the 9E signature does not verify with the 9E certificate's key".into()),
    }
}

fn logout_drops_pin(card: &mut Card) -> Verdict {
    let _ = tried!(certificate_key(card, Slot::Authentication));
    tried!(pin(card));
    let (_, sw) = step!(card.raw(&[0x00, 0x20, 0xFF, 0x80]));
    if sw.0 != 0x9000 {
        return Verdict::NotSupported(format!("no PIN logout (VERIFY P1=FF answered {:04X})", sw.0));
    }
    match step!(sign(card, Slot::Authentication, &[0x42; 32])) {
        Ok(_) => Verdict::Fail("9A signed after the PIN was logged out".into()),
        Err(sw) => refused(proto::status::Sw(sw), "signing with 9A after the PIN logout"),
    }
}

fn empty_digest(card: &mut Card) -> Verdict {
    let _ = tried!(certificate_key(card, Slot::Authentication));
    tried!(pin(card));
    match step!(sign(card, Slot::Authentication, &[])) {
        Ok(_) => Verdict::Fail("an empty challenge (81 00) was signed".into()),
        Err(_) => Verdict::Pass,
    }
}

pub const CHECKS: &[Check] = &[
    Check {
        id: "PIV-SIGN-001",
        title: "a 9A signature after the PIN verifies with the 9A certificate's key",
        clause: "SP 800-73-4 Part 2 §3.2.4, SP 800-78-4 §3.2",
        family: Family::Sign,
        severity: Severity::Must,
        destructive: false,
        run: signature_verifies,
    },
    Check {
        id: "PIV-SIGN-002",
        title: "9A does not sign before the PIN",
        clause: "SP 800-73-4 Part 1 §5.1 key references (9A: PIN; 9C: PIN always), Part 2 §2.4.1",
        family: Family::Sign,
        severity: Severity::Must,
        destructive: false,
        run: needs_pin,
    },
    Check {
        id: "PIV-SIGN-003",
        title: "9C signs once per PIN verification (PIN always)",
        clause: "SP 800-73-4 Part 1 §5.1 key references (9A: PIN; 9C: PIN always), Part 2 §2.4.1",
        family: Family::Sign,
        severity: Severity::Must,
        destructive: false,
        run: pin_always,
    },
    Check {
        id: "PIV-SIGN-004",
        title: "9E (card authentication) signs without a PIN, verifiably",
        clause: "SP 800-73-4 Part 1 §5.1 key references (9A: PIN; 9C: PIN always), Part 2 §2.4.1",
        family: Family::Sign,
        severity: Severity::Must,
        destructive: false,
        run: card_auth_without_pin,
    },
    Check {
        id: "PIV-SIGN-005",
        title: "after VERIFY P1=FF the 9A key no longer signs",
        clause: "SP 800-73-4 Part 2 §3.2.1",
        family: Family::Sign,
        severity: Severity::Must,
        destructive: false,
        run: logout_drops_pin,
    },
    Check {
        id: "PIV-SIGN-006",
        title: "an empty digest is not signed",
        clause: "SP 800-73-4 Part 2 §3.2.4",
        family: Family::Sign,
        severity: Severity::Should,
        destructive: false,
        run: empty_digest,
    },
];
