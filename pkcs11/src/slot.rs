//! One slot: its token, the sessions on it, and every operation on them (login, search,
//! signing, key and certificate management), in Rust types. Each slot has a lock of its own:
//! an operation that waits for its card (a reader another program holds) holds that slot's
//! lock alone, and the module's other slots, and the module itself, go on answering.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use cryptoki_sys::*;
use sha2::Digest;

use keys::Locator;

use crate::objects::{self, Attr, Kind};
use crate::token::{Rv, Token};

/// A P-256 signature, r || s: what C_Sign returns.
pub const SIGNATURE_LEN: usize = 64;

/// What every slot of one module shares.
pub struct Shared {
    /// The next session or session-object handle: unique in the module.
    next_handle: AtomicU64,
    /// The management key from the configuration (`mgmt_key`): with it a logged-in user may
    /// generate and delete keys and write certificates, without the SO login.
    mgmt_key: Option<zeroize::Zeroizing<String>>,
}

impl Shared {
    pub fn new(mgmt_key: Option<zeroize::Zeroizing<String>>) -> Shared {
        Shared { next_handle: AtomicU64::new(1), mgmt_key }
    }

    fn handle(&self) -> CK_ULONG {
        self.next_handle.fetch_add(1, Ordering::Relaxed)
    }
}

/// A slot of the module, shared by the calls on it.
pub struct Slot {
    pub id: CK_SLOT_ID,
    pub description: String,
    /// Whether the slot has a token: read without the slot's lock (C_GetSlotList and friends
    /// answer while an operation waits for the card).
    present: AtomicBool,
    state: Mutex<SlotState>,
}

/// A slot's token and sessions, behind the slot's lock.
pub struct SlotState {
    id: CK_SLOT_ID,
    /// `None`: the key is gone (or could not be opened); the slot stays, empty.
    pub token: Option<Token>,
    sessions: HashMap<CK_SESSION_HANDLE, Session>,
    shared: Arc<Shared>,
}

impl Slot {
    pub fn new(id: CK_SLOT_ID, description: String, token: Option<Token>, shared: Arc<Shared>) -> Slot {
        Slot {
            id,
            description,
            present: AtomicBool::new(token.is_some()),
            state: Mutex::new(SlotState { id, token, sessions: HashMap::new(), shared }),
        }
    }

    pub fn is_present(&self) -> bool {
        self.present.load(Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` on the slot's state, under the slot's lock (waiting for an operation on it).
    pub fn run<T>(&self, f: impl FnOnce(&mut SlotState) -> Rv<T>) -> Rv<T> {
        f(&mut self.lock())
    }

    /// A reader's slot: a card that went leaves it empty (its sessions end: their handles are
    /// returned, for the module to forget), a card that came is opened. A slot in use is left
    /// as it is: its operation finds out for itself if the card went.
    pub fn refresh(&self, source: &Locator) -> Vec<CK_SESSION_HANDLE> {
        let mut s = match self.state.try_lock() {
            Ok(s) => s,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Vec::new(),
        };
        let mut gone = Vec::new();
        if s.token.as_mut().is_some_and(|t| !t.is_present()) {
            s.token = None;
            gone = s.sessions.drain().map(|(h, _)| h).collect();
        }
        if s.token.is_none() {
            if let Ok(Some(t)) = Token::from_source(source) {
                s.token = Some(t);
            }
        }
        self.present.store(s.token.is_some(), Ordering::SeqCst);
        gone
    }

    /// C_Finalize: a logged-in token is logged out (its PIN session ends on the card), so the
    /// key is left locked for whoever uses it next.
    pub fn finalize(&self) {
        let mut s = self.lock();
        if let Some(t) = s.token.as_mut() {
            t.sync_reset();
            if t.user_logged_in || t.so_logged_in {
                if let Err(rv) = t.logout() {
                    tracing::warn!("{}: logging out at C_Finalize failed ({rv:#x})", t.label);
                }
            }
        }
    }
}

struct SignOp {
    mechanism: CK_MECHANISM_TYPE,
    key_id: u8,
    /// Data of SignUpdate, for the hashing mechanisms.
    data: Vec<u8>,
    /// 9C: the PIN was given again for this operation (CKU_CONTEXT_SPECIFIC).
    always_authenticate: bool,
    context_login: bool,
}

struct Session {
    flags: CK_FLAGS,
    found: Option<Vec<CK_OBJECT_HANDLE>>,
    sign: Option<SignOp>,
    /// Secrets C_DeriveKey made: session objects, gone with the session.
    secrets: Vec<(CK_OBJECT_HANDLE, Secret)>,
}

/// A derived secret (ECDH), as a generic secret key object of its session.
struct Secret {
    value: zeroize::Zeroizing<Vec<u8>>,
    /// Its value may be read (CKA_SENSITIVE false, CKA_EXTRACTABLE true, as asked).
    readable: bool,
}

/// Handles of session objects carry this bit; token objects' never do.
const SESSION_OBJECT: CK_OBJECT_HANDLE = 1 << 40;

fn secret_attribute(s: &Secret, t: CK_ATTRIBUTE_TYPE) -> Attr {
    let b = |v: bool| Attr::Value(vec![v as u8]);
    let u = |v: CK_ULONG| Attr::Value(v.to_ne_bytes().to_vec());
    match t {
        CKA_CLASS => u(CKO_SECRET_KEY),
        CKA_KEY_TYPE => u(CKK_GENERIC_SECRET),
        CKA_TOKEN | CKA_PRIVATE | CKA_MODIFIABLE | CKA_LOCAL => b(false),
        CKA_LABEL => Attr::Value(b"ECDH secret".to_vec()),
        CKA_ID => Attr::Value(Vec::new()),
        CKA_VALUE_LEN => u(s.value.len() as CK_ULONG),
        CKA_VALUE if s.readable => Attr::Value(s.value.to_vec()),
        CKA_VALUE => Attr::Sensitive,
        CKA_SENSITIVE | CKA_ALWAYS_SENSITIVE => b(!s.readable),
        CKA_EXTRACTABLE => b(s.readable),
        CKA_NEVER_EXTRACTABLE => b(false),
        CKA_ENCRYPT | CKA_DECRYPT | CKA_SIGN | CKA_VERIFY | CKA_WRAP | CKA_UNWRAP | CKA_DERIVE => b(false),
        _ => Attr::Invalid,
    }
}

/// The value of attribute `t` in a template, if given.
fn given(template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)], t: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
    template.iter().find(|(ty, _)| *ty == t).map(|(_, v)| v.as_slice())
}

fn flag(template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)], t: CK_ATTRIBUTE_TYPE) -> Option<bool> {
    given(template, t).map(|v| v.first().is_some_and(|b| *b != 0))
}

/// The PIV slot a template names by CKA_ID (01 9A, 02 9C, 03 9D, 04 9E).
fn piv_id(templates: &[&[(CK_ATTRIBUTE_TYPE, Vec<u8>)]]) -> Rv<u8> {
    let id = templates.iter().find_map(|t| given(t, CKA_ID));
    match id {
        Some([id @ 1..=4]) => Ok(*id),
        Some(_) => Err(CKR_ATTRIBUTE_VALUE_INVALID),
        None => {
            tracing::warn!("a key pair or certificate needs CKA_ID 01-04: it names the PIV slot (9A, 9C, 9D, 9E)");
            Err(CKR_TEMPLATE_INCOMPLETE)
        }
    }
}

/// What C_GetSessionInfo reports.
pub struct SessionInfo {
    pub slot: CK_SLOT_ID,
    pub state: CK_STATE,
    pub flags: CK_FLAGS,
}

/// What a C_Sign call gives back.
pub enum SignOut {
    /// The caller asked for the length only (a null buffer): nothing was signed.
    Length(usize),
    /// Computed by the caller after the slot's lock is released.
    Signature(crate::token::PendingSign),
}

/// The 32 bytes P-256 signs for `mechanism` over `data`: a digest given (CKM_ECDSA, cut or
/// zero-padded on the left to the curve's size, as ECDSA reads it) or computed here.
pub fn to_sign(mechanism: CK_MECHANISM_TYPE, data: &[u8]) -> Rv<[u8; 32]> {
    let mut out = [0u8; 32];
    match mechanism {
        CKM_ECDSA => {
            if data.is_empty() {
                return Err(CKR_DATA_LEN_RANGE);
            }
            let n = data.len().min(32);
            out[32 - n..].copy_from_slice(&data[..n]);
        }
        // A 20-byte hash is its own integer: zero-padded on the left.
        CKM_ECDSA_SHA1 => out[12..].copy_from_slice(&sha1::Sha1::digest(data)),
        CKM_ECDSA_SHA256 => out.copy_from_slice(&sha2::Sha256::digest(data)),
        CKM_ECDSA_SHA384 => out.copy_from_slice(&sha2::Sha384::digest(data)[..32]),
        _ => return Err(CKR_MECHANISM_INVALID),
    }
    Ok(out)
}

impl SlotState {
    pub fn token(&mut self) -> Rv<&mut Token> {
        let t = self.token.as_mut().ok_or(CKR_TOKEN_NOT_PRESENT)?;
        t.sync_reset();
        Ok(t)
    }

    /// (all sessions, read-write ones) on this token.
    pub fn session_counts(&self) -> (usize, usize) {
        (self.sessions.len(), self.sessions.values().filter(|s| s.flags & CKF_RW_SESSION != 0).count())
    }

    fn session(&mut self, h: CK_SESSION_HANDLE) -> Rv<&mut Session> {
        self.sessions.get_mut(&h).ok_or(CKR_SESSION_HANDLE_INVALID)
    }

    /// A new session: its handle, unique in the module (the module routes it here).
    pub fn open_session(&mut self, flags: CK_FLAGS) -> Rv<CK_SESSION_HANDLE> {
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(CKR_SESSION_PARALLEL_NOT_SUPPORTED);
        }
        if self.token()?.so_logged_in && flags & CKF_RW_SESSION == 0 {
            return Err(CKR_SESSION_READ_WRITE_SO_EXISTS);
        }
        let h = self.shared.handle();
        self.sessions.insert(h, Session { flags, found: None, sign: None, secrets: Vec::new() });
        Ok(h)
    }

    pub fn close_session(&mut self, h: CK_SESSION_HANDLE) -> Rv<()> {
        self.sessions.remove(&h).ok_or(CKR_SESSION_HANDLE_INVALID)?;
        // The last session of a token ends its login (PKCS#11 §5.6).
        if self.sessions.is_empty() {
            if let Ok(t) = self.token() {
                if t.user_logged_in || t.so_logged_in {
                    let _ = t.logout();
                }
            }
        }
        Ok(())
    }

    /// Close every session: their handles, for the module to forget.
    pub fn close_all(&mut self) -> Rv<Vec<CK_SESSION_HANDLE>> {
        let mine: Vec<_> = self.sessions.keys().copied().collect();
        for h in &mine {
            self.close_session(*h)?;
        }
        Ok(mine)
    }

    /// From the module's own state only: this never touches the card.
    pub fn session_info(&mut self, h: CK_SESSION_HANDLE) -> Rv<SessionInfo> {
        let flags = self.session(h)?.flags;
        let (slot, token) = (self.id, self.token.as_ref());
        let (user, so) = token.map_or((false, false), |t| (t.user_logged_in, t.so_logged_in));
        let rw = flags & CKF_RW_SESSION != 0;
        let state = match (rw, user, so) {
            (_, _, true) => CKS_RW_SO_FUNCTIONS,
            (false, false, _) => CKS_RO_PUBLIC_SESSION,
            (false, true, _) => CKS_RO_USER_FUNCTIONS,
            (true, false, _) => CKS_RW_PUBLIC_SESSION,
            (true, true, _) => CKS_RW_USER_FUNCTIONS,
        };
        Ok(SessionInfo { slot, state, flags })
    }

    pub fn login(&mut self, h: CK_SESSION_HANDLE, user: CK_USER_TYPE, pin: &[u8]) -> Rv<()> {
        self.session(h)?;
        match user {
            CKU_USER => {
                if self.token()?.user_logged_in {
                    return Err(CKR_USER_ALREADY_LOGGED_IN);
                }
                if self.token()?.so_logged_in {
                    return Err(CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
                }
                let t = self.token()?;
                t.verify(pin)?;
                t.user_logged_in = true;
                Ok(())
            }
            CKU_CONTEXT_SPECIFIC => {
                let wants = self.session(h)?.sign.as_ref().is_some_and(|op| op.always_authenticate);
                if !wants {
                    return Err(CKR_OPERATION_NOT_INITIALIZED);
                }
                self.token()?.verify(pin)?;
                if let Some(op) = self.session(h)?.sign.as_mut() {
                    op.context_login = true;
                }
                Ok(())
            }
            CKU_SO => {
                let t = self.token()?;
                if t.so_logged_in {
                    return Err(CKR_USER_ALREADY_LOGGED_IN);
                }
                if t.user_logged_in {
                    return Err(CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
                }
                if self.sessions.values().any(|s| s.flags & CKF_RW_SESSION == 0) {
                    return Err(CKR_SESSION_READ_ONLY_EXISTS);
                }
                self.token()?.so_login(pin)
            }
            _ => Err(CKR_USER_TYPE_INVALID),
        }
    }

    pub fn logout(&mut self, h: CK_SESSION_HANDLE) -> Rv<()> {
        self.session(h)?;
        let t = self.token()?;
        if !t.user_logged_in && !t.so_logged_in {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        t.logout()
    }

    pub fn set_pin(&mut self, h: CK_SESSION_HANDLE, old: &[u8], new: &[u8]) -> Rv<()> {
        let s = self.session(h)?;
        if s.flags & CKF_RW_SESSION == 0 {
            return Err(CKR_SESSION_READ_ONLY);
        }
        self.token()?.change_pin(old, new)
    }

    /// Whether `handle` names an object of the session's token that the session may see.
    fn visible(&mut self, handle: CK_OBJECT_HANDLE) -> Rv<(u8, Kind)> {
        let (s, id, kind) = objects::parse_handle(handle).ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        let slot = self.id;
        let t = self.token()?;
        let content = t.content(id).ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        if s != slot || !objects::kinds(content).contains(&kind) || (kind == Kind::Private && !t.user_logged_in) {
            return Err(CKR_OBJECT_HANDLE_INVALID);
        }
        Ok((id, kind))
    }

    pub fn find_init(&mut self, h: CK_SESSION_HANDLE, template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> Rv<()> {
        self.session(h)?;
        if self.session(h)?.found.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let slot = self.id;
        let t = self.token()?;
        let mut found = Vec::new();
        for c in &t.contents {
            for kind in objects::kinds(c) {
                if kind == Kind::Private && !t.user_logged_in {
                    continue;
                }
                let all =
                    template.iter().all(|(ty, want)| objects::attribute(c, kind, *ty) == Attr::Value(want.clone()));
                if all {
                    found.push(objects::handle(slot, c.id, kind));
                }
            }
        }
        self.session(h)?.found = Some(found);
        Ok(())
    }

    pub fn find(&mut self, h: CK_SESSION_HANDLE, max: usize) -> Rv<Vec<CK_OBJECT_HANDLE>> {
        let found = self.session(h)?.found.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let n = max.min(found.len());
        Ok(found.drain(..n).collect())
    }

    pub fn find_final(&mut self, h: CK_SESSION_HANDLE) -> Rv<()> {
        self.session(h)?.found.take().map(|_| ()).ok_or(CKR_OPERATION_NOT_INITIALIZED)
    }

    /// Attributes `types` of `object`, each a value or why there is none.
    pub fn attributes(
        &mut self,
        h: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        types: &[CK_ATTRIBUTE_TYPE],
    ) -> Rv<Vec<Attr>> {
        if object & SESSION_OBJECT != 0 {
            let s = self.session(h)?;
            let (_, secret) = s.secrets.iter().find(|(o, _)| *o == object).ok_or(CKR_OBJECT_HANDLE_INVALID)?;
            return Ok(types.iter().map(|t| secret_attribute(secret, *t)).collect());
        }
        self.session(h)?;
        let (id, kind) = self.visible(object)?;
        let c = self.token()?.content(id).ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        Ok(types.iter().map(|t| objects::attribute(c, kind, *t)).collect())
    }

    pub fn sign_init(&mut self, h: CK_SESSION_HANDLE, mechanism: CK_MECHANISM_TYPE, key: CK_OBJECT_HANDLE) -> Rv<()> {
        self.session(h)?;
        if self.session(h)?.sign.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        if !matches!(mechanism, CKM_ECDSA | CKM_ECDSA_SHA1 | CKM_ECDSA_SHA256 | CKM_ECDSA_SHA384) {
            return Err(CKR_MECHANISM_INVALID);
        }
        if !self.token()?.user_logged_in {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        let (id, kind) = self.visible(key).map_err(|_| CKR_KEY_HANDLE_INVALID)?;
        if kind != Kind::Private {
            return Err(CKR_KEY_TYPE_INCONSISTENT);
        }
        let always = self.token()?.content(id).is_some_and(|c| c.slot == proto::piv::Slot::Signature);
        self.session(h)?.sign =
            Some(SignOp { mechanism, key_id: id, data: Vec::new(), always_authenticate: always, context_login: false });
        Ok(())
    }

    /// C_Sign: `room` is the caller's buffer size, `None` for a length query.
    pub fn sign(&mut self, h: CK_SESSION_HANDLE, data: &[u8], room: Option<usize>) -> Rv<SignOut> {
        if self.session(h)?.sign.as_ref().is_some_and(|op| !op.data.is_empty()) {
            return Err(CKR_OPERATION_ACTIVE);
        }
        self.finish(h, Some(data), room)
    }

    pub fn sign_update(&mut self, h: CK_SESSION_HANDLE, part: &[u8]) -> Rv<()> {
        let op = self.session(h)?.sign.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        if op.mechanism == CKM_ECDSA {
            // A raw digest is one piece: no multi-part CKM_ECDSA.
            self.session(h)?.sign = None;
            return Err(CKR_KEY_FUNCTION_NOT_PERMITTED);
        }
        op.data.extend_from_slice(part);
        Ok(())
    }

    pub fn sign_final(&mut self, h: CK_SESSION_HANDLE, room: Option<usize>) -> Rv<SignOut> {
        self.finish(h, None, room)
    }

    /// The end of a signing operation: a length query or a short buffer keeps it going (so a
    /// caller asking the size first does not sign twice); anything else ends it.
    fn finish(&mut self, h: CK_SESSION_HANDLE, data: Option<&[u8]>, room: Option<usize>) -> Rv<SignOut> {
        self.session(h)?;
        let op = self.session(h)?.sign.as_ref().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        match room {
            None => return Ok(SignOut::Length(SIGNATURE_LEN)),
            Some(n) if n < SIGNATURE_LEN => return Err(CKR_BUFFER_TOO_SMALL),
            Some(_) => {}
        }
        let op = SignOp { data: data.map(<[u8]>::to_vec).unwrap_or_else(|| op.data.clone()), ..*op };
        self.session(h)?.sign = None;
        if op.always_authenticate && !op.context_login {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        let digest = to_sign(op.mechanism, &op.data)?;
        Ok(SignOut::Signature(self.token()?.signer(op.key_id, digest)?))
    }

    /// The session's token, for what only the security officer (the management key) may do,
    /// and the configured management key: see [`Token::as_admin`].
    fn so_token(&mut self, h: CK_SESSION_HANDLE) -> Rv<(&mut Token, Option<&str>)> {
        let s = self.session(h)?;
        if s.flags & CKF_RW_SESSION == 0 {
            return Err(CKR_SESSION_READ_ONLY);
        }
        let t = self.token.as_mut().ok_or(CKR_TOKEN_NOT_PRESENT)?;
        t.sync_reset();
        Ok((t, self.shared.mgmt_key.as_deref().map(String::as_str)))
    }

    /// C_GenerateKeyPair (CKM_EC_KEY_PAIR_GEN, P-256) in the PIV slot of the templates' CKA_ID:
    /// the public and private key handles.
    pub fn generate_key_pair(
        &mut self,
        h: CK_SESSION_HANDLE,
        mechanism: CK_MECHANISM_TYPE,
        public: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
        private: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Rv<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE)> {
        if mechanism != CKM_EC_KEY_PAIR_GEN {
            return Err(CKR_MECHANISM_INVALID);
        }
        if given(public, CKA_EC_PARAMS).is_some_and(|p| p != objects::P256_PARAMS) {
            return Err(CKR_CURVE_NOT_SUPPORTED);
        }
        let id = piv_id(&[public, private])?;
        self.session(h)?;
        let (t, configured) = self.so_token(h)?;
        t.generate(configured, id)?;
        Ok((objects::handle(self.id, id, Kind::Public), objects::handle(self.id, id, Kind::Private)))
    }

    /// C_CreateObject: an X.509 certificate, written to the PIV slot of its CKA_ID.
    pub fn create_object(
        &mut self,
        h: CK_SESSION_HANDLE,
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Rv<CK_OBJECT_HANDLE> {
        let class = given(template, CKA_CLASS).ok_or(CKR_TEMPLATE_INCOMPLETE)?;
        if class != CKO_CERTIFICATE.to_ne_bytes() {
            return Err(CKR_ATTRIBUTE_VALUE_INVALID);
        }
        if given(template, CKA_CERTIFICATE_TYPE).is_some_and(|t| t != CKC_X_509.to_ne_bytes()) {
            return Err(CKR_ATTRIBUTE_VALUE_INVALID);
        }
        let der = given(template, CKA_VALUE).ok_or(CKR_TEMPLATE_INCOMPLETE)?.to_vec();
        let id = piv_id(&[template])?;
        self.session(h)?;
        let (t, configured) = self.so_token(h)?;
        t.write_certificate(configured, id, &der)?;
        Ok(objects::handle(self.id, id, Kind::Certificate))
    }

    /// C_DestroyObject: a certificate (deleted from the key), or a session's derived secret.
    pub fn destroy_object(&mut self, h: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> Rv<()> {
        if object & SESSION_OBJECT != 0 {
            let s = self.session(h)?;
            let before = s.secrets.len();
            s.secrets.retain(|(o, _)| *o != object);
            return if s.secrets.len() < before { Ok(()) } else { Err(CKR_OBJECT_HANDLE_INVALID) };
        }
        self.session(h)?;
        let (s, id, kind) = objects::parse_handle(object).ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        if s != self.id || self.token()?.content(id).is_none_or(|c| c.cert.is_none() && kind == Kind::Certificate) {
            return Err(CKR_OBJECT_HANDLE_INVALID);
        }
        let (t, configured) = self.so_token(h)?;
        match kind {
            Kind::Certificate => t.delete_certificate(configured, id),
            Kind::Private => t.delete_key(configured, id),
            Kind::Public => t.remove_public_key(configured, id),
        }
    }

    /// C_DeriveKey with CKM_ECDH1_DERIVE (CKD_NULL): the shared secret as a session object.
    pub fn derive(
        &mut self,
        h: CK_SESSION_HANDLE,
        base: CK_OBJECT_HANDLE,
        peer: &[u8],
        template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)],
    ) -> Rv<CK_OBJECT_HANDLE> {
        self.session(h)?;
        if !self.token()?.user_logged_in {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        let (id, kind) = self.visible(base).map_err(|_| CKR_KEY_HANDLE_INVALID)?;
        if kind != Kind::Private {
            return Err(CKR_KEY_TYPE_INCONSISTENT);
        }
        // The peer's point, raw or as a DER OCTET STRING.
        let point = match peer {
            [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest,
            p => p,
        };
        let mut value = self.token()?.ecdh(id, point)?;
        if let Some(len) = given(template, CKA_VALUE_LEN) {
            let want = CK_ULONG::from_ne_bytes(len.try_into().map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)?) as usize;
            if want == 0 || want > value.len() {
                return Err(CKR_ATTRIBUTE_VALUE_INVALID);
            }
            value.truncate(want);
        }
        let readable = flag(template, CKA_SENSITIVE) != Some(true) && flag(template, CKA_EXTRACTABLE) != Some(false);
        let handle = SESSION_OBJECT | self.shared.handle();
        self.session(h)?.secrets.push((handle, Secret { value: zeroize::Zeroizing::new(value), readable }));
        Ok(handle)
    }

    pub fn random(&mut self, h: CK_SESSION_HANDLE, n: usize) -> Rv<Vec<u8>> {
        self.session(h)?;
        self.token()?.random(n)
    }
}
