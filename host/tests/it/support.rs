//! Shared test fixtures: runtimes with test-friendly switches, a recording HTTP receiver,
//! and builders for requests and deliveries.

#![allow(dead_code)] // Each test module uses its own subset.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchyard::runtime::{
    Clock, Delivery, FetchPolicy, Grants, Notification, Request, Runtime, RuntimeConfig, Transport,
};

/// A runtime config for tests: loopback allowed (receivers live on 127.0.0.1), compiled
/// components cached across test runs, short timeouts.
pub fn config() -> RuntimeConfig {
    RuntimeConfig {
        call_timeout: Duration::from_secs(10),
        max_concurrent_calls: 64,
        fetch: FetchPolicy {
            allow_loopback: true,
            response_timeout: Duration::from_secs(5),
            ..FetchPolicy::default()
        },
        cache_dir: Some(std::env::temp_dir().join("switchyard-test-wasmtime-cache")),
        ..RuntimeConfig::default()
    }
}

pub fn runtime() -> Runtime {
    Runtime::new(config()).expect("runtime starts")
}

/// A runtime whose `now` is frozen at `unix_secs`.
pub fn runtime_at(unix_secs: u64) -> Runtime {
    Runtime::new(RuntimeConfig {
        clock: Clock::Fixed(UNIX_EPOCH + Duration::from_secs(unix_secs)),
        ..config()
    })
    .expect("runtime starts")
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The bytes of a test plugin from `tests/plugins/NAME`, compiled by host/build.rs.
pub fn test_plugin(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("SWITCHYARD_TEST_PLUGINS")).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn grants(
    config: serde_json::Value,
    secrets: &[(&str, &str)],
    allowed_hosts: &[&str],
) -> Arc<Grants> {
    Arc::new(Grants {
        config,
        secrets: secrets
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
        allowed_hosts: allowed_hosts.iter().map(|h| h.to_string()).collect(),
    })
}

/// `POST /hooks/test` over HTTP with these headers and body.
pub fn http_request(headers: &[(&str, &str)], body: &[u8]) -> Request {
    Request {
        transport: Transport::Http,
        method: "POST".into(),
        path: "/hooks/test".into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        query: String::new(),
        body: body.to_vec(),
    }
}

/// Attempt 1 of notification `ntf_test_1` from source `api` to channel `test`.
pub fn delivery(kind: &str, payload: serde_json::Value) -> Delivery {
    Delivery {
        notification: Notification {
            id: "ntf_test_1".into(),
            kind: kind.into(),
            source: "api".into(),
            attributes: vec![("severity".into(), "critical".into())],
            payload: payload.to_string(),
            created_at_ms: 1_700_000_000_000,
        },
        attempt: 1,
        channel: "test".into(),
    }
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// What a [`Receiver`] answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: b"ok".to_vec(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self
    }

    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

type Responder = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// A local HTTP server that records every request and answers as told.
pub struct Receiver {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl Receiver {
    /// Answers every request with 200 `ok`.
    pub async fn start() -> Receiver {
        Self::start_with(|_| Reply::status(200)).await
    }

    pub async fn start_with(
        reply: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let endpoint = Recorder {
            log: log.clone(),
            reply: Arc::new(reply),
        };
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
        Receiver { url, log }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }
}

struct Recorder {
    log: Arc<Mutex<Vec<Recorded>>>,
    reply: Arc<Responder>,
}

impl poem::Endpoint for Recorder {
    type Output = poem::Response;

    async fn call(&self, mut req: poem::Request) -> poem::Result<poem::Response> {
        let body = req.take_body().into_vec().await?;
        let recorded = Recorded {
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            query: req.uri().query().unwrap_or_default().to_string(),
            headers: req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_ascii_lowercase(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
        };
        let reply = (self.reply)(&recorded);
        self.log.lock().unwrap().push(recorded);
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        let mut response = poem::Response::builder()
            .status(poem::http::StatusCode::from_u16(reply.status).expect("a valid status"));
        for (name, value) in &reply.headers {
            response = response.header(name.as_str(), value.as_str());
        }
        Ok(response.body(reply.body))
    }
}

/// Collects formatted log output in memory, for tests that check what was logged.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
