//! The staff's JSON endpoints: the review queue, the ID photos, approve / reject, revoke. The
//! rules are [`service::staff`](crate::service::staff)'s; these find the caller and answer.

use axum::extract::{Path, Query, State as S};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::reply::{ok, Body, Reply};
use crate::app::State;
use crate::enrollment::Stage;
use crate::messages::Msg;
use crate::web::lang::Language;
use crate::web::session::Caller;

#[derive(Deserialize)]
pub struct QueueQuery {
    stage: Option<String>,
}

/// `GET /api/staff/applications?stage=under_review`: the queue, oldest first.
pub async fn queue(S(p): S<State>, Language(lang): Language, caller: Caller, Query(q): Query<QueueQuery>) -> Reply {
    Reply::of(lang, async {
        let (_, _, apps) = p.queue_at(&caller.logged_in(&p).await?, q.stage.as_deref()).await?;
        let mut out = Vec::new();
        for a in &apps {
            out.push(p.application_view(a, lang).await?);
        }
        Ok(json!({"ok": true, "code": "applications", "message": "", "applications": out}))
    })
    .await
}

/// `GET /api/staff/applications/{id}/photos/{side}`: the uploaded image.
pub async fn photo(
    S(p): S<State>,
    Language(lang): Language,
    caller: Caller,
    Path((id, side)): Path<(String, String)>,
) -> Response {
    let result = async {
        let s = caller.logged_in(&p).await?;
        p.staff_photo(&s, &id, &side).await
    }
    .await;
    match result {
        Ok((content_type, bytes)) => {
            let mut r = bytes.into_response();
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                r.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            let h = r.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            // An uploaded file is never a page: a download if opened, nothing it can run if
            // rendered (an <img> still shows it).
            let ext = if content_type == "image/png" { "png" } else { "jpg" };
            let side = if side == "back" { "back" } else { "front" };
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}-{side}.{ext}\"")) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
            h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            r
        }
        Err(e) => Reply { lang, result: Err(e), cookie: None }.into_response(),
    }
}

/// `POST /api/staff/applications/{id}/approve`: issue the certificate.
pub async fn approve(S(p): S<State>, Language(lang): Language, caller: Caller, Path(id): Path<String>) -> Reply {
    Reply::of(lang, async {
        let s = caller.guarded(&p).await?;
        let a = p.approve_application(&s, &id).await?;
        Ok(ok(lang, &Msg::Approved, json!({"application": p.application_view(&a, lang).await?})))
    })
    .await
}

#[derive(Deserialize)]
pub struct Reject {
    reason: String,
}

/// `POST /api/staff/applications/{id}/reject {reason}`.
pub async fn reject(
    S(p): S<State>,
    Language(lang): Language,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<Reject>,
) -> Reply {
    Reply::of(lang, async {
        let s = caller.guarded(&p).await?;
        let reason = p.reject_application(&s, &id, &req.reason).await?;
        Ok(ok(lang, &Msg::Rejected { reason }, json!({"stage": Stage::Rejected})))
    })
    .await
}

#[derive(Deserialize)]
pub struct Revoke {
    /// RFC 5280 reason: keyCompromise, affiliationChanged, superseded, cessationOfOperation,
    /// privilegeWithdrawn or unspecified.
    reason: String,
}

/// `POST /api/staff/certificates/{fingerprint}/revoke {reason}`: the certificate no longer logs
/// in, and the next CRL lists it.
pub async fn revoke(
    S(p): S<State>,
    Language(lang): Language,
    caller: Caller,
    Path(fingerprint): Path<String>,
    Body(req): Body<Revoke>,
) -> Reply {
    Reply::of(lang, async {
        let s = caller.guarded(&p).await?;
        let reason = p.revoke_certificate(&s, &fingerprint, &req.reason).await?;
        Ok(ok(lang, &Msg::Revoked { reason: reason.into() }, json!({"fingerprint": fingerprint})))
    })
    .await
}
