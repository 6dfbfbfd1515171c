//! What a store call fails with, shared by every aggregate's module.

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

/// A unique-constraint violation becomes `Exists`; everything else stays a database error.
pub(super) fn unique<'a>(what: &'static str, value: &'a str) -> impl FnOnce(sqlx::Error) -> StoreError + 'a {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Exists { what, value: value.to_string() },
        _ => StoreError::Db(e),
    }
}
