//! The reference business system the USB-Key logs in to: enterprises and their accounts,
//! users with passwords, certificate enrollment, binding keys to accounts, key login by
//! challenge and signature, unbinding. Everything reachable over HTTP/JSON.
//!
//! - [`store`]: persistence, SQLite by default and PostgreSQL by URL, one code path.

pub mod store;

pub use store::{Backend, Store, StoreError};
