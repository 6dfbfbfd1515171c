//! Key login: a challenge (nonce) for the session, then the token the key signed.

use axum::extract::State as S;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use super::{day, lang, ok, random_token, ApiError, Body, Portal, Reply, State};
use crate::messages::Msg;
use crate::store::{Account, CertRecord};
use crate::token::{self, AuthToken, TokenError, Verified};

/// `POST /api/challenge`: 32 random bytes, single use, valid for five minutes, tied to this
/// session and to the portal's own origin.
pub async fn challenge(S(p): S<State>, headers: HeaderMap) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let s = p.guarded(&headers).await?;
        p.limit("challenge", &s.token_hash).await?;
        let nonce = random_token();
        let expires_at = p.now() + p.config.nonce_secs;
        p.store.put_nonce(&nonce, &s.token_hash, &p.config.origin, expires_at).await?;
        Ok(json!({"ok": true, "code": "challenge", "message": "", "nonce": nonce, "origin": p.config.origin, "expires_at": expires_at}))
    }
    .await;
    Reply { lang, result, cookie: None }
}

impl Portal {
    /// Take the nonce the token answers (once, atomically), check it belongs to this session
    /// and is fresh, then judge the token against the portal's own origin and CA, and the
    /// certificate's revocation. Every refusal is audited.
    pub(super) async fn prove_key(
        &self,
        session: &str,
        nonce: &str,
        token: &AuthToken,
        action: &str,
    ) -> Result<(Verified, Vec<Account>), ApiError> {
        let refuse = |status, code: &'static str, why: &str| ApiError::new(status, code, why.to_string());
        let Some(n) = self.store.take_nonce(nonce).await? else {
            self.audit("-", action, "refused", "unknown or already used nonce").await?;
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                "bad_nonce",
                "unknown or already used challenge: ask for a new one",
            ));
        };
        if n.session_id != session {
            self.audit("-", action, "refused", "nonce of another session").await?;
            return Err(refuse(StatusCode::UNAUTHORIZED, "bad_nonce", "the challenge belongs to another session"));
        }
        if n.expires_at <= self.now() {
            self.audit("-", action, "refused", "nonce expired").await?;
            return Err(refuse(StatusCode::UNAUTHORIZED, "bad_nonce", "the challenge expired: ask for a new one"));
        }
        let nonce_bytes = nonce.as_bytes();
        let verified = match token::check_with(token, &n.origin, nonce_bytes, self.now(), &|der| self.issued_by_ca(der))
        {
            Ok(v) => v,
            Err(e) => {
                self.audit("-", action, "refused", &e.to_string()).await?;
                return Err(match e {
                    TokenError::Expired(at) => {
                        ApiError::user(StatusCode::FORBIDDEN, Msg::CertExpired { date: day(at) })
                    }
                    TokenError::Untrusted => ApiError::user(StatusCode::FORBIDDEN, Msg::CertNotTrusted),
                    TokenError::TooLarge(_) => refuse(StatusCode::PAYLOAD_TOO_LARGE, "bad_token", &e.to_string()),
                    _ => refuse(StatusCode::UNAUTHORIZED, "bad_token", &e.to_string()),
                });
            }
        };
        let accounts = match self.store.key_standing(&verified.fingerprint).await? {
            Some(c) if c.revoked_at.is_some() => {
                let reason = c.revoke_reason.unwrap_or_default();
                self.audit(&verified.subject, action, "refused", &format!("certificate revoked: {reason}")).await?;
                return Err(ApiError::user(StatusCode::FORBIDDEN, Msg::CertRevoked { reason }));
            }
            Some(c) => c.accounts,
            None => {
                // Issued by our CA outside the portal (test keys): record it, so it can be revoked.
                let rec = CertRecord {
                    fingerprint: verified.fingerprint.clone(),
                    serial: verified.serial.clone(),
                    subject: verified.subject.clone(),
                    not_before: verified.not_before,
                    not_after: verified.not_after,
                    der_b64: base64::engine::general_purpose::STANDARD.encode(&verified.der),
                    revoked_at: None,
                    revoke_reason: None,
                };
                match self.store.add_certificate(&rec, self.now()).await {
                    Ok(()) | Err(crate::store::StoreError::Exists { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
                Vec::new()
            }
        };
        Ok((verified, accounts))
    }
}

#[derive(Deserialize)]
pub struct KeyLogin {
    nonce: String,
    token: AuthToken,
    /// When the key is bound to several accounts: which one.
    account_id: Option<String>,
}

/// `POST /api/login/key`.
pub async fn key_login(S(p): S<State>, headers: HeaderMap, Body(req): Body<KeyLogin>) -> Reply {
    let lang = lang(&headers);
    let mut cookie = None;
    let result = async {
        let s = p.guarded(&headers).await?;
        p.limit("key_login", &s.token_hash).await?;
        let (v, bound) = p.prove_key(&s.token_hash, &req.nonce, &req.token, "key_login").await?;
        if bound.is_empty() {
            p.audit(&v.subject, "key_login", "refused", "key not bound").await?;
            return Err(ApiError::user(StatusCode::FORBIDDEN, Msg::NotBound));
        }
        let account = match (&req.account_id, bound.as_slice()) {
            (None, [one]) => one.clone(),
            (None, _) => {
                // The nonce is spent; choosing needs a new challenge.
                p.audit(&v.subject, "key_login", "choose", &format!("{} bound accounts", bound.len())).await?;
                return Err(ApiError::user(StatusCode::CONFLICT, Msg::ChooseAccount).with(json!({"accounts": bound})));
            }
            (Some(id), _) => match bound.iter().find(|a| &a.id == id) {
                Some(a) => a.clone(),
                None => {
                    p.audit(&v.subject, "key_login", "refused", "account not bound to this key").await?;
                    return Err(ApiError::user(StatusCode::FORBIDDEN, Msg::NotBound));
                }
            },
        };
        let (new, c) = p.rotate(Some(&s), None, Some(account.id.clone())).await?;
        cookie = Some(c);
        // Whole days, rounded up: a certificate good for 4.9 more days has "5 days left" (and
        // the number does not flip with the second the login lands in).
        let days_left = (v.not_after - p.now() + 86_399).div_euclid(86_400);
        let msg = if days_left < p.config.expiry_warning_days {
            Msg::CertExpiring { date: day(v.not_after), days: days_left }
        } else {
            Msg::LoggedIn
        };
        p.audit(&v.subject, "key_login", "ok", &format!("account {}", account.name)).await?;
        Ok(ok(
            lang,
            &msg,
            json!({
                "csrf": new.csrf,
                "account": account,
                "certificate": {"subject": v.subject, "not_after": v.not_after, "days_left": days_left, "fingerprint": v.fingerprint},
            }),
        ))
    }
    .await;
    Reply { lang, result, cookie }
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::day(0), "1970-01-01");
        assert_eq!(super::day(1_790_000_000), "2026-09-21");
        assert_eq!(super::day(951_782_400), "2000-02-29");
    }
}
