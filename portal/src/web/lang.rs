//! The caller's language, as an extractor: what every answer and page is written in.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use super::cookie::cookie;
use crate::messages::Lang;

/// The cookie the pages' language switch sets: `zh-CN` or `en`.
pub const LANG_COOKIE: &str = "ukey_lang";

/// The caller's language: the pages' language switch (a cookie) if it was used, else
/// Accept-Language, else Chinese.
pub struct Language(pub Lang);

impl<St: Send + Sync> FromRequestParts<St> for Language {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        Ok(Language(lang(&parts.headers)))
    }
}

/// The language of a request with these headers.
fn lang(headers: &HeaderMap) -> Lang {
    match cookie(headers, LANG_COOKIE).as_deref() {
        Some("en") => Lang::En,
        Some("zh-CN") => Lang::Zh,
        _ => Lang::from_accept_language(headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok())),
    }
}
