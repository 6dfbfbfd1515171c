//! The accounts page: list with bound / unbound status, bind (proving possession of the key),
//! unbind. All need a password-logged-in session.

use axum::extract::State as S;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::keylogin::Standing;
use super::{lang, ok, ApiError, Body, Portal, Reply, State};
use crate::messages::Msg;
use crate::store::{Session, User};
use crate::token::AuthToken;

pub(crate) fn login_required() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "login_required", "log in with your password first")
}

impl Portal {
    pub(crate) async fn user_of(&self, s: &Session) -> Result<User, ApiError> {
        let id = s.user_id.as_ref().ok_or_else(login_required)?;
        self.store.user_by_id(id).await?.ok_or_else(login_required)
    }
}

/// `GET /api/accounts`: the enterprise's accounts and what is bound to each.
pub async fn accounts(S(p): S<State>, headers: HeaderMap) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let s = p.current(&headers).await?.ok_or_else(login_required)?;
        let user = p.user_of(&s).await?;
        let accounts = p.store.accounts(&user.enterprise_id).await?;
        Ok(json!({"ok": true, "code": "accounts", "message": "", "accounts": accounts}))
    }
    .await;
    Reply { lang, result, cookie: None }
}

#[derive(Deserialize)]
pub struct Bind {
    account_ids: Vec<String>,
    nonce: String,
    token: AuthToken,
}

/// `POST /api/bind`: the key proves possession (PIN + signature over a fresh challenge).
pub async fn bind(S(p): S<State>, headers: HeaderMap, Body(req): Body<Bind>) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let s = p.guarded(&headers).await?;
        let user = p.user_of(&s).await?;
        p.limit("bind", &user.id).await?;
        if req.account_ids.is_empty() {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "no_accounts", "tick at least one account"));
        }
        let proof = p.prove_key(&s, &req.nonce, &req.token, "bind", Standing::Unread).await?;
        p.spend(&s, &proof, "bind").await?;
        let v = proof.verified;
        let added = match p.store.bind(&user, &req.account_ids, &v.fingerprint, p.now()).await {
            Ok(n) => n,
            Err(crate::store::StoreError::NotFound { value, .. }) => {
                p.audit(&user.username, "bind", "refused", &format!("account {value} not in the enterprise")).await?;
                return Err(ApiError::new(StatusCode::BAD_REQUEST, "unknown_account", format!("no account {value}")));
            }
            Err(e) => return Err(e.into()),
        };
        p.audit(&user.username, "bind", "ok", &format!("{} accounts to {}", req.account_ids.len(), v.fingerprint))
            .await?;
        let accounts = p.store.accounts(&user.enterprise_id).await?;
        Ok(ok(lang, &Msg::Bound { count: req.account_ids.len() }, json!({"added": added, "accounts": accounts})))
    }
    .await;
    Reply { lang, result, cookie: None }
}

#[derive(Deserialize)]
pub struct Unbind {
    account_ids: Vec<String>,
}

/// `POST /api/unbind`.
pub async fn unbind(S(p): S<State>, headers: HeaderMap, Body(req): Body<Unbind>) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let s = p.guarded(&headers).await?;
        let user = p.user_of(&s).await?;
        let removed = p.store.unbind(&user, &req.account_ids).await?;
        p.audit(&user.username, "unbind", "ok", &format!("{removed} bindings of {} accounts", req.account_ids.len()))
            .await?;
        let accounts = p.store.accounts(&user.enterprise_id).await?;
        Ok(ok(lang, &Msg::Unbound { count: req.account_ids.len() }, json!({"removed": removed, "accounts": accounts})))
    }
    .await;
    Reply { lang, result, cookie: None }
}
