//! The portal's storage: one code path over SQLite (the embedded default: a file, zero setup)
//! and PostgreSQL (several portal instances behind a load balancer), through sqlx's `Any`
//! driver. Schema changes are versioned migrations in `portal/migrations`, applied at start.
//!
//! Time is passed in (unix seconds) by the caller, who owns the clock.

mod audit;
mod checkpoint;
mod conns;
mod enroll;

use std::sync::Arc;

use conns::{Conns, Lease};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, Connection, Executor, Row};

pub use enroll::{Application, OutboxMessage, Paid, Payment, PhotoInfo, SmsCheck};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL {0:?} is neither sqlite:PATH nor postgres://...")]
    BadUrl(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{what} {value:?} already exists")]
    Exists { what: &'static str, value: String },
    #[error("audit log: {0}")]
    Audit(String),
    #[error("{what} {value:?} not found")]
    NotFound { what: &'static str, value: String },
    #[error("the database file's lock: {0}")]
    Io(std::io::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A random 128-bit id, hex.
pub fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRecord {
    /// SHA-256 of the DER, hex.
    pub fingerprint: String,
    pub serial: String,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
    pub der_b64: String,
    pub revoked_at: Option<i64>,
    pub revoke_reason: Option<String>,
}

/// What the portal holds of a key's certificate at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStanding {
    pub revoked_at: Option<i64>,
    pub revoke_reason: Option<String>,
    /// The accounts the key is bound to, by name.
    pub accounts: Vec<Account>,
}

impl CertRecord {
    /// The record of a certificate not yet revoked, from its DER.
    pub fn from_der(der: &[u8]) -> Option<CertRecord> {
        use base64::Engine;
        use der::Decode;
        use sha2::Digest;
        let c = x509_cert::Certificate::from_der(der).ok()?;
        let tbs = &c.tbs_certificate;
        let unix = |t: &x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
        Some(CertRecord {
            fingerprint: hex::encode(sha2::Sha256::digest(der)),
            serial: hex::encode_upper(tbs.serial_number.as_bytes()),
            subject: host_driver::certinfo::display_name(&tbs.subject),
            not_before: unix(&tbs.validity.not_before),
            not_after: unix(&tbs.validity.not_after),
            der_b64: base64::engine::general_purpose::STANDARD.encode(der),
            revoked_at: None,
            revoke_reason: None,
        })
    }
}

/// A login challenge, held by the session it was issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub nonce: String,
    /// The portal's origin when it was issued: what the key must have signed.
    pub origin: String,
    pub expires_at: i64,
}

/// A browser session as stored: the cookie's token is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token_hash: String,
    pub user_id: Option<String>,
    /// The business account a key login entered.
    pub account_id: Option<String>,
    pub csrf: String,
    pub expires_at: i64,
    /// The login challenge waiting for a key's answer, if any.
    pub challenge: Option<Challenge>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub outcome: String,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailure {
    /// Wrong passwords from this client for this username since its last right one.
    pub failures: i64,
    /// Unix time until which this client waits before its next try; 0 if it need not.
    pub blocked_until: i64,
}

fn user(r: &AnyRow) -> sqlx::Result<User> {
    Ok(User {
        id: r.try_get("id")?,
        enterprise_id: r.try_get("enterprise_id")?,
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        password_hash: r.try_get("password_hash")?,
        role: r.try_get("role")?,
    })
}

fn account(r: &AnyRow) -> sqlx::Result<Account> {
    Ok(Account { id: r.try_get("id")?, enterprise_id: r.try_get("enterprise_id")?, name: r.try_get("name")? })
}

fn session_row(r: &AnyRow) -> sqlx::Result<Session> {
    Ok(Session {
        token_hash: r.try_get("token_hash")?,
        user_id: r.try_get("user_id")?,
        account_id: r.try_get("account_id")?,
        csrf: r.try_get("csrf")?,
        expires_at: r.try_get("expires_at")?,
        challenge: match r.try_get::<Option<String>, _>("nonce")? {
            Some(nonce) => Some(Challenge {
                nonce,
                origin: r.try_get::<Option<String>, _>("nonce_origin")?.unwrap_or_default(),
                expires_at: r.try_get::<Option<i64>, _>("nonce_expires_at")?.unwrap_or(0),
            }),
            None => None,
        },
    })
}

/// A certificate's standing from rows of `known` (its fingerprint, NULL when the portal has
/// no record of it), its revocation, and one bound account (or NULLs) per row.
fn standing(rows: &[AnyRow]) -> sqlx::Result<Option<KeyStanding>> {
    let Some(first) = rows.first() else { return Ok(None) };
    if first.try_get::<Option<String>, _>("known")?.is_none() {
        return Ok(None);
    }
    let mut standing = KeyStanding {
        revoked_at: first.try_get("revoked_at")?,
        revoke_reason: first.try_get("revoke_reason")?,
        accounts: Vec::new(),
    };
    for r in rows {
        if r.try_get::<Option<String>, _>("id")?.is_some() {
            standing.accounts.push(account(r)?);
        }
    }
    Ok(Some(standing))
}

fn cert(r: &AnyRow) -> sqlx::Result<CertRecord> {
    Ok(CertRecord {
        fingerprint: r.try_get("fingerprint")?,
        serial: r.try_get("serial")?,
        subject: r.try_get("subject")?,
        not_before: r.try_get("not_before")?,
        not_after: r.try_get("not_after")?,
        der_b64: r.try_get("der_b64")?,
        revoked_at: r.try_get("revoked_at")?,
        revoke_reason: r.try_get("revoke_reason")?,
    })
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn insert_certificate(c: &CertRecord, now: i64) -> Query<'_> {
    sqlx::query(
        "INSERT INTO certificates (fingerprint, serial, subject, not_before, not_after, der_b64, revoked_at, revoke_reason, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7)",
    )
    .bind(&c.fingerprint)
    .bind(&c.serial)
    .bind(&c.subject)
    .bind(c.not_before)
    .bind(c.not_after)
    .bind(&c.der_b64)
    .bind(now)
}

/// A unique-constraint violation becomes `Exists`; everything else stays a database error.
fn unique<'a>(what: &'static str, value: &'a str) -> impl FnOnce(sqlx::Error) -> StoreError + 'a {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Exists { what, value: value.to_string() },
        _ => StoreError::Db(e),
    }
}

/// One SQLite connection with its settings applied.
async fn sqlite_conn(url: &str, pragmas: &[&str]) -> Result<AnyConnection> {
    let mut c = AnyConnection::connect(url).await?;
    for p in pragmas {
        c.execute(*p).await?;
    }
    Ok(c)
}

#[derive(Clone, Debug)]
pub struct Store {
    /// Writes (and reads that must see them in one transaction). SQLite: its one writer.
    writer: Arc<Conns>,
    /// Plain reads. On SQLite a few read-only connections beside the single writer: in WAL
    /// mode readers never wait for it, so session and key lookups do not queue behind commits.
    /// On PostgreSQL the same pool.
    reader: Arc<Conns>,
    audit_log: audit::AuditLog,
    backend: Backend,
}

/// An exclusive lock on `PATH.lock` beside a SQLite file while it is opened and migrated
/// (`None` for an in-memory database). sqlx's SQLite migrator takes no lock of its own, so two
/// processes migrating a new file at once could both try the first migration.
async fn sqlite_first_use_lock(path: &str) -> Result<Option<std::fs::File>> {
    let file = path.split('?').next().unwrap_or(path);
    if file.is_empty() || file.starts_with(':') || path.contains("mode=memory") {
        return Ok(None);
    }
    let lock_path = format!("{file}.lock");
    let database = file.to_string();
    let lock = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        // The folder too (a fresh $UKEY_HOME), private like the rest of it.
        if let Some(parent) = std::path::Path::new(&lock_path).parent().filter(|p| !p.as_os_str().is_empty()) {
            let mut dirs = std::fs::DirBuilder::new();
            dirs.recursive(true);
            std::os::unix::fs::DirBuilderExt::mode(&mut dirs, 0o700);
            dirs.create(parent)?;
        }
        let private = |path: &str| {
            let mut opts = std::fs::OpenOptions::new();
            opts.read(true).write(true).create(true).truncate(false);
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            opts.open(path)
        };
        let f = private(&lock_path)?;
        f.lock()?;
        // The database itself 0600 from the first byte (it holds password hashes and sessions),
        // whatever the umask; SQLite then opens the file it finds.
        private(&database)?;
        Ok(f)
    })
    .await
    .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    .map_err(StoreError::Io)?;
    Ok(Some(lock))
}

/// Read-only connections SQLite gets beside its writer.
const SQLITE_READERS: usize = 4;

impl Store {
    /// Open (creating a SQLite file if needed) and bring the schema up to date.
    /// URLs: `sqlite:PATH` / `sqlite://PATH`, `postgres://user:pass@host/db`.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = if path.contains("mode=") {
                format!("sqlite://{path}")
            } else {
                format!("sqlite://{path}{sep}mode=rwc")
            };
            // WAL: readers never block the writer, a commit is an append. NORMAL survives a
            // crash of the portal; a power loss may drop the last commits. Checkpoints are
            // the checkpoint task's (see there); after one the WAL is cut back to 64 MiB.
            // 1 KiB pages (new files only): a commit appends every page it touched to the
            // WAL, and a login's commits touch a few small rows; measured with `ukey bench
            // login`, WAL writes 70 -> 26 MB/s and 3-8% more logins. Photos (up to 2 MiB)
            // then span more overflow pages, read once per staff review.
            // Portals starting together on one new file: one creates and migrates it, the
            // others wait for it here, then find the schema up to date.
            let _first_use = sqlite_first_use_lock(path).await?;
            let mut writer = sqlite_conn(
                &url,
                &[
                    // First: the pragmas after it may wait on another process's lock.
                    "PRAGMA busy_timeout=5000",
                    "PRAGMA page_size=1024",
                    "PRAGMA journal_mode=WAL",
                    "PRAGMA synchronous=NORMAL",
                    "PRAGMA wal_autocheckpoint=0",
                    "PRAGMA journal_size_limit=67108864",
                ],
            )
            .await?;
            sqlx::migrate!("./migrations").run(&mut writer).await?;
            let mut readers = Vec::new();
            for _ in 0..SQLITE_READERS {
                readers.push(sqlite_conn(&url, &["PRAGMA query_only=1", "PRAGMA busy_timeout=5000"]).await?);
            }
            let writer = Arc::new(Conns::held(vec![writer]));
            checkpoint::start(sqlite_conn(&url, &["PRAGMA busy_timeout=5000"]).await?, Arc::downgrade(&writer));
            Ok(Store {
                audit_log: audit::AuditLog::start(writer.clone()),
                writer,
                reader: Arc::new(Conns::held(readers)),
                backend: Backend::Sqlite,
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // No ping before each checkout (sqlx still pings on each return, and drops a
            // connection that fails it): a round trip to the server per statement saved,
            // 1390 -> 1560 logins/s in `ukey bench login --db postgres://...`. After a server
            // restart, the first statement on a dead connection fails its one request.
            let pool = AnyPoolOptions::new().max_connections(10).test_before_acquire(false).connect(url).await?;
            sqlx::migrate!("./migrations").run(&pool).await?;
            // Request counts are worth nothing after a crash: an UNLOGGED table writes no WAL,
            // so a count's commit does not wait for a WAL flush (PostgreSQL empties the table
            // after a crash, which only restarts the minute's counts). A no-op once done.
            // Measured with `ukey bench login --db postgres://...`: see BENCHMARKS.md.
            sqlx::query("ALTER TABLE rate_limits SET UNLOGGED").execute(&pool).await?;
            let conns = Arc::new(Conns::Pool(pool));
            Ok(Store {
                audit_log: audit::AuditLog::start(conns.clone()),
                writer: conns.clone(),
                reader: conns,
                backend: Backend::Postgres,
            })
        } else {
            Err(StoreError::BadUrl(url.to_string()))
        }
    }

    /// A connection for writes.
    async fn w(&self) -> Result<Lease> {
        Ok(self.writer.get().await?)
    }

    /// A connection for plain reads.
    async fn r(&self) -> Result<Lease> {
        Ok(self.reader.get().await?)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    // ---- enterprises, users, accounts ----

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

    /// Until when `client` must wait before its next password for `username` (0: it need not).
    pub async fn password_delay(&self, username: &str, client: &str) -> Result<i64> {
        let row = sqlx::query("SELECT blocked_until FROM login_failures WHERE username = $1 AND client = $2")
            .bind(username)
            .bind(client)
            .fetch_optional(&mut *self.r().await?)
            .await?;
        Ok(row.map(|r| r.try_get("blocked_until")).transpose()?.unwrap_or(0))
    }

    /// Count a wrong password from `client` for `username` (which may not exist); `delay`
    /// says, from the count, how many seconds the client then waits. The count is one
    /// statement, so concurrent portal instances cannot lose one.
    pub async fn record_password_failure(
        &self,
        username: &str,
        client: &str,
        delay: impl Fn(i64) -> i64,
        now: i64,
    ) -> Result<LoginFailure> {
        let mut conn = self.w().await?;
        let row = sqlx::query(
            "INSERT INTO login_failures (username, client, failures, blocked_until, last_at) VALUES ($1, $2, 1, 0, $3) \
             ON CONFLICT (username, client) DO UPDATE SET failures = login_failures.failures + 1, last_at = $3 \
             RETURNING failures",
        )
        .bind(username)
        .bind(client)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
        let failures: i64 = row.try_get("failures")?;
        let wait = delay(failures);
        let blocked_until = if wait > 0 { now + wait } else { 0 };
        if wait > 0 {
            sqlx::query("UPDATE login_failures SET blocked_until = $3 WHERE username = $1 AND client = $2")
                .bind(username)
                .bind(client)
                .bind(blocked_until)
                .execute(&mut *conn)
                .await?;
        }
        Ok(LoginFailure { failures, blocked_until })
    }

    /// A right password from `client`: its count for `username` starts again.
    pub async fn clear_password_failures(&self, username: &str, client: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE username = $1 AND client = $2")
            .bind(username)
            .bind(client)
            .execute(&mut *self.w().await?)
            .await?;
        Ok(())
    }

    /// Forget failure counts last touched before `before` (housekeeping).
    pub async fn purge_password_failures(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM login_failures WHERE last_at < $1")
            .bind(before)
            .execute(&mut *self.w().await?)
            .await?;
        Ok(done.rows_affected())
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

    // ---- certificates ----

    pub async fn add_certificate(&self, c: &CertRecord, now: i64) -> Result<()> {
        insert_certificate(c, now)
            .execute(&mut *self.w().await?)
            .await
            .map_err(unique("certificate", &c.fingerprint))?;
        Ok(())
    }

    pub async fn certificate(&self, fingerprint: &str) -> Result<Option<CertRecord>> {
        let row = sqlx::query("SELECT * FROM certificates WHERE fingerprint = $1")
            .bind(fingerprint)
            .fetch_optional(&mut *self.r().await?)
            .await?;
        Ok(row.as_ref().map(cert).transpose()?)
    }

    /// Every revoked certificate: (serial as in the certificate, hex; when; reason), for the CRL.
    pub async fn revoked_certificates(&self) -> Result<Vec<(String, i64, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT serial, revoked_at, revoke_reason FROM certificates WHERE revoked_at IS NOT NULL ORDER BY revoked_at, serial",
        )
        .fetch_all(&mut *self.r().await?)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("serial")?, r.try_get("revoked_at")?, r.try_get("revoke_reason")?))).collect()
    }

    /// Revoke; `false` if it was already revoked (the first reason stays).
    pub async fn revoke(&self, fingerprint: &str, reason: &str, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE certificates SET revoked_at = $2, revoke_reason = $3 WHERE fingerprint = $1 AND revoked_at IS NULL",
        )
        .bind(fingerprint)
        .bind(now)
        .bind(reason)
        .execute(&mut *self.w().await?)
        .await?;
        if done.rows_affected() == 0 && self.certificate(fingerprint).await?.is_none() {
            return Err(StoreError::NotFound { what: "certificate", value: fingerprint.into() });
        }
        Ok(done.rows_affected() == 1)
    }

    // ---- bindings ----

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

    /// A certificate's revocation and the accounts it may log in to, in one statement (the
    /// key-login path reads both). `None`: the portal has no record of the certificate.
    pub async fn key_standing(&self, fingerprint: &str) -> Result<Option<KeyStanding>> {
        let rows = sqlx::query(
            "SELECT c.fingerprint AS known, c.revoked_at, c.revoke_reason, a.id, a.enterprise_id, a.name \
             FROM certificates c LEFT JOIN bindings b ON b.fingerprint = c.fingerprint \
             LEFT JOIN accounts a ON a.id = b.account_id WHERE c.fingerprint = $1 ORDER BY a.name",
        )
        .bind(fingerprint)
        .fetch_all(&mut *self.r().await?)
        .await?;
        Ok(standing(&rows)?)
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

    // ---- login challenges ----

    /// Give the session a new challenge (replacing any earlier one); `false` if no session.
    pub async fn put_challenge(&self, token_hash: &str, c: &Challenge) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET nonce = $2, nonce_origin = $3, nonce_expires_at = $4 WHERE token_hash = $1",
        )
        .bind(token_hash)
        .bind(&c.nonce)
        .bind(&c.origin)
        .bind(c.expires_at)
        .execute(&mut *self.w().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Spend the session's challenge `nonce`: `true` for exactly one caller, however many
    /// race for it (the condition and the clearing are one statement).
    pub async fn spend_challenge(&self, token_hash: &str, nonce: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET nonce = NULL, nonce_origin = NULL, nonce_expires_at = NULL \
             WHERE token_hash = $1 AND nonce = $2",
        )
        .bind(token_hash)
        .bind(nonce)
        .execute(&mut *self.w().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- sessions ----

    pub async fn put_session(&self, s: &Session, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, account_id, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.token_hash)
        .bind(&s.user_id)
        .bind(&s.account_id)
        .bind(&s.csrf)
        .bind(now)
        .bind(s.expires_at)
        .execute(&mut *self.w().await?)
        .await
        .map_err(unique("session", "(token)"))?;
        Ok(())
    }

    /// A live session by its token hash (expired ones are not returned).
    pub async fn session(&self, token_hash: &str, now: i64) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT token_hash, user_id, account_id, csrf, expires_at, nonce, nonce_origin, nonce_expires_at \
             FROM sessions WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *self.r().await?)
        .await?;
        Ok(row.as_ref().map(session_row).transpose()?)
    }

    /// A live session and, read in the same statement, the standing of the certificate
    /// `fingerprint` (the key login needs both before it can act). `None`: no live session.
    pub async fn session_and_key(
        &self,
        token_hash: &str,
        now: i64,
        fingerprint: &str,
    ) -> Result<Option<(Session, Option<KeyStanding>)>> {
        let rows = sqlx::query(
            "SELECT s.token_hash, s.user_id, s.account_id, s.csrf, s.expires_at, s.nonce, s.nonce_origin, \
             s.nonce_expires_at, c.fingerprint AS known, c.revoked_at, c.revoke_reason, \
             a.id, a.enterprise_id, a.name FROM sessions s \
             LEFT JOIN certificates c ON c.fingerprint = $3 \
             LEFT JOIN bindings b ON b.fingerprint = c.fingerprint LEFT JOIN accounts a ON a.id = b.account_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 ORDER BY a.name",
        )
        .bind(token_hash)
        .bind(now)
        .bind(fingerprint)
        .fetch_all(&mut *self.r().await?)
        .await?;
        let Some(first) = rows.first() else { return Ok(None) };
        Ok(Some((session_row(first)?, standing(&rows)?)))
    }

    /// Give a session a new token, user, account and CSRF token in one statement (login);
    /// any challenge it held is dropped. `false` if `old_hash` names no session.
    pub async fn rotate_session(&self, old_hash: &str, new: &Session) -> Result<bool> {
        self.rotate(old_hash, new, None).await
    }

    /// [`Store::rotate_session`] that also spends the session's challenge `nonce`, in the same
    /// statement: `false` (and nothing changed) unless the session still held that challenge.
    pub async fn rotate_session_spending(&self, old_hash: &str, nonce: &str, new: &Session) -> Result<bool> {
        self.rotate(old_hash, new, Some(nonce)).await
    }

    async fn rotate(&self, old_hash: &str, new: &Session, spending: Option<&str>) -> Result<bool> {
        const SET: &str = "UPDATE sessions SET token_hash = $2, user_id = $3, account_id = $4, csrf = $5, \
             expires_at = $6, nonce = NULL, nonce_origin = NULL, nonce_expires_at = NULL WHERE token_hash = $1";
        let sql = match spending {
            Some(_) => format!("{SET} AND nonce = $7"),
            None => SET.to_string(),
        };
        let mut q = sqlx::query(&sql)
            .bind(old_hash)
            .bind(&new.token_hash)
            .bind(&new.user_id)
            .bind(&new.account_id)
            .bind(&new.csrf)
            .bind(new.expires_at);
        if let Some(n) = spending {
            q = q.bind(n);
        }
        let done = q.execute(&mut *self.w().await?).await.map_err(unique("session", "(token)"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Delete sessions (and the challenges they hold) that expired; returns how many.
    pub async fn purge_sessions(&self, now: i64) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now).execute(&mut *self.w().await?).await?;
        Ok(done.rows_affected())
    }

    // ---- rate limits ----

    /// Count one request of `client` for `action` in `minute`; answers how many it made in
    /// that minute, this one included. One statement, so instances on one database share
    /// the count and none is lost. A minute older than the row's (an instance whose clock
    /// lags) counts into the row's minute instead of starting it over.
    pub async fn count_request(&self, action: &str, client: &str, minute: i64) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO rate_limits (action, client, minute, hits) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (action, client) DO UPDATE SET \
               hits = CASE WHEN rate_limits.minute >= excluded.minute THEN rate_limits.hits + 1 ELSE 1 END, \
               minute = CASE WHEN rate_limits.minute >= excluded.minute THEN rate_limits.minute ELSE excluded.minute END \
             RETURNING hits",
        )
        .bind(action)
        .bind(client)
        .bind(minute)
        .fetch_one(&mut *self.w().await?)
        .await?;
        Ok(row.try_get("hits")?)
    }

    /// Delete request counts of minutes before `minute`; returns how many.
    pub async fn purge_rate_limits(&self, minute: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM rate_limits WHERE minute < $1")
            .bind(minute)
            .execute(&mut *self.w().await?)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *self.w().await?)
            .await?;
        Ok(())
    }
}
