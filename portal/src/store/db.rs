//! The store itself: opening SQLite or PostgreSQL (migrations applied), its connections, and
//! the error and id types every aggregate's module shares.

use std::sync::Arc;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, Connection, Executor};

use super::audit_writer::AuditLog;
use super::checkpoint;
use super::conns::{Conns, Lease};
use super::error::{Result, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub(super) type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

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
    pub(super) audit_log: AuditLog,
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
                audit_log: AuditLog::start(writer.clone()),
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
                audit_log: AuditLog::start(conns.clone()),
                writer: conns.clone(),
                reader: conns,
                backend: Backend::Postgres,
            })
        } else {
            Err(StoreError::BadUrl(url.to_string()))
        }
    }

    /// A connection for writes.
    pub(super) async fn w(&self) -> Result<Lease> {
        Ok(self.writer.get().await?)
    }

    /// A connection for plain reads.
    pub(super) async fn r(&self) -> Result<Lease> {
        Ok(self.reader.get().await?)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }
}
