//! ukey's conformance suite: checks that say, one by one, where a PIV key departs from the
//! standard (NIST SP 800-73-4, SP 800-78, ISO 7816-4, and the Yubico extensions host tools
//! expect), modelled on the test assertions of NIST SP 800-85A.
//!
//! - [`catalog`](mod@catalog): what a check is (stable ID, title, clause, severity, family, and whether it
//!   changes the key beyond what it puts back) and what it says (its [`Verdict`]); the checks
//!   themselves, one module per family, and [`catalog()`] listing them, are in `checks`.
//! - [`card`]: the key under test, reached through host-driver's `Transport` (in-process, a
//!   PC/SC reader, or a USB CCID token), with every status word it answered recorded per check;
//!   what it could not do is a [`card::CardError`].
//! - [`preconditions`]: what a check needs before it may go on (a secret known right, tries to
//!   spare, `--destructive`, a management key that fits), and the verdict when it may not.
//! - [`runner`]: runs a selection of the catalog, each check from a fresh reset and SELECT.
//! - [`restore`]: after each destructive check, the key put back as found (objects rewritten,
//!   the PIN verified) and read again; what PIV cannot put back (a replaced private key) is
//!   reported.
//! - [`report`]: the results: JSON, a terminal table, JUnit XML ([`junit`]) and one
//!   self-contained HTML page.
//!
//! - [`system`]: the system family: the user manual's flows (certificate application, login,
//!   bind, key login and its outcomes, unbind) against a portal and its agent, over HTTP.
//!
//! Checks never guess secrets: they use the PIN, PUK and management key they are given
//! ([`card::Secrets`]; a PIN or PUK not given is not sent, except to a key made for the run),
//! and one that would need a secret it lacks says "skipped" with why. [`guard`] holds the
//! rules every PIN or PUK sent follows, and the ledger of what the run did not undo; [`tries`]
//! settles each check's tries after it.

pub mod card;
pub mod catalog;
mod checks;
pub mod guard;
mod html;
pub mod junit;
pub mod preconditions;
pub mod report;
pub mod restore;
pub mod runner;
pub mod system;
pub mod tries;

pub use card::{Card, Secrets};
pub use catalog::{Check, Family, Severity, Verdict};
pub use checks::catalog;
pub use report::{Outcome, Report};
pub use runner::{identify, run, Selection};
