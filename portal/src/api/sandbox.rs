//! Test mode only (`Config::sandbox`): the simulated payment provider and a view of the SMS /
//! email outbox, so flows can run end to end without a phone, a mailbox or money. A portal
//! without the sandbox does not have these routes at all.

use axum::extract::{Path, Query, State as S};
use serde::Deserialize;
use serde_json::json;

use super::reply::Reply;
use crate::app::{Kind, Refusal, State};
use crate::payment;
use crate::web::lang::Language;

/// `POST /api/sandbox/pay/{payment_id}`: the user pays at the simulated provider, which
/// delivers its signed notification to the portal. Answers that notification and its
/// signature too, so a test can deliver it again (providers do).
pub async fn pay(S(p): S<State>, Language(lang): Language, Path(id): Path<String>) -> Reply {
    Reply::of(lang, async {
        let pay =
            p.store.payment(&id).await?.ok_or_else(|| Refusal::new(Kind::NotFound, "no_payment", "no such payment"))?;
        let (body, signature) = payment::simulate_success(&p.config.payment_secret, &pay.id, pay.amount_fen);
        let mut answer = super::enroll::notified(p.payment_notified(&body, &signature).await?);
        // The exact bytes signed: a replay must send them unchanged.
        answer["notification"] = json!(String::from_utf8_lossy(&body));
        answer["signature"] = json!(signature);
        Ok(answer)
    })
    .await
}

#[derive(Deserialize)]
pub struct OutboxQuery {
    to: String,
}

/// `GET /api/sandbox/outbox?to=RECIPIENT`: SMS and email sent to a number or address, newest
/// first.
pub async fn outbox(S(p): S<State>, Language(lang): Language, Query(q): Query<OutboxQuery>) -> Reply {
    Reply::of(lang, async {
        let messages = p.store.outbox_for(q.to.trim()).await?;
        Ok(json!({"ok": true, "code": "outbox", "message": "", "messages": messages}))
    })
    .await
}
