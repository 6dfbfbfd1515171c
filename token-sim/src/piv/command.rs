//! Parsing: a whole (de-chained) command APDU becomes a typed [`Command`], or a status word.
//! Nothing here touches card state; execution lives in `exec`.

use proto::piv::{ins, key_ref, object, Algorithm, PinPolicy, Slot, TouchPolicy, PIV_AID, PIV_AID_MIN_LEN};
use proto::secret::{PinBlock, SecretRef};
use proto::tlv;
use proto::{CommandApdu, Sw};

/// Which credential a PIN-type command names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinRef {
    Pin,
    Puk,
}

/// What GENERAL AUTHENTICATE asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthRequest<'a> {
    /// 9B, `80 00`: send E_K(witness).
    MgmtWitness,
    /// 9B, `80 witness, 81 challenge`: prove the witness, answer E_K(challenge).
    MgmtWitnessResponse { witness: &'a [u8], challenge: &'a [u8] },
    /// 9B, `81 00`: send a challenge (also OpenSC's random-number source).
    MgmtChallenge,
    /// 9B, `82 response`: the host's E_K(challenge).
    MgmtChallengeResponse { response: &'a [u8] },
    /// Key slot, `82 00, 81 digest`: ECDSA signature.
    Sign { slot: Slot, digest: &'a [u8] },
    /// Key slot, `82 00, 85 point`: ECDH.
    Ecdh { slot: Slot, point: &'a [u8] },
}

/// Every command the card understands, parsed. PINs, PUKs, keys and scalars are held in
/// secret types: `{:?}` of a command never shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    SelectPiv,
    SelectOther,
    GetData {
        tag: u32,
    },
    PutData {
        tag: u32,
        value: &'a [u8],
    },
    VerifyStatus,
    Verify {
        pin: PinBlock,
    },
    Logout,
    ChangeReference {
        which: PinRef,
        old: PinBlock,
        new: PinBlock,
    },
    ResetRetry {
        puk: PinBlock,
        new_pin: PinBlock,
    },
    Generate {
        slot: Slot,
        pin_policy: Option<PinPolicy>,
        touch_policy: Option<TouchPolicy>,
    },
    Authenticate {
        alg: Algorithm,
        request: AuthRequest<'a>,
    },
    // Yubico extensions.
    GetVersion,
    GetSerial,
    GetMetadata {
        reference: u8,
    },
    SetMgmKey {
        alg: Algorithm,
        key: SecretRef<'a>,
        touch: bool,
    },
    ImportKey {
        slot: Slot,
        scalar: SecretRef<'a>,
        pin_policy: Option<PinPolicy>,
        touch_policy: Option<TouchPolicy>,
    },
    Attest {
        slot: Slot,
    },
    SetPinRetries {
        pin: u8,
        puk: u8,
    },
    Reset,
    /// Move the key of `from` to the empty slot `to`, or delete it (`to` None).
    MoveKey {
        from: Slot,
        to: Option<Slot>,
    },
}

impl<'a> Command<'a> {
    pub fn parse(apdu: &CommandApdu<'a>) -> Result<Self, Sw> {
        let (p1, p2, data) = (apdu.p1, apdu.p2, apdu.data);
        match apdu.ins {
            ins::SELECT => parse_select(p1, p2, data),
            ins::GET_DATA => parse_get_data(p1, p2, data),
            ins::PUT_DATA => parse_put_data(p1, p2, data),
            ins::VERIFY => parse_verify(p1, p2, data),
            ins::CHANGE_REFERENCE => {
                let which = match (p1, p2) {
                    (0, key_ref::PIN) => PinRef::Pin,
                    (0, key_ref::PUK) => PinRef::Puk,
                    (0, _) => return Err(Sw::REFERENCE_NOT_FOUND),
                    _ => return Err(Sw::INCORRECT_P1P2),
                };
                let (old, new) = two_blocks(data)?;
                Ok(Command::ChangeReference { which, old, new })
            }
            ins::RESET_RETRY => {
                match (p1, p2) {
                    (0, key_ref::PIN) => {}
                    (0, _) => return Err(Sw::REFERENCE_NOT_FOUND),
                    _ => return Err(Sw::INCORRECT_P1P2),
                }
                let (puk, new_pin) = two_blocks(data)?;
                Ok(Command::ResetRetry { puk, new_pin })
            }
            ins::GENERATE => parse_generate(p1, p2, data),
            ins::GENERAL_AUTHENTICATE => parse_authenticate(p1, p2, data),
            ins::GET_VERSION => Ok(Command::GetVersion),
            ins::GET_SERIAL => Ok(Command::GetSerial),
            ins::GET_METADATA => match p1 {
                0 => Ok(Command::GetMetadata { reference: p2 }),
                _ => Err(Sw::INCORRECT_P1P2),
            },
            ins::SET_MGMKEY => parse_set_mgmkey(p1, p2, data),
            ins::IMPORT_KEY => parse_import(p1, p2, data),
            ins::ATTEST => match (Slot::from_key_ref(p1), p2) {
                (Some(slot), 0) if slot != Slot::Attestation => Ok(Command::Attest { slot }),
                _ => Err(Sw::INCORRECT_P1P2),
            },
            ins::SET_PIN_RETRIES => Ok(Command::SetPinRetries { pin: p1, puk: p2 }),
            ins::MOVE_KEY => parse_move_key(p1, p2, data),
            ins::RESET => match (p1, p2) {
                (0, 0) => Ok(Command::Reset),
                _ => Err(Sw::INCORRECT_P1P2),
            },
            _ => Err(Sw::INS_NOT_SUPPORTED),
        }
    }
}

fn parse_select<'a>(p1: u8, p2: u8, aid: &[u8]) -> Result<Command<'a>, Sw> {
    if p1 != 0x04 || !matches!(p2, 0x00 | 0x0C) {
        return Err(Sw::INCORRECT_P1P2);
    }
    // A truncated AID selects PIV as long as it keeps at least the RID.
    if aid.len() >= PIV_AID_MIN_LEN && aid.len() <= PIV_AID.len() && PIV_AID.starts_with(aid) {
        Ok(Command::SelectPiv)
    } else {
        Ok(Command::SelectOther)
    }
}

/// `5C <tag>`: the object tag list of GET DATA / PUT DATA.
fn tag_list(data: &[u8]) -> Result<(u32, &[u8]), Sw> {
    let (t, rest) = tlv::parse(data).map_err(|_| Sw::WRONG_DATA)?;
    if t.tag != 0x5C || t.value.is_empty() || t.value.len() > 3 {
        return Err(Sw::WRONG_DATA);
    }
    let tag = t.value.iter().fold(0u32, |acc, b| (acc << 8) | *b as u32);
    Ok((tag, rest))
}

fn parse_get_data<'a>(p1: u8, p2: u8, data: &[u8]) -> Result<Command<'a>, Sw> {
    if (p1, p2) != (0x3F, 0xFF) {
        return Err(Sw::INCORRECT_P1P2);
    }
    match tag_list(data)? {
        (tag, []) => Ok(Command::GetData { tag }),
        _ => Err(Sw::WRONG_DATA),
    }
}

fn parse_put_data(p1: u8, p2: u8, data: &[u8]) -> Result<Command<'_>, Sw> {
    if (p1, p2) != (0x3F, 0xFF) {
        return Err(Sw::INCORRECT_P1P2);
    }
    let (tag, rest) = tag_list(data)?;
    // The value must be exactly one `53` TLV; `53 00` deletes.
    match tlv::parse(rest) {
        Ok((t, [])) if t.tag == 0x53 => Ok(Command::PutData { tag, value: rest }),
        _ => Err(Sw::WRONG_DATA),
    }
    .and_then(|c| if object::writable(tag) { Ok(c) } else { Err(Sw::WRONG_DATA) })
}

fn parse_verify<'a>(p1: u8, p2: u8, data: &[u8]) -> Result<Command<'a>, Sw> {
    match (p1, p2) {
        (0xFF, key_ref::PIN) if data.is_empty() => Ok(Command::Logout),
        (0xFF, key_ref::PIN) => Err(Sw::WRONG_LENGTH),
        (0x00, key_ref::PIN) => match data.len() {
            0 => Ok(Command::VerifyStatus),
            8 => PinBlock::from_padded(data).map(|pin| Command::Verify { pin }).ok_or(Sw::WRONG_DATA),
            _ => Err(Sw::WRONG_DATA),
        },
        (0x00 | 0xFF, _) => Err(Sw::REFERENCE_NOT_FOUND),
        _ => Err(Sw::INCORRECT_P1P2),
    }
}

/// MOVE KEY: P2 the source slot; P1 FF (delete) or a destination other than the source.
/// The attestation key (F9) may be deleted but not moved, and nothing moves into F9.
fn parse_move_key<'a>(p1: u8, p2: u8, data: &[u8]) -> Result<Command<'a>, Sw> {
    if !data.is_empty() {
        return Err(Sw::WRONG_LENGTH);
    }
    let from = Slot::from_key_ref(p2).ok_or(Sw::INCORRECT_P1P2)?;
    let to = match p1 {
        0xFF => None,
        r => Some(
            Slot::from_key_ref(r)
                .filter(|to| *to != from && *to != Slot::Attestation && from != Slot::Attestation)
                .ok_or(Sw::INCORRECT_P1P2)?,
        ),
    };
    Ok(Command::MoveKey { from, to })
}

fn two_blocks(data: &[u8]) -> Result<(PinBlock, PinBlock), Sw> {
    if data.len() != 16 {
        return Err(Sw::WRONG_DATA);
    }
    let old = PinBlock::from_padded(&data[..8]).ok_or(Sw::WRONG_DATA)?;
    let new = PinBlock::from_padded(&data[8..]).ok_or(Sw::WRONG_DATA)?;
    Ok((old, new))
}

fn key_slot(b: u8) -> Result<Slot, Sw> {
    match Slot::from_key_ref(b) {
        Some(Slot::Attestation) | None => Err(Sw::INCORRECT_P1P2),
        Some(slot) => Ok(slot),
    }
}

/// Optional `AA 01 pin-policy` and `AB 01 touch-policy` (0 = card default).
#[derive(Default)]
struct Policies {
    pin: Option<PinPolicy>,
    touch: Option<TouchPolicy>,
}

impl Policies {
    /// Take a policy item; `Ok(false)` when the item is not a policy.
    fn take(&mut self, item: &tlv::Tlv<'_>) -> Result<bool, Sw> {
        match (item.tag, item.value) {
            (0xAA | 0xAB, [0]) => {}
            (0xAA, [b]) => self.pin = Some(PinPolicy::from_byte(*b).ok_or(Sw::WRONG_DATA)?),
            (0xAB, [b]) => self.touch = Some(TouchPolicy::from_byte(*b).ok_or(Sw::WRONG_DATA)?),
            // Anything else, a policy of the wrong length included, is not a policy item: the
            // caller refuses it (6A80).
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn parse_generate<'a>(p1: u8, p2: u8, data: &[u8]) -> Result<Command<'a>, Sw> {
    if p1 != 0 {
        return Err(Sw::INCORRECT_P1P2);
    }
    let slot = key_slot(p2)?;
    let template = tlv::parse_exact(data, 0xAC).map_err(|_| Sw::WRONG_DATA)?;
    let mut alg = None;
    let mut policies = Policies::default();
    for item in tlv::iter(template) {
        let item = item.map_err(|_| Sw::WRONG_DATA)?;
        match (item.tag, item.value) {
            (0x80, [b]) => alg = Algorithm::from_byte(*b),
            _ if policies.take(&item)? => {}
            _ => return Err(Sw::WRONG_DATA),
        }
    }
    if alg != Some(Algorithm::EccP256) {
        return Err(Sw::WRONG_DATA);
    }
    Ok(Command::Generate { slot, pin_policy: policies.pin, touch_policy: policies.touch })
}

fn parse_authenticate(p1: u8, p2: u8, data: &[u8]) -> Result<Command<'_>, Sw> {
    let template = tlv::parse_exact(data, 0x7C).map_err(|_| Sw::WRONG_DATA)?;
    let (mut witness, mut challenge, mut response, mut exp) = (None, None, None, None);
    for item in tlv::iter(template) {
        let item = item.map_err(|_| Sw::WRONG_DATA)?;
        let field = match item.tag {
            0x80 => &mut witness,
            0x81 => &mut challenge,
            0x82 => &mut response,
            0x85 => &mut exp,
            _ => return Err(Sw::WRONG_DATA),
        };
        if field.replace(item.value).is_some() {
            return Err(Sw::WRONG_DATA);
        }
    }
    let empty = |v: Option<&[u8]>| v.is_some_and(|v| v.is_empty());
    if p2 == key_ref::MANAGEMENT {
        // P1 00 is the legacy name of 3DES (OpenSC's random-number request uses it).
        let alg = match p1 {
            0x00 => Algorithm::Tdes,
            b => Algorithm::from_byte(b).filter(|a| a.block_len().is_some()).ok_or(Sw::INCORRECT_P1P2)?,
        };
        let request = match (witness, challenge, response, exp) {
            (Some([]), None, None, None) => AuthRequest::MgmtWitness,
            (Some(w), Some(c), None, None) if !w.is_empty() && !c.is_empty() => {
                AuthRequest::MgmtWitnessResponse { witness: w, challenge: c }
            }
            (None, Some([]), None, None) => AuthRequest::MgmtChallenge,
            (None, None, Some(r), None) if !r.is_empty() => AuthRequest::MgmtChallengeResponse { response: r },
            _ => return Err(Sw::WRONG_DATA),
        };
        return Ok(Command::Authenticate { alg, request });
    }
    let slot = key_slot(p2)?;
    match Algorithm::from_byte(p1) {
        Some(Algorithm::EccP256) => {}
        _ => return Err(Sw::INCORRECT_P1P2),
    }
    let request = match (witness, challenge, exp) {
        (None, Some(digest), None) if empty(response) && !digest.is_empty() => AuthRequest::Sign { slot, digest },
        (None, None, Some(point)) if empty(response) => AuthRequest::Ecdh { slot, point },
        _ => return Err(Sw::WRONG_DATA),
    };
    Ok(Command::Authenticate { alg: Algorithm::EccP256, request })
}

fn parse_set_mgmkey(p1: u8, p2: u8, data: &[u8]) -> Result<Command<'_>, Sw> {
    let touch = match (p1, p2) {
        (0xFF, 0xFF) => false,
        (0xFF, 0xFE) => true,
        _ => return Err(Sw::INCORRECT_P1P2),
    };
    match data {
        [alg, key_ref::MANAGEMENT, len, key @ ..] if *len as usize == key.len() => {
            let alg = Algorithm::from_byte(*alg).ok_or(Sw::WRONG_DATA)?;
            match alg.key_len() {
                Some(n) if n == key.len() => Ok(Command::SetMgmKey { alg, key: SecretRef(key), touch }),
                _ => Err(Sw::WRONG_DATA),
            }
        }
        _ => Err(Sw::WRONG_DATA),
    }
}

fn parse_import(p1: u8, p2: u8, data: &[u8]) -> Result<Command<'_>, Sw> {
    if Algorithm::from_byte(p1) != Some(Algorithm::EccP256) {
        return Err(Sw::INCORRECT_P1P2);
    }
    let slot = key_slot(p2)?;
    let (first, rest) = tlv::parse(data).map_err(|_| Sw::WRONG_DATA)?;
    if first.tag != 0x06 || first.value.len() != 32 {
        return Err(Sw::WRONG_DATA);
    }
    let mut policies = Policies::default();
    for item in tlv::iter(rest) {
        if !policies.take(&item.map_err(|_| Sw::WRONG_DATA)?)? {
            return Err(Sw::WRONG_DATA);
        }
    }
    Ok(Command::ImportKey {
        slot,
        scalar: SecretRef(first.value),
        pin_policy: policies.pin,
        touch_policy: policies.touch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Command<'_>, Sw> {
        Command::parse(&CommandApdu::parse(bytes).unwrap())
    }

    #[test]
    fn select_accepts_truncations_down_to_the_rid() {
        let mut apdu = [0u8, 0xA4, 4, 0, 11, 0xA0, 0, 0, 3, 8, 0, 0, 0x10, 0, 1, 0];
        assert_eq!(parse(&apdu), Ok(Command::SelectPiv));
        for len in 5..=11 {
            apdu[4] = len as u8;
            assert_eq!(parse(&apdu[..5 + len]), Ok(Command::SelectPiv), "len {len}");
        }
        apdu[4] = 4;
        assert_eq!(parse(&apdu[..9]), Ok(Command::SelectOther));
        assert_eq!(parse(&[0, 0xA4, 4, 0, 8, 0xA0, 0, 0, 5, 0x27, 0x20, 1, 1]), Ok(Command::SelectOther));
        assert_eq!(parse(&[0, 0xA4, 1, 0, 1, 0xA0]), Err(Sw::INCORRECT_P1P2));
    }

    #[test]
    fn verify_forms() {
        assert_eq!(parse(&[0, 0x20, 0, 0x80]), Ok(Command::VerifyStatus));
        assert_eq!(parse(&[0, 0x20, 0, 0x80, 0]), Ok(Command::VerifyStatus));
        assert_eq!(parse(&[0, 0x20, 0xFF, 0x80]), Ok(Command::Logout));
        assert!(matches!(parse(b"\x00\x20\x00\x80\x08123456\xFF\xFF"), Ok(Command::Verify { .. })));
        assert_eq!(parse(b"\x00\x20\x00\x80\x0612345\xFF"), Err(Sw::WRONG_DATA));
        assert_eq!(parse(b"\x00\x20\x00\x80\x0812345\xFF\xFF\xFF"), Err(Sw::WRONG_DATA));
        assert_eq!(parse(b"\x00\x20\x00\x81\x0812345678"), Err(Sw::REFERENCE_NOT_FOUND));
        assert_eq!(parse(b"\x00\x20\x01\x80"), Err(Sw::INCORRECT_P1P2));
    }

    #[test]
    fn general_authenticate_forms() {
        assert_eq!(
            parse(&[0, 0x87, 3, 0x9B, 4, 0x7C, 2, 0x80, 0]),
            Ok(Command::Authenticate { alg: Algorithm::Tdes, request: AuthRequest::MgmtWitness })
        );
        assert_eq!(
            parse(&[0, 0x87, 0, 0x9B, 4, 0x7C, 2, 0x81, 0]),
            Ok(Command::Authenticate { alg: Algorithm::Tdes, request: AuthRequest::MgmtChallenge })
        );
        let sign = [0, 0x87, 0x11, 0x9A, 8, 0x7C, 6, 0x82, 0, 0x81, 2, 0xAB, 0xCD];
        assert_eq!(
            parse(&sign),
            Ok(Command::Authenticate {
                alg: Algorithm::EccP256,
                request: AuthRequest::Sign { slot: Slot::Authentication, digest: &[0xAB, 0xCD] }
            })
        );
        // RSA algorithm, unknown slot, duplicate tag, stray tag.
        assert_eq!(parse(&[0, 0x87, 0x07, 0x9A, 8, 0x7C, 6, 0x82, 0, 0x81, 2, 1, 2]), Err(Sw::INCORRECT_P1P2));
        assert_eq!(parse(&[0, 0x87, 0x11, 0x9F, 8, 0x7C, 6, 0x82, 0, 0x81, 2, 1, 2]), Err(Sw::INCORRECT_P1P2));
        assert_eq!(parse(&[0, 0x87, 0x11, 0x9A, 8, 0x7C, 6, 0x81, 0, 0x81, 2, 1, 2]), Err(Sw::WRONG_DATA));
        assert_eq!(parse(&[0, 0x87, 0x11, 0x9A, 6, 0x7C, 4, 0x99, 2, 1, 2]), Err(Sw::WRONG_DATA));
    }

    #[test]
    fn generate_reads_policies() {
        let apdu = [0, 0x47, 0, 0x9C, 0x0B, 0xAC, 9, 0x80, 1, 0x11, 0xAA, 1, 1, 0xAB, 1, 2];
        assert_eq!(
            parse(&apdu),
            Ok(Command::Generate {
                slot: Slot::Signature,
                pin_policy: Some(PinPolicy::Never),
                touch_policy: Some(TouchPolicy::Always)
            })
        );
        assert_eq!(parse(&[0, 0x47, 0, 0x9A, 5, 0xAC, 3, 0x80, 1, 0x07]), Err(Sw::WRONG_DATA));
        assert_eq!(parse(&[0, 0x47, 0, 0x9B, 5, 0xAC, 3, 0x80, 1, 0x11]), Err(Sw::INCORRECT_P1P2));
    }

    #[test]
    fn put_data_needs_one_53_tlv_and_a_writable_tag() {
        assert!(matches!(
            parse(&[0, 0xDB, 0x3F, 0xFF, 7, 0x5C, 3, 0x5F, 0xC1, 0x05, 0x53, 0]),
            Ok(Command::PutData { tag: 0x5FC105, .. })
        ));
        assert_eq!(parse(&[0, 0xDB, 0x3F, 0xFF, 5, 0x5C, 1, 0x7E, 0x53, 0]), Err(Sw::WRONG_DATA));
        assert_eq!(parse(&[0, 0xDB, 0x3F, 0xFF, 7, 0x5C, 3, 0x5F, 0xC1, 0x05, 0x54, 0]), Err(Sw::WRONG_DATA));
    }

    #[test]
    fn generate_policy_zero_means_card_default() {
        let apdu = [0, 0x47, 0, 0x9A, 0x0B, 0xAC, 9, 0x80, 1, 0x11, 0xAA, 1, 0, 0xAB, 1, 0];
        assert_eq!(
            parse(&apdu),
            Ok(Command::Generate { slot: Slot::Authentication, pin_policy: None, touch_policy: None })
        );
        // A policy of two bytes, or an unknown value, is refused.
        assert_eq!(parse(&[0, 0x47, 0, 0x9A, 9, 0xAC, 7, 0x80, 1, 0x11, 0xAA, 2, 1, 1]), Err(Sw::WRONG_DATA));
        assert_eq!(parse(&[0, 0x47, 0, 0x9A, 0x08, 0xAC, 6, 0x80, 1, 0x11, 0xAB, 1, 9]), Err(Sw::WRONG_DATA));
    }

    #[test]
    fn reset_retry_and_change_reference_name_their_reference() {
        let blocks = *b"12345678\x31\x32\x33\x34\x35\x36\xFF\xFF";
        let mut apdu = vec![0, 0x2C, 0, 0x80, 16];
        apdu.extend_from_slice(&blocks);
        assert!(matches!(parse(&apdu), Ok(Command::ResetRetry { .. })));
        apdu[3] = 0x81;
        assert_eq!(parse(&apdu), Err(Sw::REFERENCE_NOT_FOUND), "RESET RETRY of the PUK");
        apdu[2] = 1;
        assert_eq!(parse(&apdu), Err(Sw::INCORRECT_P1P2));
        apdu[1] = 0x24;
        apdu[2] = 0;
        assert!(matches!(parse(&apdu), Ok(Command::ChangeReference { which: PinRef::Puk, .. })));
        apdu[3] = 0x9B;
        assert_eq!(parse(&apdu), Err(Sw::REFERENCE_NOT_FOUND));
    }

    #[test]
    fn attest_refuses_the_attestation_slot_itself() {
        assert_eq!(parse(&[0, 0xF9, 0x9A, 0]), Ok(Command::Attest { slot: Slot::Authentication }));
        assert_eq!(parse(&[0, 0xF9, 0xF9, 0]), Err(Sw::INCORRECT_P1P2));
        assert_eq!(parse(&[0, 0xF9, 0x9A, 1]), Err(Sw::INCORRECT_P1P2));
    }

    #[test]
    fn tag_lists_hold_one_to_three_bytes() {
        assert_eq!(parse(&[0, 0xCB, 0x3F, 0xFF, 5, 0x5C, 3, 0x5F, 0xC1, 0x02]), Ok(Command::GetData { tag: 0x5FC102 }));
        assert_eq!(parse(&[0, 0xCB, 0x3F, 0xFF, 3, 0x5C, 1, 0x7E]), Ok(Command::GetData { tag: 0x7E }));
        assert_eq!(parse(&[0, 0xCB, 0x3F, 0xFF, 2, 0x5C, 0]), Err(Sw::WRONG_DATA), "empty tag");
        assert_eq!(parse(&[0, 0xCB, 0x3F, 0xFF, 6, 0x5C, 4, 0, 0x5F, 0xC1, 0x02]), Err(Sw::WRONG_DATA), "4-byte tag");
        assert_eq!(parse(&[0, 0xCB, 0x3F, 0xFF, 5, 0x5D, 3, 0x5F, 0xC1, 0x02]), Err(Sw::WRONG_DATA), "not 5C");
        assert_eq!(
            parse(&[0, 0xCB, 0x3F, 0xFF, 6, 0x5C, 3, 0x5F, 0xC1, 0x02, 0]),
            Err(Sw::WRONG_DATA),
            "trailing byte"
        );
    }

    #[test]
    fn management_authentication_pieces_must_not_be_empty() {
        let ga = |body: &[u8]| {
            let mut a = vec![0, 0x87, 3, 0x9B, body.len() as u8 + 2, 0x7C, body.len() as u8];
            a.extend_from_slice(body);
            a
        };
        let w8 = [0x80, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        let c8 = [0x81, 8, 8, 7, 6, 5, 4, 3, 2, 1];
        let both = [&w8[..], &c8[..]].concat();
        assert!(matches!(
            parse(&ga(&both)),
            Ok(Command::Authenticate { request: AuthRequest::MgmtWitnessResponse { .. }, .. })
        ));
        assert_eq!(parse(&ga(&[&[0x80, 0][..], &c8[..]].concat())), Err(Sw::WRONG_DATA), "empty witness");
        assert_eq!(parse(&ga(&[&w8[..], &[0x81, 0][..]].concat())), Err(Sw::WRONG_DATA), "empty challenge");
        assert_eq!(parse(&ga(&[0x80, 0, 0x81, 0])), Err(Sw::WRONG_DATA), "both empty");
        assert!(matches!(
            parse(&ga(&[0x82, 2, 1, 2])),
            Ok(Command::Authenticate { request: AuthRequest::MgmtChallengeResponse { response: &[1, 2] }, .. })
        ));
        assert_eq!(parse(&ga(&[0x82, 0])), Err(Sw::WRONG_DATA), "empty response");
        // An algorithm without a block cipher is no management key.
        let mut ecc = ga(&[0x80, 0]);
        ecc[2] = 0x11;
        assert_eq!(parse(&ecc), Err(Sw::INCORRECT_P1P2));
    }

    #[test]
    fn signing_and_ecdh_need_the_empty_response_tag() {
        let ga = |body: &[u8]| {
            let mut a = vec![0, 0x87, 0x11, 0x9A, body.len() as u8 + 2, 0x7C, body.len() as u8];
            a.extend_from_slice(body);
            a
        };
        assert_eq!(parse(&ga(&[0x81, 2, 1, 2])), Err(Sw::WRONG_DATA), "no 82 00");
        assert_eq!(parse(&ga(&[0x82, 1, 9, 0x81, 2, 1, 2])), Err(Sw::WRONG_DATA), "82 not empty");
        assert_eq!(parse(&ga(&[0x82, 0, 0x81, 0])), Err(Sw::WRONG_DATA), "empty digest");
        assert!(matches!(
            parse(&ga(&[0x82, 0, 0x85, 2, 4, 1])),
            Ok(Command::Authenticate { request: AuthRequest::Ecdh { point: &[4, 1], .. }, .. })
        ));
        assert_eq!(parse(&ga(&[0x85, 2, 4, 1])), Err(Sw::WRONG_DATA), "ECDH without 82 00");
        assert_eq!(parse(&ga(&[0x82, 1, 0, 0x85, 2, 4, 1])), Err(Sw::WRONG_DATA), "ECDH, 82 not empty");
    }

    #[test]
    fn set_management_key_lengths_and_touch() {
        let mut aes = vec![0, 0xFF, 0xFF, 0xFF, 19, 0x08, 0x9B, 16];
        aes.extend_from_slice(&[7; 16]);
        assert!(matches!(parse(&aes), Ok(Command::SetMgmKey { alg: Algorithm::Aes128, touch: false, .. })));
        aes[3] = 0xFE;
        assert!(matches!(parse(&aes), Ok(Command::SetMgmKey { alg: Algorithm::Aes128, touch: true, .. })));
        aes[3] = 0xFD;
        assert_eq!(parse(&aes), Err(Sw::INCORRECT_P1P2));
        aes[3] = 0xFF;
        aes[7] = 15;
        assert_eq!(parse(&aes), Err(Sw::WRONG_DATA), "length byte says 15, 16 follow");
        aes[7] = 16;
        aes[5] = 0x03;
        assert_eq!(parse(&aes), Err(Sw::WRONG_DATA), "16 bytes are no 3DES key");
        aes[5] = 0x08;
        aes[6] = 0x9A;
        assert_eq!(parse(&aes), Err(Sw::WRONG_DATA), "not the management key reference");
    }

    #[test]
    fn import_needs_a_32_byte_scalar_under_tag_06() {
        let import = |tag: u8, len: usize| {
            let mut a = vec![0, 0xFE, 0x11, 0x9A, len as u8 + 2, tag, len as u8];
            a.extend(core::iter::repeat_n(5, len));
            a
        };
        assert!(matches!(parse(&import(0x06, 32)), Ok(Command::ImportKey { slot: Slot::Authentication, .. })));
        assert_eq!(parse(&import(0x06, 31)), Err(Sw::WRONG_DATA));
        assert_eq!(parse(&import(0x07, 32)), Err(Sw::WRONG_DATA));
        let mut with_policy = import(0x06, 32);
        with_policy[4] += 3;
        with_policy.extend_from_slice(&[0xAA, 1, 3]);
        assert!(matches!(parse(&with_policy), Ok(Command::ImportKey { pin_policy: Some(PinPolicy::Always), .. })));
        let mut stray = import(0x06, 32);
        stray[4] += 3;
        stray.extend_from_slice(&[0x99, 1, 3]);
        assert_eq!(parse(&stray), Err(Sw::WRONG_DATA));
    }
}
