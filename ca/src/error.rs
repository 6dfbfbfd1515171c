//! What can go wrong in the CA, one type for the crate.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} already holds a CA; open it instead of creating one")]
    Exists { path: PathBuf },
    #[error("{path} is not a usable CA file: {reason}")]
    BadFile { path: PathBuf, reason: String },
    #[error("invalid subject name {name:?}: {reason} (expected RFC 4514 form, e.g. \"CN=Alice,O=Example\")")]
    BadName { name: String, reason: String },
    #[error("the certificate request is malformed: {0}")]
    BadCsr(String),
    #[error("the certificate request's signature does not verify: the CSR was not signed by the key it names")]
    CsrSignature,
    #[error("the validity period is empty: not-after ({not_after}) is not after not-before ({not_before})")]
    EmptyValidity { not_before: u64, not_after: u64 },
    #[error("certificate building failed: {0}")]
    Build(String),
}

pub type Result<T> = std::result::Result<T, CaError>;
