//! Inbound webhooks: `POST /hooks/{source}`, one per source of the routes file.
//!
//! The request goes whole (method, path, every header, query and the raw body) to the
//! source's adapter plugin with that source's config, secrets and allowed hosts. The
//! adapter's signature check is the authentication, so hooks take no API token. Its
//! drafts are then accepted like the REST API's; a sender's redelivery carries the same
//! idempotency key (such as the `webhook-id`), so it gets the first notification's id
//! back and creates nothing.

// Errors are problem bodies returned by value, as in the REST API.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use bytes::Bytes;
use poem::http::StatusCode;
use poem::{Request, RequestBody};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::{Example, Type};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, Object, OpenApi, Tags,
};

use super::adapt;
use super::problem::{Problem, ProblemResponse};
use super::rest::AcceptedOut;
use crate::pipeline::Hub;
use crate::routing::SourceSpec;
use crate::runtime::{self, Grants, Transport};
use crate::store::Accepted;

type HookResult<T> = Result<T, ProblemResponse>;

#[derive(Tags)]
enum Tag {
    /// Signed webhooks from other systems, one URL per source of the routes file.
    Hooks,
}

/// The inbound webhook endpoints.
pub struct HooksApi {
    hub: Arc<Hub>,
}

impl HooksApi {
    pub fn new(hub: Arc<Hub>) -> HooksApi {
        HooksApi { hub }
    }
}

/// A webhook taken in: what its adapter made of it is durable and will be delivered.
#[derive(Object)]
#[oai(example)]
struct HookAcceptedOut {
    /// One entry per notification the adapter made, in order: usually one, none for a
    /// message that carries nothing to route (such as GitHub's `ping`). A redelivered
    /// webhook gets the first delivery's ids, marked `duplicate`.
    notifications: Vec<AcceptedOut>,
}

impl Example for HookAcceptedOut {
    fn example() -> Self {
        HookAcceptedOut {
            notifications: vec![AcceptedOut::example()],
        }
    }
}

#[derive(ApiResponse)]
enum HookResponse {
    /// Accepted (or recognised as a redelivery): nothing more to send.
    #[oai(status = 202)]
    Accepted(Json<HookAcceptedOut>),
}

#[OpenApi]
impl HooksApi {
    /// Receive a webhook for a source of the routes file.
    ///
    /// The source's adapter plugin verifies the request (for `webhook-standard`, the
    /// Standard Webhooks headers `webhook-id`, `webhook-timestamp` and `webhook-signature`;
    /// for `webhook-github`, `X-Hub-Signature-256`) and turns it into notifications. No API
    /// token: the signature is the authentication. A bad or missing signature, or a
    /// timestamp outside the tolerance, is 401; an unknown source is 404.
    #[oai(
        path = "/hooks/:source",
        method = "post",
        tag = "Tag::Hooks",
        operation_id = "receiveWebhook"
    )]
    async fn receive(
        &self,
        /// The source's name in the routes file.
        source: Path<String>,
        request: &Request,
        body: WebhookBody,
    ) -> HookResult<HookResponse> {
        let table = self.hub.routes.current();
        let spec = table.source(&source.0).ok_or_else(unknown_source)?;
        let drafts = adapt(
            &self.hub,
            &spec.adapter,
            &source_grants(spec),
            adapter_request(request, body.0),
        )
        .await?;
        // No token: the source's signature is the sender, and the keys are the source's.
        let items = match self
            .hub
            .acceptor
            .accept(&source.0, None, None, drafts, None)
            .await
        {
            Ok(Accepted::Stored(items)) => items,
            Ok(Accepted::NotificationKeyReused { index }) => {
                let field = format!("notifications[{index}].idempotency_key");
                return Err(super::rest::notification_key_reused(field).into());
            }
            Ok(Accepted::Replayed(_) | Accepted::KeyReused) => {
                unreachable!("a webhook is accepted without a request key")
            }
            Err(error) => return Err(Problem::from(error).into()),
        };
        Ok(HookResponse::Accepted(Json(HookAcceptedOut {
            notifications: items.into_iter().map(Into::into).collect(),
        })))
    }
}

/// `source`'s config, secrets and allowed hosts, as its adapter gets them.
fn source_grants(spec: &SourceSpec) -> Arc<Grants> {
    Arc::new(Grants {
        config: spec.config.clone(),
        secrets: spec.secrets.clone().into_iter().collect(),
        allowed_hosts: spec.allowed_hosts.clone(),
    })
}

/// The request as the adapter sees it: every header, repeated names kept, each name
/// lowercase (the `http` crate keeps them so), so adapters need not fold case.
fn adapter_request(request: &Request, body: Bytes) -> runtime::Request {
    runtime::Request {
        transport: Transport::Http,
        method: request.method().as_str().to_string(),
        path: request.uri().path().to_string(),
        headers: request
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        query: request.uri().query().unwrap_or_default().to_string(),
        body: body.to_vec(),
    }
}

/// The 404 for a source the routes file does not define. It names neither the sources
/// there are nor the one asked for: `/hooks/*` needs no token, so anyone could otherwise
/// list the hub's integrations, and the operator who made a typo can read the routes file.
fn unknown_source() -> ProblemResponse {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no webhook source by that name is configured on this hub",
    )
    .code("unknown-source")
    .into()
}

/// A webhook's body, handed over as raw bytes whatever its content type: signatures are
/// computed over the exact bytes, and the adapter decides what it accepts.
struct WebhookBody(Bytes);

impl<'a> ApiExtractor<'a> for WebhookBody {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        serde_json::Value::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        // The two content types the built-in adapters read; any other goes to the adapter
        // too, which says whether it can use it.
        let media = |content_type| MetaMediaType {
            content_type,
            schema: serde_json::Value::schema_ref(),
        };
        Some(MetaRequest {
            description: Some("The webhook, exactly as the sender signed it."),
            content: vec![
                media("application/json"),
                media("application/x-www-form-urlencoded"),
            ],
            required: false,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let bytes = <Bytes as poem::FromRequest>::from_request(request, body).await?;
        Ok(WebhookBody(bytes))
    }
}

#[cfg(test)]
mod tests {
    use poem::http::Method;

    use super::*;

    #[test]
    fn the_adapter_gets_the_whole_request_with_lowercase_header_names() {
        let request = Request::builder()
            .method(Method::POST)
            .uri_str("/hooks/github?attempt=2")
            .header("X-GitHub-Event", "push")
            .header("Accept", "a")
            .header("accept", "b")
            .finish();
        let adapted = adapter_request(&request, Bytes::from_static(b"{\"ok\":true}"));
        assert_eq!(adapted.method, "POST");
        assert_eq!(adapted.path, "/hooks/github");
        assert_eq!(adapted.query, "attempt=2");
        assert_eq!(adapted.body, b"{\"ok\":true}");
        let headers: Vec<(&str, &str)> = adapted
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        assert_eq!(
            headers,
            [("x-github-event", "push"), ("accept", "a"), ("accept", "b")]
        );
    }

    #[test]
    fn an_unknown_source_is_not_told_which_sources_there_are() {
        let ProblemResponse::NotFound(problem) = unknown_source() else {
            panic!("an unknown source is 404");
        };
        assert_eq!(
            problem.0.detail,
            "no webhook source by that name is configured on this hub"
        );
    }
}
