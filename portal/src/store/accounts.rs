//! Enterprises, their users and accounts, and the bindings of keys (certificate
//! fingerprints) to accounts.

use sqlx::any::AnyRow;
use sqlx::{Connection, Row};

use super::db::Store;
use super::error::{unique, Result, StoreError};
use super::id::new_id;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Enterprise {
    pub id: String,
    pub name: String,
    pub credit_code: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub enterprise_id: String,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    /// `user`, or `staff` (reviews certificate applications).
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Account {
    pub id: String,
    pub enterprise_id: String,
    pub name: String,
}

/// An account as the bind / unbind pages list it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccountBinding {
    #[serde(flatten)]
    pub account: Account,
    /// Fingerprints of the certificates (keys) bound to it.
    pub bound_to: Vec<String>,
}

pub(super) fn user(r: &AnyRow) -> sqlx::Result<User> {
    Ok(User {
        id: r.try_get("id")?,
        enterprise_id: r.try_get("enterprise_id")?,
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        password_hash: r.try_get("password_hash")?,
        role: r.try_get("role")?,
    })
}

pub(super) fn account(r: &AnyRow) -> sqlx::Result<Account> {
    Ok(Account { id: r.try_get("id")?, enterprise_id: r.try_get("enterprise_id")?, name: r.try_get("name")? })
}

impl Store {
    pub async fn create_enterprise(&self, name: &str, credit_code: &str, now: i64) -> Result<Enterprise> {
        let id = new_id();
        sqlx::query("INSERT INTO enterprises (id, name, credit_code, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&id)
            .bind(name)
            .bind(credit_code)
            .bind(now)
            .execute(&mut *self.w().await?)
            .await
            .map_err(unique("enterprise with credit code", credit_code))?;
        Ok(Enterprise { id, name: name.into(), credit_code: credit_code.into() })
    }

    pub async fn create_user(
        &self,
        enterprise_id: &str,
        username: &str,
        display_name: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<User> {
        let id = new_id();
        sqlx::query(
            "INSERT INTO users (id, enterprise_id, username, display_name, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(enterprise_id)
        .bind(username)
        .bind(display_name)
        .bind(password_hash)
        .bind(now)
        .execute(&mut *self.w().await?)
        .await
        .map_err(unique("user", username))?;
        Ok(User {
            id,
            enterprise_id: enterprise_id.into(),
            username: username.into(),
            display_name: display_name.into(),
            password_hash: password_hash.into(),
            role: "user".into(),
        })
    }

    /// Replace a user's password hash.
    pub async fn set_password_hash(&self, user_id: &str, password_hash: &str) -> Result<()> {
        let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(user_id)
            .bind(password_hash)
            .execute(&mut *self.w().await?)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "user", value: user_id.into() });
        }
        Ok(())
    }

    /// Make a user staff (`staff`) or an ordinary user (`user`).
    pub async fn set_role(&self, user_id: &str, role: &str) -> Result<()> {
        let done = sqlx::query("UPDATE users SET role = $2 WHERE id = $1")
            .bind(user_id)
            .bind(role)
            .execute(&mut *self.w().await?)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound { what: "user", value: user_id.into() });
        }
        Ok(())
    }

    pub async fn enterprise(&self, id: &str) -> Result<Option<Enterprise>> {
        let row = sqlx::query("SELECT id, name, credit_code FROM enterprises WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.r().await?)
            .await?;
        let e = |r: &AnyRow| -> sqlx::Result<Enterprise> {
            Ok(Enterprise { id: r.try_get("id")?, name: r.try_get("name")?, credit_code: r.try_get("credit_code")? })
        };
        Ok(row.as_ref().map(e).transpose()?)
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&mut *self.r().await?)
            .await?;
        Ok(row.as_ref().map(user).transpose()?)
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<User>> {
        let row =
            sqlx::query("SELECT * FROM users WHERE id = $1").bind(id).fetch_optional(&mut *self.r().await?).await?;
        Ok(row.as_ref().map(user).transpose()?)
    }

    pub async fn create_account(&self, enterprise_id: &str, name: &str, now: i64) -> Result<Account> {
        let id = new_id();
        sqlx::query("INSERT INTO accounts (id, enterprise_id, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&id)
            .bind(enterprise_id)
            .bind(name)
            .bind(now)
            .execute(&mut *self.w().await?)
            .await
            .map_err(unique("account", name))?;
        Ok(Account { id, enterprise_id: enterprise_id.into(), name: name.into() })
    }

    pub async fn account_by_id(&self, id: &str) -> Result<Option<Account>> {
        let row = sqlx::query("SELECT id, enterprise_id, name FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *self.r().await?)
            .await?;
        Ok(row.as_ref().map(account).transpose()?)
    }

    /// The enterprise's accounts, each with the keys (certificate fingerprints) bound to it.
    pub async fn accounts(&self, enterprise_id: &str) -> Result<Vec<AccountBinding>> {
        self.accounts_among(enterprise_id, None).await
    }

    /// As [`Store::accounts`], only those of `ids` (what a bind or unbind changed: its answer
    /// stays small in an enterprise with thousands of accounts).
    pub async fn accounts_among(&self, enterprise_id: &str, ids: Option<&[String]>) -> Result<Vec<AccountBinding>> {
        let among = match ids {
            Some([]) => return Ok(Vec::new()),
            Some(ids) => {
                let marks: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
                format!(" AND a.id IN ({})", marks.join(", "))
            }
            None => String::new(),
        };
        let sql = format!(
            "SELECT a.id, a.enterprise_id, a.name, b.fingerprint FROM accounts a \
             LEFT JOIN bindings b ON b.account_id = a.id \
             WHERE a.enterprise_id = $1{among} ORDER BY a.name, b.fingerprint"
        );
        let mut q = sqlx::query(&sql).bind(enterprise_id);
        for id in ids.into_iter().flatten() {
            q = q.bind(id);
        }
        let rows = q.fetch_all(&mut *self.r().await?).await?;
        let mut out: Vec<AccountBinding> = Vec::new();
        for r in &rows {
            let a = account(r)?;
            let fp: Option<String> = r.try_get("fingerprint")?;
            match out.last_mut() {
                Some(last) if last.account.id == a.id => last.bound_to.extend(fp),
                _ => out.push(AccountBinding { account: a, bound_to: fp.into_iter().collect() }),
            }
        }
        Ok(out)
    }

    /// Bind `fingerprint` to the given accounts of `user`'s enterprise, all or nothing.
    /// Returns how many bindings are new (binding twice is not an error).
    pub async fn bind(&self, user: &User, account_ids: &[String], fingerprint: &str, now: i64) -> Result<usize> {
        let mut conn = self.w().await?;
        let mut tx = conn.begin().await?;
        let mut added = 0;
        for id in account_ids {
            let owned = sqlx::query("SELECT id FROM accounts WHERE id = $1 AND enterprise_id = $2")
                .bind(id)
                .bind(&user.enterprise_id)
                .fetch_optional(&mut *tx)
                .await?;
            if owned.is_none() {
                return Err(StoreError::NotFound { what: "account", value: id.clone() });
            }
            let exists = sqlx::query("SELECT account_id FROM bindings WHERE account_id = $1 AND fingerprint = $2")
                .bind(id)
                .bind(fingerprint)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                sqlx::query(
                    "INSERT INTO bindings (account_id, fingerprint, bound_by, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(fingerprint)
                .bind(&user.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                added += 1;
            }
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Remove the bindings of the given accounts (of `user`'s enterprise) to any key.
    pub async fn unbind(&self, user: &User, account_ids: &[String]) -> Result<usize> {
        let mut conn = self.w().await?;
        let mut tx = conn.begin().await?;
        let mut removed = 0;
        for id in account_ids {
            let done = sqlx::query(
                "DELETE FROM bindings WHERE account_id = $1 \
                 AND account_id IN (SELECT id FROM accounts WHERE enterprise_id = $2)",
            )
            .bind(id)
            .bind(&user.enterprise_id)
            .execute(&mut *tx)
            .await?;
            removed += done.rows_affected() as usize;
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// The accounts a key may log in to.
    pub async fn bound_accounts(&self, fingerprint: &str) -> Result<Vec<Account>> {
        let rows = sqlx::query(
            "SELECT a.id, a.enterprise_id, a.name FROM accounts a JOIN bindings b ON b.account_id = a.id \
             WHERE b.fingerprint = $1 ORDER BY a.name",
        )
        .bind(fingerprint)
        .fetch_all(&mut *self.r().await?)
        .await?;
        rows.iter().map(|r| account(r).map_err(StoreError::from)).collect()
    }
}
