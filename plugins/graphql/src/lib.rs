//! The `graphql` adapter: the variables of a `sendNotification` mutation become drafts.
//!
//! The host's `/graphql` front door parses the operation and hands over its variables as
//! the JSON body. They hold exactly one of
//!
//! - `input`: one notification, `{"input": {"kind": "invoice.paid", "payload": {...}}}`, or
//! - `inputs`: a non-empty list of them, `{"inputs": [{"kind": "a"}, {"kind": "b"}]}`,
//!
//! where each notification has the REST API's fields: `kind` (required), `attributes`,
//! `payload` and `idempotency_key`. Errors are a 422 `invalid-field` whose path starts at
//! the variable, such as `input.kind` or `inputs[2].attributes.region`; any other variable
//! is refused by name. Malformed JSON is a 400 `invalid-json`.
//!
//! Config: none. Secrets: none; the host authenticates GraphQL callers.

use serde_json::{Map, Value};
use switchyard_sdk::drafts::{self, type_name};
use switchyard_sdk::{Adapter, Draft, Rejection, Request, export_adapter};

struct GraphQl;

impl Adapter for GraphQl {
    fn handle(request: Request) -> Result<Vec<Draft>, Rejection> {
        let variables = match request.json::<Value>()? {
            Value::Object(variables) => variables,
            other => {
                return Err(Rejection::invalid_field(
                    "$",
                    format!(
                        "the variables must be an object with input or inputs, not {}",
                        type_name(&other)
                    ),
                ));
            }
        };
        from_variables(&variables)
    }
}

fn from_variables(variables: &Map<String, Value>) -> Result<Vec<Draft>, Rejection> {
    if let Some(unknown) = variables
        .keys()
        .find(|k| !matches!(k.as_str(), "input" | "inputs"))
    {
        return Err(Rejection::invalid_field(
            unknown.as_str(),
            "unknown variable; sendNotification takes input or inputs",
        ));
    }
    // GraphQL clients send an unused optional variable as null, so null means absent.
    let present = |name: &str| variables.get(name).filter(|v| !v.is_null());
    match (present("input"), present("inputs")) {
        (Some(_), Some(_)) => Err(Rejection::invalid_field(
            "inputs",
            "give either input or inputs, not both",
        )),
        (None, None) => Err(Rejection::invalid_field(
            "input",
            "is required: one notification as input, or a list of them as inputs",
        )),
        (Some(input), None) => match input {
            Value::Object(object) => Ok(vec![drafts::one(object, "input")?]),
            other => Err(Rejection::invalid_field(
                "input",
                format!("must be an object, not {}", type_name(other)),
            )),
        },
        (None, Some(inputs)) => {
            let Value::Array(items) = inputs else {
                return Err(Rejection::invalid_field(
                    "inputs",
                    format!("must be a list, not {}", type_name(inputs)),
                ));
            };
            drafts::list(items, "inputs")
        }
    }
}

export_adapter!(GraphQl);
