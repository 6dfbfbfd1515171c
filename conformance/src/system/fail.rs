//! How a system step fails: one message, built from whatever went wrong on the way (HTTP,
//! JSON, the key, a broken expectation), with `context`, `ensure!` and `bail!` to say where.
//! A step's failure is its report's detail.

use std::fmt;

/// Why a step failed, as its report says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// The whole chain of `e`, as a person reads it: "what: why: deeper why".
    fn chain(e: &dyn std::error::Error) -> Failure {
        let mut s = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            let more = c.to_string();
            if !s.contains(&more) {
                s = format!("{s}: {more}");
            }
            cause = c.source();
        }
        Failure(s)
    }
}

/// What can go wrong on a step's way: HTTP, JSON, the key, building a request.
macro_rules! from_errors {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for Failure {
            fn from(e: $t) -> Failure {
                Failure::chain(&e)
            }
        })*
    };
}
from_errors!(
    reqwest::Error,
    serde_json::Error,
    host_driver::PivError,
    proto::TransportError,
    ca::CaError,
    der::Error,
    base64::DecodeError,
    p256::ecdsa::Error,
    ca::x509_cert::builder::Error,
);

pub type Result<T, E = Failure> = std::result::Result<T, E>;

/// Say what was being done when a step failed.
pub trait Context<T> {
    fn context(self, what: impl fmt::Display) -> Result<T>;
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.ok_or_else(|| Failure(what.to_string()))
    }
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.ok_or_else(|| Failure(what().to_string()))
    }
}

impl<T, E: Into<Failure>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Failure(format!("{what}: {}", e.into())))
    }
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| Failure(format!("{}: {}", what(), e.into())))
    }
}

macro_rules! bail {
    ($($t:tt)*) => {
        return Err($crate::system::fail::Failure(format!($($t)*)))
    };
}
pub(crate) use bail;

macro_rules! ensure {
    ($cond:expr, $($t:tt)*) => {
        if !$cond {
            $crate::system::fail::bail!($($t)*);
        }
    };
}
pub(crate) use ensure;
