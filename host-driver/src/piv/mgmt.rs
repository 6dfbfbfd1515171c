//! The management key: authenticate (mutual, under the card's algorithm), end it, change it;
//! and the card's randomness, which comes as 9B challenges.

use proto::piv::metadata::{KeyAlgorithm, Metadata};
use proto::piv::{ins, key_ref, Algorithm};
use proto::{tlv, Sw, Transport};
use zeroize::Zeroizing;

use super::client::Piv;
use crate::error::{PivError, Result};
use crate::mgmt::MgmtKey;

impl<T: Transport> Piv<T> {
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
    pub(super) fn reported_management_algorithm(&mut self) -> Result<Option<Algorithm>> {
        match self.metadata(key_ref::MANAGEMENT) {
            Ok(Metadata { algorithm: Some(KeyAlgorithm::Piv(a)), .. }) => {
                Ok(Some(a).filter(|a| a.block_len().is_some()))
            }
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
    pub(super) fn card_challenge(&mut self) -> Result<Option<Vec<u8>>> {
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
}
