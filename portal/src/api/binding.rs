//! The accounts page: list with bound / unbound status, bind (proving possession of the key),
//! unbind. All need a password-logged-in session.

use axum::extract::{Extension, State as S};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::keylogin::Standing;
use super::{lang, ok, ApiError, Body, Portal, Reply, State};
use crate::client::ClientAddr;
use crate::messages::Msg;
use crate::store::{Account, AccountBinding, Enterprise, Session, User};
use crate::token::AuthToken;

/// Most accounts one bind or unbind names (an enterprise has a handful).
pub const ACCOUNTS_MAX: usize = 100;

/// A list of account ids within bounds, or the refusal.
#[allow(clippy::result_large_err)] // the handlers' own error type, returned at once
fn check_account_ids(ids: &[String]) -> Result<(), ApiError> {
    if ids.len() > ACCOUNTS_MAX || ids.iter().any(|id| id.len() > 64) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_accounts",
            format!("name at most {ACCOUNTS_MAX} accounts, by their ids"),
        ));
    }
    Ok(())
}

pub(crate) fn login_required() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "login_required", "log in with your password first")
}

impl Portal {
    /// The request's session, if it is a password login's.
    pub(crate) async fn logged_in(&self, headers: &HeaderMap) -> Result<Session, ApiError> {
        let s = self.current(headers).await?.ok_or_else(login_required)?;
        s.user_id.as_ref().ok_or_else(login_required)?;
        Ok(s)
    }

    pub(crate) async fn user_of(&self, s: &Session) -> Result<User, ApiError> {
        let id = s.user_id.as_ref().ok_or_else(login_required)?;
        self.store.user_by_id(id).await?.ok_or_else(login_required)
    }

    /// The user's enterprise (every user has one: a foreign key).
    pub(crate) async fn enterprise_of(&self, user: &User) -> Result<Enterprise, ApiError> {
        self.store.enterprise(&user.enterprise_id).await?.ok_or_else(|| {
            ApiError::from(crate::StoreError::NotFound { what: "enterprise", value: user.enterprise_id.clone() })
        })
    }
}

impl Portal {
    /// The password-logged-in user of this request, their enterprise's accounts and what is
    /// bound to each: the accounts page and `GET /api/accounts` both show this.
    pub(crate) async fn my_accounts(&self, headers: &HeaderMap) -> Result<(User, Vec<AccountBinding>), ApiError> {
        let s = self.current(headers).await?.ok_or_else(login_required)?;
        let user = self.user_of(&s).await?;
        let accounts = self.store.accounts(&user.enterprise_id).await?;
        Ok((user, accounts))
    }
}

impl Portal {
    /// Who this request's session is: the user (password login) and the account (key
    /// login), either or both; `None` for a session that logged in to nothing.
    pub(crate) async fn whoami(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<(Option<User>, Option<Account>)>, ApiError> {
        let Some(s) = self.current(headers).await? else { return Ok(None) };
        let user = match &s.user_id {
            Some(id) => self.store.user_by_id(id).await?,
            None => None,
        };
        let account = match &s.account_id {
            Some(id) => self.store.account_by_id(id).await?,
            None => None,
        };
        Ok((user.is_some() || account.is_some()).then_some((user, account)))
    }
}

/// `GET /api/accounts`: the enterprise's accounts and what is bound to each.
pub async fn accounts(S(p): S<State>, headers: HeaderMap) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let (_, accounts) = p.my_accounts(&headers).await?;
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

/// `POST /api/bind`: the key proves possession (PIN + signature over a fresh challenge). Answers
/// the accounts it named, with their bindings (`GET /api/accounts` lists them all).
pub async fn bind(
    S(p): S<State>,
    Extension(client): Extension<ClientAddr>,
    headers: HeaderMap,
    Body(req): Body<Bind>,
) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let s = p.guarded(&headers).await?;
        let user = p.user_of(&s).await?;
        p.limit_both("bind", &user.id, &client.key()).await?;
        check_account_ids(&req.account_ids)?;
        if req.account_ids.is_empty() {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "no_accounts", "tick at least one account"));
        }
        let proof = p.prove_key(&s, &req.nonce, &req.token, "bind", Standing::Unread).await?;
        p.spend(&s, &proof, "bind").await?;
        let v = proof.verified;
        // A password (perhaps phished) opens one enterprise's accounts: only that enterprise's
        // keys may be bound to them, named by the credit code the CA put in the certificate.
        let enterprise = p.enterprise_of(&user).await?;
        if v.organization_id.as_deref() != Some(enterprise.credit_code.as_str()) {
            let named = v.organization_id.as_deref().unwrap_or("no credit code");
            let why = format!("certificate {} is for {named}, not {}", v.fingerprint, enterprise.credit_code);
            p.audit(&user.username, "bind", "refused", &why).await?;
            return Err(ApiError::user(StatusCode::FORBIDDEN, Msg::OtherEnterprise));
        }
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
        let accounts = p.store.accounts_among(&user.enterprise_id, Some(&req.account_ids)).await?;
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
        check_account_ids(&req.account_ids)?;
        let removed = p.store.unbind(&user, &req.account_ids).await?;
        p.audit(&user.username, "unbind", "ok", &format!("{removed} bindings of {} accounts", req.account_ids.len()))
            .await?;
        let accounts = p.store.accounts_among(&user.enterprise_id, Some(&req.account_ids)).await?;
        Ok(ok(lang, &Msg::Unbound { count: req.account_ids.len() }, json!({"removed": removed, "accounts": accounts})))
    }
    .await;
    Reply { lang, result, cookie: None }
}
