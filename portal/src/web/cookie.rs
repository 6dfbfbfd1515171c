//! Cookies as the request sends them.

use axum::http::{header, HeaderMap};

/// The value of cookie `name` (at most 64 bytes), if the request has one.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name && !v.is_empty() && v.len() <= 64).then(|| v.to_string())
    })
}
