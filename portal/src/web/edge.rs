//! What every request passes through: the client's address is worked out once (for rate
//! limits and password-failure counts), and every response gets the security headers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State as S};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::app::State;
use crate::client::{client_of, ClientAddr};
use crate::tls::TlsPeer;

/// The policy of every answer that does not set its own: JSON and images load nothing, run
/// nothing, and no page may frame them.
pub const DEFAULT_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub async fn edge(S(p): S<State>, mut req: Request, next: Next) -> Response {
    // Without connection info (a router driven in-process) every request is one client.
    let peer = match (req.extensions().get::<ConnectInfo<SocketAddr>>(), req.extensions().get::<ConnectInfo<TlsPeer>>())
    {
        (Some(c), _) => c.0.ip(),
        (None, Some(c)) => c.0 .0.ip(),
        (None, None) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let client = {
        let forwarded: Vec<&str> =
            req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
        client_of(peer, &forwarded, &p.config.trusted_proxies)
    };
    req.extensions_mut().insert::<ClientAddr>(client);
    let mut resp = next.run(req).await;
    secure(resp.headers_mut(), p.config.origin.starts_with("https://"));
    resp
}

/// The security headers, each unless the handler chose its own.
fn secure(h: &mut HeaderMap, https: bool) {
    let mut set = |name: HeaderName, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(header::CONTENT_SECURITY_POLICY, DEFAULT_CSP);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    set(HeaderName::from_static("cross-origin-opener-policy"), "same-origin");
    set(HeaderName::from_static("cross-origin-resource-policy"), "same-origin");
    if https {
        // Only over https: a browser ignores it on http, and it must never pin plain http.
        set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000; includeSubDomains");
    }
}
