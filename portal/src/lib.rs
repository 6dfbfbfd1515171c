//! The reference business system the USB-Key logs in to: enterprises and their accounts,
//! users with passwords, certificate enrollment, binding keys to accounts, key login by
//! challenge and signature, unbinding. Everything reachable over HTTP/JSON.
//!
//! - [`app`]: the portal below its adapters: state, clock, audit, sessions, limits, and the
//!   status-free refusal the rules answer with.
//! - [`service`]: the business rules the API and the pages both call.
//! - [`web`]: the router and the extractors the two adapters share (language, session).
//! - [`api`]: the HTTP/JSON API (axum): sessions, CSRF, login, bind, unbind.
//! - [`pages`]: the web pages (server-rendered, askama) over the same API and the agent.
//! - [`store`]: persistence, SQLite by default and PostgreSQL by URL, one code path.
//! - [`messages`]: what users read, zh-CN and English: outcomes and the pages' words.
//! - [`password`]: argon2id password hashes.
//! - [`secret`]: random tokens, their hashes, comparison in constant time.
//! - [`token`]: the key-login token (Web eID model) and its verification.
//! - [`validate`]: application form fields (credit code, ID number with check digits, ...).
//! - [`attestation`]: certificates only for key pairs generated on a USB-Key.
//! - [`enrollment`]: the certificate application's stages, form, photos and SMS codes.
//! - [`photo`]: ID photos decoded under limits and re-encoded.
//! - [`seed`]: the demo enterprise, its users and accounts, defined once.
//! - [`payment`]: payment methods and the provider's signed notifications (simulated in test
//!   mode).

pub mod api;
pub mod app;
pub mod attestation;
pub mod client;
pub mod config;
pub mod enrollment;
pub mod messages;
pub mod pages;
pub mod password;
pub mod payment;
pub mod photo;
pub mod ratelimit;
pub mod secret;
pub mod seed;
pub mod service;
pub mod store;
pub mod tls;
pub mod token;
pub mod validate;
pub mod web;

pub use app::{Portal, State};

pub use store::{Backend, Store, StoreError};
pub use web::{serve, serve_tls};
