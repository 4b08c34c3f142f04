//! Outbound HTTP for plugins: one pooled client shared by every plugin, reaching only the
//! hosts granted to the calling plugin, and never an address inside the machine's or the
//! cloud's trust boundary.
//!
//! The address rules are enforced on the *resolved* IP, inside the client's DNS resolver,
//! so a granted name that resolves to 127.0.0.1 or 169.254.169.254 (DNS rebinding) is
//! refused just like the literal address. Redirects are never followed: a plugin sees the
//! 3xx and decides, so a granted host cannot bounce a request somewhere else.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::bindings::types::{FetchError, HttpRequest, HttpResponse};

/// Limits on outbound HTTP.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// How long a TCP and TLS connection may take.
    pub connect_timeout: Duration,
    /// How long a whole exchange may take, body included; a plugin can only ask for less.
    pub response_timeout: Duration,
    /// The largest response body handed to a plugin.
    pub max_response_bytes: usize,
    /// The largest request body a plugin may send.
    pub max_request_bytes: usize,
    /// Allows loopback addresses (127.0.0.0/8, ::1). Off by default; tests turn it on to
    /// reach a receiver on this machine. Private, link-local and metadata addresses stay
    /// refused either way.
    pub allow_loopback: bool,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(15),
            max_response_bytes: 1024 * 1024,
            max_request_bytes: 4 * 1024 * 1024,
            allow_loopback: false,
        }
    }
}

/// A host name the hub answers itself, in-process: a plugin granted that name reaches the
/// hub's own service (such as the WebSocket inbox) through `fetch`, and nothing goes out on
/// the network. The names end in [`LOCAL_SUFFIX`], which no DNS resolves.
pub trait LocalHost: Send + Sync {
    /// The reserved name, such as `websocket.switchyard.local`.
    fn name(&self) -> &str;
    /// Answers one request.
    fn handle(&self, request: HttpRequest) -> futures::future::BoxFuture<'static, HttpResponse>;
}

/// How the names of [`LocalHost`]s end.
pub const LOCAL_SUFFIX: &str = ".switchyard.local";

/// The client every plugin's `fetch` goes through.
pub(crate) struct Outbound {
    client: reqwest::Client,
    policy: FetchPolicy,
    local: Vec<Arc<dyn LocalHost>>,
}

impl Outbound {
    pub(crate) fn new(
        policy: FetchPolicy,
        local: Vec<Arc<dyn LocalHost>>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would connect on our behalf and bypass the address rules.
            .no_proxy()
            .connect_timeout(policy.connect_timeout)
            // Enough idle connections per host for every call a channel may have in
            // flight: with fewer, each burst closes the surplus and the next one opens it
            // again, a TCP handshake per delivery.
            .pool_max_idle_per_host(1024)
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                allow_loopback: policy.allow_loopback,
            }))
            .build()?;
        Ok(Outbound {
            client,
            policy,
            local,
        })
    }

    /// Makes one request for `plugin`, which was granted `allowed_hosts`.
    pub(crate) async fn fetch(
        &self,
        allowed_hosts: &[String],
        request: HttpRequest,
    ) -> Result<HttpResponse, FetchError> {
        // A URL can carry a credential (a Slack webhook's path, a token in the query), and
        // these errors reach the attempt log and the server log: they name the URL by
        // scheme, host and port only, and a URL that does not parse not at all.
        let url = url::Url::parse(&request.url)
            .map_err(|e| FetchError::InvalidRequest(format!("bad URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::InvalidRequest(format!(
                "only http and https URLs are allowed, not {}:",
                url.scheme()
            )));
        }
        let host = match url.host() {
            Some(url::Host::Domain(domain)) => domain.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(FetchError::InvalidRequest("the URL has no host".into())),
        };
        if !is_granted(&host, allowed_hosts) {
            return Err(FetchError::Denied(format!(
                "host {host} is not in this plugin's allowed_hosts"
            )));
        }
        if let Some(local) = self.local.iter().find(|local| local.name() == host) {
            return Ok(local.handle(request).await);
        }
        // Literal addresses never pass through the resolver, so check them here.
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>()
            && let Some(why) = forbidden(ip, self.policy.allow_loopback)
        {
            return Err(FetchError::Denied(format!("{ip} is {why}")));
        }
        if request.body.len() > self.policy.max_request_bytes {
            return Err(FetchError::InvalidRequest(format!(
                "the request body has {} bytes; at most {}",
                request.body.len(),
                self.policy.max_request_bytes
            )));
        }
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| FetchError::InvalidRequest(format!("bad method {:?}", request.method)))?;

        let mut headers = reqwest::header::HeaderMap::with_capacity(request.headers.len());
        for (name, value) in &request.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| FetchError::InvalidRequest(format!("bad header name {name:?}")))?;
            if matches!(
                name.as_str(),
                "host" | "connection" | "content-length" | "transfer-encoding" | "upgrade"
            ) {
                return Err(FetchError::InvalidRequest(format!(
                    "the {name} header is set by the host"
                )));
            }
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| FetchError::InvalidRequest(format!("bad value for header {name}")))?;
            headers.append(name, value);
        }

        let timeout = match request.timeout_ms {
            Some(ms) => self
                .policy
                .response_timeout
                .min(Duration::from_millis(ms.into())),
            None => self.policy.response_timeout,
        };
        let shown = crate::bus::redacted(url.as_str());
        let response = self
            .client
            .request(method, url)
            .headers(headers)
            .body(request.body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|error| classify(error, &shown))?;

        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let cap = self.policy.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > cap as u64)
        {
            return Err(FetchError::ResponseTooLarge);
        }
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|error| classify(error, &shown))?;
            if body.len() + chunk.len() > cap {
                return Err(FetchError::ResponseTooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// `allowed_hosts` entries are exact host names or IPs, or `*.example.com` for any
/// subdomain of example.com (not example.com itself).
fn is_granted(host: &str, allowed_hosts: &[String]) -> bool {
    allowed_hosts.iter().any(|allowed| {
        let allowed = allowed.trim().to_ascii_lowercase();
        match allowed.strip_prefix("*.") {
            Some(parent) => host
                .strip_suffix(parent)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => host == allowed.trim_matches(['[', ']']),
        }
    })
}

/// Maps a client error to the contract's error, naming a refused address as `denied`. The
/// message names the request by `shown` (see [`crate::bus::redacted`]), never by the URL
/// the client error carries.
fn classify(error: reqwest::Error, shown: &str) -> FetchError {
    let error = error.without_url();
    if error.is_timeout() {
        return FetchError::Timeout;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<ForbiddenAddress>() {
            return FetchError::Denied(refused.to_string());
        }
        source = e.source();
    }
    let mut message = format!("{shown}: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(e) = source {
        message.push_str(": ");
        message.push_str(&e.to_string());
        source = e.source();
    }
    FetchError::Connection(message)
}

/// Resolves names with the system resolver, then drops every address a plugin must not
/// reach; a name left with no address fails with [`ForbiddenAddress`].
struct GuardedResolver {
    allow_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match forbidden(addr.ip(), allow_loopback) {
                    Some(why) => {
                        refused.get_or_insert(why);
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                let why = refused.ok_or_else(|| format!("{host} has no address"))?;
                return Err(Box::new(ForbiddenAddress { host, why }) as _);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// A name that resolved only to addresses a plugin must not reach. It says what kind of
/// address, not which: the message reaches the attempt log, which a tenant reads, and the
/// addresses behind the operator's internal names are not the tenant's to map.
#[derive(Debug)]
struct ForbiddenAddress {
    host: String,
    why: &'static str,
}

impl std::fmt::Display for ForbiddenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} resolves to {}", self.host, self.why)
    }
}

impl std::error::Error for ForbiddenAddress {}

/// Why a plugin may not connect to `ip`, or `None` when it may.
pub(crate) fn forbidden(ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4, allow_loopback),
        IpAddr::V6(v6) => forbidden_v6(v6, allow_loopback),
    }
}

fn forbidden_v4(ip: Ipv4Addr, allow_loopback: bool) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        return (!allow_loopback).then_some("a loopback address");
    }
    if ip.is_link_local() {
        return Some("a link-local address (cloud metadata lives there)");
    }
    if ip.is_private() {
        return Some("a private address");
    }
    if a == 0 || ip.is_broadcast() {
        return Some("not a routable address");
    }
    if a == 100 && (64..128).contains(&b) {
        return Some("a shared (carrier-grade NAT) address");
    }
    if a == 192 && b == 0 && c == 0 {
        return Some("an IETF protocol address");
    }
    if a == 198 && (b == 18 || b == 19) {
        return Some("a benchmarking address");
    }
    if ip.is_multicast() || a >= 240 {
        return Some("a multicast or reserved address");
    }
    None
}

fn forbidden_v6(ip: Ipv6Addr, allow_loopback: bool) -> Option<&'static str> {
    if ip.is_loopback() {
        return (!allow_loopback).then_some("a loopback address");
    }
    if ip.is_unspecified() {
        return Some("not a routable address");
    }
    // Addresses that carry an IPv4 address inside are judged by that address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4, allow_loopback);
    }
    let segments = ip.segments();
    if segments[..6] == [0, 0, 0, 0, 0, 0] {
        // `::a.b.c.d`, deprecated since RFC 4291; some stacks still reach the IPv4 host
        // inside, and no public service is addressed this way.
        return Some("an IPv4-compatible address (deprecated)");
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64's well-known prefix: the translator connects to the IPv4 address inside.
        let [.., hi, lo] = segments;
        return forbidden_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)), false);
    }
    if segments[..3] == [0x64, 0xff9b, 1] {
        // RFC 8215's prefix for NAT64 inside one network: it reaches that network's own
        // IPv4 hosts.
        return Some("a local-use NAT64 address");
    }
    match segments[0] {
        s if s & 0xfe00 == 0xfc00 => Some("a unique-local (private) address"),
        s if s & 0xffc0 == 0xfe80 => Some("a link-local address"),
        s if s & 0xffc0 == 0xfec0 => Some("a site-local address"),
        s if s & 0xff00 == 0xff00 => Some("a multicast address"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(ip: &str, allow_loopback: bool) -> Option<&'static str> {
        forbidden(ip.parse().unwrap(), allow_loopback)
    }

    #[test]
    fn refuses_internal_addresses_by_ip() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:169.254.169.254",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:a9fe:a9fe",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::127.0.0.1",
            "64:ff9b::10.0.0.1",
        ] {
            assert!(why(ip, false).is_some(), "{ip} should be refused");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            assert_eq!(why(ip, false), None, "{ip} should be allowed");
        }
    }

    #[test]
    fn refuses_ipv4_compatible_and_nat64_forms() {
        // IPv4-compatible (`::/96`): refused whatever the address inside, even with the
        // loopback switch on, since no public service is addressed this way.
        for ip in [
            "::127.0.0.1",
            "::7f00:1",
            "::10.0.0.1",
            "::169.254.169.254",
            "::8.8.8.8",
        ] {
            assert!(why(ip, false).is_some(), "{ip} should be refused");
            assert!(
                why(ip, true).is_some(),
                "{ip} should be refused with loopback on"
            );
        }
        // Local-use NAT64 (`64:ff9b:1::/48`) reaches the local network's IPv4 hosts.
        for ip in [
            "64:ff9b:1::a00:1",
            "64:ff9b:1:ffff::1",
            "64:ff9b:1::808:808",
        ] {
            assert!(why(ip, false).is_some(), "{ip} should be refused");
        }
        // The well-known NAT64 prefix is judged by the IPv4 address inside; a loopback
        // one stays refused even when loopback is allowed, since it is not this machine.
        assert!(why("64:ff9b::7f00:1", true).is_some());
        assert_eq!(why("64:ff9b::808:808", false), None);
        // IPv4-mapped: judged by the address inside.
        assert_eq!(why("::ffff:8.8.8.8", false), None);
        assert_eq!(why("::ffff:127.0.0.1", true), None);
        // Neighbours of these prefixes are ordinary addresses.
        assert_eq!(why("64:ff9b:2::1", false), None);
        assert_eq!(why("1::127.0.0.1", false), None);
    }

    fn get(url: &str) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: Some(5_000),
        }
    }

    /// Every error `fetch` gives a plugin can end up in the attempt log and the server
    /// log, so none may repeat the URL's path, query or user info.
    #[tokio::test]
    async fn errors_name_the_url_by_scheme_host_and_port_only() {
        let policy = FetchPolicy {
            allow_loopback: true,
            ..FetchPolicy::default()
        };
        let outbound = Outbound::new(policy, Vec::new()).unwrap();
        let granted = ["127.0.0.1".to_string(), "localhost".to_string()];
        // Port 1 on loopback: nothing listens there, so the connection is refused.
        let refused = outbound
            .fetch(
                &granted,
                get("http://user:pw-CANARY@127.0.0.1:1/secret-path-CANARY?token=CANARY#CANARY"),
            )
            .await
            .unwrap_err();
        let FetchError::Connection(message) = &refused else {
            panic!("expected a connection error, got {refused:?}");
        };
        assert!(message.starts_with("http://127.0.0.1:1: "), "{message}");
        assert!(!message.contains("CANARY"), "{message}");

        let bad = outbound
            .fetch(&granted, get("http://127.0.0.1:99999/secret-path-CANARY"))
            .await
            .unwrap_err();
        assert!(!format!("{bad:?}").contains("CANARY"), "{bad:?}");

        let denied = outbound
            .fetch(
                &granted,
                get("http://example.com/secret-path-CANARY?k=CANARY"),
            )
            .await
            .unwrap_err();
        assert!(matches!(denied, FetchError::Denied(_)), "{denied:?}");
        assert!(!format!("{denied:?}").contains("CANARY"), "{denied:?}");

        let strict = Outbound::new(FetchPolicy::default(), Vec::new()).unwrap();
        for url in [
            "http://127.0.0.1:1/secret-path-CANARY",
            "http://localhost:1/secret-path-CANARY?k=CANARY",
        ] {
            let denied = strict.fetch(&granted, get(url)).await.unwrap_err();
            assert!(matches!(denied, FetchError::Denied(_)), "{url}: {denied:?}");
            assert!(!format!("{denied:?}").contains("CANARY"), "{denied:?}");
        }
    }

    #[test]
    fn the_loopback_switch_opens_loopback_only() {
        assert_eq!(why("127.0.0.1", true), None);
        assert_eq!(why("::1", true), None);
        assert!(why("169.254.169.254", true).is_some());
        assert!(why("10.0.0.1", true).is_some());
    }

    #[test]
    fn grants_match_exact_hosts_and_subdomain_wildcards() {
        let granted = [
            "ops.example.com".to_string(),
            "*.hooks.example.org".to_string(),
        ];
        assert!(is_granted("ops.example.com", &granted));
        assert!(is_granted("a.hooks.example.org", &granted));
        assert!(!is_granted("hooks.example.org", &granted));
        assert!(!is_granted("evilhooks.example.org", &granted));
        assert!(!is_granted("example.com", &granted));
        assert!(!is_granted("ops.example.com.evil.net", &granted));
    }
}
