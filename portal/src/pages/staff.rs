//! The staff's pages (等待工作人员审核): the review queue by stage, and one application with
//! its ID photos, the key's attestation facts and the decision (approve; reject with a reason;
//! revoke an issued certificate). The same Portal calls as `GET /api/staff/applications`.

use askama::Template;
use axum::extract::{Path, Query, State as S};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::render::{html, refusal_page, refused, script_json, side_name, Layout};
use crate::app::State;
use crate::enrollment::{self, Form, Side, Stage};
use crate::messages::text::Text;
use crate::messages::{day, stage_name};
use crate::web::lang::Language;
use crate::web::session::Caller;

/// The stages staff look at, in the queue's tabs.
const QUEUE_STAGES: [Stage; 3] = [Stage::UnderReview, Stage::Issued, Stage::Rejected];

#[derive(Deserialize)]
pub(super) struct QueueQuery {
    stage: Option<String>,
}

struct Queued {
    id: String,
    number: String,
    organisation: String,
    handler: String,
    paid: String,
}

#[derive(Template)]
#[template(path = "staff_queue.html")]
struct QueuePage {
    layout: Layout,
    user: String,
    /// (stage, its name, this tab)
    tabs: Vec<(&'static str, &'static str, bool)>,
    rows: Vec<Queued>,
}

pub(super) async fn queue(
    S(p): S<State>,
    Language(lang): Language,
    caller: Caller,
    Query(q): Query<QueueQuery>,
) -> Response {
    let t = Text { lang };
    let (user, stage, apps) = match async { p.queue_at(&caller.logged_in(&p).await?, q.stage.as_deref()).await }.await {
        Ok(v) => v,
        Err(e) => return refused(lang, e),
    };
    let tabs = QUEUE_STAGES.iter().map(|s| (s.as_str(), stage_name(s.as_str(), t.lang), *s == stage)).collect();
    let rows = apps
        .into_iter()
        .map(|a| Queued {
            paid: a.paid_at.map(day).unwrap_or_default(),
            organisation: a.form.organisation,
            handler: a.form.handler_name,
            number: a.number,
            id: a.id,
        })
        .collect();
    let path = format!("/staff?stage={}", stage.as_str());
    let page = QueuePage { layout: Layout { t, path }, user: user.display_name, tabs, rows };
    html(page.render(), &p.config.agent_url)
}

#[derive(Template)]
#[template(path = "staff_detail.html")]
struct DetailPage {
    layout: Layout,
    id: String,
    number: String,
    stage: &'static str,
    stage_name: &'static str,
    f: Form,
    amount: String,
    paid: String,
    /// (side, text key of its name) of the uploaded photos.
    photos: Vec<(&'static str, &'static str)>,
    /// What the key's attestation says: (text key, value).
    key_facts: Vec<(&'static str, String)>,
    reject_reason: String,
    /// The issued certificate: fingerprint, subject, validity, revocation.
    cert: Option<CertView>,
    reasons: Vec<&'static str>,
    config: String,
}

struct CertView {
    fingerprint: String,
    subject: String,
    valid: String,
    revoked: String,
}

pub(super) async fn detail(
    S(p): S<State>,
    Language(lang): Language,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let t = Text { lang };
    let (a, cert) = match async { p.staff_view(&caller.logged_in(&p).await?, &id).await }.await {
        Ok(v) => v,
        Err(e) => return refused(lang, e),
    };
    let have = match p.store.photos(&a.id).await {
        Ok(h) => h,
        Err(e) => return refusal_page(lang, e.into()),
    };
    let photos = Side::ALL
        .iter()
        .filter(|side| have.iter().any(|ph| ph.side == side.as_str()))
        .map(|side| (side.as_str(), side_name(*side)))
        .collect();
    let key_facts = match &a.key_origin {
        Some(k) => vec![
            ("staff.key.manufacturer", k.manufacturer.clone()),
            ("staff.key.serial", k.serial.map_or("-".into(), |s| s.to_string())),
            ("staff.key.firmware", k.firmware.clone().unwrap_or_else(|| "-".into())),
        ],
        None => Vec::new(),
    };
    let cert = cert.map(|c| CertView {
        valid: format!("{} – {}", day(c.not_before), day(c.not_after)),
        revoked: match (c.revoked_at, c.revoke_reason) {
            (Some(at), Some(why)) => format!("{} ({why})", day(at)),
            (Some(at), None) => day(at),
            _ => String::new(),
        },
        fingerprint: c.fingerprint,
        subject: c.subject,
    });
    let config = script_json(&json!({"texts": t.texts(&["staff.reason_required", "error.network"])}));
    let page = DetailPage {
        layout: Layout { t, path: format!("/staff/applications/{}", a.id) },
        stage: a.stage.as_str(),
        stage_name: stage_name(a.stage.as_str(), t.lang),
        amount: enrollment::yuan(a.amount_fen),
        paid: a.paid_at.map(day).unwrap_or_default(),
        reject_reason: a.reject_reason.unwrap_or_default(),
        photos,
        key_facts,
        cert,
        reasons: ca::crl::Reason::ALL.iter().map(|r| r.name()).collect(),
        config,
        f: a.form,
        id: a.id,
        number: a.number,
    };
    html(page.render(), &p.config.agent_url)
}
