//! Sessions: a random token names one (the store keeps only its SHA-256), with its own CSRF
//! token; every login replaces the session, so a token planted before it is worthless after.

use super::portal::Portal;
use super::refusal::Refusal;
use crate::secret::{hash_token, random_token};
use crate::store::Session;

impl Portal {
    /// A new session (new token, new CSRF token) replacing `old`: called at every login, so a
    /// token planted before login is worthless after it. The session and its token.
    pub(crate) async fn rotate(
        &self,
        old: Option<&Session>,
        user_id: Option<String>,
        account_id: Option<String>,
    ) -> Result<(Session, String), Refusal> {
        let (s, token) = self.new_session(user_id, account_id);
        let replaced = match old {
            Some(o) => self.store.rotate_session(&o.token_hash, &s).await?,
            None => false,
        };
        if !replaced {
            self.store.put_session(&s, self.now()).await?;
        }
        Ok((s, token))
    }

    /// A fresh session and the cookie token that names it.
    pub(crate) fn new_session(&self, user_id: Option<String>, account_id: Option<String>) -> (Session, String) {
        let token = random_token();
        let s = Session {
            token_hash: hash_token(&token),
            user_id,
            account_id,
            csrf: random_token(),
            expires_at: self.now() + self.config.session_secs,
            challenge: None,
        };
        (s, token)
    }
}
