//! Key login: a challenge (nonce) for the session, then the token the key signed.

use axum::extract::{Extension, State as S};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use super::{day, lang, no_session, ok, random_token, ApiError, Body, Portal, Reply, State};
use crate::client::ClientAddr;
use crate::messages::Msg;
use crate::store::{Account, CertRecord, Challenge, KeyStanding, Session};
use crate::token::{self, AuthToken, TokenError, Verified};

/// `POST /api/challenge`: 32 random bytes, single use, valid for five minutes, held by this
/// session (a new challenge replaces the last) together with the portal's own origin.
pub async fn challenge(S(p): S<State>, Extension(client): Extension<ClientAddr>, headers: HeaderMap) -> Reply {
    let lang = lang(&headers);
    let result = async {
        let s = p.limited_session(&headers, &client, "challenge", p.guarded(&headers)).await?;
        let c = Challenge { nonce: random_token(), origin: p.config.origin.clone(), expires_at: p.now() + p.config.nonce_secs };
        if !p.store.put_challenge(&s.token_hash, &c).await? {
            return Err(no_session());
        }
        Ok(json!({"ok": true, "code": "challenge", "message": "", "nonce": c.nonce, "origin": c.origin, "expires_at": c.expires_at}))
    }
    .await;
    Reply { lang, result, cookie: None }
}

/// A key's answer to the session's challenge, judged and found good, with the accounts the
/// key is bound to. The challenge is not spent yet: the caller spends it, in the statement
/// that acts on the proof when it can ([`Store::rotate_session_spending`]) or alone
/// ([`Portal::spend`]), and proceeds only if that spending succeeded.
#[must_use = "the challenge must be spent before acting on the proof"]
pub(super) struct Proof {
    pub verified: Verified,
    pub accounts: Vec<Account>,
    pub nonce: String,
}

/// The standing of the token's certificate: read already (with the session, for the
/// certificate the token claims), or to be read once the token is judged.
pub(super) enum Standing {
    Read { fingerprint: String, standing: Option<KeyStanding> },
    Unread,
}

impl Portal {
    /// Judge the token against the session's own challenge, the portal's origin and CA, and
    /// the certificate's revocation. Every refusal is audited; a refusal after the challenge
    /// matched spends it, so a failed answer cannot be tried again.
    pub(super) async fn prove_key(
        &self,
        session: &Session,
        nonce: &str,
        token: &AuthToken,
        action: &str,
        known: Standing,
    ) -> Result<Proof, ApiError> {
        let refuse = |status, code: &'static str, why: &str| ApiError::new(status, code, why.to_string());
        let c = match &session.challenge {
            Some(c) if c.nonce == nonce => c,
            held => {
                let (why, say) = match held {
                    None => ("no challenge pending in this session (used, or never asked for)", Msg::ChallengeUsed),
                    Some(_) => (
                        "not this session's current challenge (replaced, or another session's)",
                        Msg::ChallengeReplaced,
                    ),
                };
                self.audit("-", action, "refused", why).await?;
                return Err(ApiError::user(StatusCode::UNAUTHORIZED, say));
            }
        };
        let spend_and_refuse = |actor: String, why: String, err: ApiError| async move {
            self.store.spend_challenge(&session.token_hash, nonce).await?;
            self.audit(&actor, action, "refused", &why).await?;
            Err::<Proof, ApiError>(err)
        };
        if c.expires_at <= self.now() {
            let minutes = (self.config.nonce_secs + 59) / 60;
            let err = ApiError::user(StatusCode::UNAUTHORIZED, Msg::ChallengeExpired { minutes });
            return spend_and_refuse("-".into(), "nonce expired".into(), err).await;
        }
        let verified =
            match token::check_with(token, &c.origin, nonce.as_bytes(), self.now(), &|der| self.issued_by_ca(der)) {
                Ok(v) => v,
                Err(e) => {
                    let why = e.to_string();
                    let err = match e {
                        TokenError::Expired(at) => {
                            ApiError::user(StatusCode::FORBIDDEN, Msg::CertExpired { date: day(at) })
                        }
                        TokenError::Untrusted => ApiError::user(StatusCode::FORBIDDEN, Msg::CertNotTrusted),
                        TokenError::TooLarge(_) => refuse(StatusCode::PAYLOAD_TOO_LARGE, "bad_token", &why),
                        _ => refuse(StatusCode::UNAUTHORIZED, "bad_token", &why),
                    };
                    return spend_and_refuse("-".into(), why, err).await;
                }
            };
        let standing = match known {
            Standing::Read { fingerprint, standing } if fingerprint == verified.fingerprint => standing,
            _ => self.store.key_standing(&verified.fingerprint).await?,
        };
        let accounts = match standing {
            Some(k) if k.revoked_at.is_some() => {
                let reason = k.revoke_reason.unwrap_or_default();
                let why = format!("certificate revoked: {reason}");
                let err = ApiError::user(StatusCode::FORBIDDEN, Msg::CertRevoked { reason });
                return spend_and_refuse(verified.subject.clone(), why, err).await;
            }
            Some(k) => k.accounts,
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
        Ok(Proof { verified, accounts, nonce: nonce.to_string() })
    }

    /// Spend the proof's challenge on its own; refused (and audited) if another request
    /// answering the same challenge spent it first.
    pub(super) async fn spend(&self, session: &Session, proof: &Proof, action: &str) -> Result<(), ApiError> {
        if self.store.spend_challenge(&session.token_hash, &proof.nonce).await? {
            return Ok(());
        }
        Err(self.replayed(&proof.verified.subject, action).await)
    }

    /// The refusal for a challenge another request spent between judging and acting.
    async fn replayed(&self, actor: &str, action: &str) -> ApiError {
        if let Err(e) = self.audit(actor, action, "refused", "challenge already spent").await {
            return e;
        }
        ApiError::user(StatusCode::UNAUTHORIZED, Msg::ChallengeUsed)
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
pub async fn key_login(
    S(p): S<State>,
    Extension(client): Extension<ClientAddr>,
    headers: HeaderMap,
    Body(req): Body<KeyLogin>,
) -> Reply {
    let lang = lang(&headers);
    let mut cookie = None;
    let result = async {
        // The session and the key's standing in one read (the login's hot path).
        let session = async {
            Ok(match token::claimed_fingerprint(&req.token) {
                Some(fingerprint) => {
                    let (s, standing) = p.guarded_with_key(&headers, &fingerprint).await?;
                    (s, Standing::Read { fingerprint, standing })
                }
                None => (p.guarded(&headers).await?, Standing::Unread),
            })
        };
        let (s, known) = p.limited_session(&headers, &client, "key_login", session).await?;
        let proof = p.prove_key(&s, &req.nonce, &req.token, "key_login", known).await?;
        let v = &proof.verified;
        let bound = proof.accounts.as_slice();
        // Which account; a refusal spends the challenge (choosing needs a new one).
        let chosen = match (&req.account_id, bound) {
            (_, []) => Err(("refused", "key not bound".to_string(), ApiError::user(StatusCode::FORBIDDEN, Msg::NotBound))),
            (None, [one]) => Ok(one.clone()),
            (None, _) => Err((
                "choose",
                format!("{} bound accounts", bound.len()),
                ApiError::user(StatusCode::CONFLICT, Msg::ChooseAccount).with(json!({"accounts": bound})),
            )),
            (Some(id), _) => bound.iter().find(|a| &a.id == id).cloned().ok_or_else(|| {
                let err = ApiError::user(StatusCode::FORBIDDEN, Msg::NotBound);
                ("refused", "account not bound to this key".to_string(), err)
            }),
        };
        let account = match chosen {
            Ok(a) => a,
            Err((outcome, detail, err)) => {
                p.spend(&s, &proof, "key_login").await?;
                p.audit(&v.subject, "key_login", outcome, &detail).await?;
                return Err(err);
            }
        };
        // Rotating the session spends the challenge in the same statement.
        let (new, token) = p.new_session(None, Some(account.id.clone()));
        if !p.store.rotate_session_spending(&s.token_hash, &proof.nonce, &new).await? {
            return Err(p.replayed(&v.subject, "key_login").await);
        }
        cookie = Some(p.set_cookie(&token));
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
