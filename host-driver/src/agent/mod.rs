//! The local agent (the manual's "certificate application environment"): a small HTTP service
//! on loopback through which a web page of the portal reaches the keys on this machine.
//!
//! - `GET /keys`: the keys present (label, serial, subject, not-after, PIN tries left).
//! - `GET /events` (WebSocket): `{"event":"inserted"|"removed","key":...}` as keys come and go.
//! - `POST /sign {key_id, pin, nonce, last_try?}`: verify the PIN on the key, then sign the
//!   login digest for the request's Origin with slot 9A; answers the login token, or the key's
//!   own wrong-PIN count / PIN-locked state. With one PIN try left the agent refuses
//!   (`last_try`, 409) unless the request says `"last_try": true`; so do the enroll calls.
//! - `POST /enroll/keypair {key_id, pin, replace?}`: generate a P-256 key pair in slot 9A on
//!   the key and answer a CSR the key signed (certificate application).
//! - `POST /enroll/install {key_id, pin, certificate}`: write the issued certificate to 9A,
//!   after the key proved it holds the certificate's private key.
//!
//! - `GET /ukey.js`: the page-side library ([`CLIENT_JS`]) for any portal's pages.
//! - `GET /`: the certificate assistant (证书助手), the agent's own page: each key's certificate
//!   and PIN tries, change PIN, unblock with the PUK (`POST /assistant/keys|pin/change|
//!   pin/unblock`, answered for the agent's own origin only).
//!
//! Every connection must come from a process of the user running the agent (`localpeer`: the
//! peer's uid, from `/proc/net/tcp`); another user's requests are answered 403 whatever
//! headers they carry. Every request must then name a loopback Host (no DNS rebinding) and an
//! allowed Origin (the assistant's page itself excepted: a browser navigating sends none);
//! there is no default origin. A `key_id` must be one the agent lists at that moment. PINs
//! are never logged or kept: they go to the key and are dropped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use proto::piv::Slot;
use proto::secret::Pin;
use proto::Transport;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::broadcast;

mod assistant;
mod enroll;

use crate::lang::Lang;
use crate::login_token::{make, signed_digest, AuthToken};
use crate::{MgmtKey, PinOutcome, Piv, PivError};

/// `ukey.js`, the ES module through which web pages use the agent (keys, key changes, login,
/// enrollment; stable error codes). The agent serves it at `/ukey.js`; the ukey portal serves
/// the same bytes at `/static/ukey.js`.
pub const CLIENT_JS: &str = include_str!("../../static/ukey.js");

/// The version of the agent's HTTP API, in every `/keys` answer; ukey.js refuses another.
pub const API_VERSION: u32 = 1;

/// A key the agent can reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRef {
    /// Stable while the key stays: e.g. `reader:Virtual PCD 00 00`, `dir:/home/a/keys/alice`.
    pub id: String,
    pub label: String,
}

/// Where keys come from (readers, virtual key directories, keys in this process). The agent
/// never knows which.
pub trait KeyProvider: Send + Sync + 'static {
    /// The keys present now.
    fn list(&self) -> Vec<KeyRef>;
    /// Reach one of them. The transport is held while a request uses the key.
    fn open(&self, id: &str) -> Result<Box<dyn Transport>, String>;
    /// Whether opening or using key `id` may wait on a reader or a disk (see
    /// [`Transport::may_block`]); yes unless the provider knows better.
    fn may_block(&self, _id: &str) -> bool {
        true
    }
    /// Block until the keys present may have changed (a reader saw a card come or go) or
    /// `timeout` passed; the agent lists the keys after each return. `false`: this provider
    /// cannot watch, and the agent lists every `timeout` instead.
    fn wait_change(&self, _timeout: Duration) -> bool {
        false
    }
    /// Whether key `id` is among [`KeyProvider::list`]'s now (a provider with many keys
    /// answers this without listing them all).
    fn contains(&self, id: &str) -> bool {
        self.list().iter().any(|k| k.id == id)
    }
}

/// Keys handed to the agent by this process (tests, `ukey flows`, `ukey bench login`): id ->
/// transport. The list can change while the agent runs; each request gets a clone of the
/// transport.
pub struct FixedKeys<T> {
    keys: std::sync::Mutex<Vec<(String, T)>>,
    /// Where each id was last seen in `keys`: checked on use and rebuilt when the list changed,
    /// so finding one of 10,000 keys is not a scan of them all (a login looks twice).
    seen: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl<T> Default for FixedKeys<T> {
    fn default() -> Self {
        FixedKeys { keys: Default::default(), seen: Default::default() }
    }
}

impl<T> FixedKeys<T> {
    pub fn keys(&self) -> std::sync::MutexGuard<'_, Vec<(String, T)>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `f` of the key `id`, if it is in the list.
    fn with<R>(&self, id: &str, f: impl FnOnce(&T) -> R) -> Option<R> {
        let keys = self.keys();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let at = match seen.get(id) {
            Some(&i) if keys.get(i).is_some_and(|(k, _)| k == id) => Some(i),
            _ => {
                *seen = keys.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
                seen.get(id).copied()
            }
        };
        at.map(|i| f(&keys[i].1))
    }
}

impl<T: Transport + Clone + Send + 'static> KeyProvider for FixedKeys<T> {
    fn list(&self) -> Vec<KeyRef> {
        self.keys().iter().map(|(id, _)| KeyRef { id: id.clone(), label: id.clone() }).collect()
    }
    fn open(&self, id: &str) -> Result<Box<dyn Transport>, String> {
        let k = self.with(id, |k| k.clone()).ok_or_else(|| format!("no key {id}"))?;
        Ok(Box::new(k))
    }
    fn may_block(&self, id: &str) -> bool {
        self.with(id, |k| k.may_block()).unwrap_or(true)
    }
    fn contains(&self, id: &str) -> bool {
        self.with(id, |_| ()).is_some()
    }
}

/// The keys of a provider, reachable only while it lists them: a request cannot name a key
/// (a `dir:` path, a reader) the agent does not offer. A key is used by one request at a time
/// (its transport holds the key's turn until dropped): a last-try guard reads the count and
/// spends the try with no other request in between, so two requests at once cannot both
/// spend "the second-last" try.
struct Listed(Arc<dyn KeyProvider>, Arc<Turns>);

/// Whose turn each key is: ids of the keys in use.
#[derive(Default)]
struct Turns {
    busy: std::sync::Mutex<std::collections::HashSet<String>>,
    freed: std::sync::Condvar,
}

impl Turns {
    fn take(self: &Arc<Self>, id: &str) -> Turn {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        while busy.contains(id) {
            busy = self.freed.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        busy.insert(id.to_string());
        Turn { turns: self.clone(), id: id.to_string() }
    }
}

/// A key's turn, given back when dropped.
struct Turn {
    turns: Arc<Turns>,
    id: String,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.turns.busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
        self.turns.freed.notify_all();
    }
}

/// A key's transport holding its turn.
struct Held {
    inner: Box<dyn Transport>,
    _turn: Turn,
}

impl Transport for Held {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, proto::TransportError> {
        self.inner.transmit(apdu)
    }
    fn reset(&mut self) -> Result<Vec<u8>, proto::TransportError> {
        self.inner.reset()
    }
    fn is_present(&mut self) -> bool {
        self.inner.is_present()
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn may_block(&self) -> bool {
        self.inner.may_block()
    }
}

impl KeyProvider for Listed {
    fn list(&self) -> Vec<KeyRef> {
        self.0.list()
    }
    fn open(&self, id: &str) -> Result<Box<dyn Transport>, String> {
        if !self.0.contains(id) {
            return Err(format!("no key {id} is present"));
        }
        let turn = self.1.take(id);
        Ok(Box::new(Held { inner: self.0.open(id)?, _turn: turn }))
    }
    fn may_block(&self, id: &str) -> bool {
        self.0.may_block(id)
    }
    fn wait_change(&self, timeout: Duration) -> bool {
        self.0.wait_change(timeout)
    }
    fn contains(&self, id: &str) -> bool {
        self.0.contains(id)
    }
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Origins whose pages may use the agent (none by default: a portal is named explicitly).
    pub allowed_origins: Vec<String>,
    /// How often key presence is checked for events (at the latest: a provider that watches
    /// readers reports their changes at once).
    pub poll: Duration,
    /// The keys' management key: generating a key pair and writing a certificate need it.
    pub management_key: MgmtKey,
    /// The agent's own origin (`http://LISTEN`): the certificate assistant's page calls from
    /// it. `None`: the assistant's calls are refused.
    pub own_origin: Option<String>,
}

impl AgentConfig {
    /// For pages of `origins`, polling every 250 ms, keys with the factory management key.
    pub fn new(origins: Vec<String>) -> AgentConfig {
        AgentConfig {
            allowed_origins: origins,
            poll: Duration::from_millis(250),
            management_key: MgmtKey::default(),
            own_origin: None,
        }
    }
}

struct Agent {
    keys: Arc<dyn KeyProvider>,
    config: AgentConfig,
    events: broadcast::Sender<Value>,
}

/// What `GET /keys` says of a key.
#[derive(Debug, Clone, Serialize)]
pub struct KeySummary {
    pub id: String,
    pub label: String,
    pub serial: Option<String>,
    pub subject: Option<String>,
    pub not_after: Option<u64>,
    pub pin_retries: Option<u8>,
    pub pin_retries_total: Option<u8>,
    pub error: Option<String>,
}

/// The agent's routes; spawns the presence poller on the current runtime. Served only through
/// [`serve`], which tells each request who called.
fn router(keys: Arc<dyn KeyProvider>, config: AgentConfig) -> Router {
    let (events, _) = broadcast::channel(64);
    let keys: Arc<dyn KeyProvider> = Arc::new(Listed(keys, Arc::default()));
    let agent = Arc::new(Agent { keys, config, events });
    tokio::spawn(poll_presence(agent.clone()));
    Router::new()
        .route("/keys", get(list_keys))
        .route("/sign", post(sign))
        .route("/enroll/keypair", post(enroll::keypair))
        .route("/enroll/install", post(enroll::install))
        .route("/events", get(events_ws))
        .route("/ukey.js", get(client_js))
        .route("/", get(assistant::page))
        .route("/assistant.js", get(assistant::script))
        .route("/assistant.css", get(assistant::style))
        .route("/assistant/keys", post(assistant::keys))
        .route("/assistant/pin/change", post(assistant::change_pin))
        .route("/assistant/pin/unblock", post(assistant::unblock))
        .layer(middleware::from_fn_with_state(agent.clone(), guard))
        .with_state(agent)
}

/// Serve on `listener` (bind it to 127.0.0.1) until dropped: only this user's processes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    keys: Arc<dyn KeyProvider>,
    config: AgentConfig,
) -> std::io::Result<()> {
    let listener = OwnerListener { inner: listener, rule: localpeer::OwnerOnly::new() };
    axum::serve(listener, router(keys, config).into_make_service_with_connect_info::<Caller>()).await
}

/// Who is on the other end of a request's connection, as the owner-only rule judged it when
/// the connection was accepted.
#[derive(Debug, Clone)]
pub struct Caller {
    pub addr: std::net::SocketAddr,
    /// Why the rule refused this caller; `None`: admitted.
    refused: Option<Arc<str>>,
}

/// Answer another user's connection 403 and close it: its request is read (for at most two
/// seconds, 8 KiB) so that closing does not reset the connection before the answer is read.
async fn refuse_connection(mut io: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_secs(2), io.read(&mut request)).await;
    let body = r#"{"ok":false,"code":"other_user","message":"the agent answers only its own user's programs"}"#;
    let answer = format!(
        "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), io.write_all(answer.as_bytes())).await;
    let _ = io.shutdown().await;
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, OwnerListener>> for Caller {
    fn connect_info(stream: axum::serve::IncomingStream<'_, OwnerListener>) -> Caller {
        stream.remote_addr().clone()
    }
}

/// A TCP listener that judges each connection's peer as it accepts it.
struct OwnerListener {
    inner: tokio::net::TcpListener,
    rule: localpeer::OwnerOnly,
}

impl axum::serve::Listener for OwnerListener {
    type Io = tokio::net::TcpStream;
    type Addr = Caller;

    async fn accept(&mut self) -> (Self::Io, Caller) {
        loop {
            // axum's accept waits out errors (out of file descriptors, say) and never fails.
            let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
            let judged = io
                .local_addr()
                .map_err(|e| e.to_string())
                .and_then(|local| self.rule.admit_tcp(local, addr).map_err(|e| e.to_string()));
            match judged {
                Ok(()) => return (io, Caller { addr, refused: None }),
                // Another user's connection never reaches the HTTP server: it is answered 403
                // here and closed within seconds, so held connections cannot starve the agent.
                Err(why) => {
                    tracing::warn!("agent: refused {why}");
                    tokio::spawn(refuse_connection(io));
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Caller> {
        Ok(Caller { addr: self.inner.local_addr()?, refused: None })
    }
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"ok": false, "code": code, "message": message}))).into_response()
}

fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    matches!(name, "127.0.0.1" | "localhost" | "::1")
}

/// The caller must be this user's process, Host must be loopback, Origin must be allowed;
/// CORS answers for allowed origins only.
async fn guard(State(a): State<Arc<Agent>>, req: Request, next: Next) -> Response {
    // First, whatever the headers say: they are the caller's to forge.
    match req.extensions().get::<ConnectInfo<Caller>>() {
        Some(ConnectInfo(Caller { refused: None, .. })) => {}
        Some(ConnectInfo(Caller { refused: Some(why), .. })) => {
            tracing::warn!("agent: refused {why}");
            return refuse(StatusCode::FORBIDDEN, "other_user", "the agent answers only its own user's programs");
        }
        None => return refuse(StatusCode::FORBIDDEN, "other_user", "the caller could not be identified"),
    }
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !loopback_host(host) {
        return refuse(StatusCode::FORBIDDEN, "bad_host", "the agent answers only requests to a loopback address");
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let path = req.uri().path();
    // The assistant's page: what a browser navigating to the agent asks for (no Origin), and
    // its module script (fetched in CORS mode, so with the page's own Origin).
    let own = a.config.own_origin.as_deref() == Some(origin.as_str());
    if req.method() == Method::GET && (origin.is_empty() || own) && assistant::PAGE_PATHS.contains(&path) {
        return next.run(req).await;
    }
    // The assistant follows keys coming and going like a portal's page does.
    if req.method() == Method::GET && own && path == "/events" {
        return next.run(req).await;
    }
    // The library is public code: anyone may read it (a portal's page imports it in CORS mode,
    // and gets the CORS answer below when its origin is allowed).
    if req.method() == Method::GET && origin.is_empty() && path == "/ukey.js" {
        return next.run(req).await;
    }
    // The assistant's calls change PINs: from its own page only, never a portal's.
    if path.starts_with("/assistant/") {
        if !own {
            return refuse(StatusCode::FORBIDDEN, "bad_origin", "only the assistant's own page may call it");
        }
        return next.run(req).await;
    }
    if !a.config.allowed_origins.iter().any(|o| o == &origin) {
        return refuse(StatusCode::FORBIDDEN, "bad_origin", "this page's origin may not use the agent");
    }
    let preflight = req.method() == Method::OPTIONS;
    let mut resp = if preflight { StatusCode::NO_CONTENT.into_response() } else { next.run(req).await };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if preflight {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type"));
    }
    resp
}

fn summarize(keys: &dyn KeyProvider, k: &KeyRef) -> KeySummary {
    let mut s = KeySummary {
        id: k.id.clone(),
        label: k.label.clone(),
        serial: None,
        subject: None,
        not_after: None,
        pin_retries: None,
        pin_retries_total: None,
        error: None,
    };
    let info = keys.open(&k.id).map_err(|e| e.to_string()).and_then(|t| {
        let mut piv = Piv::new(t);
        crate::inspect(&mut piv, &k.label).map_err(|e| e.to_string())
    });
    match info {
        Ok(i) => {
            s.serial = i.serial.clone();
            s.pin_retries = i.pin_retries;
            s.pin_retries_total = i.pin_retries_total;
            if let Some(c) = i.auth_cert() {
                s.subject = Some(c.subject.clone());
                s.not_after = Some(c.not_after);
            }
        }
        Err(e) => s.error = Some(e),
    }
    s
}

async fn list_keys(State(a): State<Arc<Agent>>) -> Response {
    let keys = a.keys.clone();
    let list = tokio::task::spawn_blocking(move || {
        keys.list().iter().map(|k| summarize(keys.as_ref(), k)).collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    Json(json!({"ok": true, "api": API_VERSION, "version": env!("CARGO_PKG_VERSION"), "keys": list})).into_response()
}

async fn client_js() -> Response {
    let mut r = CLIENT_JS.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[derive(Deserialize)]
struct SignRequest {
    key_id: String,
    pin: Pin,
    nonce: String,
    /// The user confirmed spending the PIN's last try (see [`with_pin`]).
    #[serde(default)]
    last_try: bool,
}

/// Why a key operation did not happen, as the page shows it.
#[derive(Debug)]
enum KeyError {
    NoKey(String),
    WrongPin(u8),
    PinLocked,
    /// One PIN try is left and the request did not say the user accepted spending it.
    LastTry,
    /// The same for the PUK's last try (a wrong one leaves the key impossible to unblock).
    PukLastTry,
    NoCertificate,
    /// 9A already holds a certificate and the page did not ask to replace it.
    SlotInUse,
    /// The key refused the agent's management key.
    ManagementKey,
    /// The certificate is not for the key pair on this key.
    KeyMismatch,
    BadInput(String),
    Key(String),
}

impl KeyError {
    fn key(e: PivError) -> KeyError {
        KeyError::Key(e.to_string())
    }
}

/// Run `op` on key `id`: in place when the key lives in this process's memory (it computes
/// for a hundred-odd microseconds and never waits), on a blocking thread when it may wait on a
/// reader or a disk. `None` if that thread failed. The hop to a blocking thread cost a fifth of
/// a login in `ukey bench login` (BENCHMARKS.md).
pub(super) async fn on_key<T: Send + 'static>(
    keys: &Arc<dyn KeyProvider>,
    id: &str,
    op: impl FnOnce(&dyn KeyProvider) -> T + Send + 'static,
) -> Option<T> {
    if !keys.may_block(id) {
        return Some(op(keys.as_ref()));
    }
    let keys = keys.clone();
    tokio::task::spawn_blocking(move || op(keys.as_ref())).await.ok()
}

/// Open the key, verify the PIN on it, run `op`, and end the PIN session whatever happened.
///
/// The last PIN try is spent only when the request says `last_try`: a script in an allowed
/// page (an XSS, a malicious extension) could otherwise guess until the key locks. A page
/// sends it only after the user confirmed the "最后一次机会" warning.
fn with_pin<T>(
    keys: &dyn KeyProvider,
    key_id: &str,
    pin: &Pin,
    last_try: bool,
    op: impl FnOnce(&mut Piv<Box<dyn Transport>>) -> Result<T, KeyError>,
) -> Result<T, KeyError> {
    let mut piv = open_guarded(keys, key_id, last_try)?;
    let result = match piv.verify_pin(pin) {
        Ok(PinOutcome::Ok) => op(&mut piv),
        Ok(PinOutcome::WrongPin { retries_left }) => Err(KeyError::WrongPin(retries_left)),
        Ok(PinOutcome::Blocked) | Err(PivError::PinBlocked { .. }) => Err(KeyError::PinLocked),
        Err(e) => Err(KeyError::key(e)),
    };
    let _ = piv.logout();
    result
}

/// Open key `key_id` and select PIV on it, refusing when the PIN is blocked, or has one try
/// left that the request did not say the user accepted spending.
fn open_guarded(keys: &dyn KeyProvider, key_id: &str, last_try: bool) -> Result<Piv<Box<dyn Transport>>, KeyError> {
    let t = keys.open(key_id).map_err(KeyError::NoKey)?;
    let mut piv = Piv::new(t);
    piv.select().map_err(KeyError::key)?;
    // SELECT dropped any earlier verification, so this counts tries without spending one.
    match piv.pin_status().map_err(KeyError::key)? {
        crate::PinStatus::NotVerified { retries_left: 1 } if !last_try => return Err(KeyError::LastTry),
        crate::PinStatus::Blocked => return Err(KeyError::PinLocked),
        _ => {}
    }
    Ok(piv)
}

/// The answer for a failed key operation, in the page's language.
fn key_error(e: KeyError, lang: Lang, key_id: &str) -> Response {
    match e {
        KeyError::WrongPin(n) => {
            let message = match lang {
                Lang::Zh => format!("USB-Key密码校验失败，还有{n}次机会"),
                Lang::En => format!("USB-Key PIN verification failed, {n} attempts left"),
            };
            let body = json!({"ok": false, "code": "wrong_pin", "attempts_left": n, "message": message});
            (StatusCode::UNAUTHORIZED, Json(body)).into_response()
        }
        KeyError::PinLocked => refuse(
            StatusCode::FORBIDDEN,
            "pin_locked",
            match lang {
                Lang::Zh => "USB-Key密码已锁定，请使用PUK解锁（ukey pin unblock）或联系管理员",
                Lang::En => "The USB-Key PIN is locked: unblock it with the PUK (ukey pin unblock) or contact your administrator",
            },
        ),
        KeyError::LastTry => {
            let message = match lang {
                Lang::Zh => "USB-Key密码只剩最后一次机会，再次输错将锁定USB-Key。请确认密码无误后再提交",
                Lang::En => "Only one PIN attempt is left: a wrong PIN locks the USB-Key. Confirm to use the last attempt",
            };
            let body = json!({"ok": false, "code": "last_try", "secret": "pin", "attempts_left": 1, "message": message});
            (StatusCode::CONFLICT, Json(body)).into_response()
        }
        KeyError::PukLastTry => {
            let message = match lang {
                Lang::Zh => "PUK码只剩最后一次机会，再次输错USB-Key将无法解锁。请确认PUK码无误后再提交",
                Lang::En => "Only one PUK attempt is left: a wrong PUK leaves the USB-Key impossible to unblock. Confirm to use the last attempt",
            };
            let body = json!({"ok": false, "code": "last_try", "secret": "puk", "attempts_left": 1, "message": message});
            (StatusCode::CONFLICT, Json(body)).into_response()
        }
        KeyError::NoCertificate => refuse(StatusCode::CONFLICT, "no_certificate", "the key has no certificate in slot 9A"),
        KeyError::SlotInUse => refuse(
            StatusCode::CONFLICT,
            "slot_in_use",
            match lang {
                Lang::Zh => "该USB-Key中已有证书，生成新密钥后原证书将无法使用；确认替换请重新提交（replace）",
                Lang::En => "The key already holds a certificate that a new key pair would make useless; send replace: true to go ahead",
            },
        ),
        KeyError::ManagementKey => refuse(
            StatusCode::FORBIDDEN,
            "management_key",
            "the key refused the agent's management key: start the agent with this key's --management-key",
        ),
        KeyError::KeyMismatch => refuse(
            StatusCode::CONFLICT,
            "key_mismatch",
            match lang {
                Lang::Zh => "证书与该USB-Key中的密钥不匹配，请插入申请证书时使用的USB-Key",
                Lang::En => "The certificate is not for the key pair on this USB-Key: insert the key the application was made with",
            },
        ),
        KeyError::BadInput(e) => refuse(StatusCode::BAD_REQUEST, "bad_request", &e),
        KeyError::NoKey(e) => refuse(StatusCode::NOT_FOUND, "no_key", &format!("{key_id}: {e}")),
        KeyError::Key(e) => refuse(StatusCode::BAD_GATEWAY, "key_error", &e),
    }
}

fn request_lang(headers: &HeaderMap) -> Lang {
    Lang::from_accept_language(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()))
}

fn sign_blocking(keys: &dyn KeyProvider, req: &SignRequest, origin: &str) -> Result<AuthToken, KeyError> {
    with_pin(keys, &req.key_id, &req.pin, req.last_try, |piv| {
        let cert = piv.read_certificate(Slot::Authentication).map_err(KeyError::key)?;
        let cert = cert.ok_or(KeyError::NoCertificate)?;
        let sig = piv
            .sign_digest(Slot::Authentication, &signed_digest(origin, req.nonce.as_bytes()))
            .map_err(KeyError::key)?;
        Ok(make(&cert, &sig.raw))
    })
}

async fn sign(State(a): State<Arc<Agent>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<SignRequest>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "bad_request", "expected {key_id, pin, nonce}");
    };
    // The origin signed for is the browser's Origin header (already checked against the
    // allow-list), never a value from the page.
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let lang = request_lang(&headers);
    let key_id = req.key_id.clone();
    match on_key(&a.keys, &key_id, move |keys| sign_blocking(keys, &req, &origin)).await {
        Some(Ok(token)) => Json(json!({"ok": true, "code": "signed", "token": token})).into_response(),
        Some(Err(e)) => key_error(e, lang, &key_id),
        None => refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the key task failed"),
    }
}

async fn events_ws(State(a): State<Arc<Agent>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| events(socket, a))
}

async fn events(mut socket: WebSocket, a: Arc<Agent>) {
    let mut rx = a.events.subscribe();
    let keys = a.keys.clone();
    let now = tokio::task::spawn_blocking(move || keys.list()).await.unwrap_or_default();
    let hello = json!({"event": "keys", "keys": now});
    if socket.send(Message::text(hello.to_string())).await.is_err() {
        return;
    }
    while let Ok(ev) = rx.recv().await {
        if socket.send(Message::text(ev.to_string())).await.is_err() {
            return;
        }
    }
}

async fn present(a: &Agent) -> Option<BTreeMap<String, KeyRef>> {
    let keys = a.keys.clone();
    let list = tokio::task::spawn_blocking(move || keys.list()).await.ok()?;
    Some(list.into_iter().map(|k| (k.id.clone(), k)).collect())
}

/// Keys present at start are the baseline; events are the changes after it.
async fn poll_presence(a: Arc<Agent>) {
    let Some(mut known) = present(&a).await else { return };
    loop {
        let (keys, poll) = (a.keys.clone(), a.config.poll);
        let started = tokio::time::Instant::now();
        let watched = tokio::task::spawn_blocking(move || keys.wait_change(poll)).await.unwrap_or(false);
        // A provider that cannot watch, or whose watch returned at once with nothing (the
        // reader service restarting), must not turn this loop into a spin.
        let floor = if watched { poll / 10 } else { poll };
        tokio::time::sleep_until(started + floor).await;
        let Some(now) = present(&a).await else { return };
        for (id, k) in &now {
            if !known.contains_key(id) {
                let _ = a.events.send(json!({"event": "inserted", "key": k}));
            }
        }
        for (id, k) in &known {
            if !now.contains_key(id) {
                let _ = a.events.send(json!({"event": "removed", "key": k}));
            }
        }
        known = now;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_loopback_hosts() {
        for ok in ["127.0.0.1:7000", "localhost:7000", "[::1]:7000", "127.0.0.1", "localhost"] {
            assert!(super::loopback_host(ok), "{ok}");
        }
        for bad in ["evil.example:7000", "127.0.0.1.evil.example", "10.0.0.1:7000", "", "[::2]:1"] {
            assert!(!super::loopback_host(bad), "{bad}");
        }
    }
}
