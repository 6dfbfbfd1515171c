//! One key behind one slot: the host driver's PIV client over the key's transport (a virtual
//! key in this process, or a reader), what the key holds, and whether the user is logged in.

use cryptoki_sys::*;
use der::Decode;
use host_driver::piv::OldCertificate;
use host_driver::{MgmtKey, PinOutcome, Piv, PivError};
use proto::secret::Pin;
use proto::transport::{Hold, Transport, TransportError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::objects::{SlotContent, SLOTS};
use keys::Locator;

/// A PKCS#11 result: the CK_RV a call answers when it is not CKR_OK.
pub type Rv<T> = Result<T, CK_RV>;

/// What a driver error is to a PKCS#11 caller.
pub fn rv(e: &PivError) -> CK_RV {
    match e {
        PivError::Transport(TransportError::NoCard(_) | TransportError::Removed(_)) => CKR_DEVICE_REMOVED,
        PivError::Transport(_) => CKR_DEVICE_ERROR,
        PivError::NotAuthorized { .. } => CKR_USER_NOT_LOGGED_IN,
        PivError::PinBlocked { .. } => CKR_PIN_LOCKED,
        PivError::WrongSecret { .. } => CKR_PIN_INCORRECT,
        PivError::MemoryFailure { .. } => CKR_DEVICE_MEMORY,
        PivError::Input(_) => CKR_ARGUMENTS_BAD,
        _ => CKR_DEVICE_ERROR,
    }
}

/// A PIN as PIV takes it: 6 to 8 bytes (the card pads with FF).
pub fn pin_of(bytes: &[u8]) -> Rv<Pin> {
    if !(6..=8).contains(&bytes.len()) {
        return Err(CKR_PIN_LEN_RANGE);
    }
    let s = std::str::from_utf8(bytes).map_err(|_| CKR_PIN_INVALID)?;
    Ok(Pin::new(s.to_string()))
}

/// A token's card behind its own lock.
type Card = Arc<Mutex<Piv<Box<dyn Transport>>>>;

fn lock(card: &Card) -> MutexGuard<'_, Piv<Box<dyn Transport>>> {
    card.lock().unwrap_or_else(|p| p.into_inner())
}

/// Hold the card for one operation (a PC/SC transaction on a shared reader), so no other
/// program's commands come between its exchanges. If another program reset the card since our
/// last operation, the card's security status is gone with it (`reset_seen` records that, and
/// the answer is true), and PIV is selected again. Without a reset PIV is not selected again:
/// a SELECT would spend the context-specific login a PIN-always key (9C) takes just before it
/// signs, and a USB-Key has no other application to switch to.
fn hold(piv: &mut Piv<Box<dyn Transport>>, reset_seen: &AtomicBool) -> Rv<bool> {
    match piv.transport().hold().map_err(|e| rv(&PivError::Transport(e)))? {
        Hold::Alone | Hold::Shared { reset: false } => Ok(false),
        Hold::Shared { reset: true } => {
            reset_seen.store(true, Ordering::Relaxed);
            if let Err(e) = piv.select() {
                piv.transport().release();
                return Err(rv(&e));
            }
            Ok(true)
        }
    }
}

/// A signature decided under the slot's lock (session, login, key checked) and computed
/// after it is released, under the card's lock alone.
pub struct PendingSign {
    card: Card,
    reset_seen: Arc<AtomicBool>,
    slot: proto::piv::Slot,
    digest: [u8; 32],
}

/// `op` on the card, locked and held (see [`hold`]); it is told whether the card was reset.
fn on_card<T>(
    card: &Card,
    reset_seen: &AtomicBool,
    op: impl FnOnce(&mut Piv<Box<dyn Transport>>, bool) -> Rv<T>,
) -> Rv<T> {
    let mut piv = lock(card);
    let reset = hold(&mut piv, reset_seen)?;
    let out = op(&mut piv, reset);
    piv.transport().release();
    out
}

impl PendingSign {
    /// r || s. After a reset by another program the card refuses (CKR_USER_NOT_LOGGED_IN).
    pub fn run(self) -> Rv<[u8; 64]> {
        on_card(&self.card, &self.reset_seen, |piv, _| {
            piv.sign_digest(self.slot, &self.digest).map(|s| s.raw).map_err(|e| rv(&e))
        })
    }
}

pub struct Token {
    /// The card, with a lock of its own: a signature runs on it without the slot's lock, so
    /// the token's other calls go on meanwhile (see [`PendingSign`]).
    card: Card,
    /// A [`PendingSign`] saw another program reset the card: the logins are gone.
    reset_seen: Arc<AtomicBool>,
    pub label: String,
    pub serial: String,
    pub manufacturer: String,
    pub model: String,
    pub firmware: [u8; 2],
    pub contents: Vec<SlotContent>,
    pub user_logged_in: bool,
    /// The security officer is the management key: logged in, it may make keys and write or
    /// delete certificates.
    pub so_logged_in: bool,
    /// The SO's management key, checked at C_Login: the card is authenticated with it for one
    /// operation at a time (see [`Token::as_admin`]), never between them.
    so_key: Option<MgmtKey>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("label", &self.label).field("serial", &self.serial).finish()
    }
}

/// The common name in a DER Name, if any.
fn common_name(name: &x509_cert::name::Name) -> Option<String> {
    const CN: der::asn1::ObjectIdentifier = der::asn1::ObjectIdentifier::new_unwrap("2.5.4.3");
    name.0.iter().flat_map(|rdn| rdn.0.iter()).find(|a| a.oid == CN).and_then(|a| {
        der::asn1::Utf8StringRef::try_from(&a.value)
            .map(|s| s.as_str().to_string())
            .or_else(|_| der::asn1::PrintableStringRef::try_from(&a.value).map(|s| s.as_str().to_string()))
            .ok()
    })
}

impl Token {
    /// The token behind `source`: `Ok(None)` for a reader without a (PIV) card.
    pub fn from_source(source: &Locator) -> Result<Option<Token>, String> {
        let transport = match source.open_shared() {
            Ok(t) => t,
            Err(keys::Error::Pcsc(host_driver::pcsc::PcscError::NoCard { .. })) => return Ok(None),
            // The slot's description names the directory already.
            Err(keys::Error::OpenDir { source, .. }) => return Err(source.to_string()),
            Err(e) => return Err(keys::error::chain(&e)),
        };
        let name = transport.name();
        match Token::open(transport, &name) {
            Ok(t) => Ok(Some(t)),
            Err(PivError::NoPiv { .. }) if matches!(source, Locator::Reader(_)) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Read what the key behind `transport` holds; `name` labels it when no certificate does.
    pub fn open(transport: Box<dyn Transport>, name: &str) -> Result<Token, PivError> {
        let mut token = Token {
            card: Arc::new(Mutex::new(Piv::new(transport))),
            reset_seen: Arc::new(AtomicBool::new(false)),
            label: String::new(),
            serial: String::new(),
            manufacturer: "ukey".into(),
            model: String::new(),
            firmware: [0, 0],
            contents: Vec::new(),
            user_logged_in: false,
            so_logged_in: false,
            so_key: None,
        };
        let card = token.card.clone();
        let mut piv = lock(&card);
        piv.transport().hold()?;
        let read = token.read(&mut piv, name);
        piv.transport().release();
        drop(piv);
        read.map(|()| token)
    }

    fn read(&mut self, piv: &mut Piv<Box<dyn Transport>>, name: &str) -> Result<(), PivError> {
        piv.select()?;
        let version = piv.version().ok();
        self.serial = match piv.serial() {
            Ok(s) => s.to_string(),
            Err(_) => piv
                .read_object(proto::piv::object::CHUID)?
                .and_then(|c| proto::tlv::find(&c, 0x34).ok().flatten().map(|g| hex_upper(&g[..g.len().min(8)])))
                .unwrap_or_else(|| "0".into()),
        };
        for (slot, id, ..) in SLOTS {
            self.contents.extend(read_slot(piv, slot, id)?);
        }
        self.label = self
            .contents
            .iter()
            .find_map(|c| c.cert.as_ref())
            .and_then(|der| x509_cert::Certificate::from_der(der).ok())
            .and_then(|c| common_name(&c.tbs_certificate.subject))
            .unwrap_or_else(|| name.to_string());
        self.model = if version.is_some() { "PIV, Yubico ext" } else { "PIV" }.into();
        self.firmware = version.map(|v| [v[0], v[1]]).unwrap_or([0, 0]);
        Ok(())
    }

    /// Run one operation with the card locked and held (see [`hold`]); a reset by another
    /// program since the last one forgets this token's logins.
    fn held<T>(&mut self, op: impl FnOnce(&mut Self, &mut Piv<Box<dyn Transport>>) -> Rv<T>) -> Rv<T> {
        let (card, reset_seen) = (self.card.clone(), self.reset_seen.clone());
        on_card(&card, &reset_seen, |piv, reset| {
            if reset {
                self.forget_logins();
            }
            op(self, piv)
        })
    }

    /// The card was reset since the logins were made (seen here or by a [`PendingSign`]).
    fn forget_logins(&mut self) {
        self.reset_seen.store(false, Ordering::Relaxed);
        self.user_logged_in = false;
        self.so_logged_in = false;
        self.so_key = None;
    }

    /// Whether a [`PendingSign`] saw the card reset; if so the logins are forgotten now.
    pub fn sync_reset(&mut self) {
        if self.reset_seen.load(Ordering::Relaxed) {
            self.forget_logins();
        }
    }

    /// Whether the key is still there (a card can leave its reader). A card busy with a
    /// signature (which may wait for the reader) is taken to be there: that signature finds
    /// out for itself if it is not.
    pub fn is_present(&mut self) -> bool {
        match self.card.try_lock() {
            Ok(mut piv) => piv.transport().is_present(),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().transport().is_present(),
            Err(std::sync::TryLockError::WouldBlock) => true,
        }
    }

    pub fn content(&self, id: u8) -> Option<&SlotContent> {
        self.contents.iter().find(|c| c.id == id)
    }

    /// The SO's "PIN" is the management key in hex (48 digits for 3DES, 32/48/64 for AES as
    /// the key's metadata says). It is checked on the card, which drops the authentication
    /// again at once: admin operations authenticate for themselves.
    pub fn so_login(&mut self, hex: &[u8]) -> Rv<()> {
        let text = std::str::from_utf8(hex).map_err(|_| CKR_PIN_INVALID)?;
        let key = MgmtKey::from_hex(text, None).map_err(|_| CKR_PIN_LEN_RANGE)?;
        self.held(|t, piv| {
            piv.authenticate_auto(&key).map_err(|e| match e {
                PivError::NotAuthorized { .. } => CKR_PIN_INCORRECT,
                e => rv(&e),
            })?;
            t.end_mgmt(piv)?;
            (t.so_logged_in, t.so_key) = (true, Some(key));
            Ok(())
        })
    }

    /// Run `op` with the card authenticated with the management key, for `op` alone: the SO's
    /// key, or for a logged-in user the configured one (`mgmt_key`). The authentication ends
    /// when `op` does, whatever its outcome, so between operations other programs on a shared
    /// reader find the card locked.
    pub fn as_admin<T>(
        &mut self,
        configured: Option<&str>,
        op: impl FnOnce(&mut Self, &mut Piv<Box<dyn Transport>>) -> Rv<T>,
    ) -> Rv<T> {
        let key = match (&self.so_key, configured) {
            (Some(k), _) => k.clone(),
            (None, Some(hex)) if self.user_logged_in => MgmtKey::from_hex(hex, None).map_err(|_| {
                tracing::error!("the configured management key (mgmt_key) is not a key in hex");
                CKR_GENERAL_ERROR
            })?,
            _ => return Err(CKR_USER_NOT_LOGGED_IN),
        };
        self.held(|t, piv| {
            piv.authenticate_auto(&key).map_err(|e| match e {
                PivError::NotAuthorized { .. } => {
                    if t.so_key.is_none() {
                        tracing::error!("the configured management key (mgmt_key) is not this key's");
                    }
                    CKR_PIN_INCORRECT
                }
                e => rv(&e),
            })?;
            let out = op(t, piv);
            t.end_mgmt(piv)?;
            out
        })
    }

    /// End the management-key authentication (`Piv::end_mgmt_authentication`: an unanswered
    /// 9B step; the PIN stays verified). Should the card not take the step, it is reset, which
    /// ends every login (the module forgets them too).
    fn end_mgmt(&mut self, piv: &mut Piv<Box<dyn Transport>>) -> Rv<()> {
        match piv.end_mgmt_authentication() {
            Ok(()) => return Ok(()),
            Err(e) => tracing::warn!("ending the management-key authentication failed ({e}): resetting the card"),
        }
        self.forget_logins();
        piv.transport().reset().map_err(|e| rv(&PivError::Transport(e)))?;
        piv.select().map_err(|e| rv(&e))?;
        Ok(())
    }

    fn set_content(&mut self, content: SlotContent) {
        self.contents.retain(|c| c.id != content.id);
        self.contents.push(content);
        self.contents.sort_by_key(|c| c.id);
    }

    /// GENERATE a P-256 key pair in the slot of CKA_ID `id`: its point. The slot's certificate,
    /// if any, stays ([`OldCertificate::Keep`]: it is an object of its own, which the
    /// application deletes or replaces, as on any PIV card). `configured`: see
    /// [`Token::as_admin`], as for every operation below.
    pub fn generate(&mut self, configured: Option<&str>, id: u8) -> Rv<Vec<u8>> {
        let (slot, ..) = SLOTS.iter().copied().find(|(_, i, ..)| *i == id).ok_or(CKR_TEMPLATE_INCONSISTENT)?;
        self.as_admin(configured, |t, piv| {
            let public = piv.regenerate(slot, None, None, OldCertificate::Keep).map_err(|e| rv(&e))?.public;
            let point = public.to_sec1_bytes().to_vec();
            let mut content = t.content(id).cloned().unwrap_or_else(|| SlotContent::key_only(slot, id, point.clone()));
            content.point = point.clone();
            (content.private_key, content.public_key) = (true, true);
            t.set_content(content);
            Ok(point)
        })
    }

    /// Write a certificate to the slot of `id`.
    pub fn write_certificate(&mut self, configured: Option<&str>, id: u8, der: &[u8]) -> Rv<()> {
        let (slot, ..) = SLOTS.iter().copied().find(|(_, i, ..)| *i == id).ok_or(CKR_TEMPLATE_INCONSISTENT)?;
        let content = SlotContent::from_cert(slot, id, der.to_vec()).ok_or(CKR_ATTRIBUTE_VALUE_INVALID)?;
        self.as_admin(configured, |t, piv| {
            piv.write_certificate(slot, der).map_err(|e| rv(&e))?;
            t.set_content(content);
            Ok(())
        })
    }

    /// Delete the certificate of `id`; its key stays.
    pub fn delete_certificate(&mut self, configured: Option<&str>, id: u8) -> Rv<()> {
        let slot = self.content(id).ok_or(CKR_OBJECT_HANDLE_INVALID)?.slot;
        self.as_admin(configured, |t, piv| {
            piv.delete_certificate(slot).map_err(|e| rv(&e))?;
            // Without its certificate the slot shows what its metadata says, or nothing.
            t.contents.retain(|c| c.id != id);
            if let Some(c) = read_slot(piv, slot, id).map_err(|e| rv(&e))? {
                t.set_content(c);
            }
            Ok(())
        })
    }

    /// Delete the private key of `id` from the card (MOVE KEY, YubiKey 5.7; a card without it
    /// refuses: CKR_ACTION_PROHIBITED). Its public key object stays until destroyed too.
    pub fn delete_key(&mut self, configured: Option<&str>, id: u8) -> Rv<()> {
        let slot = self.content(id).filter(|c| c.private_key).ok_or(CKR_OBJECT_HANDLE_INVALID)?.slot;
        self.as_admin(configured, |t, piv| {
            match piv.delete_key(slot) {
                Ok(()) => {}
                Err(PivError::NotSupported { .. }) => return Err(CKR_ACTION_PROHIBITED),
                Err(e) => return Err(rv(&e)),
            }
            if let Some(c) = t.contents.iter_mut().find(|c| c.id == id) {
                c.private_key = false;
            }
            Ok(())
        })
    }

    /// Remove the public key object of `id`, whose private key is gone (a PIV public key is
    /// part of its slot's key pair: while the private key is there it stays). Nothing changes
    /// on the card, but only the security officer may do it, as any destruction.
    pub fn remove_public_key(&mut self, configured: Option<&str>, id: u8) -> Rv<()> {
        self.as_admin(configured, |t, _| {
            let c = t.contents.iter_mut().find(|c| c.id == id && c.public_key).ok_or(CKR_OBJECT_HANDLE_INVALID)?;
            if c.private_key {
                return Err(CKR_ACTION_PROHIBITED);
            }
            c.public_key = false;
            t.contents.retain(|c| c.cert.is_some() || c.public_key || c.private_key);
            Ok(())
        })
    }

    /// ECDH with the key of `id` and the peer's point: the shared x coordinate.
    pub fn ecdh(&mut self, id: u8, peer: &[u8]) -> Rv<Vec<u8>> {
        self.held(|t, piv| {
            let slot = t.content(id).ok_or(CKR_KEY_HANDLE_INVALID)?.slot;
            let peer = p256::PublicKey::from_sec1_bytes(peer).map_err(|_| CKR_MECHANISM_PARAM_INVALID)?;
            piv.ecdh(slot, &peer).map_err(|e| rv(&e))
        })
    }

    /// The PIN's state as token flags, read without spending a try (metadata where the key
    /// has it, else an empty VERIFY, which cannot tell "low" without the total).
    pub fn pin_flags(&mut self) -> Rv<CK_FLAGS> {
        self.held(|_, piv| {
            let (left, total) = piv.pin_retries().map_err(|e| rv(&e))?;
            Ok(match left {
                Some(0) => CKF_USER_PIN_LOCKED,
                Some(1) => CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_COUNT_LOW,
                Some(n) if total.is_some_and(|t| n < t) => CKF_USER_PIN_COUNT_LOW,
                _ => 0,
            })
        })
    }

    /// VERIFY the PIN (C_Login, and the context-specific login before a 9C signature).
    pub fn verify(&mut self, pin: &[u8]) -> Rv<()> {
        self.held(|_, piv| {
            let pin = pin_of(pin)?;
            match piv.verify_pin(&pin).map_err(|e| rv(&e))? {
                PinOutcome::Ok => Ok(()),
                PinOutcome::WrongPin { .. } => Err(CKR_PIN_INCORRECT),
                PinOutcome::Blocked => Err(CKR_PIN_LOCKED),
            }
        })
    }

    /// C_Logout (and C_Finalize, and the close of a token's last session). The SO's key is
    /// forgotten: the card holds no management-key authentication between operations. The
    /// user's PIN session ends on the card (VERIFY P1=FF).
    pub fn logout(&mut self) -> Rv<()> {
        self.held(|t, piv| {
            t.user_logged_in = false;
            if std::mem::take(&mut t.so_logged_in) {
                t.so_key = None;
                return Ok(());
            }
            piv.logout().map_err(|e| rv(&e))
        })
    }

    pub fn change_pin(&mut self, old: &[u8], new: &[u8]) -> Rv<()> {
        self.held(|_, piv| {
            let (old, new) = (pin_of(old)?, pin_of(new)?);
            match piv.change_pin(&old, &new).map_err(|e| rv(&e))? {
                PinOutcome::Ok => Ok(()),
                PinOutcome::WrongPin { .. } => Err(CKR_PIN_INCORRECT),
                PinOutcome::Blocked => Err(CKR_PIN_LOCKED),
            }
        })
    }

    /// ECDSA over a 32-byte digest with the key of `id`, to be run without the slot's lock.
    pub fn signer(&self, id: u8, digest: [u8; 32]) -> Rv<PendingSign> {
        let slot = self.content(id).ok_or(CKR_KEY_HANDLE_INVALID)?.slot;
        Ok(PendingSign { card: self.card.clone(), reset_seen: self.reset_seen.clone(), slot, digest })
    }

    pub fn random(&mut self, n: usize) -> Rv<Vec<u8>> {
        self.held(|_, piv| piv.random(n).map_err(|e| rv(&e)))
    }
}

/// What PIV slot `slot` shows: its certificate's key and names, else a key its metadata shows
/// (Yubico extension), else nothing.
fn read_slot(
    piv: &mut Piv<Box<dyn Transport>>,
    slot: proto::piv::Slot,
    id: u8,
) -> Result<Option<SlotContent>, PivError> {
    if let Some(mut c) = piv.read_certificate(slot)?.and_then(|der| SlotContent::from_cert(slot, id, der)) {
        // A certificate can outlive its key (deleted with MOVE KEY): metadata says, where the
        // card has it; a card without metadata is taken to hold the key.
        c.private_key = !matches!(piv.metadata(slot.key_ref()), Err(PivError::Empty { .. }));
        return Ok(Some(c));
    }
    Ok(piv.metadata(slot.key_ref()).ok().and_then(|m| m.public_key).and_then(|point| {
        p256::PublicKey::from_sec1_bytes(&point).ok().map(|_| SlotContent::key_only(slot, id, point.to_vec()))
    }))
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}
