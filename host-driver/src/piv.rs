//! The PIV client: typed operations over a [`Transport`]. GET RESPONSE (61xx), wrong-Le
//! retries (6Cxx) and command chaining are handled here, once, for every operation.

use p256::elliptic_curve::sec1::ToEncodedPoint;
use proto::piv::{ins, key_ref, object, Algorithm, PinPolicy, Slot, TouchPolicy, PIV_AID};
use proto::secret::{Pin, PinBlock, Puk};
use proto::{tlv, CommandApdu, Sw, Transport, TransportError};
use serde::Serialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{PivError, Result};
use crate::mgmt::MgmtKey;

/// What VERIFY (or CHANGE / RESET RETRY) said about the secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PinOutcome {
    Ok,
    WrongPin { retries_left: u8 },
    Blocked,
}

/// The PIN state learned without spending a try.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PinStatus {
    Verified,
    NotVerified { retries_left: u8 },
    Blocked,
}

/// An ECDSA signature in both encodings hosts need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcdsaSignature {
    /// ASN.1 DER `SEQUENCE { r, s }`, as the card returns it (openssl's format).
    pub der: Vec<u8>,
    /// r || s, 64 bytes (WebCrypto's format).
    pub raw: [u8; 64],
}

/// GET METADATA, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Metadata {
    pub algorithm: Option<u8>,
    pub pin_policy: Option<u8>,
    pub touch_policy: Option<u8>,
    /// 1 generated on the card, 2 imported.
    pub origin: Option<u8>,
    #[serde(skip)]
    pub public_key: Option<Vec<u8>>,
    pub is_default: Option<bool>,
    pub retries_total: Option<u8>,
    pub retries_remaining: Option<u8>,
}

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
    transport: T,
    /// The management key's algorithm once known: this client authenticated with it, the
    /// card's metadata told it, the caller said so, or the card gave a challenge under it.
    mgmt_alg: Option<Algorithm>,
    /// Whether the card may hold a management-key authentication this client made. Set by a
    /// successful [`Piv::authenticate`]; cleared only when the card certainly dropped it
    /// (it answered a new 9B step, or RESET). While set, nothing here sends a 9B step.
    mgmt_authenticated: bool,
    /// The card refused a 9B challenge under every management-key algorithm.
    no_card_challenge: bool,
}

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

fn pad(op: &'static str, secret: &str) -> Result<PinBlock> {
    PinBlock::pad(secret.as_bytes()).ok_or_else(|| {
        PivError::Input(format!("{op}: PIN/PUK must be 6 to 8 characters other than FF (got {})", secret.len()))
    })
}

/// Command data holding PIN or PUK blocks, wiped when dropped.
fn blocks(blocks: &[&PinBlock]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(blocks.iter().flat_map(|b| b.as_bytes().iter().copied()).collect())
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
    pub fn new(transport: T) -> Self {
        Piv { transport, mgmt_alg: None, mgmt_authenticated: false, no_card_challenge: false }
    }
    pub fn transport(&mut self) -> &mut T {
        &mut self.transport
    }
    pub fn into_inner(self) -> T {
        self.transport
    }

    /// One APDU and its answer, split into data and status word.
    fn transmit_once(&mut self, apdu: &[u8]) -> Result<(Vec<u8>, Sw)> {
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
    fn transmit_le(&mut self, apdu: &[u8]) -> Result<(Vec<u8>, Sw)> {
        let (data, sw) = self.transmit_once(apdu)?;
        match sw.correct_le().and_then(|le| with_le(apdu, le)) {
            Some(again) => self.transmit_once(&again),
            None => Ok((data, sw)),
        }
    }

    /// One APDU, following 6Cxx with a corrected Le (see [`Self::transmit_le`]) and 61xx
    /// with GET RESPONSE.
    fn transmit(&mut self, apdu: &[u8]) -> Result<(Vec<u8>, Sw)> {
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
    fn call(&mut self, op: &'static str, ins: u8, p1: u8, p2: u8, data: &[u8]) -> Result<Vec<u8>> {
        let (resp, sw) = self.exchange(ins, p1, p2, data)?;
        if sw.is_ok() {
            Ok(resp)
        } else {
            Err(PivError::from_sw(op, sw))
        }
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

    // ---- PIN and PUK ----

    fn pin_outcome(op: &'static str, sw: Sw) -> Result<PinOutcome> {
        match sw {
            Sw::OK => Ok(PinOutcome::Ok),
            Sw::AUTH_METHOD_BLOCKED => Ok(PinOutcome::Blocked),
            sw => match sw.tries_left() {
                Some(0) => Ok(PinOutcome::Blocked),
                Some(n) => Ok(PinOutcome::WrongPin { retries_left: n }),
                None => Err(PivError::from_sw(op, sw)),
            },
        }
    }

    pub fn verify_pin(&mut self, pin: &Pin) -> Result<PinOutcome> {
        let block = blocks(&[&pad("verify PIN", pin.expose())?]);
        let (_, sw) = self.exchange(ins::VERIFY, 0x00, key_ref::PIN, &block)?;
        Self::pin_outcome("verify PIN", sw)
    }

    /// Empty VERIFY: the PIN state without spending a try.
    pub fn pin_status(&mut self) -> Result<PinStatus> {
        let (_, sw) = self.transmit(&[0x00, ins::VERIFY, 0x00, key_ref::PIN])?;
        match sw {
            Sw::OK => Ok(PinStatus::Verified),
            Sw::AUTH_METHOD_BLOCKED => Ok(PinStatus::Blocked),
            sw => match sw.tries_left() {
                Some(0) => Ok(PinStatus::Blocked),
                Some(n) => Ok(PinStatus::NotVerified { retries_left: n }),
                None => Err(PivError::from_sw("read PIN status", sw)),
            },
        }
    }

    pub fn logout(&mut self) -> Result<()> {
        let (_, sw) = self.transmit(&[0x00, ins::VERIFY, 0xFF, key_ref::PIN])?;
        if sw.is_ok() {
            Ok(())
        } else {
            Err(PivError::from_sw("log out", sw))
        }
    }

    fn change_reference(&mut self, op: &'static str, reference: u8, old: &str, new: &str) -> Result<PinOutcome> {
        let data = blocks(&[&pad(op, old)?, &pad(op, new)?]);
        let (_, sw) = self.exchange(ins::CHANGE_REFERENCE, 0x00, reference, &data)?;
        Self::pin_outcome(op, sw)
    }

    pub fn change_pin(&mut self, old: &Pin, new: &Pin) -> Result<PinOutcome> {
        self.change_reference("change PIN", key_ref::PIN, old.expose(), new.expose())
    }

    /// Change the PUK. The outcome's retries count PUK tries.
    pub fn change_puk(&mut self, old: &Puk, new: &Puk) -> Result<PinOutcome> {
        self.change_reference("change PUK", key_ref::PUK, old.expose(), new.expose())
    }

    /// RESET RETRY COUNTER: a new PIN, authorised by the PUK. The outcome counts PUK tries.
    pub fn unblock_pin(&mut self, puk: &Puk, new_pin: &Pin) -> Result<PinOutcome> {
        let data = blocks(&[&pad("unblock PIN", puk.expose())?, &pad("unblock PIN", new_pin.expose())?]);
        let (_, sw) = self.exchange(ins::RESET_RETRY, 0x00, key_ref::PIN, &data)?;
        Self::pin_outcome("unblock PIN", sw)
    }

    /// (remaining, total) PIN tries, spending none: from metadata when the card has it, else
    /// from an empty VERIFY, which gives no total (and no count while the PIN is verified).
    pub fn pin_retries(&mut self) -> Result<(Option<u8>, Option<u8>)> {
        match self.metadata(key_ref::PIN) {
            Ok(m) if m.retries_remaining.is_some() => Ok((m.retries_remaining, m.retries_total)),
            Ok(_) | Err(PivError::NotSupported { .. }) | Err(PivError::Card { .. }) => match self.pin_status()? {
                PinStatus::Verified => Ok((None, None)),
                PinStatus::NotVerified { retries_left } => Ok((Some(retries_left), None)),
                PinStatus::Blocked => Ok((Some(0), None)),
            },
            Err(e) => Err(e),
        }
    }

    /// The PUK's remaining tries, spending none: from metadata; `None` when the card has no
    /// metadata (nothing else counts PUK tries without risking one).
    pub fn puk_retries(&mut self) -> Result<Option<u8>> {
        match self.metadata(key_ref::PUK) {
            Ok(m) => Ok(m.retries_remaining),
            Err(PivError::NotSupported { .. }) | Err(PivError::Card { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    // ---- management key ----

    /// Mutual authentication with the management key (9B), as libykpiv does it.
    pub fn authenticate(&mut self, key: &MgmtKey) -> Result<()> {
        const OP: &str = "management key authentication";
        let alg = key.alg;
        let bl = alg.block_len().ok_or_else(|| PivError::Input("not a management-key algorithm".into()))?;
        let (resp, sw) =
            self.exchange(ins::GENERAL_AUTHENTICATE, alg as u8, key_ref::MANAGEMENT, &[0x7C, 0x02, 0x80, 0x00])?;
        // Whatever it answered, the card has dropped any earlier management-key authentication.
        self.mgmt_authenticated = false;
        if !sw.is_ok() {
            return Err(PivError::from_sw(OP, sw));
        }
        let body = tlv::parse_exact(&resp, 0x7C).map_err(|e| PivError::malformed(OP, format!("{e:?}")))?;
        let enc = tlv::find(body, 0x80)
            .ok()
            .flatten()
            .filter(|w| w.len() == bl)
            .ok_or_else(|| PivError::malformed(OP, "no witness of the block size"))?;
        let mut witness = Zeroizing::new(enc.to_vec());
        key.crypt(&mut witness, false)?;
        let mut challenge = vec![0u8; bl];
        p256::elliptic_curve::rand_core::RngCore::fill_bytes(
            &mut p256::elliptic_curve::rand_core::OsRng,
            &mut challenge,
        );
        let mut inner = Zeroizing::new(tlv::to_vec(0x80, &witness));
        inner.extend(tlv::to_vec(0x81, &challenge));
        let (resp, sw) = self.exchange(
            ins::GENERAL_AUTHENTICATE,
            alg as u8,
            key_ref::MANAGEMENT,
            &Zeroizing::new(tlv::to_vec(0x7C, &inner)),
        )?;
        if sw == Sw::SECURITY_STATUS_NOT_SATISFIED {
            return Err(PivError::NotAuthorized { op: OP, hint: "wrong management key" });
        }
        if !sw.is_ok() {
            return Err(PivError::from_sw(OP, sw));
        }
        // The card proves it knows the key too: a card that cannot is not the card we think.
        let mut expect = challenge;
        key.crypt(&mut expect, true)?;
        let got = tlv::parse_exact(&resp, 0x7C).ok().and_then(|b| tlv::find(b, 0x82).ok().flatten());
        if got != Some(&expect[..]) {
            return Err(PivError::malformed(OP, "the card's answer to our challenge is wrong"));
        }
        self.mgmt_alg = Some(alg);
        self.mgmt_authenticated = true;
        Ok(())
    }

    /// End the management-key authentication this client made, without a card reset (a PIN
    /// verified stays verified): a new 9B challenge step, never answered, which the card takes
    /// as the start of another authentication and so drops the one it held (the rule
    /// [`Piv::random`] relies on too). A card that refuses the step (6A86: another algorithm)
    /// is an error, and the caller should reset it.
    pub fn end_mgmt_authentication(&mut self) -> Result<()> {
        let alg = self.mgmt_alg.unwrap_or(Algorithm::Tdes);
        let (_, sw) =
            self.exchange(ins::GENERAL_AUTHENTICATE, alg as u8, key_ref::MANAGEMENT, &[0x7C, 0x02, 0x81, 0x00])?;
        self.mgmt_authenticated = false;
        if sw == Sw::INCORRECT_P1P2 {
            return Err(PivError::from_sw("ending the management-key authentication", sw));
        }
        Ok(())
    }

    /// Whether this client authenticated with the management key and the card may still hold
    /// that authentication (a reset of the card through [`Piv::transport`] is not seen here).
    pub fn is_mgmt_authenticated(&self) -> bool {
        self.mgmt_authenticated
    }

    /// Tell the client the management key's algorithm, for cards that cannot report it (no
    /// Yubico GET METADATA): [`Piv::random`] and [`Piv::authenticate_auto`] then use it.
    pub fn set_management_algorithm(&mut self, alg: Algorithm) -> Result<()> {
        if alg.block_len().is_none() {
            return Err(PivError::Input(format!("{} is not a management-key algorithm", alg.name())));
        }
        self.mgmt_alg = Some(alg);
        Ok(())
    }

    /// The management key's algorithm as the card reports it (Yubico GET METADATA); `None`
    /// when the card cannot tell.
    fn reported_management_algorithm(&mut self) -> Result<Option<Algorithm>> {
        match self.metadata(key_ref::MANAGEMENT) {
            Ok(Metadata { algorithm: Some(a), .. }) => Ok(Algorithm::from_byte(a).filter(|a| a.block_len().is_some())),
            Ok(_) | Err(PivError::NotSupported { .. } | PivError::Card { .. } | PivError::Empty { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Authenticate with `key`, under the algorithm the card reports (metadata), else the one
    /// this client knows. When neither is known and the card refuses the key's algorithm
    /// (6A86), the other algorithm of that key length is tried: a 24-byte key is 3DES or
    /// AES-192.
    pub fn authenticate_auto(&mut self, key: &MgmtKey) -> Result<()> {
        if let Some(alg) = self.reported_management_algorithm()?.or(self.mgmt_alg) {
            return self.authenticate(&if alg == key.alg { key.clone() } else { key.with_alg(alg)? });
        }
        match self.authenticate(key) {
            Err(PivError::Card { sw: Sw::INCORRECT_P1P2, .. }) if key.alg.key_len() == Some(24) => {
                let other = if key.alg == Algorithm::Tdes { Algorithm::Aes192 } else { Algorithm::Tdes };
                self.authenticate(&key.with_alg(other)?)
            }
            r => r,
        }
    }

    /// SET MANAGEMENT KEY (Yubico). Needs management-key authentication first.
    pub fn set_management_key(&mut self, new: &MgmtKey, touch: bool) -> Result<()> {
        let mut data = Zeroizing::new(Vec::with_capacity(3 + new.bytes().len()));
        data.extend([new.alg as u8, key_ref::MANAGEMENT, new.bytes().len() as u8]);
        data.extend(new.bytes());
        self.call("set management key", ins::SET_MGMKEY, 0xFF, if touch { 0xFE } else { 0xFF }, &data)?;
        self.mgmt_alg = Some(new.alg);
        Ok(())
    }

    // ---- keys ----

    /// GENERATE ASYMMETRIC KEY PAIR (P-256). Needs management-key authentication.
    pub fn generate(
        &mut self,
        slot: Slot,
        pin: Option<PinPolicy>,
        touch: Option<TouchPolicy>,
    ) -> Result<p256::PublicKey> {
        const OP: &str = "generate key";
        let mut inner = vec![0x80, 0x01, Algorithm::EccP256 as u8];
        if let Some(p) = pin {
            inner.extend([0xAA, 0x01, p as u8]);
        }
        if let Some(t) = touch {
            inner.extend([0xAB, 0x01, t as u8]);
        }
        let resp = self.call(OP, ins::GENERATE, 0x00, slot.key_ref(), &tlv::to_vec(0xAC, &inner))?;
        let body = tlv::parse_exact(&resp, 0x7F49).map_err(|e| PivError::malformed(OP, format!("{e:?}")))?;
        let point = tlv::find(body, 0x86).ok().flatten().ok_or_else(|| PivError::malformed(OP, "no public point"))?;
        p256::PublicKey::from_sec1_bytes(point).map_err(|e| PivError::malformed(OP, e.to_string()))
    }

    /// IMPORT KEY (Yubico): put a P-256 private key in `slot`.
    pub fn import_key(
        &mut self,
        slot: Slot,
        key: &p256::SecretKey,
        pin: Option<PinPolicy>,
        touch: Option<TouchPolicy>,
    ) -> Result<()> {
        let scalar = Zeroizing::new(key.to_bytes());
        let mut data = Zeroizing::new(Vec::with_capacity(40));
        tlv::write(&mut *data, 0x06, &scalar[..]).map_err(|_| PivError::Input("key too long".into()))?;
        if let Some(p) = pin {
            data.extend([0xAA, 0x01, p as u8]);
        }
        if let Some(t) = touch {
            data.extend([0xAB, 0x01, t as u8]);
        }
        self.call("import key", ins::IMPORT_KEY, Algorithm::EccP256 as u8, slot.key_ref(), &data).map(|_| ())
    }

    /// Sign a digest of up to 32 bytes with the key in `slot`.
    pub fn sign_digest(&mut self, slot: Slot, digest: &[u8]) -> Result<EcdsaSignature> {
        const OP: &str = "sign";
        if digest.is_empty() || digest.len() > 32 {
            return Err(PivError::Input(format!("digest must be 1 to 32 bytes, got {}", digest.len())));
        }
        let mut inner = vec![0x82, 0x00];
        inner.extend(tlv::to_vec(0x81, digest));
        let der = self.general_authenticate(OP, slot, &inner, 0x82)?;
        let sig = p256::ecdsa::Signature::from_der(&der).map_err(|e| PivError::malformed(OP, e.to_string()))?;
        Ok(EcdsaSignature { der, raw: sig.to_bytes().into() })
    }

    /// SHA-256 the message on the host, sign the digest on the card.
    pub fn sign_message(&mut self, slot: Slot, message: &[u8]) -> Result<EcdsaSignature> {
        self.sign_digest(slot, &Sha256::digest(message))
    }

    /// ECDH with the key in `slot`; returns the shared x-coordinate.
    pub fn ecdh(&mut self, slot: Slot, peer: &p256::PublicKey) -> Result<Vec<u8>> {
        const OP: &str = "key agreement";
        let mut inner = vec![0x82, 0x00];
        inner.extend(tlv::to_vec(0x85, peer.to_encoded_point(false).as_bytes()));
        self.general_authenticate(OP, slot, &inner, 0x82)
    }

    /// GENERAL AUTHENTICATE with a P-256 key: send `7C { inner }`, return the value of
    /// `want` inside the `7C` answer.
    fn general_authenticate(&mut self, op: &'static str, slot: Slot, inner: &[u8], want: u32) -> Result<Vec<u8>> {
        let alg = Algorithm::EccP256 as u8;
        let resp = self.call(op, ins::GENERAL_AUTHENTICATE, alg, slot.key_ref(), &tlv::to_vec(0x7C, inner))?;
        tlv::parse_exact(&resp, 0x7C)
            .ok()
            .and_then(|b| tlv::find(b, want).ok().flatten())
            .map(<[u8]>::to_vec)
            .ok_or_else(|| PivError::malformed(op, format!("no {want:02X} inside the 7C answer")))
    }

    /// `n` random bytes: the host's OS RNG, XORed with challenge bytes from the card when the
    /// card can give them without side effects, so the result is no weaker than either source.
    ///
    /// The card's bytes come from a management-key challenge request (GENERAL AUTHENTICATE 9B,
    /// `7C { 81 00 }`, OpenSC's source too; 8 or 16 bytes a round trip) under the management
    /// key's real algorithm: the one this client knows, else the card's metadata, else the
    /// first the card accepts of 3DES, AES-192, AES-128, AES-256 (6A86 means "not this one").
    /// Every 9B step ends a management-key authentication on the card, so while this client
    /// holds one ([`Piv::is_mgmt_authenticated`]) the card is not asked and the bytes are the
    /// host's alone: `authenticate`, `random`, `generate` works. (An authentication another
    /// program made on a shared reader is not known here.) A card that gives no challenge
    /// under any algorithm leaves the host's bytes too.
    pub fn random(&mut self, n: usize) -> Result<Vec<u8>> {
        use p256::elliptic_curve::rand_core::{OsRng, RngCore};
        let mut out = vec![0u8; n];
        OsRng.fill_bytes(&mut out);
        if n == 0 || self.mgmt_authenticated || self.no_card_challenge {
            return Ok(out);
        }
        let mut card = Vec::with_capacity(n + 16);
        while card.len() < n {
            match self.card_challenge()? {
                Some(c) => card.extend(c),
                None => return Ok(out),
            }
        }
        for (o, c) in out.iter_mut().zip(card) {
            *o ^= c;
        }
        Ok(out)
    }

    /// One challenge block from the card (see [`Piv::random`]); `None` when the card gives
    /// none under any management-key algorithm.
    fn card_challenge(&mut self) -> Result<Option<Vec<u8>>> {
        const OP: &str = "random";
        let known = match self.mgmt_alg {
            Some(alg) => Some(alg),
            None => self.reported_management_algorithm()?,
        };
        let mut candidates: Vec<Algorithm> = known.into_iter().collect();
        for alg in [Algorithm::Tdes, Algorithm::Aes192, Algorithm::Aes128, Algorithm::Aes256] {
            if !candidates.contains(&alg) {
                candidates.push(alg);
            }
        }
        for alg in candidates {
            let (resp, sw) =
                self.exchange(ins::GENERAL_AUTHENTICATE, alg as u8, key_ref::MANAGEMENT, &[0x7C, 0x02, 0x81, 0x00])?;
            match sw {
                Sw::OK => {
                    let block = tlv::parse_exact(&resp, 0x7C)
                        .ok()
                        .and_then(|b| tlv::find(b, 0x81).ok().flatten())
                        .filter(|c| Some(c.len()) == alg.block_len())
                        .ok_or_else(|| PivError::malformed(OP, "no 7C/81 challenge of the block size"))?;
                    self.mgmt_alg = Some(alg);
                    return Ok(Some(block.to_vec()));
                }
                // Not the key's algorithm: try the next one.
                Sw::INCORRECT_P1P2 | Sw::WRONG_DATA => continue,
                sw => {
                    tracing::debug!("the card gives no challenge under {} ({sw}): host randomness only", alg.name());
                    break;
                }
            }
        }
        self.no_card_challenge = true;
        Ok(None)
    }

    // ---- data objects ----

    fn tag_list(tag: u32) -> Vec<u8> {
        let b = tag.to_be_bytes();
        let start = b.iter().position(|x| *x != 0).unwrap_or(3);
        tlv::to_vec(0x5C, &b[start..])
    }

    /// GET DATA: the object's value inside its `53` (or `7E`) wrapper; `None` if absent.
    pub fn read_object(&mut self, tag: u32) -> Result<Option<Vec<u8>>> {
        let (resp, sw) = self.exchange(ins::GET_DATA, 0x3F, 0xFF, &Self::tag_list(tag))?;
        match sw {
            Sw::OK => {}
            Sw::FILE_NOT_FOUND => return Ok(None),
            sw => return Err(PivError::from_sw("read data object", sw)),
        }
        let outer = if tag == object::DISCOVERY { 0x7E } else { 0x53 };
        let value =
            tlv::parse_exact(&resp, outer).map_err(|e| PivError::malformed("read data object", format!("{e:?}")))?;
        Ok(if value.is_empty() { None } else { Some(value.to_vec()) })
    }

    /// PUT DATA (`value` is what goes inside `53`; empty deletes). Needs management-key auth.
    pub fn write_object(&mut self, tag: u32, value: &[u8]) -> Result<()> {
        let mut data = Self::tag_list(tag);
        data.extend(tlv::to_vec(0x53, value));
        self.call("write data object", ins::PUT_DATA, 0x3F, 0xFF, &data).map(|_| ())
    }

    /// The DER certificate in `slot`, if any.
    pub fn read_certificate(&mut self, slot: Slot) -> Result<Option<Vec<u8>>> {
        let Some(value) = self.read_object(slot.certificate_object())? else { return Ok(None) };
        let der = tlv::find(&value, 0x70)
            .map_err(|e| PivError::malformed("read certificate", format!("{e:?}")))?
            .ok_or_else(|| PivError::malformed("read certificate", "object has no 70 tag"))?;
        Ok(Some(der.to_vec()))
    }

    /// Store a DER certificate for `slot` (uncompressed, `71 01 00`).
    pub fn write_certificate(&mut self, slot: Slot, der: &[u8]) -> Result<()> {
        let mut value = tlv::to_vec(0x70, der);
        value.extend([0x71, 0x01, 0x00, 0xFE, 0x00]);
        self.write_object(slot.certificate_object(), &value)
    }

    pub fn delete_certificate(&mut self, slot: Slot) -> Result<()> {
        self.write_object(slot.certificate_object(), &[])
    }

    // ---- Yubico extensions (a plain PIV card answers NotSupported) ----

    pub fn version(&mut self) -> Result<[u8; 3]> {
        let v = self.call("get version", ins::GET_VERSION, 0, 0, &[])?;
        v.try_into().map_err(|_| PivError::malformed("get version", "not 3 bytes"))
    }

    pub fn serial(&mut self) -> Result<u32> {
        let s = self.call("get serial", ins::GET_SERIAL, 0, 0, &[])?;
        Ok(u32::from_be_bytes(s.try_into().map_err(|_| PivError::malformed("get serial", "not 4 bytes"))?))
    }

    /// GET METADATA for a slot, the PIN (80), the PUK (81) or the management key (9B).
    pub fn metadata(&mut self, reference: u8) -> Result<Metadata> {
        let resp = self.call("get metadata", ins::GET_METADATA, 0, reference, &[])?;
        let mut m = Metadata::default();
        for item in tlv::iter(&resp) {
            let item = item.map_err(|e| PivError::malformed("get metadata", format!("{e:?}")))?;
            match (item.tag, item.value) {
                (0x01, [a]) => m.algorithm = Some(*a),
                (0x02, [p, t]) => (m.pin_policy, m.touch_policy) = (Some(*p), Some(*t)),
                (0x03, [o]) => m.origin = Some(*o),
                (0x04, v) => m.public_key = tlv::find(v, 0x86).ok().flatten().map(<[u8]>::to_vec),
                (0x05, [d]) => m.is_default = Some(*d != 0),
                (0x06, [total, left]) => (m.retries_total, m.retries_remaining) = (Some(*total), Some(*left)),
                _ => {}
            }
        }
        Ok(m)
    }

    /// ATTEST: a certificate for the key generated in `slot`, signed by the attestation key.
    pub fn attest(&mut self, slot: Slot) -> Result<Vec<u8>> {
        self.call("attest", ins::ATTEST, slot.key_ref(), 0, &[])
    }

    /// Delete the key of `slot` (MOVE KEY with destination FF, YubiKey 5.7): needs the
    /// management key. A card without it answers 6D00 (the error says "not supported").
    pub fn delete_key(&mut self, slot: Slot) -> Result<()> {
        self.call("delete key", ins::MOVE_KEY, 0xFF, slot.key_ref(), &[]).map(|_| ())
    }

    /// Move the key of `from` to the empty slot `to` (MOVE KEY, YubiKey 5.7): needs the
    /// management key.
    pub fn move_key(&mut self, from: Slot, to: Slot) -> Result<()> {
        self.call("move key", ins::MOVE_KEY, to.key_ref(), from.key_ref(), &[]).map(|_| ())
    }

    /// SET PIN RETRIES: needs management key and PIN; resets PIN and PUK to defaults.
    pub fn set_pin_retries(&mut self, pin: u8, puk: u8) -> Result<()> {
        self.call("set PIN retries", ins::SET_PIN_RETRIES, pin, puk, &[]).map(|_| ())
    }

    /// RESET the PIV application; the card allows it only with PIN and PUK blocked.
    pub fn reset(&mut self) -> Result<()> {
        match self.exchange(ins::RESET, 0, 0, &[])? {
            (_, Sw::OK) => {
                // Factory state: the management key (and perhaps its algorithm) is the default.
                (self.mgmt_alg, self.mgmt_authenticated, self.no_card_challenge) = (None, false, false);
                Ok(())
            }
            (_, Sw::CONDITIONS_NOT_SATISFIED) => {
                Err(PivError::Card { op: "reset (block PIN and PUK first)", sw: Sw::CONDITIONS_NOT_SATISFIED })
            }
            (_, sw) => Err(PivError::from_sw("reset", sw)),
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
