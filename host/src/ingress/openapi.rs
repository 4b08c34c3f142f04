//! The OpenAPI contract. poem-openapi writes the spec from the handlers' types; this module
//! finishes it into the document the hub serves at `/openapi.json` and
//! `/api/v1/openapi.json`, shows in `/docs`, and `docs/openapi.json` commits. Finishing adds
//! what poem-openapi's model cannot say:
//!
//! - OpenAPI 3.1 (poem-openapi writes 3.0): `nullable` becomes a `null` type, and a
//!   security requirement can name the token scope each operation needs;
//! - each operation's error answers, exactly those it can give ([`ERRORS`]), each a problem
//!   body;
//! - `additionalProperties: false` on every request object, all of which refuse unknown
//!   fields;
//! - the limits on attribute names, which JSON Schema states with `propertyNames`;
//! - an example on every body, and the methods of a path that two API types share.
//!
//! `tests/blackbox/contract.rs` checks the result against a running hub with schemathesis,
//! an OpenAPI validator and a generated client, and keeps `docs/openapi.json` equal to it.

use poem::http::{Method, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use serde_json::{Map, Value, json};

/// Each operation's error statuses. Every 4xx and 5xx answer an operation can give is here,
/// and nothing else: the spec's other error answers are dropped.
const ERRORS: &[(&str, &[u16])] = &[
    (
        "sendNotification",
        &[400, 401, 403, 409, 413, 415, 422, 503],
    ),
    (
        "sendNotificationBatch",
        &[400, 401, 403, 409, 413, 415, 422, 503],
    ),
    ("getNotification", &[401, 403, 404, 503]),
    ("listNotifications", &[400, 401, 403, 503]),
    ("listDeadLetters", &[400, 401, 403, 503]),
    ("replayDeadLetter", &[401, 403, 404, 503]),
    ("getRoutes", &[401, 403]),
    ("validateRoutes", &[400, 401, 403, 413, 415, 422]),
    ("reloadRoutes", &[401, 403, 422]),
    ("listPlugins", &[401, 403]),
    ("createToken", &[400, 401, 403, 404, 413, 415, 422, 503]),
    ("listTokens", &[401, 403]),
    ("revokeToken", &[401, 403, 404, 503]),
    ("receiveWebhook", &[400, 401, 404, 409, 413, 415, 422, 503]),
    ("createTenant", &[400, 401, 403, 409, 413, 415, 422, 503]),
    ("listTenants", &[400, 401, 403, 503]),
    ("getTenant", &[401, 403, 404, 503]),
    ("renameTenant", &[400, 401, 403, 404, 413, 415, 422, 503]),
    ("deleteTenant", &[401, 403, 404, 503]),
    (
        "sendTenantNotification",
        &[400, 401, 403, 404, 409, 413, 415, 422, 503],
    ),
    (
        "sendTenantNotificationBatch",
        &[400, 401, 403, 404, 409, 413, 415, 422, 503],
    ),
    (
        "createEndpoint",
        &[400, 401, 403, 404, 409, 413, 415, 422, 503],
    ),
    ("listEndpoints", &[400, 401, 403, 404, 503]),
    ("getEndpoint", &[401, 403, 404, 503]),
    ("updateEndpoint", &[400, 401, 403, 404, 413, 415, 422, 503]),
    ("deleteEndpoint", &[401, 403, 404, 503]),
    (
        "rotateEndpointSecret",
        &[400, 401, 403, 404, 413, 415, 422, 503],
    ),
    ("recoverEndpoint", &[400, 401, 403, 404, 413, 415, 422, 503]),
    ("testEndpoint", &[401, 403, 404, 409, 503]),
    ("listEndpointDeliveries", &[400, 401, 403, 404, 503]),
    ("getEndpointDelivery", &[401, 403, 404, 503]),
    ("replayEndpointDelivery", &[401, 403, 404, 409, 503]),
    ("createPortalLink", &[401, 403, 404, 503]),
    ("getCsrfToken", &[]),
    ("signIn", &[400, 401, 403, 413, 415, 422, 429, 503]),
    ("getSession", &[401]),
    ("signOut", &[401, 403]),
    ("uploadPlugin", &[400, 401, 403, 413, 415, 422, 503]),
    (
        "activatePluginVersion",
        &[400, 401, 403, 404, 413, 415, 422, 503],
    ),
    (
        "setPluginEnabled",
        &[400, 401, 403, 404, 413, 415, 422, 503],
    ),
];

/// What each error status means, whichever operation gives it.
fn error_description(status: u16) -> &'static str {
    match status {
        400 => {
            "The request is malformed: the body is not JSON, or a parameter or header is out of its range."
        }
        401 => {
            "Not authenticated: the API token, the session or the webhook's signature is missing or not valid."
        }
        403 => {
            "Not allowed: the API token lacks the scope this needs (`insufficient-scope`) or is confined to another tenant (`wrong-tenant`), or a session's request lacks its CSRF token (`csrf`)."
        }
        404 => "No such resource.",
        409 => {
            "An idempotency key was already used for a different request or notification (`idempotency-key-reused`); nothing was accepted."
        }
        413 => {
            "The body is larger than this hub accepts (`api.max_body_bytes`, or `plugins.max_upload_bytes` for plugins)."
        }
        415 => "The body's content type is not one this operation takes.",
        422 => {
            "The request is well-formed but its content is not valid; `field` names the first bad field, `problems` lists several."
        }
        429 => "Too many failed sign-ins: the account is locked for a while.",
        503 => {
            "The hub cannot take the request right now (its store or stream is down, or it is at a limit); nothing was done. Retry after `Retry-After` seconds."
        }
        _ => "An error.",
    }
}

/// The scope an operation's security scheme stands for, and the one scheme that replaces
/// them: a token is one bearer token, whatever it may do.
const SCOPED_SCHEMES: &[(&str, &str)] = &[
    ("SendToken", "send"),
    ("ReadToken", "read"),
    ("AdminToken", "admin"),
    ("TenantSendToken", "send"),
    ("TenantReadToken", "read"),
    ("TenantAdminToken", "admin"),
];
const TOKEN_SCHEME: &str = "apiToken";

/// The finished spec, as served.
#[derive(Clone)]
pub struct Contract {
    json: bytes::Bytes,
    swagger_html: String,
    /// Each spec path with the methods it declares, for a 405's `Allow` header.
    allowed: std::sync::Arc<Vec<(String, String)>>,
}

impl Contract {
    /// Finishes `generated` (poem-openapi's spec) and the Swagger UI page that shows it.
    pub fn new(generated: &str, swagger_html: &str) -> Contract {
        let spec: Merged = serde_json::from_str(generated).expect("poem-openapi writes JSON");
        let spec = finish(spec.0);
        let json = serde_json::to_string_pretty(&spec).expect("a spec serialises");
        // The page embeds the spec it was made from verbatim; show the finished one.
        let swagger_html = swagger_html.replace(generated, &json);
        let allowed = spec["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(path, item)| {
                let methods: Vec<String> = item
                    .as_object()
                    .into_iter()
                    .flat_map(|i| i.keys())
                    .filter(|name| name.parse::<Method>().is_ok())
                    .map(|name| name.to_ascii_uppercase())
                    .collect();
                (path.clone(), methods.join(", "))
            })
            .collect();
        Contract {
            json: json.into(),
            swagger_html,
            allowed: std::sync::Arc::new(allowed),
        }
    }

    /// The spec, as `application/json`.
    pub fn spec_endpoint(&self) -> impl Endpoint + 'static {
        let json = self.json.clone();
        poem::endpoint::make_sync(move |_| {
            Response::builder()
                .content_type("application/json")
                .body(json.clone())
        })
    }

    /// The Swagger UI page.
    pub fn docs_endpoint(&self) -> impl Endpoint + 'static {
        let html = self.swagger_html.clone();
        poem::endpoint::make_sync(move |_| poem::web::Html(html.clone()).into_response())
    }

    /// The methods the spec declares for a request path, for a 405's `Allow` header.
    pub fn allowed_methods(&self, path: &str) -> Option<&str> {
        self.allowed
            .iter()
            .find(|(template, _)| path_matches(template, path))
            .map(|(_, methods)| methods.as_str())
    }
}

/// Whether `path` matches a spec path such as `/api/v1/notifications/{id}`.
fn path_matches(template: &str, path: &str) -> bool {
    let mut given = path.split('/');
    for part in template.split('/') {
        match given.next() {
            Some(segment) if part.starts_with('{') => {
                if segment.is_empty() {
                    return false;
                }
            }
            Some(segment) if segment == part => {}
            _ => return false,
        }
    }
    given.next().is_none()
}

/// Answers a method the spec does not declare for a path with 405, a problem body, and the
/// `Allow` header RFC 9110 asks for, listing the methods the spec declares.
pub async fn method_not_allowed<E: Endpoint>(
    endpoint: std::sync::Arc<E>,
    request: Request,
    contract: std::sync::Arc<Contract>,
) -> poem::Result<Response> {
    // A `Uri` clone shares its bytes: nothing is copied on the way of a request that passes.
    let uri = request.uri().clone();
    match endpoint.call(request).await {
        Ok(output) => Ok(output.into_response()),
        Err(error) if error.status() == StatusCode::METHOD_NOT_ALLOWED => {
            let mut response = super::problem::problem_response(error).await;
            if let Some(value) = contract
                .allowed_methods(uri.path())
                .and_then(|allowed| allowed.parse().ok())
            {
                response.headers_mut().insert(header::ALLOW, value);
            }
            Ok(response)
        }
        Err(error) => Err(error),
    }
}

/// JSON whose objects may repeat a key, read with the repeats merged. poem-openapi writes a
/// path once per API type that serves it (`GET /api/v1/plugins` is the REST API's, `POST`
/// the plugin admin's): read as plain JSON, the last would hide the others.
struct Merged(Value);

impl<'de> serde::Deserialize<'de> for Merged {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MergedVisitor).map(Merged)
    }
}

struct MergedVisitor;

impl<'de> serde::de::Visitor<'de> for MergedVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Merged(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some((key, Merged(value))) = map.next_entry::<String, Merged>()? {
            match (object.get_mut(&key), value) {
                (Some(Value::Object(earlier)), Value::Object(later)) => earlier.extend(later),
                (_, value) => {
                    object.insert(key, value);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// poem-openapi's spec, finished into the contract (see the module's comment).
pub fn finish(mut spec: Value) -> Value {
    spec["openapi"] = json!("3.1.0");
    to_openapi_31(&mut spec);
    if let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            for operation in item
                .as_object_mut()
                .into_iter()
                .flat_map(|i| i.values_mut())
            {
                finish_operation(operation);
            }
        }
    }
    if let Some(components) = spec.get_mut("components").and_then(Value::as_object_mut) {
        finish_security_schemes(components);
    }
    close_request_objects(&mut spec);
    state_attribute_limits(&mut spec);
    media_examples(&mut spec);
    spec
}

/// Examples of the bodies whose schemas cannot carry one (a string, any JSON, a form).
fn body_example(operation_id: &str, content_type: &str) -> Option<Value> {
    Some(match (operation_id, content_type) {
        ("validateRoutes", _) => json!(
            "channels:\n  ops-log: { plugin: log }\nroutes:\n  - name: everything\n    \
             match: { kind: \"*\" }\n    to: [ops-log]\n"
        ),
        ("receiveWebhook", json) if json.starts_with("application/json") => json!({
            "type": "invoice.paid",
            "timestamp": "2026-11-24T09:30:00Z",
            "data": {"invoice": 42}
        }),
        ("receiveWebhook", _) => json!({"payload": "{\"action\": \"opened\"}"}),
        ("uploadPlugin", _) => json!({"name": "pagerduty", "file": "(the component's bytes)"}),
        _ => return None,
    })
}

/// Every request body and every successful answer with a body gets an example of its own,
/// taken from its schema's (or its items' schema's) example, else from [`body_example`].
fn media_examples(spec: &mut Value) {
    let schemas = spec["components"]["schemas"].clone();
    let named = |schema: &Value| {
        let name = schema.get("$ref")?.as_str()?;
        schemas
            .get(name.strip_prefix("#/components/schemas/")?)?
            .get("example")
            .cloned()
    };
    let example_of = |schema: &Value| -> Option<Value> {
        let own = |schema: &Value| schema.get("example").cloned().or_else(|| named(schema));
        own(schema).or_else(|| Some(json!([own(schema.get("items")?)?])))
    };
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        for operation in item
            .as_object_mut()
            .into_iter()
            .flat_map(|i| i.values_mut())
        {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let requests = operation
                .pointer_mut("/requestBody/content")
                .and_then(Value::as_object_mut)
                .into_iter()
                .flat_map(|content| content.iter_mut());
            for (content_type, media) in requests {
                if media.get("example").is_none()
                    && let Some(example) =
                        example_of(&media["schema"]).or_else(|| body_example(&id, content_type))
                {
                    media["example"] = example;
                }
            }
            let answers = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
                .into_iter()
                .flat_map(|responses| responses.iter_mut())
                .filter(|(status, _)| status.starts_with('2'))
                .filter_map(|(_, answer)| answer.get_mut("content")?.as_object_mut())
                .flat_map(|content| content.values_mut());
            for media in answers {
                if media.get("example").is_none()
                    && let Some(example) = example_of(&media["schema"])
                {
                    media["example"] = example;
                }
            }
        }
    }
}

/// 3.0's `nullable: true` becomes 3.1's `null` type; a nullable reference becomes a choice
/// of the reference or `null`. `allOf` around a lone reference, 3.0's way to describe a
/// reference, becomes the reference itself with the description beside it, as 3.1 allows
/// (and as generators expect: openapi-python-client takes no `allOf` of an enum).
fn to_openapi_31(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if let Some(reference) = described_reference(object) {
                object.remove("allOf");
                object.insert("$ref".into(), reference);
            }
            if object.remove("nullable") == Some(Value::Bool(true)) {
                match object.get("type").cloned() {
                    Some(Value::String(ty)) => {
                        object.insert("type".into(), json!([ty, "null"]));
                    }
                    _ => {
                        let description = object.remove("description");
                        let inner = Value::Object(std::mem::take(object));
                        object.insert("anyOf".into(), json!([inner, {"type": "null"}]));
                        if let Some(description) = description {
                            object.insert("description".into(), description);
                        }
                    }
                }
            }
            object.values_mut().for_each(to_openapi_31);
        }
        Value::Array(items) => items.iter_mut().for_each(to_openapi_31),
        _ => {}
    }
}

/// The reference in `{"allOf": [{"$ref": ...}, {"description": ...}]}`, poem-openapi's way
/// to describe a referenced schema, when that is all the `allOf` holds.
fn described_reference(object: &Map<String, Value>) -> Option<Value> {
    let Some(Value::Array(all)) = object.get("allOf") else {
        return None;
    };
    let mut reference = None;
    for part in all {
        let part = part.as_object()?;
        match part.get("$ref") {
            Some(found) if part.len() == 1 && reference.is_none() => {
                reference = Some(found.clone())
            }
            None if part.keys().all(|k| k == "description") => {}
            _ => return None,
        }
    }
    reference
}

/// Sets an operation's error answers from [`ERRORS`], and its security requirement to the
/// API token with the scope it needs.
fn finish_operation(operation: &mut Value) {
    let id = operation["operationId"].as_str().unwrap_or_default();
    let errors = ERRORS
        .iter()
        .find(|(name, _)| *name == id)
        .map(|(_, errors)| *errors)
        .unwrap_or_else(|| panic!("operation `{id}` has no entry in openapi::ERRORS"));
    let responses = operation["responses"]
        .as_object_mut()
        .expect("every operation has responses");
    responses.retain(|status, _| !(status.starts_with('4') || status.starts_with('5')));
    for status in errors {
        responses.insert(status.to_string(), problem_response(*status));
    }

    let Some(requirements) = operation.get_mut("security").and_then(Value::as_array_mut) else {
        return;
    };
    let mut scope = None;
    for requirement in requirements.iter_mut() {
        let Some(schemes) = requirement.as_object_mut() else {
            continue;
        };
        for (scheme, needs) in SCOPED_SCHEMES {
            if schemes.remove(*scheme).is_some() {
                schemes.insert(TOKEN_SCHEME.into(), json!([needs]));
                scope = Some(*needs);
            }
        }
    }
    if let Some(scope) = scope {
        let also = match scope {
            "read" => " (or `admin`, which includes it)",
            _ => "",
        };
        let note = format!("Needs an API token with the `{scope}` scope{also}.");
        let description = match operation["description"].as_str() {
            Some(text) => format!("{text}\n\n{note}"),
            None => note,
        };
        operation["description"] = json!(description);
    }
}

/// An error answer: a problem body; a 503 also says when to retry.
fn problem_response(status: u16) -> Value {
    let mut response = json!({
        "description": error_description(status),
        "content": {
            "application/problem+json": {
                "schema": {"$ref": "#/components/schemas/Problem"}
            }
        }
    });
    if status == 503 {
        response["headers"] = json!({
            "Retry-After": {
                "description": "Seconds to wait before retrying.",
                "required": true,
                "schema": {"type": "integer", "minimum": 0}
            }
        });
    }
    response
}

/// The three scoped bearer schemes become one, `apiToken`, whose requirements name scopes.
fn finish_security_schemes(components: &mut Map<String, Value>) {
    let Some(schemes) = components
        .get_mut("securitySchemes")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for (scheme, _) in SCOPED_SCHEMES {
        schemes.remove(*scheme);
    }
    schemes.insert(
        TOKEN_SCHEME.into(),
        json!({
            "type": "http",
            "scheme": "bearer",
            "description": "An API token: `Authorization: Bearer sy_...`. The first start of a hub prints one that holds every scope; `switchyard token create NAME --scope SCOPE` or `POST /api/v1/tokens` makes more. Each operation's requirement names the scope it needs: `send` (create notifications), `read` (notifications, deliveries, dead letters) or `admin` (routes, plugins, tokens, replays; includes `read`). A token without it gets 403 `insufficient-scope`."
        }),
    );
}

/// Every object a request body takes refuses unknown fields (the adapter and
/// `deny_unknown_fields` do): say so with `additionalProperties: false`.
fn close_request_objects(spec: &mut Value) {
    let mut names = Vec::new();
    if let Some(paths) = spec["paths"].as_object() {
        for item in paths.values() {
            for operation in item.as_object().into_iter().flat_map(|i| i.values()) {
                for media in operation
                    .pointer("/requestBody/content")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flat_map(|c| c.values())
                {
                    collect_refs(&media["schema"], &mut names);
                }
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = names.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = spec.pointer_mut(&format!("/components/schemas/{name}")) {
            collect_refs(schema, &mut names);
            close(schema);
        }
    }
    // Inline request objects (a multipart form) are closed where they stand.
    if let Some(paths) = spec["paths"].as_object_mut() {
        for item in paths.values_mut() {
            for operation in item
                .as_object_mut()
                .into_iter()
                .flat_map(|i| i.values_mut())
            {
                if let Some(content) = operation
                    .pointer_mut("/requestBody/content")
                    .and_then(Value::as_object_mut)
                {
                    content.values_mut().for_each(|m| close(&mut m["schema"]));
                }
            }
        }
    }
}

fn close(schema: &mut Value) {
    if let Some(object) = schema.as_object_mut()
        && object.contains_key("properties")
        && !object.contains_key("additionalProperties")
    {
        object.insert("additionalProperties".into(), json!(false));
    }
}

/// The names of the component schemas `schema` refers to, at any depth.
fn collect_refs(schema: &Value, names: &mut Vec<String>) {
    match schema {
        Value::Object(object) => {
            if let Some(name) = object
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                names.push(name.to_string());
            }
            object.values().for_each(|v| collect_refs(v, names));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, names)),
        _ => {}
    }
}

/// A notification's attributes as the `rest-json` adapter checks them
/// (`switchyard_sdk::drafts`): at most 64, names 1 to 256 characters, values strings of at
/// most 256 characters, numbers or booleans.
fn state_attribute_limits(spec: &mut Value) {
    let Some(attributes) =
        spec.pointer_mut("/components/schemas/NotificationIn/properties/attributes")
    else {
        return;
    };
    attributes["propertyNames"] = json!({"minLength": 1, "maxLength": 256});
    attributes["additionalProperties"] = json!({
        "anyOf": [
            {"type": "string", "maxLength": 256},
            {"type": "number"},
            {"type": "boolean"}
        ]
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_templates() {
        assert!(path_matches(
            "/api/v1/notifications/{id}",
            "/api/v1/notifications/abc"
        ));
        assert!(!path_matches(
            "/api/v1/notifications/{id}",
            "/api/v1/notifications/"
        ));
        assert!(!path_matches(
            "/api/v1/notifications/{id}",
            "/api/v1/notifications/a/b"
        ));
        assert!(path_matches(
            "/api/v1/notifications",
            "/api/v1/notifications"
        ));
        assert!(!path_matches(
            "/api/v1/notifications",
            "/api/v1/notifications/batch"
        ));
    }

    #[test]
    fn a_path_written_twice_keeps_every_method() {
        let Merged(spec) = serde_json::from_str(
            r#"{"paths": {"/p": {"get": {"a": 1}}, "/p": {"post": {"b": 2}}}, "n": [1, null]}"#,
        )
        .unwrap();
        assert_eq!(
            spec,
            json!({"paths": {"/p": {"get": {"a": 1}, "post": {"b": 2}}}, "n": [1, null]})
        );
    }

    #[test]
    fn nullable_becomes_a_null_type() {
        let mut schema = json!({
            "a": {"type": "string", "nullable": true},
            "b": {"$ref": "#/components/schemas/X", "nullable": true, "description": "d"},
        });
        to_openapi_31(&mut schema);
        assert_eq!(schema["a"], json!({"type": ["string", "null"]}));
        let mut described = json!({
            "allOf": [{"$ref": "#/components/schemas/X"}, {"description": "d"}],
            "description": "d"
        });
        to_openapi_31(&mut described);
        assert_eq!(
            described,
            json!({"$ref": "#/components/schemas/X", "description": "d"})
        );
        assert_eq!(
            schema["b"],
            json!({"anyOf": [{"$ref": "#/components/schemas/X"}, {"type": "null"}], "description": "d"})
        );
    }
}
