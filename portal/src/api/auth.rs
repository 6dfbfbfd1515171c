//! Sessions and password login.

use axum::extract::{Extension, State as S};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{lang, ok, ApiError, Body, Reply, State};
use crate::client::ClientAddr;
use crate::messages::Msg;
use proto::secret::Password;

/// `GET /api/session`: who is logged in, and the CSRF token for the next POST. Starts an
/// anonymous session when there is none; new sessions are limited per client address, so
/// "fresh session, challenge, repeat" cannot dodge the per-session limits.
pub async fn session(S(p): S<State>, Extension(client): Extension<ClientAddr>, headers: HeaderMap) -> Reply {
    let lang = lang(&headers);
    let result = async {
        if let Some(s) = p.current(&headers).await? {
            let user = match &s.user_id {
                Some(id) => p
                    .store
                    .user_by_id(id)
                    .await?
                    .map(|u| json!({"username": u.username, "display_name": u.display_name, "role": u.role})),
                None => None,
            };
            return Ok((
                json!({"ok": true, "code": "session", "csrf": s.csrf, "user": user, "account_id": s.account_id}),
                None,
            ));
        }
        p.limit_to("new_session", &client.key(), p.config.sessions_per_address_per_minute).await?;
        let (s, cookie) = p.rotate(None, None, None).await?;
        Ok((json!({"ok": true, "code": "session", "csrf": s.csrf, "user": null, "account_id": null}), Some(cookie)))
    }
    .await;
    match result {
        Ok((v, cookie)) => Reply { lang, result: Ok(v), cookie },
        Err(e) => Reply { lang, result: Err(e), cookie: None },
    }
}

/// Longest username and password the login takes: more is refused before anything is
/// looked up or hashed.
pub const USERNAME_MAX_CHARS: usize = 64;
pub const PASSWORD_MAX_BYTES: usize = 1024;

#[derive(Deserialize)]
pub struct PasswordLogin {
    username: String,
    password: Password,
}

/// `POST /api/login/password`. A wrong password gets one answer whether or not the username
/// exists (same status, code, message and fields, and one hash spent either way). Failures
/// count per (username, client address): past a few, that client waits a doubling delay
/// before its next try — nobody else does, so a stranger cannot lock a user out. On success
/// the session is rotated and the answer says whether the user's enterprise has bound any
/// key yet (the manual's "bind first" prompt).
pub async fn password_login(
    S(p): S<State>,
    Extension(client): Extension<ClientAddr>,
    headers: HeaderMap,
    Body(req): Body<PasswordLogin>,
) -> Reply {
    let lang = lang(&headers);
    let mut cookie = None;
    let result = async {
        let s = p.guarded(&headers).await?;
        let name = req.username.trim();
        if name.is_empty() || name.chars().count() > USERNAME_MAX_CHARS || req.password.len() > PASSWORD_MAX_BYTES {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_credentials_format",
                format!("username: 1 to {USERNAME_MAX_CHARS} characters; password: at most {PASSWORD_MAX_BYTES} bytes"),
            ));
        }
        let addr = client.key();
        // Per session and per address, never per username: a count for the username would
        // let anyone hold its owner at the limit.
        p.limit_both("password_login", &s.token_hash, &addr).await?;
        let now = p.now();
        let blocked_until = p.store.password_delay(name, &addr).await?;
        if blocked_until > now {
            p.audit(name, "password_login", "refused", &format!("{addr} must wait")).await?;
            return Err(slow_down(blocked_until - now));
        }
        let user = p.store.user_by_name(name).await?;
        let right =
            p.hasher.verify(&req.password, user.as_ref().map(|u| u.password_hash.as_str())).await.map_err(|_| {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "the portal is busy; try again in a moment")
            })?;
        let user = match user {
            Some(u) if right => u,
            known => {
                let f = p.store.record_password_failure(name, &addr, |n| p.config.password_delay(n), now).await?;
                let who = if known.is_some() { "wrong password" } else { "unknown user" };
                p.audit(name, "password_login", "refused", &format!("{who} from {addr} ({} in a row)", f.failures))
                    .await?;
                let mut err = ApiError::user(StatusCode::UNAUTHORIZED, Msg::WrongPassword);
                if f.blocked_until > now {
                    err = err.with(json!({"retry_after": f.blocked_until - now}));
                }
                return Err(err);
            }
        };
        p.store.clear_password_failures(name, &addr).await?;
        let (new, c) = p.rotate(Some(&s), Some(user.id.clone()), None).await?;
        cookie = Some(c);
        let accounts = p.store.accounts(&user.enterprise_id).await?;
        let any_bound = accounts.iter().any(|a| !a.bound_to.is_empty());
        p.audit(&user.username, "password_login", "ok", "").await?;
        let msg = if any_bound { Msg::LoggedIn } else { Msg::NoBindingYet };
        Ok(ok(
            lang,
            &msg,
            json!({
                "csrf": new.csrf,
                "user": {"username": user.username, "display_name": user.display_name, "role": user.role},
                "bound": any_bound,
                "accounts": accounts,
            }),
        ))
    }
    .await;
    Reply { lang, result, cookie }
}

/// The answer to a client that must wait `secs` before its next password.
fn slow_down(secs: i64) -> ApiError {
    ApiError::user(StatusCode::TOO_MANY_REQUESTS, Msg::SlowDown { secs }).with(json!({"retry_after": secs}))
}

/// `POST /api/logout`.
pub async fn logout(S(p): S<State>, headers: HeaderMap) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let s = p.guarded(&headers).await?;
        p.store.delete_session(&s.token_hash).await?;
        p.audit(s.user_id.as_deref().unwrap_or("-"), "logout", "ok", "").await?;
        Ok(json!({"ok": true, "code": "logged_out", "message": ""}))
    }
    .await;
    // Expire the cookie in the browser too.
    Reply { lang, result, cookie: Some(format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", super::COOKIE)) }
}
