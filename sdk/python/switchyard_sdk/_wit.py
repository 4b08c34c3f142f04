"""Where the contract's types and the `host` import come from.

Inside a component, componentize-py generates `wit_world`; outside one (unit tests), the
pure-Python stand-in in `_native` takes its place, so the SDK's logic and a plugin's own
tests run on a normal Python.
"""

import json

try:
    from componentize_py_types import Err
    from wit_world.imports import host, types

    NATIVE = False
except ImportError:  # a normal Python: no component around us
    from ._native import Err, host, types

    NATIVE = True


def exports_base(name):
    """The generated protocol class an export must subclass, or `object` natively."""
    if NATIVE:
        return object
    import wit_world.exports as exports  # only the current world's exports exist

    return getattr(exports, name)


def find_field(fields, name):
    """The first value whose name matches, ignoring ASCII case; None when absent."""
    lowered = name.lower()
    for key, value in fields:
        if key.lower() == lowered:
            return value
    return None


# -- Helpers on the contract's records: methods on the generated classes themselves, so
# -- a plugin gets exactly the host's values, with nothing copied per call.


def _request_header(self, name):
    """The first header with this name, ignoring case, or None."""
    return find_field(self.headers, name)


def _request_text(self):
    """The body as UTF-8 text; a 400 `invalid-encoding` rejection when it is not."""
    try:
        return bytes(self.body).decode("utf-8")
    except UnicodeDecodeError:
        from .rejection import Rejection

        raise Rejection.bad_request("invalid-encoding", "the body is not UTF-8") from None


def _request_json(self):
    """The body parsed as JSON; a 400 `invalid-json` rejection that says where when not."""
    from .rejection import Rejection

    try:
        return json.loads(bytes(self.body), parse_constant=_no_constants)
    except ValueError as e:
        raise Rejection.bad_request("invalid-json", f"the body is not valid JSON: {e}") from None


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def _request_query_params(self):
    """The query string as a list of (name, value) pairs, percent-decoded."""
    from .http import parse_query

    return parse_query(self.query)


def _notification_payload_json(self):
    """The payload parsed into Python values (raises ValueError when it is not JSON)."""
    return json.loads(self.payload)


def _notification_attribute(self, name):
    """The first attribute with exactly this name, or None."""
    for key, value in self.attributes:
        if key == name:
            return value
    return None


def _notification_attributes_dict(self):
    """The attributes as a dict; the first of repeated names wins."""
    out = {}
    for key, value in self.attributes:
        out.setdefault(key, value)
    return out


types.Request.header = _request_header
types.Request.text = _request_text
types.Request.json = _request_json
types.Request.query_params = _request_query_params
types.Notification.payload_json = _notification_payload_json
types.Notification.attribute = _notification_attribute
types.Notification.attributes_dict = _notification_attributes_dict
