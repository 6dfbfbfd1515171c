//! One APDU out, one answer in: GET RESPONSE (61xx), a corrected Le (6Cxx) and command
//! chaining, for every operation of the client.

use proto::piv::ins;
use proto::{CommandApdu, Sw, Transport, TransportError};
use zeroize::Zeroizing;

use super::client::Piv;
use crate::error::{PivError, Result};

const CHUNK: usize = 255;

fn expects_data(i: u8) -> bool {
    matches!(
        i,
        ins::SELECT
            | ins::GET_DATA
            | ins::GENERAL_AUTHENTICATE
            | ins::GENERATE
            | ins::GET_VERSION
            | ins::GET_SERIAL
            | ins::GET_METADATA
            | ins::ATTEST
    )
}

/// `apdu` with its Le replaced by `le` (1 to 256, as 6Cxx gives it), in the APDU's own length
/// form (short or extended). `None` when the APDU carries no Le, or is not a well-formed
/// APDU: then there is nothing that may be changed.
fn with_le(apdu: &[u8], le: usize) -> Option<Vec<u8>> {
    let cmd = CommandApdu::parse(apdu).ok()?;
    cmd.le?;
    Some(CommandApdu { le: Some(le), ..cmd }.to_vec())
}

impl<T: Transport> Piv<T> {
    /// One APDU and its answer, split into data and status word.
    pub(super) fn transmit_once(&mut self, apdu: &[u8]) -> Result<(Vec<u8>, Sw)> {
        let mut r = self.transport.transmit(apdu)?;
        if r.len() < 2 {
            return Err(TransportError::ShortResponse.into());
        }
        let sw = Sw::from_bytes(r[r.len() - 2], r[r.len() - 1]);
        r.truncate(r.len() - 2);
        Ok((r, sw))
    }

    /// One APDU; 6Cxx ("wrong Le, use xx") is followed once with the corrected Le, but only
    /// when the APDU has an Le: in a command without one (VERIFY, CHANGE REFERENCE, RESET
    /// RETRY, PUT DATA, ...) the last byte is data, a PIN's for some, and sending it changed
    /// would spend a try on a PIN nobody typed. Such a 6Cxx is returned to the caller as is.
    pub(super) fn transmit_le(&mut self, apdu: &[u8]) -> Result<(Vec<u8>, Sw)> {
        let (data, sw) = self.transmit_once(apdu)?;
        match sw.correct_le().and_then(|le| with_le(apdu, le)) {
            Some(again) => self.transmit_once(&again),
            None => Ok((data, sw)),
        }
    }

    /// One APDU, following 6Cxx with a corrected Le (see [`Self::transmit_le`]) and 61xx
    /// with GET RESPONSE.
    pub(super) fn transmit(&mut self, apdu: &[u8]) -> Result<(Vec<u8>, Sw)> {
        let (mut data, mut sw) = self.transmit_le(apdu)?;
        let mut rounds = 0;
        while let Some(n) = sw.bytes_remaining() {
            rounds += 1;
            if rounds > 1024 {
                return Err(PivError::malformed("GET RESPONSE", "the card never stops sending 61xx"));
            }
            let (more, s) = self.transmit_le(&[0x00, ins::GET_RESPONSE, 0x00, 0x00, n as u8])?;
            data.extend(more);
            sw = s;
        }
        Ok((data, sw))
    }

    /// A whole command: chained in 255-byte pieces when `data` is longer.
    pub fn exchange(&mut self, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Result<(Vec<u8>, Sw)> {
        let mut rest = data;
        while rest.len() > CHUNK {
            let (chunk, tail) = rest.split_at(CHUNK);
            // Command APDUs may carry a PIN or a key: wiped once sent.
            let apdu = Zeroizing::new(CommandApdu::new(0x10, ins, p1, p2, chunk, None).to_vec());
            let (_, sw) = self.transmit(&apdu)?;
            if !sw.is_ok() {
                return Ok((Vec::new(), sw));
            }
            rest = tail;
        }
        // Le only where the answer carries data: some cards reject Le on VERIFY and friends.
        let le = expects_data(ins).then_some(256);
        self.transmit(&Zeroizing::new(CommandApdu::new(0x00, ins, p1, p2, rest, le).to_vec()))
    }

    /// Exchange and demand 9000.
    pub(super) fn call(&mut self, op: &'static str, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Result<Vec<u8>> {
        let (resp, sw) = self.exchange(ins, p1, p2, data)?;
        if sw.is_ok() {
            Ok(resp)
        } else {
            Err(PivError::from_sw(op, sw))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_apdu_with_le_gets_a_corrected_le() {
        // VERIFY, CHANGE REFERENCE, RESET RETRY: no Le, the last byte is the PIN's.
        let mut verify = vec![0x00, ins::VERIFY, 0x00, 0x80, 0x08];
        verify.extend(*b"12345678");
        assert_eq!(with_le(&verify, 8), None);
        let mut change = vec![0x00, ins::CHANGE_REFERENCE, 0x00, 0x80, 0x10];
        change.extend([0x31; 16]);
        assert_eq!(with_le(&change, 0x31), None);
        assert_eq!(with_le(&[0x00, ins::VERIFY, 0x00, 0x80], 8), None, "case 1: nothing to correct");
        assert_eq!(with_le(&[0x00, ins::VERIFY, 0x00], 8), None, "not an APDU");
        assert_eq!(with_le(&[0x00, ins::VERIFY, 0x00, 0x80, 0x09, 1, 2], 8), None, "Lc does not match");

        // Case 2S and 4S: the one Le byte, and 256 is 00.
        assert_eq!(with_le(&[0x00, 0xFD, 0, 0, 0x00], 3), Some(vec![0x00, 0xFD, 0, 0, 0x03]));
        let get_data = [0x00, ins::GET_DATA, 0x3F, 0xFF, 0x03, 0x5C, 0x01, 0x7E, 0x00];
        assert_eq!(with_le(&get_data, 0x1D), Some(vec![0x00, ins::GET_DATA, 0x3F, 0xFF, 0x03, 0x5C, 0x01, 0x7E, 0x1D]));
        assert_eq!(
            with_le(&get_data[..8].iter().chain(&[0x05]).copied().collect::<Vec<_>>(), 256),
            Some(get_data.to_vec())
        );

        // Extended length stays extended: two Le bytes (case 2E and 4E).
        assert_eq!(
            with_le(&[0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x00, 0x00], 0x20),
            Some(vec![0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x00, 0x20])
        );
        let ext = [0x00, ins::GET_DATA, 0x3F, 0xFF, 0x00, 0x00, 0x03, 0x5C, 0x01, 0x7E, 0x00, 0x00];
        assert_eq!(
            with_le(&ext, 0x1D),
            Some(vec![0x00, ins::GET_DATA, 0x3F, 0xFF, 0x00, 0x00, 0x03, 0x5C, 0x01, 0x7E, 0x00, 0x1D])
        );
        // Extended without Le (3E): its last byte is data.
        let ext_verify = [0x00, ins::VERIFY, 0x00, 0x80, 0x00, 0x00, 0x02, 0x31, 0x32];
        assert_eq!(with_le(&ext_verify, 2), None);
    }

    /// Answers every APDU from a script (6Cxx first, then 9000 with data) and records them.
    struct Scripted {
        sent: Vec<Vec<u8>>,
        answers: Vec<Vec<u8>>,
    }

    impl Transport for Scripted {
        fn transmit(&mut self, apdu: &[u8]) -> std::result::Result<Vec<u8>, TransportError> {
            self.sent.push(apdu.to_vec());
            Ok(if self.answers.is_empty() { vec![0x6F, 0x00] } else { self.answers.remove(0) })
        }
        fn reset(&mut self) -> std::result::Result<Vec<u8>, TransportError> {
            Ok(Vec::new())
        }
        fn is_present(&mut self) -> bool {
            true
        }
        fn name(&self) -> String {
            "scripted".into()
        }
    }

    fn scripted(answers: &[&[u8]]) -> Piv<Scripted> {
        Piv::new(Scripted { sent: Vec::new(), answers: answers.iter().map(|a| a.to_vec()).collect() })
    }

    #[test]
    fn extended_apdu_is_resent_with_a_two_byte_le_and_a_data_apdu_is_not_resent() {
        let mut p = scripted(&[&[0x6C, 0x02], &[0xAB, 0xCD, 0x90, 0x00]]);
        let ext = [0x00, ins::GET_DATA, 0x3F, 0xFF, 0x00, 0x00, 0x03, 0x5C, 0x01, 0x7E, 0x00, 0x00];
        assert_eq!(p.transmit(&ext).unwrap(), (vec![0xAB, 0xCD], Sw::OK));
        assert_eq!(p.transport.sent, vec![ext.to_vec(), [&ext[..10], &[0x00, 0x02]].concat()]);

        let mut p = scripted(&[&[0x6C, 0x08], &[0x90, 0x00]]);
        let ext_verify = [0x00, ins::VERIFY, 0x00, 0x80, 0x00, 0x00, 0x02, 0x31, 0x32];
        assert_eq!(p.transmit(&ext_verify).unwrap(), (Vec::new(), Sw(0x6C08)));
        assert_eq!(p.transport.sent, vec![ext_verify.to_vec()], "sent once, unchanged");
    }

    #[test]
    fn get_response_answered_6cxx_is_resent_with_that_le() {
        let mut p = scripted(&[&[1, 2, 0x61, 0x05], &[0x6C, 0x03], &[3, 4, 5, 0x90, 0x00]]);
        assert_eq!(p.transmit(&[0x00, 0xFD, 0, 0, 0]).unwrap(), (vec![1, 2, 3, 4, 5], Sw::OK));
        assert_eq!(p.transport.sent[1..], [vec![0x00, 0xC0, 0, 0, 5], vec![0x00, 0xC0, 0, 0, 3]]);
    }

    #[test]
    fn random_mixes_the_card_bytes_into_the_host_bytes() {
        // A card whose "random" challenge is constant: all 00, then all FF. The result is
        // never that constant (nor its AND / OR with anything): the host's bytes are in it.
        for fill in [0x00u8, 0xFF] {
            let answer = [&[0x7C, 0x0A, 0x81, 0x08][..], &[fill; 8], &[0x90, 0x00]].concat();
            let answers: Vec<&[u8]> = vec![&[0x6D, 0x00], &answer, &answer, &answer, &answer];
            let mut p = scripted(&answers);
            let r = p.random(32).unwrap();
            assert_ne!(r, vec![fill; 32], "the card's bytes alone");
            let sent = &p.transport.sent;
            assert_eq!(sent[0][1], ins::GET_METADATA);
            assert!(sent[1..].iter().all(|a| a[..4] == [0x00, ins::GENERAL_AUTHENTICATE, 0x03, 0x9B]), "{sent:02X?}");
            assert_eq!(sent.len(), 5, "four 8-byte challenges for 32 bytes");
        }
        // A card that gives no challenge at all: the host's bytes, and it is not asked again.
        let mut p = scripted(&[&[0x6D, 0x00], &[0x6D, 0x00]]);
        assert_eq!(p.random(8).unwrap().len(), 8);
        let asked = p.transport.sent.len();
        assert_eq!(p.random(8).unwrap().len(), 8);
        assert_eq!(p.transport.sent.len(), asked);
        assert_eq!(p.random(0).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn a_second_6cxx_is_not_followed_again() {
        let mut p = scripted(&[&[0x6C, 0x03], &[0x6C, 0x04]]);
        assert_eq!(p.transmit(&[0x00, 0xFD, 0, 0, 0]).unwrap(), (Vec::new(), Sw(0x6C04)));
        assert_eq!(p.transport.sent.len(), 2);
    }
}
