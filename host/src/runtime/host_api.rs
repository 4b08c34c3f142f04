//! The `host` interface as plugins see it: log, config, secret, now, fetch.

use super::State;
use super::bindings::types::{FetchError, HttpRequest, HttpResponse, Level};
use super::bindings::{host, types, v0_1};

impl types::Host for State {}

impl host::Host for State {
    fn log(&mut self, level: Level, message: String) {
        let plugin = self.plugin.as_str();
        let message = super::scrub(message, self.grants.secrets.values().map(String::as_str));
        match level {
            Level::Trace => tracing::trace!(target: "plugin", plugin, "{message}"),
            Level::Debug => tracing::debug!(target: "plugin", plugin, "{message}"),
            Level::Info => tracing::info!(target: "plugin", plugin, "{message}"),
            Level::Warn => tracing::warn!(target: "plugin", plugin, "{message}"),
            Level::Error => tracing::error!(target: "plugin", plugin, "{message}"),
        }
    }

    fn config(&mut self) -> String {
        match &self.grants.config {
            serde_json::Value::Null => "{}".to_string(),
            config => config.to_string(),
        }
    }

    fn secret(&mut self, name: String) -> Option<String> {
        self.grants.secrets.get(&name).cloned()
    }

    fn now(&mut self) -> u64 {
        self.runtime.inner.config.clock.now_ms()
    }

    async fn fetch(&mut self, request: HttpRequest) -> Result<HttpResponse, FetchError> {
        // Scheme, host and port only: the rest of a URL can be a credential.
        let url = crate::bus::redacted(&request.url);
        let result = self
            .runtime
            .inner
            .outbound
            .fetch(&self.grants.allowed_hosts, request)
            .await;
        match &result {
            Ok(response) => {
                tracing::debug!(plugin = %self.plugin, %url, status = response.status, "fetch")
            }
            Err(FetchError::Denied(why)) => {
                tracing::warn!(plugin = %self.plugin, %url, "fetch denied: {why}")
            }
            Err(error) => tracing::debug!(plugin = %self.plugin, %url, ?error, "fetch failed"),
        }
        result
    }
}

/// Contract 0.1.0's `host` is the same five functions: answer with the current ones.
impl v0_1::host::Host for State {
    fn log(&mut self, level: Level, message: String) {
        host::Host::log(self, level, message)
    }

    fn config(&mut self) -> String {
        host::Host::config(self)
    }

    fn secret(&mut self, name: String) -> Option<String> {
        host::Host::secret(self, name)
    }

    fn now(&mut self) -> u64 {
        host::Host::now(self)
    }

    async fn fetch(&mut self, request: HttpRequest) -> Result<HttpResponse, FetchError> {
        host::Host::fetch(self, request).await
    }
}
