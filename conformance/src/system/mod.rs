//! The system family: the whole login / bind / unbind story of the user manual, over real
//! HTTP against a portal and its local agent — certificate application, password login,
//! binding, key login and each of its outcomes, unbinding — checked step by step. Any
//! portal that speaks the reference portal's API can be judged; `ukey flows` starts one with
//! virtual keys in every state a user meets, or points at a deployment.
//!
//! - [`api_client::ApiClient`]: the portal's JSON API as a page calls it (cookie jar,
//!   language, CSRF token); the portal's own tests drive it with this client too.
//! - [`Browser`]: the typed portal client, with the cookie jar, language and CSRF token a
//!   browser keeps, and the page's calls to the local agent.
//! - [`run_flows`]: the steps, each a [`Step`] with its outcome and timing; [`junit`] reports
//!   them as the card checks' reports do.

pub mod api_client;
mod browser;
mod cast;
mod enroll;
pub mod fail;
mod flows;
mod steps;
mod target;

pub use browser::Browser;
pub use cast::{Cast, CREDIT_CODE, OTHER_CREDIT_CODE, PIN};
pub use flows::run_flows;
pub use steps::{expect, junit, msg, Run, Step};
pub use target::{KeyTries, System};
