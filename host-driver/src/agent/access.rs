//! Who may use the agent: this user's processes (owner-only, at accept), loopback Host,
//! allowed Origin; CORS for allowed origins only.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::assistant;
use super::keyops::refuse;
use super::state::Agent;

/// Who is on the other end of a request's connection, as the owner-only rule judged it when
/// the connection was accepted.
#[derive(Debug, Clone)]
pub struct Caller {
    pub addr: std::net::SocketAddr,
    /// Why the rule refused this caller; `None`: admitted.
    refused: Option<Arc<str>>,
}

/// Answer another user's connection 403 and close it: its request is read (for at most two
/// seconds, 8 KiB) so that closing does not reset the connection before the answer is read.
pub(super) async fn refuse_connection(mut io: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_secs(2), io.read(&mut request)).await;
    let body = r#"{"ok":false,"code":"other_user","message":"the agent answers only its own user's programs"}"#;
    let answer = format!(
        "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), io.write_all(answer.as_bytes())).await;
    let _ = io.shutdown().await;
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, OwnerListener>> for Caller {
    fn connect_info(stream: axum::serve::IncomingStream<'_, OwnerListener>) -> Caller {
        stream.remote_addr().clone()
    }
}

/// A TCP listener that judges each connection's peer as it accepts it.
pub(super) struct OwnerListener {
    inner: tokio::net::TcpListener,
    rule: localpeer::OwnerOnly,
}

impl OwnerListener {
    /// `inner`, admitting this user's processes only.
    pub(super) fn owner_only(inner: tokio::net::TcpListener) -> OwnerListener {
        OwnerListener { inner, rule: localpeer::OwnerOnly::new() }
    }
}

impl axum::serve::Listener for OwnerListener {
    type Io = tokio::net::TcpStream;
    type Addr = Caller;

    async fn accept(&mut self) -> (Self::Io, Caller) {
        loop {
            // axum's accept waits out errors (out of file descriptors, say) and never fails.
            let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
            let judged = io
                .local_addr()
                .map_err(|e| e.to_string())
                .and_then(|local| self.rule.admit_tcp(local, addr).map_err(|e| e.to_string()));
            match judged {
                Ok(()) => return (io, Caller { addr, refused: None }),
                // Another user's connection never reaches the HTTP server: it is answered 403
                // here and closed within seconds, so held connections cannot starve the agent.
                Err(why) => {
                    tracing::warn!("agent: refused {why}");
                    tokio::spawn(refuse_connection(io));
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Caller> {
        Ok(Caller { addr: self.inner.local_addr()?, refused: None })
    }
}

pub(super) fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    matches!(name, "127.0.0.1" | "localhost" | "::1")
}

/// The caller must be this user's process, Host must be loopback, Origin must be allowed;
/// CORS answers for allowed origins only.
pub(super) async fn guard(State(a): State<Arc<Agent>>, req: Request, next: Next) -> Response {
    // First, whatever the headers say: they are the caller's to forge.
    match req.extensions().get::<ConnectInfo<Caller>>() {
        Some(ConnectInfo(Caller { refused: None, .. })) => {}
        Some(ConnectInfo(Caller { refused: Some(why), .. })) => {
            tracing::warn!("agent: refused {why}");
            return refuse(StatusCode::FORBIDDEN, "other_user", "the agent answers only its own user's programs");
        }
        None => return refuse(StatusCode::FORBIDDEN, "other_user", "the caller could not be identified"),
    }
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !loopback_host(host) {
        return refuse(StatusCode::FORBIDDEN, "bad_host", "the agent answers only requests to a loopback address");
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let path = req.uri().path();
    // The assistant's page: what a browser navigating to the agent asks for (no Origin), and
    // its module script (fetched in CORS mode, so with the page's own Origin).
    let own = a.config.own_origin.as_deref() == Some(origin.as_str());
    if req.method() == Method::GET && (origin.is_empty() || own) && assistant::PAGE_PATHS.contains(&path) {
        return next.run(req).await;
    }
    // The assistant follows keys coming and going like a portal's page does.
    if req.method() == Method::GET && own && path == "/events" {
        return next.run(req).await;
    }
    // The library is public code: anyone may read it (a portal's page imports it in CORS mode,
    // and gets the CORS answer below when its origin is allowed).
    if req.method() == Method::GET && origin.is_empty() && path == "/ukey.js" {
        return next.run(req).await;
    }
    // The assistant's calls change PINs: from its own page only, never a portal's.
    if path.starts_with("/assistant/") {
        if !own {
            return refuse(StatusCode::FORBIDDEN, "bad_origin", "only the assistant's own page may call it");
        }
        return next.run(req).await;
    }
    if !a.config.allowed_origins.iter().any(|o| o == &origin) {
        return refuse(StatusCode::FORBIDDEN, "bad_origin", "this page's origin may not use the agent");
    }
    let preflight = req.method() == Method::OPTIONS;
    let mut resp = if preflight { StatusCode::NO_CONTENT.into_response() } else { next.run(req).await };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if preflight {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type"));
    }
    resp
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_loopback_hosts() {
        for ok in ["127.0.0.1:7000", "localhost:7000", "[::1]:7000", "127.0.0.1", "localhost"] {
            assert!(super::loopback_host(ok), "{ok}");
        }
        for bad in ["evil.example:7000", "127.0.0.1.evil.example", "10.0.0.1:7000", "", "[::2]:1"] {
            assert!(!super::loopback_host(bad), "{bad}");
        }
    }
}
