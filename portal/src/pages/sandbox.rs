//! Test mode only (`--sandbox`): the pages that stand in for what a real deployment has
//! outside the portal — the payment app (`/sandbox/pay/{payment}`) and the phone and mailbox
//! (`/sandbox/outbox?to=`). A portal without the sandbox does not route them.

use askama::Template;
use axum::extract::{Path, Query, State as S};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::render::{error_page, html, refusal_page, script_json, Layout};
use crate::app::State;
use crate::messages::text::Text;
use crate::payment::Method;
use crate::store::OutboxMessage;
use crate::web::lang::Language;

#[derive(Template)]
#[template(path = "sandbox_pay.html")]
struct PayPage {
    layout: Layout,
    payment: String,
    method: &'static str,
    amount: String,
    number: String,
    config: String,
}

/// The simulated provider's page: the amount, the method, one button that pays.
pub(super) async fn pay(S(p): S<State>, Language(lang): Language, Path(id): Path<String>) -> Response {
    let t = Text { lang };
    let found = match p.store.payment(&id).await {
        Ok(Some(pay)) => p.store.application(&pay.application_id).await.ok().flatten().map(|a| (pay, a)),
        _ => None,
    };
    let Some((pay, a)) = found else { return error_page(lang, StatusCode::NOT_FOUND, "error.not_found") };
    let method = match (Method::parse(&pay.method), t.lang) {
        (Some(m), crate::messages::Lang::Zh) => m.name_zh(),
        (Some(m), crate::messages::Lang::En) => m.name_en(),
        (None, _) => "",
    };
    let config = script_json(&json!({
        "payment": pay.id,
        "back": format!("/apply/{}", a.id),
        "texts": t.texts(&["sandbox.paid", "error.network"]),
    }));
    let page = PayPage {
        layout: Layout { t, path: format!("/sandbox/pay/{}", pay.id) },
        payment: pay.id,
        method,
        amount: crate::enrollment::yuan(pay.amount_fen),
        number: a.number,
        config,
    };
    html(page.render(), &p.config.agent_url)
}

#[derive(Deserialize)]
pub(super) struct To {
    #[serde(default)]
    to: String,
}

#[derive(Template)]
#[template(path = "sandbox_outbox.html")]
struct OutboxPage {
    layout: Layout,
    to: String,
    messages: Vec<(OutboxMessage, String)>,
}

/// What the portal sent to a mobile number or mailbox, newest first.
pub(super) async fn outbox(S(p): S<State>, Language(lang): Language, Query(q): Query<To>) -> Response {
    let t = Text { lang };
    let to = q.to.trim().to_string();
    let messages = if to.is_empty() {
        Vec::new()
    } else {
        match p.store.outbox_for(&to).await {
            Ok(m) => m,
            Err(e) => return refusal_page(lang, e.into()),
        }
    };
    let messages = messages
        .into_iter()
        .map(|m| {
            let at = host_driver::certinfo::format_time(m.created_at.max(0) as u64);
            (m, at)
        })
        .collect();
    let path = format!(
        "/sandbox/outbox?to={}",
        percent_encoding::utf8_percent_encode(&to, percent_encoding::NON_ALPHANUMERIC)
    );
    let page = OutboxPage { layout: Layout { t, path }, to, messages };
    html(page.render(), &p.config.agent_url)
}
