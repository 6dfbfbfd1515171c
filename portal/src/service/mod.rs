//! What the portal decides, as calls on [`Portal`](crate::api::Portal): typed requests in,
//! typed outcomes or a refusal ([`ApiError`](crate::api::ApiError): an HTTP status, a stable
//! code and the user's message) out. No headers, no JSON, no language here: the JSON API
//! ([`crate::api`]) and the pages ([`crate::pages`]) are two adapters that find the caller,
//! call these, and render what comes back.
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
