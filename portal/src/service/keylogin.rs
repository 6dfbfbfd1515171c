//! Key login: a challenge (nonce) for the session, the token the key signed over it judged
//! against the portal's origin, CA and revocation, then the account it logs in to.

use base64::Engine;

use crate::app::{Kind, Portal, Refusal};
use crate::messages::{day, Msg};
use crate::secret::random_token;
use crate::store::{Account, CertRecord, Challenge, KeyStanding, Session};
use crate::token::{self, AuthToken, TokenError, Verified};

/// A key's answer to the session's challenge, judged and found good, with the accounts the
/// key is bound to. The challenge is not spent yet: the caller spends it, in the statement
/// that acts on the proof when it can ([`Store::rotate_session_spending`]) or alone
/// ([`Portal::spend`]), and proceeds only if that spending succeeded.
#[must_use = "the challenge must be spent before acting on the proof"]
pub(crate) struct Proof {
    pub verified: Verified,
    pub accounts: Vec<Account>,
    pub nonce: String,
}

/// The standing of the token's certificate: read already (with the session, for the
/// certificate the token claims), or to be read once the token is judged.
pub enum Standing {
    Read { fingerprint: String, standing: Option<KeyStanding> },
    Unread,
}

impl Portal {
    /// Judge the token against the session's own challenge, the portal's origin and CA, and
    /// the certificate's revocation. Every refusal is audited; a refusal after the challenge
    /// matched spends it, so a failed answer cannot be tried again.
    pub(crate) async fn prove_key(
        &self,
        session: &Session,
        nonce: &str,
        token: &AuthToken,
        action: &str,
        known: Standing,
    ) -> Result<Proof, Refusal> {
        let refuse = |status, code: &'static str, why: &str| Refusal::new(status, code, why.to_string());
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
                return Err(Refusal::user(Kind::Unauthenticated, say));
            }
        };
        let spend_and_refuse = |actor: String, why: String, err: Refusal| async move {
            self.store.spend_challenge(&session.token_hash, nonce).await?;
            self.audit(&actor, action, "refused", &why).await?;
            Err::<Proof, Refusal>(err)
        };
        if c.expires_at <= self.now() {
            let minutes = (self.config.nonce_secs + 59) / 60;
            let err = Refusal::user(Kind::Unauthenticated, Msg::ChallengeExpired { minutes });
            return spend_and_refuse("-".into(), "nonce expired".into(), err).await;
        }
        let verified =
            match token::check_with(token, &c.origin, nonce.as_bytes(), self.now(), &|der| self.issued_by_ca(der)) {
                Ok(v) => v,
                Err(e) => {
                    let why = e.to_string();
                    let err = match e {
                        TokenError::Expired(at) => Refusal::user(Kind::Forbidden, Msg::CertExpired { date: day(at) }),
                        TokenError::Untrusted => Refusal::user(Kind::Forbidden, Msg::CertNotTrusted),
                        TokenError::TooLarge(_) => refuse(Kind::TooLarge, "bad_token", &why),
                        _ => refuse(Kind::Unauthenticated, "bad_token", &why),
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
                let err = Refusal::user(Kind::Forbidden, Msg::CertRevoked { reason });
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
    pub(crate) async fn spend(&self, session: &Session, proof: &Proof, action: &str) -> Result<(), Refusal> {
        if self.store.spend_challenge(&session.token_hash, &proof.nonce).await? {
            return Ok(());
        }
        Err(self.replayed(&proof.verified.subject, action).await)
    }

    /// The refusal for a challenge another request spent between judging and acting.
    async fn replayed(&self, actor: &str, action: &str) -> Refusal {
        if let Err(e) = self.audit(actor, action, "refused", "challenge already spent").await {
            return e;
        }
        Refusal::user(Kind::Unauthenticated, Msg::ChallengeUsed)
    }
}

/// A key login that succeeded: the new session (its cookie token) and what the page shows.
pub struct KeyLoggedIn {
    pub session: Session,
    /// The new session's cookie value.
    pub token: String,
    pub account: Account,
    pub verified: Verified,
    /// Whole days the certificate has left, rounded up.
    pub days_left: i64,
    /// The reminder when the certificate expires within the configured warning days.
    pub msg: Msg,
}

impl Portal {
    /// A fresh challenge for session `s` (a new one replaces the last): 32 random bytes,
    /// single use, valid for the configured minutes, bound to the portal's own origin.
    pub async fn new_challenge(&self, s: &Session) -> Result<Challenge, Refusal> {
        let c = Challenge {
            nonce: random_token(),
            origin: self.config.origin.clone(),
            expires_at: self.now() + self.config.nonce_secs,
        };
        if !self.store.put_challenge(&s.token_hash, &c).await? {
            return Err(Refusal::no_session());
        }
        Ok(c)
    }

    /// Log in with the key's `token` over the session's challenge `nonce`, to the one account
    /// the key is bound to, or to `account_id` among several (refused with the list when not
    /// chosen). A refusal spends the challenge; success rotates the session, spending it in
    /// the same statement.
    pub async fn log_in_with_key(
        &self,
        s: &Session,
        known: Standing,
        nonce: &str,
        token: &AuthToken,
        account_id: Option<&str>,
    ) -> Result<KeyLoggedIn, Refusal> {
        let proof = self.prove_key(s, nonce, token, "key_login", known).await?;
        let v = &proof.verified;
        let bound = proof.accounts.as_slice();
        // Which account; a refusal spends the challenge (choosing needs a new one).
        let chosen = match (account_id, bound) {
            (_, []) => Err(("refused", "key not bound".to_string(), Refusal::user(Kind::Forbidden, Msg::NotBound))),
            (None, [one]) => Ok(one.clone()),
            (None, _) => Err((
                "choose",
                format!("{} bound accounts", bound.len()),
                Refusal::user(Kind::Conflict, Msg::ChooseAccount).with(serde_json::json!({"accounts": bound})),
            )),
            (Some(id), _) => bound.iter().find(|a| a.id == id).cloned().ok_or_else(|| {
                let err = Refusal::user(Kind::Forbidden, Msg::NotBound);
                ("refused", "account not bound to this key".to_string(), err)
            }),
        };
        let account = match chosen {
            Ok(a) => a,
            Err((outcome, detail, err)) => {
                self.spend(s, &proof, "key_login").await?;
                self.audit(&v.subject, "key_login", outcome, &detail).await?;
                return Err(err);
            }
        };
        // Rotating the session spends the challenge in the same statement.
        let (new, cookie_token) = self.new_session(None, Some(account.id.clone()));
        if !self.store.rotate_session_spending(&s.token_hash, &proof.nonce, &new).await? {
            return Err(self.replayed(&v.subject, "key_login").await);
        }
        // Whole days, rounded up: a certificate good for 4.9 more days has "5 days left" (and
        // the number does not flip with the second the login lands in).
        let days_left = (v.not_after - self.now() + 86_399).div_euclid(86_400);
        let msg = if days_left < self.config.expiry_warning_days {
            Msg::CertExpiring { date: day(v.not_after), days: days_left }
        } else {
            Msg::LoggedIn
        };
        self.audit(&v.subject, "key_login", "ok", &format!("account {}", account.name)).await?;
        Ok(KeyLoggedIn { session: new, token: cookie_token, account, verified: proof.verified, days_left, msg })
    }
}
