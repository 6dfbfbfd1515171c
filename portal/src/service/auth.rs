//! Password login and logout: one answer for a wrong password whether or not the user
//! exists, per (username, address) delays after a few failures, a new session at every login.

use proto::secret::Password;
use serde_json::json;

use crate::app::{Kind, Portal, Refusal};

use crate::messages::Msg;
use crate::store::{AccountBinding, Session, User};

/// Longest username and password the login takes: more is refused before anything is
/// looked up or hashed.
pub const USERNAME_MAX_CHARS: usize = 64;
pub const PASSWORD_MAX_BYTES: usize = 1024;

/// A password login that succeeded.
pub struct PasswordLoggedIn {
    pub session: Session,
    /// The new session's cookie value.
    pub token: String,
    pub user: User,
    /// The enterprise's accounts; none bound yet is the manual's "bind first" prompt.
    pub accounts: Vec<AccountBinding>,
}

impl PasswordLoggedIn {
    pub fn any_bound(&self) -> bool {
        self.accounts.iter().any(|a| !a.bound_to.is_empty())
    }
}

/// The answer to a client that must wait `secs` before its next password.
fn slow_down(secs: i64) -> Refusal {
    Refusal::user(Kind::TooMany, Msg::SlowDown { secs }).with(json!({"retry_after": secs}))
}

impl Portal {
    /// Log session `s` in as `username` with `password`, from the client address `client`.
    /// Failures count per (username, client address): past a few, that client waits a
    /// doubling delay before its next try — nobody else does, so a stranger cannot lock a
    /// user out. The session is rotated.
    pub async fn log_in_with_password(
        &self,
        s: &Session,
        client: &str,
        username: &str,
        password: &Password,
    ) -> Result<PasswordLoggedIn, Refusal> {
        let name = username.trim();
        if name.is_empty() || name.chars().count() > USERNAME_MAX_CHARS || password.len() > PASSWORD_MAX_BYTES {
            return Err(Refusal::new(
                Kind::Invalid,
                "bad_credentials_format",
                format!("username: 1 to {USERNAME_MAX_CHARS} characters; password: at most {PASSWORD_MAX_BYTES} bytes"),
            ));
        }
        let addr = client;
        // Per session and per address, never per username: a count for the username would
        // let anyone hold its owner at the limit.
        self.limit_both("password_login", &s.token_hash, addr).await?;
        let now = self.now();
        let blocked_until = self.store.password_delay(name, addr).await?;
        if blocked_until > now {
            self.audit(name, "password_login", "refused", &format!("{addr} must wait")).await?;
            return Err(slow_down(blocked_until - now));
        }
        let user = self.store.user_by_name(name).await?;
        let right = self
            .hasher
            .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
            .await
            .map_err(|_| Refusal::new(Kind::Busy, "busy", "the portal is busy; try again in a moment"))?;
        let user = match user {
            Some(u) if right => u,
            known => {
                let f = self.store.record_password_failure(name, addr, |n| self.config.password_delay(n), now).await?;
                let who = if known.is_some() { "wrong password" } else { "unknown user" };
                self.audit(name, "password_login", "refused", &format!("{who} from {addr} ({} in a row)", f.failures))
                    .await?;
                let mut err = Refusal::user(Kind::Unauthenticated, Msg::WrongPassword);
                if f.blocked_until > now {
                    err = err.with(json!({"retry_after": f.blocked_until - now}));
                }
                return Err(err);
            }
        };
        self.store.clear_password_failures(name, addr).await?;
        let (session, token) = self.rotate(Some(s), Some(user.id.clone()), None).await?;
        let accounts = self.store.accounts(&user.enterprise_id).await?;
        self.audit(&user.username, "password_login", "ok", "").await?;
        Ok(PasswordLoggedIn { session, token, user, accounts })
    }

    /// End session `s`.
    pub async fn log_out(&self, s: &Session) -> Result<(), Refusal> {
        self.store.delete_session(&s.token_hash).await?;
        self.audit(s.user_id.as_deref().unwrap_or("-"), "logout", "ok", "").await
    }
}
