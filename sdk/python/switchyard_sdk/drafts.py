"""Drafts: the notifications an adapter proposes, and the JSON shape the REST, WebSocket
and GraphQL adapters share, with rejections that name the field and the reason.

    draft("invoice.paid", {"invoice": 42}, attributes={"region": "eu"}, idempotency_key="k1")
    drafts.from_json_body(request.body)   # one object, an array, or {"notifications": [...]}

One notification object is `{"kind": ..., "attributes": {...}, "payload": ...,
"idempotency_key": ...}`; `kind` is required.
"""

import json

from ._wit import types
from .rejection import Rejection

MAX_TEXT_LEN = 256
"""The longest kind, attribute name or value, and idempotency key, in characters."""
MAX_ATTRIBUTES = 64
"""The most attributes one notification may carry."""
MAX_BATCH = 1000
"""The most notifications one batch may carry."""

_KNOWN = ("kind", "attributes", "payload", "idempotency_key")


def to_json(value):
    """Compact JSON text, as the host stores payloads."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _pairs(attributes):
    if not attributes:
        return []
    items = attributes.items() if hasattr(attributes, "items") else attributes
    return [(str(k), _text(v)) for k, v in items]


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def draft(kind, payload=None, attributes=None, idempotency_key=None, payload_json=None):
    """A notification draft of `kind`. `payload` is any JSON-serializable value (or give
    `payload_json`, text that already is JSON); `attributes` a dict or (name, value) pairs
    that routes can match on; `idempotency_key` makes a repeat a no-op."""
    text = payload_json if payload_json is not None else to_json(payload)
    return types.Draft(kind, _pairs(attributes), text, idempotency_key)


Draft = types.Draft


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def _parse(body):
    try:
        return json.loads(bytes(body), parse_constant=_no_constants)
    except ValueError as e:
        raise Rejection.bad_request("invalid-json", f"the body is not valid JSON: {e}") from None


def from_json_body(body):
    """A request body of one notification, an array of them, or {"notifications": [...]}
    as drafts; raises a Rejection that names the field and the reason."""
    return from_json_value(_parse(body))


def from_json_object(body):
    """A request body that must be exactly one notification object."""
    value = _parse(body)
    if isinstance(value, dict):
        return [one(value, "")]
    raise Rejection.invalid_field(
        "$",
        f"must be one notification object, not {type_name(value)}; send several to /api/v1/notifications/batch",
    )


def from_json_batch(body):
    """A request body that must be {"notifications": [...]}."""
    value = _parse(body)
    if not isinstance(value, dict):
        raise Rejection.invalid_field("$", f'must be an object {{"notifications": [...]}}, not {type_name(value)}')
    return _batch_object(value, required=True)


def _batch_object(value, required):
    for key in value:
        if key != "notifications":
            raise Rejection.invalid_field(key, "unknown field; a batch object has only `notifications`")
    if "notifications" not in value:
        raise Rejection.invalid_field("notifications", "is required")
    items = value["notifications"]
    if not isinstance(items, list):
        raise Rejection.invalid_field("notifications", f"must be an array, not {type_name(items)}")
    return list_of(items, "notifications")


def from_json_value(value):
    """An already-decoded JSON value as drafts, as from_json_body."""
    if isinstance(value, list):
        return list_of(value, "")
    if isinstance(value, dict) and "notifications" in value:
        return _batch_object(value, required=False)
    if isinstance(value, dict):
        return [one(value, "")]
    raise Rejection.invalid_field("$", f"must be a notification object or an array of them, not {type_name(value)}")


def list_of(items, path):
    """A list of notification objects (1 to MAX_BATCH); `path` names the list in errors."""
    at = path or "$"
    if not items:
        raise Rejection.invalid_field(at, "must hold at least one notification")
    if len(items) > MAX_BATCH:
        raise Rejection.invalid_field(at, f"holds {len(items)} notifications; at most {MAX_BATCH} per batch")
    out = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise Rejection.invalid_field(where, f"must be an object, not {type_name(item)}")
        out.append(one(item, where))
    return out


def one(obj, path=""):
    """One notification object as a draft; `path` prefixes field names in errors."""

    def field(name):
        return f"{path}.{name}" if path else name

    for key in obj:
        if key not in _KNOWN:
            raise Rejection.invalid_field(field(key), "unknown field; expected kind, attributes, payload or idempotency_key")

    kind = obj.get("kind")
    if kind is None:
        raise Rejection.invalid_field(field("kind"), "is required")
    if not isinstance(kind, str):
        raise Rejection.invalid_field(field("kind"), f"must be a string, not {type_name(kind)}")
    problem = check_kind(kind)
    if problem:
        raise Rejection.invalid_field(field("kind"), problem)

    attributes = []
    given = obj.get("attributes")
    if isinstance(given, dict):
        if len(given) > MAX_ATTRIBUTES:
            raise Rejection.invalid_field(field("attributes"), f"has {len(given)} entries; at most {MAX_ATTRIBUTES}")
        for name, value in given.items():
            at = f"{field('attributes')}.{name}"
            if not name or len(name) > MAX_TEXT_LEN:
                raise Rejection.invalid_field(at, f"names must be 1 to {MAX_TEXT_LEN} characters")
            if isinstance(value, (str, bool, int, float)):
                text = _text(value)
            else:
                raise Rejection.invalid_field(at, f"must be a string, number or boolean, not {type_name(value)}")
            if len(text) > MAX_TEXT_LEN:
                raise Rejection.invalid_field(at, f"is longer than {MAX_TEXT_LEN} characters")
            attributes.append((name, text))
    elif given is not None:
        raise Rejection.invalid_field(field("attributes"), f"must be an object, not {type_name(given)}")

    key = obj.get("idempotency_key")
    if key is not None:
        if not isinstance(key, str):
            raise Rejection.invalid_field(field("idempotency_key"), f"must be a string, not {type_name(key)}")
        if not key or len(key) > MAX_TEXT_LEN:
            raise Rejection.invalid_field(field("idempotency_key"), f"must be 1 to {MAX_TEXT_LEN} characters")

    return types.Draft(kind, attributes, to_json(obj.get("payload")), key)


def check_kind(kind):
    """None when `kind` is a valid dotted kind, else the reason: letters, digits and
    `. _ - :` only, 1 to 256 bytes (`*` is reserved for route globs)."""
    if not kind:
        return "must not be empty"
    if len(kind.encode("utf-8")) > MAX_TEXT_LEN:
        return f"is longer than {MAX_TEXT_LEN} bytes"
    for c in kind:
        if not ((c.isascii() and c.isalnum()) or c in "._-:"):
            return f"has {c!r}; use letters, digits and . _ - : only, such as invoice.paid"
    return None


def type_name(value):
    """The JSON type name of a value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


# Exercise the JSON codec once at import, for the snapshot (see webhooks.py).
json.loads(to_json({"warm": [1, 2.5, "é", None, True]}))
