//! Sessions and password login.

use axum::extract::{Extension, State as S};
use serde::Deserialize;
use serde_json::json;

use super::reply::{ok, Body, Reply};
use crate::app::State;
use crate::client::ClientAddr;
use crate::messages::Msg;
use crate::web::lang::Language;
use crate::web::session::{clear_cookie, set_cookie, Caller};
use proto::secret::Password;

/// `GET /api/session`: who is logged in, and the CSRF token for the next POST. Starts an
/// anonymous session when there is none; new sessions are limited per client address, so
/// "fresh session, challenge, repeat" cannot dodge the per-session limits.
pub async fn session(
    S(p): S<State>,
    Extension(client): Extension<ClientAddr>,
    Language(lang): Language,
    caller: Caller,
) -> Reply {
    let result = async {
        if let Some(s) = caller.session(&p).await? {
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
        let (s, token) = p.rotate(None, None, None).await?;
        let cookie = set_cookie(&p, &token);
        Ok((json!({"ok": true, "code": "session", "csrf": s.csrf, "user": null, "account_id": null}), Some(cookie)))
    }
    .await;
    match result {
        Ok((v, cookie)) => Reply { lang, result: Ok(v), cookie },
        Err(e) => Reply { lang, result: Err(e), cookie: None },
    }
}

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
    Language(lang): Language,
    caller: Caller,
    Body(req): Body<PasswordLogin>,
) -> Reply {
    let mut cookie = None;
    let result = async {
        let s = caller.guarded(&p).await?;
        let done = p.log_in_with_password(&s, &client.key(), &req.username, &req.password).await?;
        let msg = if done.any_bound() { Msg::LoggedIn } else { Msg::NoBindingYet };
        let u = &done.user;
        let v = ok(
            lang,
            &msg,
            json!({
                "csrf": done.session.csrf,
                "user": {"username": u.username, "display_name": u.display_name, "role": u.role},
                "bound": done.any_bound(),
                "accounts": done.accounts,
            }),
        );
        cookie = Some(set_cookie(&p, &done.token));
        Ok(v)
    }
    .await;
    Reply { lang, result, cookie }
}

/// `POST /api/logout`.
pub async fn logout(S(p): S<State>, Language(lang): Language, caller: Caller) -> Reply {
    let result = async {
        let s = caller.guarded(&p).await?;
        p.log_out(&s).await?;
        Ok(json!({"ok": true, "code": "logged_out", "message": ""}))
    }
    .await;
    // Expire the cookie in the browser too.
    Reply { lang, result, cookie: Some(clear_cookie()) }
}
