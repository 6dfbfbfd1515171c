//! What the portal decides, as calls on [`Portal`](crate::app::Portal): typed requests in,
//! typed outcomes or a [`Refusal`](crate::app::Refusal) (its kind, a stable code and the
//! user's message; no HTTP status) out. No headers, no language here: the JSON API
//! (`crate::api`) and the pages (`crate::pages`) are two adapters above this module that find
//! the caller, call these, and render what comes back; nothing here imports them.
//!
//! - [`auth`]: password login and logout.
//! - [`binding`]: binding keys to accounts, unbinding.
//! - [`enroll`]: the certificate application, from the form to payment.
//! - [`staff`]: review (approve, reject), revocation, the queue.
//! - [`keylogin`]: challenges, the key's signed answer judged, key login.

pub mod auth;
pub mod binding;
pub mod enroll;
pub mod keylogin;
pub mod staff;
