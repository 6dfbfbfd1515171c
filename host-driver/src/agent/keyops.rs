//! A key operation on behalf of a page: the key's turn, the PIN with its last-try guard, and
//! the answer for what went wrong, in the page's language.

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use proto::secret::Pin;
use proto::Transport;
use serde_json::json;

use super::provider::KeyProvider;
use crate::lang::Lang;
use crate::{PinOutcome, Piv, PivError};

/// An error answer: `{"ok": false, "code", "message"}` with `status`.
pub(super) fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"ok": false, "code": code, "message": message}))).into_response()
}

/// Why a key operation did not happen, as the page shows it.
#[derive(Debug)]
pub(super) enum KeyError {
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
    pub(super) fn key(e: PivError) -> KeyError {
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
pub(super) fn with_pin<T>(
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
pub(super) fn open_guarded(
    keys: &dyn KeyProvider,
    key_id: &str,
    last_try: bool,
) -> Result<Piv<Box<dyn Transport>>, KeyError> {
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
pub(super) fn key_error(e: KeyError, lang: Lang, key_id: &str) -> Response {
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

pub(super) fn request_lang(headers: &HeaderMap) -> Lang {
    Lang::from_accept_language(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()))
}
