//! The accounts page's JSON endpoints: list with bound / unbound status, bind (proving
//! possession of the key), unbind. The rules are [`service::binding`](crate::service::binding)'s.

use axum::extract::{Extension, State as S};
use serde::Deserialize;
use serde_json::json;

use super::reply::{ok, Body, Reply};
use crate::app::State;
use crate::client::ClientAddr;
use crate::messages::Msg;
use crate::token::AuthToken;
use crate::web::lang::Language;
use crate::web::session::Caller;

/// `GET /api/accounts`: the enterprise's accounts and what is bound to each.
pub async fn accounts(S(p): S<State>, Language(lang): Language, caller: Caller) -> Reply {
    Reply::of(lang, async {
        let (_, accounts) = p.my_accounts(&caller.logged_in(&p).await?).await?;
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
    Language(lang): Language,
    caller: Caller,
    Body(req): Body<Bind>,
) -> Reply {
    Reply::of(lang, async {
        let s = caller.guarded(&p).await?;
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
pub async fn unbind(S(p): S<State>, Language(lang): Language, caller: Caller, Body(req): Body<Unbind>) -> Reply {
    Reply::of(lang, async {
        let s = caller.guarded(&p).await?;
        let (removed, accounts) = p.unbind_accounts(&s, &req.account_ids).await?;
        Ok(ok(lang, &Msg::Unbound { count: req.account_ids.len() }, json!({"removed": removed, "accounts": accounts})))
    })
    .await
}
