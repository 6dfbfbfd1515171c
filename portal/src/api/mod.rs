//! The portal's HTTP/JSON API: an adapter over [`crate::service`]. Each handler finds the
//! caller (session cookie, CSRF token, rate limits), calls the service, and answers its outcome
//! as JSON; the pages ([`crate::pages`]) call the same services and, from the browser, these
//! endpoints.
//!
//! Every answer is JSON with `ok`, a stable `code` and a `message` in the caller's language.
//! Sessions: an HttpOnly, SameSite=Strict cookie holding a random token (the store keeps only
//! its SHA-256), rotated at every login. Every POST needs the session's CSRF token in the
//! `X-CSRF-Token` header; `GET /api/session` hands one out.

mod auth;
mod binding;
mod edge;
mod enroll;
mod keylogin;
pub mod pki;
mod sandbox;
pub(crate) mod staff;

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use proto::Clock;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::messages::{Lang, Msg};
use crate::ratelimit::RateLimits;
use crate::store::{KeyStanding, Session, Store, StoreError};

pub const COOKIE: &str = "ukey_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Everything a request handler needs.
pub struct Portal {
    pub store: Store,
    /// The CA's public key: what login certificates must chain to.
    pub ca: p256::ecdsa::VerifyingKey,
    /// The CA itself: issues the certificates of approved applications.
    pub issuer: Arc<ca::Ca>,
    pub clock: Arc<dyn Clock + Send + Sync>,
    pub config: Config,
    pub limits: RateLimits,
    /// Password hashing, off the async workers and capped.
    pub hasher: crate::password::Hasher,
    /// SHA-256 of certificates already found signed by our CA (bounded).
    chain_ok: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
    crl_cache: tokio::sync::Mutex<Option<pki::CachedCrl>>,
    /// Photo decodes running at once (each may take ~170 MB): as many as password hashes.
    pub(crate) photo_slots: tokio::sync::Semaphore,
}

const CHAIN_CACHE_MAX: usize = 100_000;

pub type State = Arc<Portal>;

impl Portal {
    pub fn new(store: Store, issuer: Arc<ca::Ca>, clock: Arc<dyn Clock + Send + Sync>, config: Config) -> State {
        let limits = RateLimits::for_backend(store.backend());
        let hasher = crate::password::Hasher::new(config.hash_slots, config.password_cost, config.hash_wait);
        let photo_slots = config.hash_slots.max(1);
        Arc::new(Portal {
            store,
            ca: *issuer.verifying_key(),
            issuer,
            clock,
            config,
            limits,
            hasher,
            chain_ok: Default::default(),
            crl_cache: Default::default(),
            photo_slots: tokio::sync::Semaphore::new(photo_slots),
        })
    }

    /// Whether `der` is signed by our CA, remembering the answer for certificates that are.
    pub fn issued_by_ca(&self, der: &[u8]) -> bool {
        let h: [u8; 32] = Sha256::digest(der).into();
        if self.chain_ok.lock().unwrap_or_else(|p| p.into_inner()).contains(&h) {
            return true;
        }
        let ok = ca::verify_signed_by(der, &self.ca);
        if ok {
            let mut c = self.chain_ok.lock().unwrap_or_else(|p| p.into_inner());
            if c.len() >= CHAIN_CACHE_MAX {
                c.clear();
            }
            c.insert(h);
        }
        ok
    }

    pub fn now(&self) -> i64 {
        self.clock.now_unix() as i64
    }

    /// Write an audit row; a failing audit write fails the request (no unaudited flow).
    pub(crate) async fn audit(&self, actor: &str, action: &str, outcome: &str, detail: &str) -> Result<(), ApiError> {
        self.store.audit(actor, action, outcome, detail, self.now()).await.map_err(ApiError::from)
    }
}

/// Serve the API and the pages over https on `listener` until the future is dropped.
pub async fn serve_tls(listener: crate::tls::TlsListener, state: State) -> std::io::Result<()> {
    let app = router(state.clone()).into_make_service_with_connect_info::<crate::tls::TlsPeer>();
    with_housekeeping(state, async { axum::serve(listener, app).await }).await
}

/// Serve the API and the pages on `listener` until the future is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: State) -> std::io::Result<()> {
    let app = router(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
    with_housekeeping(state, async { axum::serve(listener, app).await }).await
}

/// Run `served` with the housekeeping task beside it, for as long as it runs.
async fn with_housekeeping(
    state: State,
    served: impl std::future::Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    let housekeeping = tokio::spawn(housekeeping(state));
    let result = served.await;
    housekeeping.abort();
    result
}

/// How long a client's wrong-password count is kept after its last wrong password.
const FAILURES_KEPT_SECS: i64 = 24 * 3600;

/// How often expired sessions and old request counts are deleted.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Delete expired sessions now and then, so abandoned ones (every visit opens one) do not
/// pile up, and request counts of past minutes. Several instances on one PostgreSQL may all
/// do it: the DELETEs are idempotent.
async fn housekeeping(p: State) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match p.store.purge_sessions(p.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("deleted {n} expired sessions"),
            Err(e) => tracing::warn!("deleting expired sessions: {e}"),
        }
        match p.store.purge_sms(p.now(), p.now() - 86_400).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("purged {n} dead SMS codes, their messages and old SMS counts"),
            Err(e) => tracing::warn!("purging dead SMS codes: {e}"),
        }
        match p.store.purge_password_failures(p.now() - FAILURES_KEPT_SECS).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("forgot {n} old password-failure counts"),
            Err(e) => tracing::warn!("deleting old password-failure counts: {e}"),
        }
        if let RateLimits::Shared = p.limits {
            if let Err(e) = p.store.purge_rate_limits(p.now() / 60).await {
                tracing::warn!("deleting old request counts: {e}");
            }
        }
    }
}

/// Largest request body outside photo uploads: every JSON request is far smaller (a key-login
/// token with its certificate is under 8 KiB); more is a 413 before it is read.
pub const BODY_MAX_BYTES: usize = 64 * 1024;

pub fn router(state: State) -> Router {
    // Photos are read by their handler with their own limit; other bodies get BODY_MAX_BYTES.
    let photo_limit = axum::extract::DefaultBodyLimit::max(state.config.enroll.photo_max_bytes + 1);
    let mut r = Router::new()
        .route("/api/session", get(auth::session))
        .route("/api/login/password", post(auth::password_login))
        .route("/api/logout", post(auth::logout))
        .route("/api/challenge", post(keylogin::challenge))
        .route("/api/login/key", post(keylogin::key_login))
        .route("/api/accounts", get(binding::accounts))
        .route("/api/bind", post(binding::bind))
        .route("/api/unbind", post(binding::unbind))
        .route("/api/applications", get(enroll::list).post(enroll::create))
        .route("/api/applications/{id}", get(enroll::show))
        .route("/api/applications/{id}/form", post(enroll::edit))
        .route("/api/applications/{id}/confirm", post(enroll::confirm))
        .route("/api/applications/{id}/photos/{side}", put(enroll::upload_photo).layer(photo_limit))
        .route("/api/applications/{id}/submit", post(enroll::submit))
        .route("/api/applications/{id}/sms/resend", post(enroll::resend_sms))
        .route("/api/applications/{id}/sms/verify", post(enroll::verify_sms))
        .route("/api/applications/{id}/pay", post(enroll::pay))
        .route("/api/applications/{id}/receipt", get(enroll::receipt))
        .route("/api/payments/notify", post(enroll::notify))
        .route("/api/staff/applications", get(staff::queue))
        .route("/api/staff/applications/{id}/photos/{side}", get(staff::photo))
        .route("/api/staff/applications/{id}/approve", post(staff::approve))
        .route("/api/staff/applications/{id}/reject", post(staff::reject))
        .route("/api/staff/certificates/{fingerprint}/revoke", post(staff::revoke))
        .route(pki::CRL_PATH, get(pki::crl))
        .route(pki::CA_PATH, get(pki::ca_certificate));
    if state.config.sandbox {
        r = r
            .route("/api/sandbox/pay/{payment_id}", post(sandbox::pay))
            .route("/api/sandbox/outbox", get(sandbox::outbox));
    }
    let sandbox = state.config.sandbox;
    r.merge(crate::pages::router(sandbox))
        .fallback(crate::pages::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_MAX_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), edge::edge))
        .with_state(state)
}

/// The calendar day (UTC) of a unix time, as messages print it.
pub(crate) fn day(unix: i64) -> String {
    let t = host_driver::certinfo::format_time(unix.max(0) as u64);
    t.get(..10).unwrap_or(&t).to_string()
}

/// A refusal: status, stable code, message (or a user-facing [`Msg`]), extra fields.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub msg: Option<Msg>,
    pub extra: Value,
    /// The form fields refused, and why (each gets its message in the caller's language).
    pub fields: Vec<crate::enrollment::FieldProblem>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), msg: None, extra: json!({}), fields: Vec::new() }
    }
    pub fn user(status: StatusCode, msg: Msg) -> ApiError {
        ApiError {
            status,
            code: msg.code(),
            message: String::new(),
            msg: Some(msg),
            extra: json!({}),
            fields: Vec::new(),
        }
    }
    pub fn with(mut self, extra: Value) -> ApiError {
        self.extra = extra;
        self
    }
    /// A refused form: every wrong field.
    pub fn with_fields(mut self, fields: Vec<crate::enrollment::FieldProblem>) -> ApiError {
        self.fields = fields;
        self
    }
    fn body(&self, lang: Lang) -> Value {
        let mut v = json!({
            "ok": false,
            "code": self.code,
            "message": self.msg.as_ref().map(|m| m.text(lang)).unwrap_or_else(|| self.message.clone()),
        });
        merge(&mut v, &self.extra);
        if !self.fields.is_empty() {
            let fields: Vec<Value> = self
                .fields
                .iter()
                .map(|p| {
                    let message = crate::messages::field_problem(p.field, p.error, lang);
                    json!({"field": p.field, "error": p.error, "message": message})
                })
                .collect();
            v["fields"] = json!(fields);
        }
        v
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!("store: {e}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the portal's log")
    }
}

fn merge(into: &mut Value, extra: &Value) {
    if let (Some(a), Some(b)) = (into.as_object_mut(), extra.as_object()) {
        for (k, v) in b {
            a.insert(k.clone(), v.clone());
        }
    }
}

/// A JSON request body; a body that is not the expected JSON gets a JSON refusal too.
pub struct Body<T>(pub T);

impl<T, St> axum::extract::FromRequest<St> for Body<T>
where
    axum::Json<T>: axum::extract::FromRequest<St, Rejection = axum::extract::rejection::JsonRejection>,
    St: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &St) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rej) => {
                let body = json!({"ok": false, "code": "bad_request", "message": rej.body_text()});
                Err((rej.status(), Json(body)).into_response())
            }
        }
    }
}

/// A JSON answer in the caller's language, with any cookie to set.
pub struct Reply {
    pub lang: Lang,
    pub result: Result<Value, ApiError>,
    pub cookie: Option<String>,
}

impl Reply {
    /// The answer of `body` in `lang`, without a cookie: what most endpoints give.
    pub async fn of(lang: Lang, body: impl std::future::Future<Output = Result<Value, ApiError>>) -> Reply {
        Reply { lang, result: body.await, cookie: None }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let (status, body) = match self.result {
            Ok(v) => (StatusCode::OK, v),
            Err(e) => (e.status, e.body(self.lang)),
        };
        let retry_after = body["retry_after"].as_i64().filter(|_| status == StatusCode::TOO_MANY_REQUESTS);
        let mut resp = (status, Json(body)).into_response();
        if let Some(secs) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            resp.headers_mut().insert(header::RETRY_AFTER, secs);
        }
        if let Some(c) = self.cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(header::SET_COOKIE, c);
        }
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

/// A success body: `ok`, the message's code and text, extra fields.
pub fn ok(lang: Lang, msg: &Msg, extra: Value) -> Value {
    let mut v = json!({ "ok": true, "code": msg.code(), "message": msg.text(lang) });
    merge(&mut v, &extra);
    v
}

/// The caller's language: the pages' language switch (a cookie) if it was used, else
/// Accept-Language, else Chinese.
pub fn lang(headers: &HeaderMap) -> Lang {
    match cookie(headers, LANG_COOKIE).as_deref() {
        Some("en") => Lang::En,
        Some("zh-CN") => Lang::Zh,
        _ => Lang::from_accept_language(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok())),
    }
}

/// The cookie the pages' language switch sets: `zh-CN` or `en`.
pub const LANG_COOKIE: &str = "ukey_lang";

/// The value of cookie `name` (at most 64 bytes), if the request has one.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name && !v.is_empty() && v.len() <= 64).then(|| v.to_string())
    })
}

/// A fresh random token (cookie value, CSRF token, nonce), base64url.
pub fn random_token() -> String {
    B64URL.encode(rand::random::<[u8; 32]>())
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE)
}

impl Portal {
    fn set_cookie(&self, token: &str) -> String {
        let secure = if self.config.origin.starts_with("https://") { "; Secure" } else { "" };
        format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", self.config.session_secs)
    }

    /// The caller's live session, if the cookie names one.
    pub(crate) async fn current(&self, headers: &HeaderMap) -> Result<Option<Session>, ApiError> {
        match cookie_token(headers) {
            Some(t) => Ok(self.store.session(&hash_token(&t), self.now()).await?),
            None => Ok(None),
        }
    }

    /// A new session (new token, new CSRF token) replacing `old`: called at every login, so a
    /// token planted before login is worthless after it.
    pub(crate) async fn rotate(
        &self,
        old: Option<&Session>,
        user_id: Option<String>,
        account_id: Option<String>,
    ) -> Result<(Session, String), ApiError> {
        let (s, token) = self.new_session(user_id, account_id);
        let replaced = match old {
            Some(o) => self.store.rotate_session(&o.token_hash, &s).await?,
            None => false,
        };
        if !replaced {
            self.store.put_session(&s, self.now()).await?;
        }
        Ok((s, self.set_cookie(&token)))
    }

    /// A fresh session and the cookie token that names it.
    pub(crate) fn new_session(&self, user_id: Option<String>, account_id: Option<String>) -> (Session, String) {
        let token = random_token();
        let s = Session {
            token_hash: hash_token(&token),
            user_id,
            account_id,
            csrf: random_token(),
            expires_at: self.now() + self.config.session_secs,
            challenge: None,
        };
        (s, token)
    }

    /// A state-changing request: it must come with a live session and its CSRF token.
    pub(crate) async fn guarded(&self, headers: &HeaderMap) -> Result<Session, ApiError> {
        let s = self.current(headers).await?.ok_or_else(no_session)?;
        self.check_csrf(headers, &s).await?;
        Ok(s)
    }

    /// [`Portal::guarded`] that also reads, in the same statement, the standing of the
    /// certificate `fingerprint` names (the key login's path).
    async fn guarded_with_key(
        &self,
        headers: &HeaderMap,
        fingerprint: &str,
    ) -> Result<(Session, Option<KeyStanding>), ApiError> {
        let hash = cookie_token(headers).map(|t| hash_token(&t)).ok_or_else(no_session)?;
        let (s, standing) = self.store.session_and_key(&hash, self.now(), fingerprint).await?.ok_or_else(no_session)?;
        self.check_csrf(headers, &s).await?;
        Ok((s, standing))
    }

    /// `checked` (a session check) with the request counted against `action`'s limits for
    /// the session the cookie names and for the client's address, all at once: when the
    /// counts live in the database that is round trips side by side instead of one after the
    /// other (the key login's hot path). The session check's refusal comes first.
    async fn limited_session<T>(
        &self,
        headers: &HeaderMap,
        client: &crate::client::ClientAddr,
        action: &'static str,
        checked: impl std::future::Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let session = cookie_token(headers).map(|t| hash_token(&t)).ok_or_else(no_session)?;
        let addr = client.key();
        let (checked, limited) = tokio::join!(checked, self.limit_both(action, &session, &addr));
        let checked = checked?;
        limited?;
        Ok(checked)
    }

    async fn check_csrf(&self, headers: &HeaderMap, s: &Session) -> Result<(), ApiError> {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !bool::from(subtle_eq(sent.as_bytes(), s.csrf.as_bytes())) {
            self.audit("-", "csrf", "refused", "missing or wrong CSRF token").await?;
            return Err(ApiError::new(StatusCode::FORBIDDEN, "csrf", "missing or wrong X-CSRF-Token"));
        }
        Ok(())
    }

    /// Count the request against `action`'s limit for `who` (a session, a user) and for the
    /// client's address `addr`; refused (429, audited) when either is over.
    pub(crate) async fn limit_both(&self, action: &'static str, who: &str, addr: &str) -> Result<(), ApiError> {
        let (a, b) = tokio::join!(
            self.limit_to(action, who, self.config.rate_per_minute),
            self.limit_to(action, addr, self.config.rate_per_address_per_minute)
        );
        a.and(b)
    }

    /// Count one request of `action` by `client`; refused once `per_minute` came this minute.
    pub(crate) async fn limit_to(&self, action: &'static str, client: &str, per_minute: u32) -> Result<(), ApiError> {
        let allowed = match &self.limits {
            RateLimits::InProcess(r) => r.allow(action, client, per_minute, self.now()),
            RateLimits::Shared => self.store.count_request(action, client, self.now() / 60).await? <= per_minute as i64,
        };
        if allowed {
            return Ok(());
        }
        self.audit(client, action, "refused", "rate limited").await?;
        let wait = 60 - self.now().rem_euclid(60);
        Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; wait a minute")
            .with(json!({"retry_after": wait})))
    }
}

pub(crate) fn no_session() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "no_session", "no session: GET /api/session first")
}

pub(crate) fn subtle_eq(a: &[u8], b: &[u8]) -> subtle::Choice {
    use subtle::ConstantTimeEq;
    if a.len() != b.len() {
        return subtle::Choice::from(0);
    }
    a.ct_eq(b)
}
