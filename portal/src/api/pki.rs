//! What relying parties fetch without logging in, at stable URLs the issued certificates name:
//! `GET /pki/ca.crl` (the CA's CRL, DER) and `GET /pki/ca.crt` (the CA certificate, DER).
//!
//! The CRL is made on demand, one at a time, and kept until a revocation changes the list or
//! half its validity has passed. Its number is the time it was made in seconds, or one more
//! than the number before when two lists are made within a second: it grows with every list
//! of this instance, and across instances on one database as far as their clocks agree (a
//! shared counter in the database would make that exact).

use axum::extract::State as S;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Portal, State};

pub const CRL_PATH: &str = "/pki/ca.crl";
pub const CA_PATH: &str = "/pki/ca.crt";

/// A CRL made earlier, and what it was made from.
pub(crate) struct CachedCrl {
    der: Vec<u8>,
    number: u64,
    this_update: u64,
    next_update: u64,
    revoked: Vec<(String, i64, Option<String>)>,
}

impl Portal {
    /// The current CRL (DER) and its nextUpdate.
    pub async fn crl(&self) -> Result<(Vec<u8>, u64), String> {
        // One list at a time: two made at once from lists read at different moments could
        // number an older view above a newer one.
        let mut cached = self.crl_cache.lock().await;
        let revoked = self.store.revoked_certificates().await.map_err(|e| e.to_string())?;
        let now = self.now().max(0) as u64;
        let validity = self.config.crl_validity_secs.max(60);
        if let Some(c) = cached.as_ref() {
            if c.revoked == revoked && now < c.this_update + validity / 2 {
                return Ok((c.der.clone(), c.next_update));
            }
        }
        let entries = revoked
            .iter()
            .map(|(serial, at, reason)| {
                Ok(ca::crl::Revoked {
                    serial: hex::decode(serial).map_err(|e| format!("stored serial {serial:?}: {e}"))?,
                    revoked_at: (*at).max(0) as u64,
                    reason: reason.as_deref().and_then(ca::crl::Reason::parse).unwrap_or(ca::crl::Reason::Unspecified),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let number = cached.as_ref().map_or(now, |c| now.max(c.number + 1));
        let next_update = now + validity;
        let der = self.issuer.crl(&entries, number, now, next_update).map_err(|e| e.to_string())?;
        *cached = Some(CachedCrl { der: der.clone(), number, this_update: now, next_update, revoked });
        Ok((der, next_update))
    }
}

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
