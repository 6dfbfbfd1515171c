//! The certificate assistant (证书助手): the agent's own page at its own address, showing each
//! key's certificate (holder, issuer, serial, validity, days left) and PIN tries, with change
//! PIN and unblock-with-PUK. Its calls (`POST /assistant/...`) are answered only for the
//! agent's own origin: a portal's page may log in with a key, not change its PIN.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use proto::secret::{Pin, Puk};
use serde::Deserialize;
use serde_json::{json, Value};

use super::keyops::{on_key, refuse, request_lang, KeyError};
use super::state::Agent;
use crate::certinfo::format_time;
use crate::lang::Lang;
use crate::{PinOutcome, Piv};

/// The page, its script and its style sheet: built in, served without an Origin (a browser
/// navigating to the agent sends none).
pub(super) const PAGE_PATHS: [&str; 3] = ["/", "/assistant.js", "/assistant.css"];

pub(super) async fn page(headers: HeaderMap) -> Response {
    let lang = request_lang(&headers);
    let html = include_str!("../../static/assistant.html").replace("{lang}", lang_tag(lang));
    let mut resp = axum::response::Html(html).into_response();
    secure(resp.headers_mut());
    resp
}

pub(super) async fn script() -> Response {
    asset(include_str!("../../static/assistant.js"), "text/javascript; charset=utf-8")
}

pub(super) async fn style() -> Response {
    asset(include_str!("../../static/assistant.css"), "text/css; charset=utf-8")
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut resp = body.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    secure(resp.headers_mut());
    resp
}

fn secure(h: &mut axum::http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src data:; connect-src 'self'; \
             form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

fn lang_tag(lang: Lang) -> &'static str {
    match lang {
        Lang::Zh => "zh-CN",
        Lang::En => "en",
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `POST /assistant/keys`: every key with its certificates and PIN tries (none spent).
pub(super) async fn keys(State(a): State<Arc<Agent>>) -> Response {
    let keys = a.keys.clone();
    let list = tokio::task::spawn_blocking(move || {
        let now = now();
        keys.list()
            .iter()
            .map(|k| {
                let info = keys.open(&k.id).map_err(|e| e.to_string()).and_then(|t| {
                    let mut piv = Piv::new(t);
                    crate::inspect(&mut piv, &k.label).map_err(|e| e.to_string())
                });
                match info {
                    Ok(i) => json!({
                        "id": k.id,
                        "label": k.label,
                        "serial": i.serial,
                        "pin_retries": i.pin_retries,
                        "pin_retries_total": i.pin_retries_total,
                        "certificates": i.certificates.iter().map(|c| json!({
                            "slot": c.slot,
                            "subject": c.cert.subject,
                            "issuer": c.cert.issuer,
                            "serial": c.cert.serial,
                            "not_before": format_time(c.cert.not_before),
                            "not_after": format_time(c.cert.not_after),
                            "days_left": c.cert.days_left(now),
                        })).collect::<Vec<Value>>(),
                    }),
                    Err(e) => json!({"id": k.id, "label": k.label, "error": e}),
                }
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    Json(json!({"ok": true, "keys": list})).into_response()
}

#[derive(Deserialize)]
pub(super) struct ChangePin {
    key_id: String,
    old_pin: Pin,
    new_pin: Pin,
    /// The user confirmed spending the PIN's last try.
    #[serde(default)]
    last_try: bool,
}

#[derive(Deserialize)]
pub(super) struct Unblock {
    key_id: String,
    puk: Puk,
    new_pin: Pin,
    /// The user confirmed spending the PUK's last try.
    #[serde(default)]
    last_try: bool,
}

fn bad_pin(lang: Lang) -> Response {
    refuse(
        StatusCode::BAD_REQUEST,
        "bad_pin",
        match lang {
            Lang::Zh => "新PIN须为6到8位字符",
            Lang::En => "A new PIN has 6 to 8 characters",
        },
    )
}

/// `POST /assistant/pin/change`.
pub(super) async fn change_pin(State(a): State<Arc<Agent>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let lang = request_lang(&headers);
    let Ok(req) = serde_json::from_slice::<ChangePin>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "bad_request", "expected {key_id, old_pin, new_pin}");
    };
    if req.new_pin.block().is_none() {
        return bad_pin(lang);
    }
    let key_id = req.key_id.clone();
    let done = on_key(&a.keys, &key_id, move |keys| {
        let mut piv = super::keyops::open_guarded(keys, &req.key_id, req.last_try)?;
        match piv.change_pin(&req.old_pin, &req.new_pin) {
            Ok(PinOutcome::Ok) => Ok(()),
            Ok(PinOutcome::WrongPin { retries_left }) => Err(KeyError::WrongPin(retries_left)),
            Ok(PinOutcome::Blocked) | Err(crate::PivError::PinBlocked { .. }) => Err(KeyError::PinLocked),
            Err(e) => Err(KeyError::key(e)),
        }
    })
    .await;
    match done {
        Some(Ok(())) => {
            let message = match lang {
                Lang::Zh => "USB-Key密码修改成功",
                Lang::En => "The USB-Key PIN was changed",
            };
            Json(json!({"ok": true, "code": "pin_changed", "message": message})).into_response()
        }
        Some(Err(e)) => super::keyops::key_error(e, lang, &key_id),
        None => refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the key task failed"),
    }
}

/// `POST /assistant/pin/unblock`: a new PIN, authorised by the PUK.
pub(super) async fn unblock(State(a): State<Arc<Agent>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let lang = request_lang(&headers);
    let Ok(req) = serde_json::from_slice::<Unblock>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "bad_request", "expected {key_id, puk, new_pin}");
    };
    if req.new_pin.block().is_none() {
        return bad_pin(lang);
    }
    let key_id = req.key_id.clone();
    let done = on_key(&a.keys, &key_id, move |keys| {
        let t = keys.open(&req.key_id).map_err(|e| Err(KeyError::NoKey(e)))?;
        let mut piv = Piv::new(t);
        piv.select().map_err(|e| Err(KeyError::key(e)))?;
        // The PUK's tries, counted without spending one. A card without metadata cannot say:
        // any try may be its last, so it is asked for as one.
        match piv.puk_retries().map_err(|e| Err(KeyError::key(e)))? {
            Some(0) => return Err(Ok(0)),
            Some(1) | None if !req.last_try => return Err(Err(KeyError::PukLastTry)),
            _ => {}
        }
        match piv.unblock_pin(&req.puk, &req.new_pin) {
            Ok(PinOutcome::Ok) => Ok(()),
            // The counts are the PUK's.
            Ok(PinOutcome::WrongPin { retries_left }) => Err(Ok(retries_left)),
            Ok(PinOutcome::Blocked) | Err(crate::PivError::PinBlocked { .. }) => Err(Ok(0)),
            Err(e) => Err(Err(KeyError::key(e))),
        }
    })
    .await;
    match done {
        Some(Ok(())) => {
            let message = match lang {
                Lang::Zh => "USB-Key已解锁，请使用新密码",
                Lang::En => "The USB-Key is unblocked: use the new PIN",
            };
            Json(json!({"ok": true, "code": "pin_unblocked", "message": message})).into_response()
        }
        Some(Err(Ok(0))) => refuse(
            StatusCode::FORBIDDEN,
            "puk_locked",
            match lang {
                Lang::Zh => "PUK码已锁定，USB-Key无法解锁，请联系管理员重置",
                Lang::En => "The PUK is blocked: the USB-Key cannot be unblocked; ask your administrator to reset it",
            },
        ),
        Some(Err(Ok(n))) => {
            let message = match lang {
                Lang::Zh => format!("PUK码错误，还有{n}次机会"),
                Lang::En => format!("Wrong PUK, {n} attempts left"),
            };
            let body = json!({"ok": false, "code": "wrong_puk", "attempts_left": n, "message": message});
            (StatusCode::UNAUTHORIZED, Json(body)).into_response()
        }
        Some(Err(Err(e))) => super::keyops::key_error(e, lang, &key_id),
        None => refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the key task failed"),
    }
}
