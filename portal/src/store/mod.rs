//! The portal's storage: one code path over SQLite (the embedded default: a file, zero setup)
//! and PostgreSQL (several portal instances behind a load balancer), through sqlx's `Any`
//! driver. Schema changes are versioned migrations in `portal/migrations`, applied at start.
//!
//! Time is passed in (unix seconds) by the caller, who owns the clock.
//!
//! One module per aggregate, each adding its statements to [`Store`]; this module only names
//! them. Modules use one another's items where they are defined, never through here.
//!
//! - `db`: [`Store`] itself: opening, migrations, connections.
//! - `error`, `id`: what a call fails with; row ids.
//! - `accounts`: enterprises, users, accounts, and keys bound to accounts.
//! - `sessions`: sessions and their key-login challenges.
//! - `certificates`: certificates, revocation, a key's standing.
//! - `applications`: certificate applications, photos, SMS codes, review.
//! - `payments`: payments and the provider's notifications.
//! - `outbox`: SMS and email sent, and the SMS caps' counts.
//! - `limits`: wrong-password counts and shared request counts.
//! - `audit`, `audit_writer`: the audit trail, and its writer (rows written in groups).
//! - `conns`, `checkpoint`: SQLite connections held open, WAL checkpoints off the requests' path.

mod accounts;
mod applications;
mod audit;
mod audit_writer;
mod certificates;
mod checkpoint;
mod conns;
mod db;
mod error;
mod id;
mod limits;
mod outbox;
mod payments;
mod sessions;

pub use accounts::{Account, AccountBinding, Enterprise, User};
pub use applications::{Application, PhotoInfo, SmsCheck};
pub use audit_writer::AuditRow;
pub use certificates::{CertRecord, KeyStanding};
pub use db::{Backend, Store};
pub use error::{Result, StoreError};
pub use id::new_id;
pub use limits::LoginFailure;
pub use outbox::OutboxMessage;
pub use payments::{Paid, Payment};
pub use sessions::{Challenge, Session};
