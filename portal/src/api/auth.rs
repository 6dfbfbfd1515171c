//! Sessions and password login.

use axum::extract::State as S;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{lang, ok, ApiError, Body, Reply, State};
use crate::messages::Msg;
use crate::password;

/// `GET /api/session`: who is logged in, and the CSRF token for the next POST. Starts an
/// anonymous session when there is none.
pub async fn session(S(p): S<State>, headers: HeaderMap) -> Reply {
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
        let (s, cookie) = p.rotate(None, None, None).await?;
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
    password: String,
}

/// `POST /api/login/password`. Wrong passwords count per account; at the limit the account
/// locks for a while. On success the session is rotated and the answer says whether the
/// user's enterprise has bound any key yet (the manual's "bind first" prompt).
pub async fn password_login(S(p): S<State>, headers: HeaderMap, Body(req): Body<PasswordLogin>) -> Reply {
    let lang = lang(&headers);
    let mut cookie = None;
    let result = async {
        let s = p.guarded(&headers).await?;
        p.limit("password_login", &format!("user:{}", req.username)).await?;
        let now = p.now();
        let Some(user) = p.store.user_by_name(&req.username).await? else {
            password::verify_nobody(&req.password, p.config.password_cost);
            p.audit(&req.username, "password_login", "refused", "unknown user").await?;
            return Err(ApiError::user(StatusCode::UNAUTHORIZED, Msg::WrongPassword));
        };
        if user.locked_until > now {
            p.audit(&user.username, "password_login", "refused", "account locked").await?;
            let minutes = (user.locked_until - now + 59) / 60;
            return Err(ApiError::user(StatusCode::FORBIDDEN, Msg::AccountLocked { minutes }));
        }
        if !password::verify(&req.password, &user.password_hash) {
            let f =
                p.store.record_login_failure(&user.id, p.config.max_password_failures, p.config.lock_secs, now).await?;
            p.audit(
                &user.username,
                "password_login",
                "refused",
                &format!("wrong password ({} in a row)", f.failed_logins),
            )
            .await?;
            if f.locked_until > now {
                let minutes = (f.locked_until - now + 59) / 60;
                return Err(ApiError::user(StatusCode::FORBIDDEN, Msg::AccountLocked { minutes }));
            }
            let left = p.config.max_password_failures - f.failed_logins;
            return Err(
                ApiError::user(StatusCode::UNAUTHORIZED, Msg::WrongPassword).with(json!({"attempts_left": left}))
            );
        }
        p.store.record_login_success(&user.id).await?;
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
                "user": {"username": user.username, "display_name": user.display_name},
                "bound": any_bound,
                "accounts": accounts,
            }),
        ))
    }
    .await;
    Reply { lang, result, cookie }
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
