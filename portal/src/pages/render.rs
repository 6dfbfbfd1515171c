//! What every page is made with: the layout, the pages' security policy, error pages, and a
//! refusal of the rules rendered as a page.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::app::Refusal;
use crate::messages::text::Text;
use crate::messages::Lang;
use crate::web::refusal::status;

/// What every page's layout needs.
pub struct Layout {
    pub t: Text,
    /// This page's path, for the language switch to come back to.
    pub path: String,
}

/// The text key of an ID card side's name.
pub(crate) fn side_name(side: crate::enrollment::Side) -> &'static str {
    match side {
        crate::enrollment::Side::Front => "apply.photo.front",
        crate::enrollment::Side::Back => "apply.photo.back",
    }
}

/// Not logged in with a password: the login page; anything else refused: an error page.
pub(crate) fn refused(lang: Lang, e: Refusal) -> Response {
    if e.code == "login_required" {
        return Redirect::to("/").into_response();
    }
    refusal_page(lang, e)
}

/// A refusal of the rules, as a page: its status, its message in the caller's language.
pub(crate) fn refusal_page(lang: Lang, e: Refusal) -> Response {
    let t = Text { lang };
    let message = e.msg.as_ref().map(|m| m.text(t.lang)).unwrap_or_else(|| e.message.clone());
    let page = ErrorPage { layout: Layout { t, path: "/".into() }, message };
    let mut resp = html(page.render(), "");
    *resp.status_mut() = status(e.kind);
    resp
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    message: String,
}

/// An error as a page: status, and a message in the caller's language.
pub fn error_page(lang: Lang, status: StatusCode, message_key: &str) -> Response {
    let t = Text { lang };
    let page = ErrorPage { layout: Layout { t, path: "/".into() }, message: t.get(message_key).to_string() };
    let mut resp = html(page.render(), "");
    *resp.status_mut() = status;
    resp
}

/// JSON for a `<script type="application/json">` element: `<` escaped, so no value can end
/// the element.
pub(crate) fn script_json(v: &serde_json::Value) -> String {
    v.to_string().replace('<', "\\u003c")
}

/// A rendered page with the pages' security policy: scripts and styles from this site only,
/// and connections to this site and to the local agent.
pub(crate) fn html(rendered: askama::Result<String>, agent_url: &str) -> Response {
    let body = match rendered {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("rendering a page: {e}");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the portal's log").into_response();
        }
    };
    let mut resp = Html(body).into_response();
    let ws = agent_url.replacen("http", "ws", 1);
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' {agent_url} {ws}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
