//! The `pick` transform: keeps, drops and renames fields of each notification's JSON
//! payload, to slim it down for a channel or to hide what a destination must not see.
//!
//! Config (at least one of the three; each is applied in this order):
//! - `keep` (optional): a list of paths; only these fields stay, everything else goes.
//!   Paths are dotted field names into nested objects, such as `order.id`; a kept nested
//!   field keeps its parent objects (with only the kept fields in them). A path the
//!   payload lacks is skipped.
//! - `drop` (optional): a list of paths to remove, such as `customer.email`; a path the
//!   payload lacks is skipped.
//! - `rename` (optional): a map of path to new path, such as `{"total": "amount"}` or
//!   `{"customer.id": "customer_id"}`. The new path's parent objects are created when
//!   missing, and a value already there is replaced. All renames take their values first
//!   and then put them, so `{"a": "b", "b": "a"}` swaps two fields. A path the payload
//!   lacks is skipped.
//!
//! For example `{"keep": ["order", "total"], "drop": ["order.internal"], "rename":
//! {"total": "amount"}}` turns `{"order": {"id": 7, "internal": 1}, "total": 12,
//! "customer": {"email": "..."}}` into `{"order": {"id": 7}, "amount": 12}`.
//!
//! A payload that is not a JSON object (a list, a string, `null`) has no fields: `keep`
//! makes it an empty object `{}` (it is an allow-list, so nothing that was not listed gets
//! through), while `drop` and `rename` leave it as it is. Paths go through objects only; a
//! list is a value like any other.
//!
//! Only the payload changes; the kind and attributes are kept. A config that is not valid
//! (none of the three keys, an unknown key, a wrong type, an empty list or path, two
//! renames to one place) fails the delivery, without retries, with a reason that says
//! what to fix; so does a rename whose new path runs through a value that is not an
//! object.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};
use switchyard_sdk::drafts::type_name;
use switchyard_sdk::{
    Notification, Transform, TransformContext, TransformError, Transformed, export_transform,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    keep: Option<Vec<String>>,
    drop: Option<Vec<String>>,
    rename: Option<BTreeMap<String, String>>,
}

/// A dotted path, split into its field names.
type Path = Vec<String>;

/// A checked config, ready to apply to payloads.
#[derive(Debug)]
struct Plan {
    keep: Option<Vec<Path>>,
    drop: Vec<Path>,
    rename: Vec<(Path, Path)>,
}

impl Config {
    fn plan(self) -> Result<Plan, String> {
        if self.keep.is_none() && self.drop.is_none() && self.rename.is_none() {
            return Err(invalid(
                "set at least one of keep, drop or rename, such as {\"keep\": [\"order.id\"]}",
            ));
        }
        let keep = self
            .keep
            .map(|paths| paths_of("keep", &paths))
            .transpose()?;
        let drop = match self.drop {
            Some(paths) => paths_of("drop", &paths)?,
            None => Vec::new(),
        };
        let mut rename = Vec::new();
        if let Some(map) = self.rename {
            if map.is_empty() {
                return Err(invalid(
                    "rename is empty; map at least one path to a new path, or leave it out",
                ));
            }
            for (from, to) in &map {
                let at = format!("rename.{from}");
                rename.push((path(&at, from)?, path(&at, to)?));
            }
        }
        for (i, (from, to)) in rename.iter().enumerate() {
            for (other_from, other_to) in &rename[i + 1..] {
                if other_from.starts_with(from) || from.starts_with(other_from) {
                    return Err(invalid(format!(
                        "rename moves both {} and {}, one inside the other; rename one of them",
                        from.join("."),
                        other_from.join(".")
                    )));
                }
                if other_to.starts_with(to) || to.starts_with(other_to) {
                    return Err(invalid(format!(
                        "rename puts two values at {} and {}, one inside the other",
                        to.join("."),
                        other_to.join(".")
                    )));
                }
            }
        }
        Ok(Plan { keep, drop, rename })
    }
}

fn invalid(reason: impl std::fmt::Display) -> String {
    format!("invalid plugin config: {reason}")
}

fn paths_of(key: &str, paths: &[String]) -> Result<Vec<Path>, String> {
    if paths.is_empty() {
        return Err(invalid(format!(
            "{key} is empty; list at least one path, or leave it out"
        )));
    }
    paths
        .iter()
        .enumerate()
        .map(|(i, text)| path(&format!("{key}[{i}]"), text))
        .collect()
}

fn path(at: &str, text: &str) -> Result<Path, String> {
    if text.split('.').any(str::is_empty) {
        return Err(invalid(format!(
            "{at}: {text:?} is not a path; write dotted field names, such as order.id"
        )));
    }
    Ok(text.split('.').map(str::to_string).collect())
}

impl Plan {
    /// Applies keep, then drop, then rename, to one payload.
    fn apply(&self, mut payload: Value) -> Result<Value, String> {
        if let Some(keep) = &self.keep {
            let mut kept = Value::Object(Map::new());
            for path in keep {
                if let Some(value) = get(&payload, path) {
                    put(&mut kept, path, value.clone())?;
                }
            }
            payload = kept;
        }
        for path in &self.drop {
            take(&mut payload, path);
        }
        let taken: Vec<(&Path, Value)> = self
            .rename
            .iter()
            .filter_map(|(from, to)| Some((to, take(&mut payload, from)?)))
            .collect();
        for (to, value) in taken {
            put(&mut payload, to, value)?;
        }
        Ok(payload)
    }
}

fn get<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |value, key| value.as_object()?.get(key))
}

/// Removes the value at `path` and returns it.
fn take(value: &mut Value, path: &[String]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let parent = parents
        .iter()
        .try_fold(value, |value, key| value.as_object_mut()?.get_mut(key))?;
    parent.as_object_mut()?.remove(last)
}

/// Sets the value at `path`, creating missing parent objects.
fn put(value: &mut Value, path: &[String], new: Value) -> Result<(), String> {
    let (last, parents) = path.split_last().expect("paths are never empty");
    let mut at = value;
    for (depth, key) in parents.iter().enumerate() {
        let Value::Object(map) = at else {
            return Err(not_an_object(path, depth, at));
        };
        at = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    match at {
        Value::Object(map) => {
            map.insert(last.clone(), new);
            Ok(())
        }
        other => Err(not_an_object(path, parents.len(), other)),
    }
}

fn not_an_object(path: &[String], depth: usize, found: &Value) -> String {
    let parent = if depth == 0 {
        "the payload".to_string()
    } else {
        path[..depth].join(".")
    };
    format!(
        "cannot put a value at {}: {parent} is {}, not an object",
        path.join("."),
        type_name(found)
    )
}

struct Pick;

impl Transform for Pick {
    fn transform(
        notification: Notification,
        _context: TransformContext,
    ) -> Result<Transformed, TransformError> {
        let plan = switchyard_sdk::config::<Config>()
            .and_then(Config::plan)
            .map_err(TransformError::fail)?;
        let payload = plan
            .apply(notification.payload_json()?)
            .map_err(TransformError::fail)?;
        Ok(Transformed::keep(notification.with_payload_json(&payload)))
    }
}

export_transform!(Pick);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(config: Value) -> Result<Plan, String> {
        serde_json::from_value::<Config>(config)
            .map_err(invalid)
            .and_then(Config::plan)
    }

    fn pick(config: Value, payload: Value) -> Result<Value, String> {
        plan(config).unwrap().apply(payload)
    }

    fn order() -> Value {
        json!({
            "order": {"id": 7, "internal": 1, "note": "x"},
            "total": 12,
            "customer": {"email": "a@example.com", "id": "c1"},
        })
    }

    #[test]
    fn keep_drop_and_rename_apply_in_that_order() {
        assert_eq!(
            pick(
                json!({"keep": ["order", "total"], "drop": ["order.internal"], "rename": {"total": "amount"}}),
                order()
            ),
            Ok(json!({"order": {"id": 7, "note": "x"}, "amount": 12}))
        );
        assert_eq!(
            pick(
                json!({"keep": ["order.id", "total", "missing", "order.id.deeper"]}),
                order()
            ),
            Ok(json!({"order": {"id": 7}, "total": 12}))
        );
    }

    #[test]
    fn drop_removes_nested_fields_and_skips_missing_ones() {
        assert_eq!(
            pick(
                json!({"drop": ["customer.email", "order.note", "nope", "total.deeper"]}),
                order()
            ),
            Ok(json!({"order": {"id": 7, "internal": 1}, "total": 12, "customer": {"id": "c1"}}))
        );
    }

    #[test]
    fn rename_moves_values_into_new_parents_and_swaps() {
        assert_eq!(
            pick(
                json!({"rename": {"customer.id": "customer_id", "total": "money.amount", "nope": "x"}}),
                json!({"customer": {"id": "c1"}, "total": 12, "money": {"currency": "EUR"}})
            ),
            Ok(
                json!({"customer": {}, "customer_id": "c1", "money": {"currency": "EUR", "amount": 12}})
            )
        );
        assert_eq!(
            pick(
                json!({"rename": {"a": "b", "b": "a"}}),
                json!({"a": 1, "b": 2})
            ),
            Ok(json!({"a": 2, "b": 1}))
        );
        assert_eq!(
            pick(json!({"rename": {"a": "b"}}), json!({"a": 1, "b": 2})),
            Ok(json!({"b": 1}))
        );
        let error = pick(
            json!({"rename": {"a": "b.c"}}),
            json!({"a": 1, "b": "text"}),
        )
        .unwrap_err();
        assert_eq!(
            error,
            "cannot put a value at b.c: b is a string, not an object"
        );
    }

    #[test]
    fn a_payload_that_is_not_an_object_is_emptied_by_keep_only() {
        for payload in [json!([1, 2]), json!("text"), json!(null), json!(3)] {
            assert_eq!(pick(json!({"keep": ["a"]}), payload.clone()), Ok(json!({})));
            assert_eq!(
                pick(
                    json!({"drop": ["a"], "rename": {"b": "c"}}),
                    payload.clone()
                ),
                Ok(payload)
            );
        }
    }

    #[test]
    fn a_bad_config_says_what_to_fix() {
        for (config, expected) in [
            (json!({}), "set at least one of keep, drop or rename"),
            (
                json!({"keep": "total"}),
                "invalid type: string \"total\", expected a sequence",
            ),
            (
                json!({"keep": [1]}),
                "invalid type: integer `1`, expected a string",
            ),
            (json!({"rename": ["a"]}), "expected a map"),
            (json!({"kep": ["a"]}), "unknown field `kep`"),
            (json!({"keep": []}), "keep is empty"),
            (json!({"rename": {}}), "rename is empty"),
            (
                json!({"drop": ["a", "b..c"]}),
                "drop[1]: \"b..c\" is not a path",
            ),
            (json!({"keep": [""]}), "keep[0]: \"\" is not a path"),
            (
                json!({"rename": {"a": ".b"}}),
                "rename.a: \".b\" is not a path",
            ),
            (
                json!({"rename": {"a": "x", "b": "x"}}),
                "rename puts two values at x and x",
            ),
            (
                json!({"rename": {"a": "x", "b": "x.y"}}),
                "rename puts two values at x and x.y",
            ),
            (
                json!({"rename": {"a": "x", "a.b": "y"}}),
                "rename moves both a and a.b",
            ),
        ] {
            let error = plan(config.clone()).expect_err(&config.to_string());
            assert!(error.starts_with("invalid plugin config: "), "{error}");
            assert!(error.contains(expected), "{config}: {error}");
        }
    }
}
