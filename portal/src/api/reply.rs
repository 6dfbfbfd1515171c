//! How the API answers: JSON bodies in, JSON answers out in the caller's language, and a
//! refusal turned into its status and body in one place.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::app::Refusal;
use crate::messages::{Lang, Msg};
use crate::web::refusal::status;

/// A refusal's JSON body in `lang`: `ok: false`, its code and message, its extra fields,
/// and each refused form field with its message.
fn refusal_body(r: &Refusal, lang: Lang) -> Value {
    let mut v = json!({
        "ok": false,
        "code": r.code,
        "message": r.msg.as_ref().map(|m| m.text(lang)).unwrap_or_else(|| r.message.clone()),
    });
    merge(&mut v, &r.extra);
    if !r.fields.is_empty() {
        let fields: Vec<Value> = r
            .fields
            .iter()
            .map(|p| {
                let message = crate::messages::field_problem(p.field, p.error, lang);
                json!({"field": p.field, "error": p.error, "message": message})
            })
            .collect();
        v["fields"] = json!(fields);
    }
    v
}

fn merge(into: &mut Value, extra: &Value) {
    if let (Some(a), Some(b)) = (into.as_object_mut(), extra.as_object()) {
        for (k, v) in b {
            a.insert(k.clone(), v.clone());
        }
    }
}

/// A JSON request body; a body that is not the expected JSON gets a JSON refusal too.
pub struct Body<T>(pub T);

impl<T, St> axum::extract::FromRequest<St> for Body<T>
where
    axum::Json<T>: axum::extract::FromRequest<St, Rejection = axum::extract::rejection::JsonRejection>,
    St: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &St) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rej) => {
                let body = json!({"ok": false, "code": "bad_request", "message": rej.body_text()});
                Err((rej.status(), Json(body)).into_response())
            }
        }
    }
}

/// A JSON answer in the caller's language, with any cookie to set.
pub struct Reply {
    pub lang: Lang,
    pub result: Result<Value, Refusal>,
    pub cookie: Option<String>,
}

impl Reply {
    /// The answer of `body` in `lang`, without a cookie: what most endpoints give.
    pub async fn of(lang: Lang, body: impl std::future::Future<Output = Result<Value, Refusal>>) -> Reply {
        Reply { lang, result: body.await, cookie: None }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let (status, body) = match self.result {
            Ok(v) => (StatusCode::OK, v),
            Err(r) => (status(r.kind), refusal_body(&r, self.lang)),
        };
        let retry_after = body["retry_after"].as_i64().filter(|_| status == StatusCode::TOO_MANY_REQUESTS);
        let mut resp = (status, Json(body)).into_response();
        if let Some(secs) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            resp.headers_mut().insert(header::RETRY_AFTER, secs);
        }
        if let Some(c) = self.cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(header::SET_COOKIE, c);
        }
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

/// A success body: `ok`, the message's code and text, extra fields.
pub fn ok(lang: Lang, msg: &Msg, extra: Value) -> Value {
    let mut v = json!({ "ok": true, "code": msg.code(), "message": msg.text(lang) });
    merge(&mut v, &extra);
    v
}
