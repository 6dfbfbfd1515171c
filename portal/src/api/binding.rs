//! The accounts page's JSON endpoints: list with bound / unbound status, bind (proving
//! possession of the key), unbind. The rules are [`service::binding`](crate::service::binding)'s.

use axum::extract::{Extension, State as S};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::json;

use super::{lang, ok, Body, Portal, Reply, State};
use crate::app::Refusal;
use crate::client::ClientAddr;
use crate::messages::Msg;
use crate::store::{Account, AccountBinding, Session, User};
use crate::token::AuthToken;

impl Portal {
    /// The request's session, if it is a password login's.
    pub(crate) async fn logged_in(&self, headers: &HeaderMap) -> Result<Session, Refusal> {
        let s = self.current(headers).await?.ok_or_else(Refusal::login_required)?;
        s.user_id.as_ref().ok_or_else(Refusal::login_required)?;
        Ok(s)
    }
}

impl Portal {
    /// The password-logged-in user of this request, their enterprise's accounts and what is
    /// bound to each: the accounts page and `GET /api/accounts` both show this.
    pub(crate) async fn my_accounts(&self, headers: &HeaderMap) -> Result<(User, Vec<AccountBinding>), Refusal> {
        let s = self.current(headers).await?.ok_or_else(Refusal::login_required)?;
        let user = self.user_of(&s).await?;
        let accounts = self.store.accounts(&user.enterprise_id).await?;
        Ok((user, accounts))
    }
}

impl Portal {
    /// Who this request's session is: the user (password login) and the account (key
    /// login), either or both; `None` for a session that logged in to nothing.
    pub(crate) async fn whoami(&self, headers: &HeaderMap) -> Result<Option<(Option<User>, Option<Account>)>, Refusal> {
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
    Reply::of(lang, async {
        let (_, accounts) = p.my_accounts(&headers).await?;
        Ok(json!({"ok": true, "code": "accounts", "message": "", "accounts": accounts}))
    })
    .await
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
    Reply::of(lang, async {
        let s = p.guarded(&headers).await?;
        let (added, accounts) = p.bind_key(&s, &client.key(), &req.account_ids, &req.nonce, &req.token).await?;
        Ok(ok(lang, &Msg::Bound { count: req.account_ids.len() }, json!({"added": added, "accounts": accounts})))
    })
    .await
}

#[derive(Deserialize)]
pub struct Unbind {
    account_ids: Vec<String>,
}

/// `POST /api/unbind`.
pub async fn unbind(S(p): S<State>, headers: HeaderMap, Body(req): Body<Unbind>) -> Reply {
    let lang = lang(&headers);
    Reply::of(lang, async {
        let s = p.guarded(&headers).await?;
        let (removed, accounts) = p.unbind_accounts(&s, &req.account_ids).await?;
        Ok(ok(lang, &Msg::Unbound { count: req.account_ids.len() }, json!({"removed": removed, "accounts": accounts})))
    })
    .await
}
