//! The certificate application's pages (证书新办), in the manual's order: the form, the order
//! review, the ID photos and 确认申请 with a key pair generated on the USB-Key, the SMS code,
//! the payment, the success page, the printable receipt, the certificate written to the key;
//! and the list of the user's applications. Each page reads what `GET /api/applications/{id}`
//! reads (the same Portal calls); its script calls the JSON API and the agent.

use askama::Template;
use axum::extract::{Path, State as S};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::render::{html, refusal_page, refused, script_json, side_name, Layout};
use crate::app::State;
use crate::enrollment::{self, Form, Side, Stage};
use crate::messages::text::Text;
use crate::messages::{day, stage_name};
use crate::store::Application;
use crate::web::lang::Language;
use crate::web::session::Caller;

#[derive(Template)]
#[template(path = "apply_form.html")]
struct ApplyForm {
    layout: Layout,
    /// The application being edited; `None` for a new one.
    id: Option<String>,
    f: Form,
    inputs: Vec<Input>,
    config: String,
}

/// One field the applicant types.
struct Input {
    name: &'static str,
    label: &'static str,
    value: String,
    kind: &'static str,
    auto: &'static str,
}

fn inputs(f: &Form) -> Vec<Input> {
    let i = |name, label, value: &str, kind, auto| Input { name, label, value: value.to_string(), kind, auto };
    vec![
        i("handler_name", "apply.handler_name", &f.handler_name, "text", "name"),
        i("id_number", "apply.id_number", &f.id_number, "text", "off"),
        i("mobile", "apply.mobile", &f.mobile, "tel", "tel"),
        i("email", "apply.email", &f.email, "email", "email"),
    ]
}

/// Texts the application script shows.
const APPLY_SCRIPT_TEXTS: &[&str] = &[
    "apply.fix",
    "apply.photo.done",
    "apply.key.none",
    "apply.key.replace",
    "apply.sms.required",
    "apply.pay.choose",
    "agent.missing",
    "agent.no_key",
    "pin.required",
    "error.network",
];

/// The script's configuration: the agent's address, the texts, the issued certificate.
fn apply_config(t: Text, agent: &str, certificate: Option<&str>) -> String {
    script_json(&json!({"agent": agent, "texts": t.texts(APPLY_SCRIPT_TEXTS), "certificate": certificate}))
}

pub(super) async fn new(S(p): S<State>, Language(lang): Language, caller: Caller) -> Response {
    let t = Text { lang };
    let (_, e) = match async { p.me_and_enterprise(&caller.logged_in(&p).await?).await }.await {
        Ok(v) => v,
        Err(e) => return refused(lang, e),
    };
    let f = Form { organisation: e.name, credit_code: e.credit_code, ..Default::default() };
    let page = ApplyForm {
        layout: Layout { t, path: "/apply".into() },
        id: None,
        inputs: inputs(&f),
        f,
        config: apply_config(t, &p.config.agent_url, None),
    };
    html(page.render(), &p.config.agent_url)
}

pub(super) async fn edit(S(p): S<State>, Language(lang): Language, caller: Caller, Path(id): Path<String>) -> Response {
    let t = Text { lang };
    let (_, a) = match async { p.own_application(&caller.logged_in(&p).await?, &id).await }.await {
        Ok(v) => v,
        Err(e) => return refused(lang, e),
    };
    if a.stage != Stage::Review {
        return Redirect::to(&format!("/apply/{}", a.id)).into_response();
    }
    let page = ApplyForm {
        layout: Layout { t, path: format!("/apply/{}/edit", a.id) },
        inputs: inputs(&a.form),
        id: Some(a.id),
        f: a.form,
        config: apply_config(t, &p.config.agent_url, None),
    };
    html(page.render(), &p.config.agent_url)
}

#[derive(Template)]
#[template(path = "apply_show.html")]
struct ApplyShow {
    layout: Layout,
    id: String,
    number: String,
    /// The stage's name in `Stage::as_str` form: the template shows that stage's step.
    stage: &'static str,
    /// (side, text key of its name, uploaded) for the photo step.
    photos: Vec<(&'static str, &'static str, bool)>,
    stage_name: String,
    amount: String,
    /// The mobile the SMS code went to, masked.
    mobile: String,
    /// The sandbox stands in for the SMS gateway: the page links to its outbox.
    sandbox: bool,
    pay_method: String,
    paid_at: String,
    reject_reason: String,
    /// The issued certificate's last day, once issued.
    valid_until: String,
    f: Form,
    config: String,
}

pub(super) async fn show(S(p): S<State>, Language(lang): Language, caller: Caller, Path(id): Path<String>) -> Response {
    let t = Text { lang };
    let (_, a) = match async { p.own_application(&caller.logged_in(&p).await?, &id).await }.await {
        Ok(v) => v,
        Err(e) => return refused(lang, e),
    };
    let have = match p.store.photos(&a.id).await {
        Ok(h) => h,
        Err(e) => return refusal_page(lang, e.into()),
    };
    let cert = match &a.fingerprint {
        Some(fp) => match p.store.certificate(fp).await {
            Ok(c) => c,
            Err(e) => return refusal_page(lang, e.into()),
        },
        None => None,
    };
    let photos = Side::ALL
        .iter()
        .map(|side| (side.as_str(), side_name(*side), have.iter().any(|ph| ph.side == side.as_str())))
        .collect();
    let method = a.pay_method.as_deref().and_then(crate::payment::Method::parse);
    let page = ApplyShow {
        layout: Layout { t, path: format!("/apply/{}", a.id) },
        stage: a.stage.as_str(),
        photos,
        stage_name: stage_name(a.stage.as_str(), t.lang).to_string(),
        amount: enrollment::yuan(a.amount_fen),
        mobile: enrollment::mask_mobile(&a.form.mobile),
        sandbox: p.config.sandbox,
        pay_method: method
            .map_or("", |m| match t.lang {
                crate::messages::Lang::Zh => m.name_zh(),
                crate::messages::Lang::En => m.name_en(),
            })
            .into(),
        paid_at: a.paid_at.map(day).unwrap_or_default(),
        reject_reason: a.reject_reason.clone().unwrap_or_default(),
        valid_until: cert.as_ref().map(|c| day(c.not_after)).unwrap_or_default(),
        config: apply_config(t, &p.config.agent_url, cert.as_ref().map(|c| c.der_b64.as_str())),
        f: a.form,
        id: a.id,
        number: a.number,
    };
    html(page.render(), &p.config.agent_url)
}

#[derive(Template)]
#[template(path = "receipt.html")]
struct ReceiptPage {
    layout: Layout,
    id: String,
    lines: Vec<(&'static str, String)>,
}

/// 《单位数字证书申请表》回执, once paid: a page made to be printed (print CSS: no header, no
/// buttons).
pub(super) async fn receipt(
    S(p): S<State>,
    Language(lang): Language,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    let t = Text { lang };
    let (_, a) = match async { p.own_application(&caller.logged_in(&p).await?, &id).await }.await {
        Ok(v) => v,
        Err(e) => return refused(lang, e),
    };
    // Not paid yet: no receipt, the application's page says where it stands.
    let Some(lines) = p.receipt_lines(&a) else { return Redirect::to(&format!("/apply/{}", a.id)).into_response() };
    let page = ReceiptPage { layout: Layout { t, path: format!("/apply/{}/receipt", a.id) }, id: a.id, lines };
    html(page.render(), &p.config.agent_url)
}

/// One row of the list of applications.
struct Listed {
    id: String,
    number: String,
    created: String,
    stage_name: &'static str,
}

#[derive(Template)]
#[template(path = "applications.html")]
struct ApplicationsPage {
    layout: Layout,
    rows: Vec<Listed>,
}

fn listed(a: &Application, t: Text) -> Listed {
    Listed {
        id: a.id.clone(),
        number: a.number.clone(),
        created: day(a.created_at),
        stage_name: stage_name(a.stage.as_str(), t.lang),
    }
}

/// The user's applications and where each stands (申请状态), newest first.
pub(super) async fn list(S(p): S<State>, Language(lang): Language, caller: Caller) -> Response {
    let t = Text { lang };
    let apps = match async { p.my_applications(&caller.logged_in(&p).await?).await }.await {
        Ok((_, apps)) => apps,
        Err(e) => return refused(lang, e),
    };
    let page = ApplicationsPage {
        layout: Layout { t, path: "/applications".into() },
        rows: apps.iter().map(|a| listed(a, t)).collect(),
    };
    html(page.render(), &p.config.agent_url)
}
