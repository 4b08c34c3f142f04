//! Outbound HTTP through the host: a small builder over the contract's `http-request`.

use crate::__bindings::adapter::switchyard::plugin::host;
use crate::{FetchError, HttpRequest, HttpResponse, find_field};

impl HttpRequest {
    /// A request with any method.
    pub fn new(method: &str, url: &str) -> Self {
        HttpRequest {
            method: method.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: &str) -> Self {
        Self::new("POST", url)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// Adds `Authorization: Basic <user:password>`.
    pub fn basic_auth(self, user: &str, password: &str) -> Self {
        use base64::Engine as _;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.header("authorization", format!("Basic {credentials}"))
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and `content-type: application/json`.
    pub fn json<T: serde::Serialize + ?Sized>(self, value: &T) -> Self {
        // Serializing plain data to a Vec cannot fail; a map with non-string keys can,
        // and then an empty object is the least surprising body.
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        self.header("content-type", "application/json").body(body)
    }

    /// Sets an `application/x-www-form-urlencoded` body.
    pub fn form<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self {
        let mut encoder = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            encoder.append_pair(k.as_ref(), v.as_ref());
        }
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(encoder.finish())
    }

    /// Asks for a shorter timeout than the host's.
    pub fn timeout_ms(mut self, timeout_ms: u32) -> Self {
        self.timeout_ms = Some(timeout_ms);
        self
    }

    /// Sends the request through the host. Redirects come back as they are.
    pub fn send(self) -> Result<HttpResponse, FetchError> {
        host::fetch(&self)
    }
}

impl HttpResponse {
    /// The first header with this name, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_field(&self.headers, name)
    }

    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as text, with invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// `Retry-After` in milliseconds from now: delta-seconds or an HTTP date.
    pub fn retry_after_ms(&self) -> Option<u64> {
        let value = self.header("retry-after")?.trim();
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(seconds.saturating_mul(1000));
        }
        let at = httpdate::parse_http_date(value).ok()?;
        let at_ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
        Some(at_ms.saturating_sub(crate::now_ms()))
    }
}

impl FetchError {
    /// A sentence for logs and attempt records. (The generated `Display` is `Debug`.)
    pub fn describe(&self) -> String {
        match self {
            FetchError::Denied(why) => format!("request denied: {why}"),
            FetchError::InvalidRequest(why) => format!("invalid request: {why}"),
            FetchError::Timeout => "timed out".into(),
            FetchError::Connection(why) => format!("connection failed: {why}"),
            FetchError::ResponseTooLarge => "response body over the host's size cap".into(),
        }
    }
}
