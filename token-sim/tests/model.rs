//! Property tests: random command sequences against a small reference model of the PIN and
//! PUK counters, and arbitrary bytes against the whole command surface.

mod common;
use common::*;

use proptest::prelude::*;
use proto::clock::FixedClock;
use proto::Sw;
use token_sim::VirtualKey;

#[derive(Clone, Debug)]
enum Op {
    VerifyRight,
    VerifyWrong,
    VerifyStatus,
    ChangePin { right: bool },
    Unblock { right: bool },
    SelectOther,
    Reset,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::VerifyRight),
        4 => Just(Op::VerifyWrong),
        1 => Just(Op::VerifyStatus),
        1 => any::<bool>().prop_map(|right| Op::ChangePin { right }),
        2 => any::<bool>().prop_map(|right| Op::Unblock { right }),
        1 => Just(Op::SelectOther),
        1 => Just(Op::Reset),
        1 => Just(Op::Restart),
    ]
}

/// What the counters should be, derived from the spec alone.
#[derive(Debug)]
struct Model {
    pin: &'static [u8],
    pin_left: u8,
    puk_left: u8,
    verified: bool,
}

impl Model {
    fn try_pin(&mut self, right: bool) -> Sw {
        if self.pin_left == 0 {
            return Sw::AUTH_METHOD_BLOCKED;
        }
        if right {
            self.pin_left = 3;
            Sw::OK
        } else {
            self.pin_left -= 1;
            Sw::verify_failed(self.pin_left)
        }
    }
}

fn both(pin: &[u8], new: &[u8]) -> Vec<u8> {
    let mut d = padded(pin);
    d.extend(padded(new));
    d
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn counters_follow_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let mut key = Some(VirtualKey::create(&path, &spec(99), &FixedClock(NOW)).unwrap());
        let mut m = Model { pin: b"123456", pin_left: 3, puk_left: 3, verified: false };
        for op in ops {
            let k = key.as_mut().unwrap();
            match op {
                Op::VerifyRight | Op::VerifyWrong => {
                    let right = matches!(op, Op::VerifyRight);
                    let candidate: &[u8] = if right { m.pin } else { b"000000" };
                    let expect = m.try_pin(right);
                    m.verified = expect.is_ok();
                    prop_assert_eq!(verify(k.card_mut(), candidate), expect);
                }
                Op::VerifyStatus => {
                    let expect = if m.pin_left == 0 { Sw::AUTH_METHOD_BLOCKED }
                        else if m.verified { Sw::OK } else { Sw::verify_failed(m.pin_left) };
                    prop_assert_eq!(sw(k.card_mut(), &[0, 0x20, 0, 0x80]), expect);
                }
                Op::ChangePin { right } => {
                    let old: &[u8] = if right { m.pin } else { b"000000" };
                    let new: &'static [u8] = if m.pin == b"123456" { b"654321" } else { b"123456" };
                    let expect = m.try_pin(right);
                    if expect.is_ok() { m.pin = new; } else { m.verified = false; }
                    prop_assert_eq!(sw(k.card_mut(), &apdu(0x24, 0, 0x80, &both(old, new))), expect);
                }
                Op::Unblock { right } => {
                    let puk: &[u8] = if right { PUK } else { b"00000000" };
                    let expect = if m.puk_left == 0 { Sw::AUTH_METHOD_BLOCKED }
                        else if right { m.puk_left = 3; m.pin_left = 3; m.pin = b"777777"; m.verified = false; Sw::OK }
                        else { m.puk_left -= 1; Sw::verify_failed(m.puk_left) };
                    prop_assert_eq!(sw(k.card_mut(), &apdu(0x2C, 0, 0x80, &both(puk, b"777777"))), expect);
                }
                Op::SelectOther => {
                    prop_assert_eq!(sw(k.card_mut(), &[0, 0xA4, 4, 0, 5, 0xA0, 0, 0, 5, 0x27]), Sw::FILE_NOT_FOUND);
                }
                Op::Reset => { k.card_mut().reset(); m.verified = false; }
                Op::Restart => {
                    drop(key.take());
                    key = Some(VirtualKey::open(&path).unwrap());
                    m.verified = false;
                }
            }
            let s = key.as_ref().unwrap().card().state();
            prop_assert_eq!((s.pin.counter.remaining, s.puk.counter.remaining), (m.pin_left, m.puk_left));
        }
    }

    #[test]
    fn no_byte_string_makes_the_card_panic(apdus in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20)) {
        let mut c = card();
        // Half the time, authenticate first so that state-changing paths are reached too.
        mgmt_auth(&mut c, proto::piv::Algorithm::Tdes, &MGMT);
        for a in apdus {
            let r = c.transmit(&a);
            prop_assert!(r.len() >= 2);
        }
    }

    #[test]
    fn known_instructions_with_random_bodies_never_panic(
        ins in prop::sample::select(vec![0xA4u8, 0xCB, 0xDB, 0x20, 0x24, 0x2C, 0x47, 0x87, 0xC0, 0xFF, 0xFE, 0xFD, 0xFB, 0xFA, 0xF9, 0xF8, 0xF7]),
        p1 in any::<u8>(), p2 in prop::sample::select(vec![0x80u8, 0x81, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0xFF, 0x00, 0x3F]),
        data in proptest::collection::vec(any::<u8>(), 0..260),
    ) {
        let mut c = card();
        mgmt_auth(&mut c, proto::piv::Algorithm::Tdes, &MGMT);
        verify(&mut c, PIN);
        let a = proto::CommandApdu::new(0, ins, p1, p2, &data, Some(256)).to_vec();
        let r = c.transmit(&a);
        prop_assert!(r.len() >= 2);
    }
}
