//! Key login's JSON endpoints: a challenge for the session, then the token the key signed.
//! The rules are [`service::keylogin`](crate::service::keylogin)'s.

use axum::extract::{Extension, State as S};
use serde::Deserialize;
use serde_json::json;

use super::reply::{ok, Body, Reply};
use crate::app::State;
use crate::client::ClientAddr;
use crate::service::keylogin::Standing;
use crate::token::{self, AuthToken};
use crate::web::lang::Language;
use crate::web::session::{set_cookie, Caller};

/// `POST /api/challenge`: 32 random bytes, single use, valid for five minutes, held by this
/// session (a new challenge replaces the last) together with the portal's own origin.
pub async fn challenge(
    S(p): S<State>,
    Extension(client): Extension<ClientAddr>,
    Language(lang): Language,
    caller: Caller,
) -> Reply {
    Reply::of(lang, async {
        let s = caller.limited(&p, &client, "challenge", caller.guarded(&p)).await?;
        let c = p.new_challenge(&s).await?;
        Ok(json!({"ok": true, "code": "challenge", "message": "", "nonce": c.nonce, "origin": c.origin, "expires_at": c.expires_at}))
    })
    .await
}

#[derive(Deserialize)]
pub struct KeyLogin {
    nonce: String,
    token: AuthToken,
    /// When the key is bound to several accounts: which one.
    account_id: Option<String>,
}

/// `POST /api/login/key`.
pub async fn key_login(
    S(p): S<State>,
    Extension(client): Extension<ClientAddr>,
    Language(lang): Language,
    caller: Caller,
    Body(req): Body<KeyLogin>,
) -> Reply {
    let mut cookie = None;
    let result = async {
        // The session and the key's standing in one read (the login's hot path).
        let session = async {
            Ok(match token::claimed_fingerprint(&req.token) {
                Some(fingerprint) => {
                    let (s, standing) = caller.guarded_with_key(&p, &fingerprint).await?;
                    (s, Standing::Read { fingerprint, standing })
                }
                None => (caller.guarded(&p).await?, Standing::Unread),
            })
        };
        let (s, known) = caller.limited(&p, &client, "key_login", session).await?;
        let done = p.log_in_with_key(&s, known, &req.nonce, &req.token, req.account_id.as_deref()).await?;
        cookie = Some(set_cookie(&p, &done.token));
        let v = &done.verified;
        Ok(ok(
            lang,
            &done.msg,
            json!({
                "csrf": done.session.csrf,
                "account": done.account,
                "certificate": {"subject": v.subject, "not_after": v.not_after, "days_left": done.days_left, "fingerprint": v.fingerprint},
            }),
        ))
    }
    .await;
    Reply { lang, result, cookie }
}
