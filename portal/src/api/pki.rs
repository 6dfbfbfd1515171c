//! What relying parties fetch without logging in, at stable URLs the issued certificates name:
//! `GET /pki/ca.crl` (the CA's CRL, DER, made by [`Portal::crl`](crate::app::Portal::crl)) and
//! `GET /pki/ca.crt` (the CA certificate, DER).

use axum::extract::State as S;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::app::State;

fn der_response(content_type: &'static str, der: Vec<u8>, max_age: u64) -> Response {
    let mut r = der.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        h.insert(header::CACHE_CONTROL, v);
    }
    r
}

/// `GET /pki/ca.crl`.
pub async fn crl(S(p): S<State>) -> Response {
    match p.crl().await {
        Ok((der, next_update)) => {
            // Caches may keep it a while, never past its nextUpdate.
            let left = next_update.saturating_sub(p.now().max(0) as u64);
            der_response("application/pkix-crl", der, left.min(300))
        }
        Err(e) => {
            tracing::error!("making the CRL: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "the CRL could not be made; see the portal's log").into_response()
        }
    }
}

/// `GET /pki/ca.crt`.
pub async fn ca_certificate(S(p): S<State>) -> Response {
    der_response("application/pkix-cert", p.issuer.certificate_der(), 3600)
}
