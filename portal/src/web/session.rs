//! Who is asking: the session cookie and the CSRF token a request carries, read once by the
//! [`Caller`] extractor and checked in one place. Sessions: an HttpOnly, SameSite=Strict
//! cookie holding a random token (the store keeps only its SHA-256), rotated at every login.
//! Every POST needs the session's CSRF token in the `X-CSRF-Token` header; `GET /api/session`
//! hands one out.
//!
//! The checks run when the handler asks, not while extracting: a JSON body is judged before
//! them (a malformed body costs no request count), and key login reads the session together
//! with the standing of the certificate its body names.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::cookie::cookie;
use crate::app::{Kind, Portal, Refusal};
use crate::client::ClientAddr;
use crate::secret::{hash_token, subtle_eq};
use crate::store::{KeyStanding, Session};

pub const COOKIE: &str = "ukey_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The request's session cookie and CSRF token, as sent (nothing checked yet).
pub struct Caller {
    token: Option<String>,
    csrf: String,
}

impl<St: Send + Sync> FromRequestParts<St> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        let h = &parts.headers;
        let csrf = h.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        Ok(Caller { token: cookie(h, COOKIE), csrf })
    }
}

/// The Set-Cookie value naming the session of `token`.
pub fn set_cookie(p: &Portal, token: &str) -> String {
    let secure = if p.config.origin.starts_with("https://") { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", p.config.session_secs)
}

/// The Set-Cookie value that expires the session cookie in the browser.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

impl Caller {
    /// The store's name for the cookie's session.
    fn token_hash(&self) -> Option<String> {
        self.token.as_deref().map(hash_token)
    }

    /// The caller's live session, if the cookie names one.
    pub async fn session(&self, p: &Portal) -> Result<Option<Session>, Refusal> {
        match &self.token {
            Some(t) => Ok(p.store.session(&hash_token(t), p.now()).await?),
            None => Ok(None),
        }
    }

    /// The session of a password login; anyone else must log in first.
    pub async fn logged_in(&self, p: &Portal) -> Result<Session, Refusal> {
        let s = self.session(p).await?.ok_or_else(Refusal::login_required)?;
        s.user_id.as_ref().ok_or_else(Refusal::login_required)?;
        Ok(s)
    }

    /// A state-changing request: it must come with a live session and its CSRF token.
    pub async fn guarded(&self, p: &Portal) -> Result<Session, Refusal> {
        let s = self.session(p).await?.ok_or_else(Refusal::no_session)?;
        self.check_csrf(p, &s).await?;
        Ok(s)
    }

    /// [`Caller::guarded`] that also reads, in the same statement, the standing of the
    /// certificate `fingerprint` names (the key login's path).
    pub async fn guarded_with_key(
        &self,
        p: &Portal,
        fingerprint: &str,
    ) -> Result<(Session, Option<KeyStanding>), Refusal> {
        let hash = self.token_hash().ok_or_else(Refusal::no_session)?;
        let (s, standing) =
            p.store.session_and_key(&hash, p.now(), fingerprint).await?.ok_or_else(Refusal::no_session)?;
        self.check_csrf(p, &s).await?;
        Ok((s, standing))
    }

    /// `checked` (a session check) with the request counted against `action`'s limits for
    /// the session the cookie names and for the client's address, all at once: when the
    /// counts live in the database that is round trips side by side instead of one after the
    /// other (the key login's hot path). The session check's refusal comes first.
    pub async fn limited<T>(
        &self,
        p: &Portal,
        client: &ClientAddr,
        action: &'static str,
        checked: impl std::future::Future<Output = Result<T, Refusal>>,
    ) -> Result<T, Refusal> {
        let session = self.token_hash().ok_or_else(Refusal::no_session)?;
        let addr = client.key();
        let (checked, limited) = tokio::join!(checked, p.limit_both(action, &session, &addr));
        let checked = checked?;
        limited?;
        Ok(checked)
    }

    async fn check_csrf(&self, p: &Portal, s: &Session) -> Result<(), Refusal> {
        if !bool::from(subtle_eq(self.csrf.as_bytes(), s.csrf.as_bytes())) {
            p.audit("-", "csrf", "refused", "missing or wrong CSRF token").await?;
            return Err(Refusal::new(Kind::Forbidden, "csrf", "missing or wrong X-CSRF-Token"));
        }
        Ok(())
    }
}
