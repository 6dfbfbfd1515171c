//! The portal's HTTP/JSON API: an adapter over [`crate::service`]. Each handler finds the
//! caller ([`crate::web::session::Caller`]: session cookie, CSRF token, rate limits), calls the
//! service, and answers its outcome as JSON; the pages ([`crate::pages`]) call the same
//! services and, from the browser, these endpoints.
//!
//! Every answer is JSON with `ok`, a stable `code` and a `message` in the caller's language
//! (`reply`: a refusal's status is [`crate::web::refusal::status`] of its kind).

mod auth;
mod binding;
mod enroll;
mod keylogin;
mod pki;
mod reply;
mod sandbox;
mod staff;

use axum::routing::{get, post, put};
use axum::Router;

use crate::app::State;

/// The API's routes; `sandbox`: also the simulated payment provider and the outbox.
pub fn router(photo_max_bytes: usize, sandbox: bool) -> Router<State> {
    // Photos are read by their handler with their own limit; other bodies get the router's.
    let photo_limit = axum::extract::DefaultBodyLimit::max(photo_max_bytes + 1);
    let mut r = Router::new()
        .route("/api/session", get(auth::session))
        .route("/api/login/password", post(auth::password_login))
        .route("/api/logout", post(auth::logout))
        .route("/api/challenge", post(keylogin::challenge))
        .route("/api/login/key", post(keylogin::key_login))
        .route("/api/accounts", get(binding::accounts))
        .route("/api/bind", post(binding::bind))
        .route("/api/unbind", post(binding::unbind))
        .route("/api/applications", get(enroll::list).post(enroll::create))
        .route("/api/applications/{id}", get(enroll::show))
        .route("/api/applications/{id}/form", post(enroll::edit))
        .route("/api/applications/{id}/confirm", post(enroll::confirm))
        .route("/api/applications/{id}/photos/{side}", put(enroll::upload_photo).layer(photo_limit))
        .route("/api/applications/{id}/submit", post(enroll::submit))
        .route("/api/applications/{id}/sms/resend", post(enroll::resend_sms))
        .route("/api/applications/{id}/sms/verify", post(enroll::verify_sms))
        .route("/api/applications/{id}/pay", post(enroll::pay))
        .route("/api/applications/{id}/receipt", get(enroll::receipt))
        .route("/api/payments/notify", post(enroll::notify))
        .route("/api/staff/applications", get(staff::queue))
        .route("/api/staff/applications/{id}/photos/{side}", get(staff::photo))
        .route("/api/staff/applications/{id}/approve", post(staff::approve))
        .route("/api/staff/applications/{id}/reject", post(staff::reject))
        .route("/api/staff/certificates/{fingerprint}/revoke", post(staff::revoke))
        .route(crate::config::CRL_PATH, get(pki::crl))
        .route(crate::config::CA_PATH, get(pki::ca_certificate));
    if sandbox {
        r = r
            .route("/api/sandbox/pay/{payment_id}", post(sandbox::pay))
            .route("/api/sandbox/outbox", get(sandbox::outbox));
    }
    r
}
