//! The web face shared by the two adapters: the router that puts the JSON API ([`crate::api`])
//! and the pages ([`crate::pages`]) behind one edge, and the extractors both use — the
//! caller's language ([`lang::Language`]) and session ([`session::Caller`]: cookie, CSRF token
//! and request limits, checked in one place). The extractors are leaves: the adapters use
//! them, and they use neither adapter.

mod cookie;
mod edge;
pub mod lang;
pub mod refusal;
pub mod session;

use axum::Router;

use crate::app::{housekeeping, State};

/// Serve the API and the pages over https on `listener` until the future is dropped.
pub async fn serve_tls(listener: crate::tls::TlsListener, state: State) -> std::io::Result<()> {
    let app = router(state.clone()).into_make_service_with_connect_info::<crate::tls::TlsPeer>();
    with_housekeeping(state, async { axum::serve(listener, app).await }).await
}

/// Serve the API and the pages on `listener` until the future is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: State) -> std::io::Result<()> {
    let app = router(state.clone()).into_make_service_with_connect_info::<std::net::SocketAddr>();
    with_housekeeping(state, async { axum::serve(listener, app).await }).await
}

/// Run `served` with the housekeeping task beside it, for as long as it runs.
async fn with_housekeeping(
    state: State,
    served: impl std::future::Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    let housekeeping = tokio::spawn(housekeeping(state));
    let result = served.await;
    housekeeping.abort();
    result
}

/// Largest request body outside photo uploads: every JSON request is far smaller (a key-login
/// token with its certificate is under 8 KiB); more is a 413 before it is read.
pub const BODY_MAX_BYTES: usize = 64 * 1024;

/// The API and the pages behind one edge (the client's address worked out once, the security
/// headers on every answer), with a body limit; anything unrouted is the pages' "not found".
pub fn router(state: State) -> Router {
    let sandbox = state.config.sandbox;
    crate::api::router(state.config.enroll.photo_max_bytes, sandbox)
        .merge(crate::pages::router(sandbox))
        .fallback(crate::pages::not_found)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_MAX_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), edge::edge))
        .with_state(state)
}
