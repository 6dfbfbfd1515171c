//! The local agent (the manual's "certificate application environment"): a small HTTP service
//! on loopback through which a web page of the portal reaches the keys on this machine.
//!
//! - `GET /keys`: the keys present (label, serial, subject, not-after, PIN tries left).
//! - `GET /events` (WebSocket): `{"event":"inserted"|"removed","key":...}` as keys come and go.
//! - `POST /sign {key_id, pin, nonce, last_try?}`: verify the PIN on the key, then sign the
//!   login digest for the request's Origin with slot 9A; answers the login token, or the key's
//!   own wrong-PIN count / PIN-locked state. With one PIN try left the agent refuses
//!   (`last_try`, 409) unless the request says `"last_try": true`; so do the enroll calls.
//! - `POST /enroll/keypair {key_id, pin, replace?}`: generate a P-256 key pair in slot 9A on
//!   the key and answer a CSR the key signed (certificate application).
//! - `POST /enroll/install {key_id, pin, certificate}`: write the issued certificate to 9A,
//!   after the key proved it holds the certificate's private key.
//!
//! - `GET /ukey.js`: the page-side library ([`CLIENT_JS`]) for any portal's pages.
//! - `GET /`: the certificate assistant (证书助手), the agent's own page: each key's certificate
//!   and PIN tries, change PIN, unblock with the PUK (`POST /assistant/keys|pin/change|
//!   pin/unblock`, answered for the agent's own origin only).
//!
//! Every connection must come from a process of the user running the agent (`localpeer`: the
//! peer's uid, from `/proc/net/tcp`); another user's requests are answered 403 whatever
//! headers they carry. Every request must then name a loopback Host (no DNS rebinding) and an
//! allowed Origin (the assistant's page itself excepted: a browser navigating sends none);
//! there is no default origin. A `key_id` must be one the agent lists at that moment. PINs
//! are never logged or kept: they go to the key and are dropped.

mod access;
mod assistant;
mod enroll;
mod keyops;
mod login;
mod presence;
mod provider;
mod state;

use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::broadcast;

pub use access::Caller;
use access::{guard, OwnerListener};
use login::sign;
pub use presence::API_VERSION;
use presence::{events_ws, list_keys, poll_presence};
use provider::Listed;
pub use provider::{FixedKeys, KeyProvider, KeyRef};
use state::Agent;
pub use state::{AgentConfig, KeySummary};

/// `ukey.js`, the ES module through which web pages use the agent (keys, key changes, login,
/// enrollment; stable error codes). The agent serves it at `/ukey.js`; the ukey portal serves
/// the same bytes at `/static/ukey.js`.
pub const CLIENT_JS: &str = include_str!("../../static/ukey.js");

/// The agent's routes; spawns the presence poller on the current runtime. Served only through
/// [`serve`], which tells each request who called.
fn router(keys: Arc<dyn KeyProvider>, config: AgentConfig) -> Router {
    let (events, _) = broadcast::channel(64);
    let keys: Arc<dyn KeyProvider> = Arc::new(Listed::new(keys));
    let agent = Arc::new(Agent { keys, config, events });
    tokio::spawn(poll_presence(agent.clone()));
    Router::new()
        .route("/keys", get(list_keys))
        .route("/sign", post(sign))
        .route("/enroll/keypair", post(enroll::keypair))
        .route("/enroll/install", post(enroll::install))
        .route("/events", get(events_ws))
        .route("/ukey.js", get(client_js))
        .route("/", get(assistant::page))
        .route("/assistant.js", get(assistant::script))
        .route("/assistant.css", get(assistant::style))
        .route("/assistant/keys", post(assistant::keys))
        .route("/assistant/pin/change", post(assistant::change_pin))
        .route("/assistant/pin/unblock", post(assistant::unblock))
        .layer(middleware::from_fn_with_state(agent.clone(), guard))
        .with_state(agent)
}

/// Serve on `listener` (bind it to 127.0.0.1) until dropped: only this user's processes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    keys: Arc<dyn KeyProvider>,
    config: AgentConfig,
) -> std::io::Result<()> {
    let listener = OwnerListener::owner_only(listener);
    axum::serve(listener, router(keys, config).into_make_service_with_connect_info::<Caller>()).await
}

async fn client_js() -> Response {
    let mut r = CLIENT_JS.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
