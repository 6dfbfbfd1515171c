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

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::app::{Kind, Refusal};
use crate::messages::{Lang, Msg};
use crate::ratelimit::RateLimits;
use crate::store::{KeyStanding, Session};

pub const COOKIE: &str = "ukey_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

pub use crate::app::{Portal, State};

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

/// The HTTP status of a refusal of `kind`: the one place the API chooses it.
pub fn status(kind: Kind) -> StatusCode {
    match kind {
        Kind::Malformed => StatusCode::BAD_REQUEST,
        Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::Conflict => StatusCode::CONFLICT,
        Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Kind::UnsupportedType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Kind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        Kind::TooMany => StatusCode::TOO_MANY_REQUESTS,
        Kind::Busy => StatusCode::SERVICE_UNAVAILABLE,
        Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A refusal's JSON body in `lang`: `ok: false`, its code and message, its extra fields,
/// and each refused form field with its message.
fn refusal_body(r: &Refusal, lang: Lang) -> Value {
    let mut v = json!({
        "ok": false,
        "code": r.code,
        "message": r.msg.as_ref().map(|m| m.text(lang)).unwrap_or_else(|| r.message.clone()),
    });
    merge(&mut v, &r.extra);
    if !r.fields.is_empty() {
        let fields: Vec<Value> = r
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
    pub result: Result<Value, Refusal>,
    pub cookie: Option<String>,
}

impl Reply {
    /// The answer of `body` in `lang`, without a cookie: what most endpoints give.
    pub async fn of(lang: Lang, body: impl std::future::Future<Output = Result<Value, Refusal>>) -> Reply {
        Reply { lang, result: body.await, cookie: None }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let (status, body) = match self.result {
            Ok(v) => (StatusCode::OK, v),
            Err(r) => (status(r.kind), refusal_body(&r, self.lang)),
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

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    cookie(headers, COOKIE)
}

impl Portal {
    pub(crate) fn set_cookie(&self, token: &str) -> String {
        let secure = if self.config.origin.starts_with("https://") { "; Secure" } else { "" };
        format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", self.config.session_secs)
    }

    /// The caller's live session, if the cookie names one.
    pub(crate) async fn current(&self, headers: &HeaderMap) -> Result<Option<Session>, Refusal> {
        match cookie_token(headers) {
            Some(t) => Ok(self.store.session(&crate::secret::hash_token(&t), self.now()).await?),
            None => Ok(None),
        }
    }

    /// A state-changing request: it must come with a live session and its CSRF token.
    pub(crate) async fn guarded(&self, headers: &HeaderMap) -> Result<Session, Refusal> {
        let s = self.current(headers).await?.ok_or_else(Refusal::no_session)?;
        self.check_csrf(headers, &s).await?;
        Ok(s)
    }

    /// [`Portal::guarded`] that also reads, in the same statement, the standing of the
    /// certificate `fingerprint` names (the key login's path).
    async fn guarded_with_key(
        &self,
        headers: &HeaderMap,
        fingerprint: &str,
    ) -> Result<(Session, Option<KeyStanding>), Refusal> {
        let hash = cookie_token(headers).map(|t| crate::secret::hash_token(&t)).ok_or_else(Refusal::no_session)?;
        let (s, standing) =
            self.store.session_and_key(&hash, self.now(), fingerprint).await?.ok_or_else(Refusal::no_session)?;
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
        checked: impl std::future::Future<Output = Result<T, Refusal>>,
    ) -> Result<T, Refusal> {
        let session = cookie_token(headers).map(|t| crate::secret::hash_token(&t)).ok_or_else(Refusal::no_session)?;
        let addr = client.key();
        let (checked, limited) = tokio::join!(checked, self.limit_both(action, &session, &addr));
        let checked = checked?;
        limited?;
        Ok(checked)
    }

    async fn check_csrf(&self, headers: &HeaderMap, s: &Session) -> Result<(), Refusal> {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !bool::from(crate::secret::subtle_eq(sent.as_bytes(), s.csrf.as_bytes())) {
            self.audit("-", "csrf", "refused", "missing or wrong CSRF token").await?;
            return Err(Refusal::new(Kind::Forbidden, "csrf", "missing or wrong X-CSRF-Token"));
        }
        Ok(())
    }
}
