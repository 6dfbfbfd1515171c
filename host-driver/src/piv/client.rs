//! The client itself, and the one step every session starts with: SELECT of the PIV
//! application.

use crate::error::{PivError, Result};
use proto::piv::{ins, Algorithm, PIV_AID};
use proto::{tlv, Sw, Transport};
use serde::Serialize;

/// What SELECT told about the PIV application.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Applet {
    /// The application identifier (or PIX) the card reported, when it reported one.
    pub aid: Option<Vec<u8>>,
    /// The application label (tag 50), when given.
    pub label: Option<String>,
}

impl Applet {
    /// `61 { 4F <PIX or AID>, 79 {...}, 50 <label>, AC {...} }`; an empty answer is allowed
    /// (older cards say only 9000). Anything else is not a PIV application.
    pub fn parse(answer: &[u8]) -> Result<Applet> {
        const OP: &str = "select PIV";
        if answer.is_empty() {
            return Ok(Applet::default());
        }
        let apt = tlv::parse_exact(answer, 0x61)
            .map_err(|_| PivError::malformed(OP, "the answer is not an application property template (61)"))?;
        let aid = tlv::find(apt, 0x4F).map_err(|e| PivError::malformed(OP, format!("{e:?}")))?;
        if let Some(aid) = aid {
            // Either the PIX (00 00 10 00 01 00) or the whole AID (A0 00 00 03 08 ...).
            let is_piv = aid.starts_with(&PIV_AID[..5]) || aid.starts_with(&PIV_AID[5..9]);
            if !is_piv {
                return Err(PivError::malformed(OP, format!("application {} is not PIV", hex::encode_upper(aid))));
            }
        }
        let label = tlv::find(apt, 0x50).ok().flatten().map(|l| String::from_utf8_lossy(l).into_owned());
        Ok(Applet { aid: aid.map(<[u8]>::to_vec), label })
    }
}

/// The PIV client.
pub struct Piv<T> {
    pub(super) transport: T,
    /// The management key's algorithm once known: this client authenticated with it, the
    /// card's metadata told it, the caller said so, or the card gave a challenge under it.
    pub(super) mgmt_alg: Option<Algorithm>,
    /// Whether the card may hold a management-key authentication this client made. Set by a
    /// successful [`Piv::authenticate`]; cleared only when the card certainly dropped it
    /// (it answered a new 9B step, or RESET). While set, nothing here sends a 9B step.
    pub(super) mgmt_authenticated: bool,
    /// The card refused a 9B challenge under every management-key algorithm.
    pub(super) no_card_challenge: bool,
}

impl<T: Transport> Piv<T> {
    pub fn new(transport: T) -> Self {
        Piv { transport, mgmt_alg: None, mgmt_authenticated: false, no_card_challenge: false }
    }
    pub fn transport(&mut self) -> &mut T {
        &mut self.transport
    }
    pub fn into_inner(self) -> T {
        self.transport
    }

    /// SELECT the PIV application. The full AID goes first (some cards, Nitrokey's among them,
    /// refuse the truncated forms); the truncated ones are tried only when the card says it
    /// does not know the full one. The answer must be PIV's application property template.
    pub fn select(&mut self) -> Result<Applet> {
        let mut refused = Sw::FILE_NOT_FOUND;
        for aid in [&PIV_AID[..], &PIV_AID[..9], &PIV_AID[..5]] {
            let (data, sw) = self.exchange(ins::SELECT, 0x04, 0x00, aid)?;
            match sw {
                Sw::OK => return Applet::parse(&data),
                Sw::FILE_NOT_FOUND | Sw::WRONG_DATA | Sw::INCORRECT_P1P2 | Sw::WRONG_LENGTH => refused = sw,
                sw => return Err(PivError::from_sw("select PIV", sw)),
            }
        }
        Err(PivError::NoPiv { sw: refused })
    }
}
