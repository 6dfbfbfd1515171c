//! A client of the portal's JSON API as a page in a browser calls it: a cookie jar, a language,
//! the session's CSRF token (sent with every change, renewed from every answer that carries
//! one), and headers sent with every call. The system flows (`conformance::system`) and the
//! portal's own tests both drive the portal through it.

use serde_json::{json, Value};

/// An answer: its status and JSON body (`null` when the body is not JSON).
pub type Answer = (u16, Value);

pub struct ApiClient {
    /// With the cookie jar: the session's connection.
    pub http: reqwest::Client,
    /// Without cookies: calls that are not the page's (a payment provider's callback).
    pub plain: reqwest::Client,
    /// The portal's origin, `http://HOST:PORT`.
    pub base: String,
    /// Accept-Language.
    pub lang: String,
    pub csrf: String,
    /// Sent with every GET and POST (e.g. X-Forwarded-For).
    pub headers: Vec<(String, String)>,
}

async fn answer(r: reqwest::Response) -> reqwest::Result<Answer> {
    let status = r.status().as_u16();
    let bytes = r.bytes().await?;
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

impl ApiClient {
    /// A new session at `base` over `http` (which should keep cookies): its CSRF token is the
    /// one `GET /api/session` gives (empty if none).
    pub async fn open(http: reqwest::Client, base: &str, lang: &str) -> reqwest::Result<ApiClient> {
        let mut c = ApiClient {
            http,
            plain: reqwest::Client::new(),
            base: base.into(),
            lang: lang.into(),
            csrf: String::new(),
            headers: Vec::new(),
        };
        let (_, v) = c.get("/api/session").await?;
        c.csrf = v["csrf"].as_str().unwrap_or_default().into();
        Ok(c)
    }

    fn with_headers(&self, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req = req.header("Accept-Language", &self.lang);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req
    }

    pub async fn get(&self, path: &str) -> reqwest::Result<Answer> {
        answer(self.with_headers(self.http.get(format!("{}{path}", self.base))).send().await?).await
    }

    /// POST JSON with the CSRF token; a new token in the answer replaces it.
    pub async fn post(&mut self, path: &str, body: Value) -> reqwest::Result<Answer> {
        let (status, v) = answer(self.post_response(path, body).await?).await?;
        if let Some(c) = v["csrf"].as_str() {
            self.csrf = c.into();
        }
        Ok((status, v))
    }

    /// The whole response to a POST (headers too); the CSRF token is not renewed from it.
    pub async fn post_response(&self, path: &str, body: Value) -> reqwest::Result<reqwest::Response> {
        let req = self.http.post(format!("{}{path}", self.base)).header("X-CSRF-Token", &self.csrf).json(&body);
        self.with_headers(req).send().await
    }

    /// PUT raw bytes (an upload) with its Content-Type.
    pub async fn put_bytes(&self, path: &str, content_type: &str, bytes: Vec<u8>) -> reqwest::Result<Answer> {
        let req = self
            .http
            .put(format!("{}{path}", self.base))
            .header("X-CSRF-Token", &self.csrf)
            .header("Content-Type", content_type)
            .body(bytes);
        answer(self.with_headers(req).send().await?).await
    }

    /// POST raw bytes with `headers` only, no cookie (a payment provider's callback).
    pub async fn post_raw(&self, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> reqwest::Result<Answer> {
        let mut req = self.plain.post(format!("{}{path}", self.base)).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        answer(req.send().await?).await
    }

    /// `POST /api/challenge`: a key-login challenge for this session.
    pub async fn challenge(&mut self) -> reqwest::Result<Answer> {
        self.post("/api/challenge", json!({})).await
    }
}
