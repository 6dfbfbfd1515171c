//! The host driver against an in-process virtual key. The driver only sees a `Transport`.

mod suite;

use host_driver::{Applet, PinStatus, Piv, PivError};
use proto::clock::FixedClock;
use proto::{Sw, Transport, TransportError};
use suite::{Maker, NOW};
use token_sim::{KeySpec, VirtualKey};

struct InProcess;

impl Maker for InProcess {
    type T = VirtualKey;
    fn make(&self, spec: KeySpec) -> Piv<VirtualKey> {
        Piv::new(VirtualKey::in_memory(&spec, &FixedClock(NOW)).unwrap())
    }
}

key_suite!(InProcess);

#[test]
fn removed_key_is_a_transport_error() {
    let mut p = InProcess.fresh();
    p.transport().remove();
    assert!(matches!(p.verify_pin("123456"), Err(PivError::Transport(TransportError::NoCard(_)))));
    p.transport().insert();
    assert_eq!(p.pin_status().unwrap(), PinStatus::NotVerified { retries_left: 3 });
}

/// A card that wants the exact Le (answers 6Cxx first), as some real cards do.
struct ExactLe(VirtualKey);

impl Transport for ExactLe {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        let r = self.0.transmit(apdu)?;
        let le = *apdu.last().unwrap() as usize;
        let data_len = r.len() - 2;
        if apdu[1] == 0xFD && le != data_len {
            return Ok(vec![0x6C, data_len as u8]);
        }
        Ok(r)
    }
    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        self.0.reset()
    }
    fn is_present(&mut self) -> bool {
        self.0.is_present()
    }
    fn name(&self) -> String {
        self.0.name()
    }
}

#[test]
fn wrong_le_answer_is_retried_with_the_right_le() {
    let mut p = Piv::new(ExactLe(VirtualKey::in_memory(&KeySpec::default(), &FixedClock(NOW)).unwrap()));
    assert_eq!(p.version().unwrap(), [5, 4, 3]);
    let _ = Sw::OK;
}

/// Records SELECTs; answers 6A82 to AIDs it is told to refuse, as some cards do.
struct Picky {
    key: VirtualKey,
    refuse: Vec<Vec<u8>>,
    selects: Vec<Vec<u8>>,
}

impl Transport for Picky {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        if apdu[1] == 0xA4 {
            let aid = apdu[5..5 + apdu[4] as usize].to_vec();
            self.selects.push(aid.clone());
            if self.refuse.contains(&aid) {
                return Ok(vec![0x6A, 0x82]);
            }
        }
        self.key.transmit(apdu)
    }
    fn reset(&mut self) -> Result<Vec<u8>, TransportError> {
        self.key.reset()
    }
    fn is_present(&mut self) -> bool {
        true
    }
    fn name(&self) -> String {
        "picky".into()
    }
}

fn picky(refuse: &[&[u8]]) -> Piv<Picky> {
    let key = VirtualKey::in_memory(&KeySpec::default(), &FixedClock(NOW)).unwrap();
    Piv::new(Picky { key, refuse: refuse.iter().map(|a| a.to_vec()).collect(), selects: Vec::new() })
}

#[test]
fn select_uses_the_full_aid_first_and_falls_back_only_when_refused() {
    let full = &proto::piv::PIV_AID[..];
    let mut p = picky(&[]);
    let applet = p.select().unwrap();
    assert_eq!(p.transport().selects, vec![full.to_vec()], "one SELECT, with the full AID");
    assert_eq!(applet.aid.as_deref(), Some(&full[5..]), "the card reports PIV's PIX");

    let mut p = picky(&[full]);
    p.select().unwrap();
    assert_eq!(p.transport().selects, vec![full.to_vec(), full[..9].to_vec()]);

    let mut p = picky(&[full, &full[..9], &full[..5]]);
    let err = p.select().unwrap_err();
    assert!(matches!(err, PivError::NoPiv { sw } if sw == Sw::FILE_NOT_FOUND), "{err}");
    assert_eq!(
        err.to_string(),
        "no PIV application on this card (SELECT answered 6A82 (file or application not found))"
    );
}

#[test]
fn select_answer_must_be_piv() {
    assert_eq!(Applet::parse(&[]).unwrap(), Applet::default(), "older cards answer a bare 9000");
    let apt = [0x61, 0x0D, 0x4F, 0x06, 0, 0, 0x10, 0, 1, 0, 0x50, 0x03, b'a', b'b', b'c'];
    let a = Applet::parse(&apt).unwrap();
    assert_eq!(a.label.as_deref(), Some("abc"));
    let other = [0x61, 0x07, 0x4F, 0x05, 0xA0, 0, 0, 5, 0x27];
    assert!(Applet::parse(&other).unwrap_err().to_string().contains("A000000527 is not PIV"));
    assert!(Applet::parse(&[0x6F, 0x00]).is_err());
}
