//! JSON request bodies. [`RawJson`] is documented with a schema but handed over as raw
//! bytes: the send endpoints pass the body untouched to the `rest-json` adapter plugin,
//! which is what validates it, exactly as other front doors pass theirs to their adapters.
//! [`StrictJson`] is parsed by the host and held to its schema's types.

use std::marker::PhantomData;

use bytes::Bytes;
use poem::http::StatusCode;
use poem::{IntoResponse as _, Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::problem::{Problem, ProblemResponse};

/// The raw body of a request whose documented schema is `T`.
pub struct RawJson<T> {
    pub bytes: Bytes,
    schema: PhantomData<fn() -> T>,
}

impl<T: Type> Payload for RawJson<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        matches!(content_type.parse::<mime::Mime>(), Ok(mime)
            if mime.type_() == "application" && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json")))
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type> ParsePayload for RawJson<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let bytes = <Bytes as poem::FromRequest>::from_request(request, body).await?;
        Ok(RawJson {
            bytes,
            schema: PhantomData,
        })
    }
}

impl<'a, T: Type> ApiExtractor<'a> for RawJson<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Self as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: <Self as Payload>::CONTENT_TYPE,
                schema: <Self as Payload>::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        // A body without a content type is taken as JSON; the adapter says if it is not.
        match request.content_type() {
            Some(content_type) if !Self::check_content_type(content_type) => {
                Err(poem_openapi::error::ContentTypeError::NotSupported {
                    content_type: content_type.to_string(),
                }
                .into())
            }
            _ => <Self as ParsePayload>::from_request(request, body).await,
        }
    }
}

/// A JSON request body held to its schema's types. poem-openapi's own `Json` takes a
/// number or a boolean where a string is documented (and would store `"false"` as a token's
/// name), and refuses `5.0` where JSON Schema's `integer` allows it. Here the body is checked
/// by serde against `T` first (a string must be a string; unknown fields are refused by
/// `T`'s `deny_unknown_fields`), then parsed by poem-openapi for `T`'s validators.
pub struct StrictJson<T>(pub T);

impl<T: Type> Payload for StrictJson<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        <RawJson<T> as Payload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + ParseFromJSON + DeserializeOwned> ParsePayload for StrictJson<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let bytes = <Bytes as poem::FromRequest>::from_request(request, body).await?;
        let refused = |status, code: &str, detail: String| {
            let problem = Problem::new(status, detail).code(code);
            poem::Error::from_response(ProblemResponse::from(problem).into_response())
        };
        let mut value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            refused(
                StatusCode::BAD_REQUEST,
                "invalid-json",
                format!("the body is not valid JSON: {e}"),
            )
        })?;
        integral_numbers_as_integers(&mut value);
        let invalid =
            |detail: String| refused(StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", detail);
        // serde would also take a struct written as an array of its fields.
        if !value.is_object() {
            return Err(invalid("the body must be a JSON object".into()));
        }
        serde_json::from_value::<T>(value.clone()).map_err(|e| invalid(without_value(&e)))?;
        T::parse_from_json(Some(value))
            .map(StrictJson)
            .map_err(|e| invalid(e.into_message()))
    }
}

poem_openapi::impl_apirequest_for_payload!(StrictJson<T>, T: Type + ParseFromJSON + DeserializeOwned);

/// serde's message without the value it quotes (`invalid type: integer `5`, expected a
/// string`): the value may be a password sent as a number, and an answer or a log line
/// must not carry it.
fn without_value(error: &serde_json::Error) -> String {
    let message = error.to_string();
    for kind in ["invalid type", "invalid value", "invalid length"] {
        if let Some(rest) = message
            .strip_prefix(kind)
            .and_then(|r| r.strip_prefix(": "))
            && let Some((_, expected)) = rest.split_once(", expected ")
        {
            return format!("{kind}: expected {expected}");
        }
    }
    message
}

/// `5.0` becomes `5`: JSON Schema counts it an integer, and so does the API.
fn integral_numbers_as_integers(value: &mut Value) {
    match value {
        Value::Number(number) => {
            if let Some(float) = number.as_f64().filter(|_| number.is_f64())
                && float.fract() == 0.0
                && float.abs() < 2f64.powi(53)
            {
                *number = serde_json::Number::from(float as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        Value::Object(object) => object.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_value_is_not_repeated() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Secret {
            password: String,
        }
        let error = serde_json::from_value::<Secret>(serde_json::json!({"password": 918273}))
            .expect_err("a number is not a string");
        let message = without_value(&error);
        assert!(!message.contains("918273"), "{message}");
        assert!(message.contains("expected a string"), "{message}");
    }

    #[test]
    fn integral_floats_become_integers_and_others_stay() {
        let mut value = serde_json::json!({"a": 5.0, "b": [-100000001.0, 1.5], "c": "5.0"});
        integral_numbers_as_integers(&mut value);
        assert_eq!(
            value,
            serde_json::json!({"a": 5, "b": [-100000001, 1.5], "c": "5.0"})
        );
    }
}
