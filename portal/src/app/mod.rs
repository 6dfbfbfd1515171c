//! The portal itself, below its adapters: [`Portal`] (the store, the CA, the clock, the
//! configuration and the limits every rule reads), the audit trail, sessions, request limits,
//! and the [`Refusal`] every rule in [`crate::service`] answers with. Nothing here knows HTTP:
//! the JSON API and the pages turn a refusal into a status or a page.
//!
//! - [`portal`](Portal): the state, the clock, the audit.
//! - `refusal`: what a rule says when it refuses, and of what kind.
//! - `sessions`: new sessions and their rotation at every login.
//! - `limits`: requests counted per action and client.
//! - `crl`: the CA's revocation list, made on demand and cached.
//! - [`housekeeping`]: expired sessions and old counts deleted now and then.

mod crl;
mod housekeeping;
mod limits;
mod portal;
mod refusal;
mod sessions;

pub use housekeeping::housekeeping;
pub use portal::{Portal, State};
pub use refusal::{Kind, Refusal};
