//! Binding keys to accounts and unbinding them (企业账号管理): only a password-logged-in user,
//! only the accounts of the user's enterprise, only a key whose certificate names that
//! enterprise, and only with proof of the key (PIN and a signature over a fresh challenge).

use super::keylogin::Standing;
use crate::app::{Kind, Portal, Refusal};

use crate::messages::Msg;
use crate::store::{Account, AccountBinding, Enterprise, Session, User};
use crate::token::AuthToken;

/// Most accounts one bind or unbind names (an enterprise has a handful).
pub const ACCOUNTS_MAX: usize = 100;

/// A list of account ids within bounds, or the refusal.
#[allow(clippy::result_large_err)] // the rules' own refusal, returned at once
fn check_account_ids(ids: &[String]) -> Result<(), Refusal> {
    if ids.len() > ACCOUNTS_MAX || ids.iter().any(|id| id.len() > 64) {
        return Err(Refusal::new(
            Kind::Invalid,
            "too_many_accounts",
            format!("name at most {ACCOUNTS_MAX} accounts, by their ids"),
        ));
    }
    Ok(())
}

impl Portal {
    pub(crate) async fn user_of(&self, s: &Session) -> Result<User, Refusal> {
        let id = s.user_id.as_ref().ok_or_else(Refusal::login_required)?;
        self.store.user_by_id(id).await?.ok_or_else(Refusal::login_required)
    }

    /// The user's enterprise (every user has one: a foreign key).
    pub(crate) async fn enterprise_of(&self, user: &User) -> Result<Enterprise, Refusal> {
        self.store.enterprise(&user.enterprise_id).await?.ok_or_else(|| {
            Refusal::from(crate::store::StoreError::NotFound { what: "enterprise", value: user.enterprise_id.clone() })
        })
    }
}

impl Portal {
    /// The user of session `s`, their enterprise's accounts and what is bound to each: the
    /// accounts page and `GET /api/accounts` both show this.
    pub async fn my_accounts(&self, s: &Session) -> Result<(User, Vec<AccountBinding>), Refusal> {
        let user = self.user_of(s).await?;
        let accounts = self.store.accounts(&user.enterprise_id).await?;
        Ok((user, accounts))
    }

    /// Who session `s` is: the user (password login) and the account (key login), either or
    /// both; `None` for a session that logged in to nothing.
    pub async fn whoami(&self, s: &Session) -> Result<Option<(Option<User>, Option<Account>)>, Refusal> {
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

    /// Bind the key that answered the challenge `nonce` with `token` to `account_ids` of the
    /// user's enterprise. How many bindings are new, and those accounts as they are now.
    pub async fn bind_key(
        &self,
        s: &Session,
        client: &str,
        account_ids: &[String],
        nonce: &str,
        token: &AuthToken,
    ) -> Result<(usize, Vec<AccountBinding>), Refusal> {
        let user = self.user_of(s).await?;
        self.limit_both("bind", &user.id, client).await?;
        check_account_ids(account_ids)?;
        if account_ids.is_empty() {
            return Err(Refusal::new(Kind::Malformed, "no_accounts", "tick at least one account"));
        }
        let proof = self.prove_key(s, nonce, token, "bind", Standing::Unread).await?;
        self.spend(s, &proof, "bind").await?;
        let v = proof.verified;
        // A password (perhaps phished) opens one enterprise's accounts: only that enterprise's
        // keys may be bound to them, named by the credit code the CA put in the certificate.
        let enterprise = self.enterprise_of(&user).await?;
        if v.organization_id.as_deref() != Some(enterprise.credit_code.as_str()) {
            let named = v.organization_id.as_deref().unwrap_or("no credit code");
            let why = format!("certificate {} is for {named}, not {}", v.fingerprint, enterprise.credit_code);
            self.audit(&user.username, "bind", "refused", &why).await?;
            return Err(Refusal::user(Kind::Forbidden, Msg::OtherEnterprise));
        }
        let added = match self.store.bind(&user, account_ids, &v.fingerprint, self.now()).await {
            Ok(n) => n,
            Err(crate::store::StoreError::NotFound { value, .. }) => {
                self.audit(&user.username, "bind", "refused", &format!("account {value} not in the enterprise"))
                    .await?;
                return Err(Refusal::new(Kind::Malformed, "unknown_account", format!("no account {value}")));
            }
            Err(e) => return Err(e.into()),
        };
        self.audit(&user.username, "bind", "ok", &format!("{} accounts to {}", account_ids.len(), v.fingerprint))
            .await?;
        let accounts = self.store.accounts_among(&user.enterprise_id, Some(account_ids)).await?;
        Ok((added, accounts))
    }

    /// Unbind `account_ids` of the user's enterprise from every key. How many bindings went,
    /// and those accounts as they are now.
    pub async fn unbind_accounts(
        &self,
        s: &Session,
        account_ids: &[String],
    ) -> Result<(usize, Vec<AccountBinding>), Refusal> {
        let user = self.user_of(s).await?;
        check_account_ids(account_ids)?;
        let removed = self.store.unbind(&user, account_ids).await?;
        let detail = format!("{removed} bindings of {} accounts", account_ids.len());
        self.audit(&user.username, "unbind", "ok", &detail).await?;
        let accounts = self.store.accounts_among(&user.enterprise_id, Some(account_ids)).await?;
        Ok((removed, accounts))
    }
}
