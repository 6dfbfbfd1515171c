//! `POST /sign`: the key-login token for the calling page's origin.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use proto::piv::Slot;
use proto::secret::Pin;
use serde::Deserialize;
use serde_json::json;

use super::keyops::{key_error, on_key, refuse, request_lang, with_pin, KeyError};
use super::provider::KeyProvider;
use super::state::Agent;
use crate::login_token::{make, signed_digest, AuthToken};

#[derive(Deserialize)]
pub(super) struct SignRequest {
    key_id: String,
    pin: Pin,
    nonce: String,
    /// The user confirmed spending the PIN's last try (see [`with_pin`]).
    #[serde(default)]
    last_try: bool,
}

pub(super) fn sign_blocking(keys: &dyn KeyProvider, req: &SignRequest, origin: &str) -> Result<AuthToken, KeyError> {
    with_pin(keys, &req.key_id, &req.pin, req.last_try, |piv| {
        let cert = piv.read_certificate(Slot::Authentication).map_err(KeyError::key)?;
        let cert = cert.ok_or(KeyError::NoCertificate)?;
        let sig = piv
            .sign_digest(Slot::Authentication, &signed_digest(origin, req.nonce.as_bytes()))
            .map_err(KeyError::key)?;
        Ok(make(&cert, &sig.raw))
    })
}

pub(super) async fn sign(State(a): State<Arc<Agent>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
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
