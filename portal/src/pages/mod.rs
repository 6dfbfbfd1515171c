//! The portal's web pages: server-rendered HTML (askama templates, checked when the crate
//! builds) and small ES modules for what must run in the browser, which call the same JSON
//! API as every other client ([`crate::api`]) and the local agent. No build step, no npm.
//!
//! - `GET /`: login, with the password tab and the CA (USB-Key) tab.
//! - `GET /home`: the system page after a login (which account, the certificate reminder).
//! - `GET /accounts`: enterprise account management (password login): accounts with their
//!   bound / unbound state, the bind dialog; `GET /accounts/unbind`: the unbind page.
//! - `GET /apply`: the certificate application form (证书新办); `GET /apply/{id}`: the
//!   application at its stage (order review, photos and 确认申请 with the key, SMS code,
//!   payment, success, the certificate to write to the key); `GET /apply/{id}/edit`: back to
//!   the form; `GET /apply/{id}/receipt`: the printable receipt; `GET /applications`: the
//!   user's applications.
//! - `GET /staff`: the review queue; `GET /staff/applications/{id}`: photos, the key's
//!   attestation, approve / reject / revoke.
//! - Sandbox only: `GET /sandbox/pay/{payment}` (the payment app's stand-in) and
//!   `GET /sandbox/outbox?to=` (the SMS and email the portal sent).
//! - `GET /help/agent`: how to install and start the certificate application environment.
//! - `GET /lang/{zh-CN|en}?back=PATH`: the language switch (a cookie), back to the page.
//! - `GET /static/{file}`: the scripts and the style sheet, built into the binary.
//!
//! Anything else outside `/api` is an error page, never raw JSON.

mod apply;
mod render;
mod sandbox;
mod staff;

use askama::Template;
use axum::extract::{Path, Query, State as S};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::app::State;
use crate::messages::text::Text;
use crate::messages::Lang;
use crate::web::lang::{Language, LANG_COOKIE};
use crate::web::session::Caller;
use render::{error_page, html, refusal_page, refused, script_json, Layout};

/// The pages; `sandbox`: also the stand-ins for the payment app and the outbox.
pub fn router(sandbox: bool) -> Router<State> {
    let r = Router::new()
        .route("/", get(login))
        .route("/home", get(home))
        .route("/accounts", get(accounts))
        .route("/accounts/unbind", get(unbind))
        .route("/apply", get(apply::new))
        .route("/apply/{id}", get(apply::show))
        .route("/apply/{id}/edit", get(apply::edit))
        .route("/apply/{id}/receipt", get(apply::receipt))
        .route("/applications", get(apply::list))
        .route("/staff", get(staff::queue))
        .route("/staff/applications/{id}", get(staff::detail))
        .route("/help/agent", get(agent_help))
        .route("/lang/{code}", get(switch_lang))
        .route("/static/{file}", get(asset));
    if !sandbox {
        return r;
    }
    r.route("/sandbox/pay/{payment}", get(sandbox::pay)).route("/sandbox/outbox", get(sandbox::outbox))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    /// What the login script needs, as JSON: the agent's address and the texts it shows.
    config: String,
}

/// Texts the login script needs (agent states, PIN prompts).
const LOGIN_SCRIPT_TEXTS: &[&str] = &[
    "agent.connecting",
    "agent.missing",
    "agent.download",
    "agent.no_key",
    "agent.key_error",
    "agent.no_cert",
    "login.choose_key",
    "pin.required",
    "form.username_required",
    "form.password_required",
    "error.network",
];

async fn login(S(p): S<State>, Language(lang): Language) -> Response {
    let t = Text { lang };
    let config = serde_json::json!({"agent": p.config.agent_url, "texts": t.texts(LOGIN_SCRIPT_TEXTS)});
    let page = LoginPage { layout: Layout { t, path: "/".into() }, config: script_json(&config) };
    html(page.render(), &p.config.agent_url)
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    user: Option<String>,
    account: Option<String>,
}

/// The system page: who is logged in; the login's message (an expiry reminder) is shown by
/// its script from what the login page left in sessionStorage.
async fn home(S(p): S<State>, Language(lang): Language, caller: Caller) -> Response {
    let t = Text { lang };
    let who = async {
        match caller.session(&p).await? {
            Some(s) => p.whoami(&s).await,
            None => Ok(None),
        }
    };
    match who.await {
        Ok(Some((user, account))) => {
            let page = HomePage {
                layout: Layout { t, path: "/home".into() },
                user: user.map(|u| u.display_name),
                account: account.map(|a| a.name),
            };
            html(page.render(), &p.config.agent_url)
        }
        Ok(None) => Redirect::to("/").into_response(),
        Err(e) => refusal_page(lang, e),
    }
}

/// One account row of the accounts pages.
struct Row {
    id: String,
    name: String,
    bound: bool,
}

#[derive(Template)]
#[template(path = "accounts.html")]
struct AccountsPage {
    layout: Layout,
    user: String,
    rows: Vec<Row>,
    caption_key: &'static str,
    any_bound: bool,
    config: String,
}

#[derive(Template)]
#[template(path = "unbind.html")]
struct UnbindPage {
    layout: Layout,
    user: String,
    rows: Vec<Row>,
    caption_key: &'static str,
    config: String,
}

/// Texts the accounts scripts show.
const ACCOUNTS_SCRIPT_TEXTS: &[&str] = &[
    "agent.missing",
    "agent.no_key",
    "agent.no_cert",
    "accounts.bound",
    "accounts.unbound",
    "accounts.tick_one",
    "pin.required",
    "error.network",
];

async fn accounts(S(p): S<State>, Language(lang): Language, caller: Caller) -> Response {
    account_page(p, lang, caller, false).await
}

async fn unbind(S(p): S<State>, Language(lang): Language, caller: Caller) -> Response {
    account_page(p, lang, caller, true).await
}

/// The accounts page or the unbind page: the same call as `GET /api/accounts`.
async fn account_page(p: State, lang: Lang, caller: Caller, unbinding: bool) -> Response {
    let t = Text { lang };
    let (user, accounts) = match async { p.my_accounts(&caller.logged_in(&p).await?).await }.await {
        Ok(v) => v,
        Err(e) => return refused(lang, e),
    };
    let rows: Vec<Row> = accounts
        .into_iter()
        .map(|a| Row { bound: !a.bound_to.is_empty(), id: a.account.id, name: a.account.name })
        .collect();
    let config =
        script_json(&serde_json::json!({"agent": p.config.agent_url, "texts": t.texts(ACCOUNTS_SCRIPT_TEXTS)}));
    if unbinding {
        let rows = rows.into_iter().filter(|r| r.bound).collect();
        let page = UnbindPage {
            layout: Layout { t, path: "/accounts/unbind".into() },
            user: user.display_name,
            rows,
            caption_key: "unbind.caption",
            config,
        };
        return html(page.render(), &p.config.agent_url);
    }
    let any_bound = rows.iter().any(|r| r.bound);
    let page = AccountsPage {
        layout: Layout { t, path: "/accounts".into() },
        user: user.display_name,
        rows,
        caption_key: "accounts.caption",
        any_bound,
        config,
    };
    html(page.render(), &p.config.agent_url)
}

#[derive(Template)]
#[template(path = "agent_help.html")]
struct AgentHelpPage {
    layout: Layout,
    /// HOST:PORT the agent listens on.
    agent_listen: String,
}

async fn agent_help(S(p): S<State>, Language(lang): Language) -> Response {
    let t = Text { lang };
    let agent_listen = p.config.agent_url.trim_start_matches("http://").trim_start_matches("https://").to_string();
    let page = AgentHelpPage { layout: Layout { t, path: "/help/agent".into() }, agent_listen };
    html(page.render(), &p.config.agent_url)
}

/// Unknown paths: a page for people, JSON for the API's clients.
pub async fn not_found(Language(lang): Language, uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        let body = serde_json::json!({"ok": false, "code": "not_found", "message": "no such endpoint"});
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    error_page(lang, StatusCode::NOT_FOUND, "error.not_found")
}

#[derive(Deserialize)]
struct Back {
    back: Option<String>,
}

/// Set the language cookie and go back to the page the switch was on (a local path only: the
/// switch must not become an open redirect).
async fn switch_lang(Path(code): Path<String>, Query(q): Query<Back>) -> Response {
    let code = match code.as_str() {
        "en" => "en",
        "zh-CN" => "zh-CN",
        _ => return (StatusCode::NOT_FOUND, "unknown language").into_response(),
    };
    let back = q.back.filter(|b| local_path(b)).unwrap_or_else(|| "/".to_string());
    let mut resp = Redirect::to(&back).into_response();
    let cookie = format!("{LANG_COOKIE}={code}; Path=/; Max-Age=31536000; SameSite=Lax");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// A path on this site: `/x`, not `//host` or `/\host` (which browsers read as another host).
fn local_path(p: &str) -> bool {
    p.starts_with('/') && !p.starts_with("//") && !p.starts_with("/\\") && !p.chars().any(|c| c.is_control())
}

/// The scripts and the style sheet, compiled in.
async fn asset(Path(file): Path<String>, Language(lang): Language) -> Response {
    let (body, kind): (&'static str, &'static str) = match file.as_str() {
        // The agent's page-side library, the very file the agent serves at /ukey.js.
        "ukey.js" => (host_driver::agent::CLIENT_JS, "text/javascript; charset=utf-8"),
        "portal.js" => (include_str!("../../static/portal.js"), "text/javascript; charset=utf-8"),
        "login.js" => (include_str!("../../static/login.js"), "text/javascript; charset=utf-8"),
        "accounts.js" => (include_str!("../../static/accounts.js"), "text/javascript; charset=utf-8"),
        "home.js" => (include_str!("../../static/home.js"), "text/javascript; charset=utf-8"),
        "apply.js" => (include_str!("../../static/apply.js"), "text/javascript; charset=utf-8"),
        "staff.js" => (include_str!("../../static/staff.js"), "text/javascript; charset=utf-8"),
        "sandbox.js" => (include_str!("../../static/sandbox.js"), "text/javascript; charset=utf-8"),
        "ukey.css" => (include_str!("../../static/ukey.css"), "text/css; charset=utf-8"),
        _ => return error_page(lang, StatusCode::NOT_FOUND, "error.not_found"),
    };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    // Built into the binary: a new binary may change them, so browsers ask again each time.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_language_switch_goes_back_only_to_this_site() {
        for ok in ["/", "/help/agent", "/x?y=1"] {
            assert!(super::local_path(ok), "{ok}");
        }
        for bad in ["//evil.example", "/\\evil.example", "https://evil.example", "evil", "/\nx", ""] {
            assert!(!super::local_path(bad), "{bad}");
        }
    }
}
