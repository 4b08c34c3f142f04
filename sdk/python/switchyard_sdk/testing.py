"""Test a plugin on a normal Python, without building a component.

Outside a component the SDK answers `host` calls from a fake; `host(...)` sets what it
answers for the length of a `with` block, and records what the plugin logged and fetched:

    import unittest
    from switchyard_sdk import testing
    import my_channel

    class MyChannelTest(unittest.TestCase):
        def test_posts(self):
            answer = testing.response(200)
            with testing.host(config={"url": "https://example.com/h"}, fetch=lambda req: answer) as fake:
                outcome = my_channel.Outbound().deliver(testing.delivery(kind="invoice.paid"))
            self.assertEqual(outcome, delivered(200))
            self.assertEqual(fake.requests[0].url, "https://example.com/h")

Inside a component this module is not needed; importing it there raises.
"""

import contextlib
import json

from . import _native
from ._wit import NATIVE, types
from .drafts import to_json

if not NATIVE:  # pragma: no cover - only inside a component
    raise ImportError("switchyard_sdk.testing runs on a normal Python only")

FakeHost = _native.FakeHost
Err = _native.Err


@contextlib.contextmanager
def host(config=None, secrets=None, now_ms=None, fetch=None, echo=False):
    """Makes the `host` import answer with this `config` (a dict, or JSON text), these
    `secrets` (a dict), this time (`now_ms`, the real clock when None), and `fetch`, a
    function from the request record to a response (see response()) or a raised/returned
    FetchError (see fetch_error()). Yields the fake: `.logs` and `.requests` record calls.
    `echo` prints log lines to stderr as well."""
    text = config if isinstance(config, str) else json.dumps(config if config is not None else {})
    fake = FakeHost(text, secrets, now_ms, fetch, echo)
    previous = _native._Host.fake
    _native._Host.fake = fake
    try:
        yield fake
    finally:
        _native._Host.fake = previous


def response(status=200, body=b"", headers=None):
    """An HTTP response record, for a fake fetch to return. A dict or list body is sent as
    JSON."""
    if isinstance(body, (dict, list)):
        body = to_json(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    items = headers.items() if hasattr(headers, "items") else (headers or [])
    return types.HttpResponse(status, list(items), bytes(body))


def fetch_error(kind, detail=""):
    """A fetch error for a fake fetch to raise or return: kind is "denied",
    "invalid-request", "timeout", "connection" or "response-too-large"."""
    value = {
        "denied": lambda: types.FetchError_Denied(detail),
        "invalid-request": lambda: types.FetchError_InvalidRequest(detail),
        "timeout": lambda: types.FetchError_Timeout(),
        "connection": lambda: types.FetchError_Connection(detail),
        "response-too-large": lambda: types.FetchError_ResponseTooLarge(),
    }[kind]()
    return Err(value)


def notification(kind="test.happened", payload=None, attributes=None, id="ntf_test", source="test", created_at_ms=0):
    """A notification record as the host hands it over."""
    items = attributes.items() if hasattr(attributes, "items") else (attributes or [])
    return types.Notification(id, kind, source, list(items), to_json(payload), created_at_ms)


def delivery(attempt=1, channel="test-channel", **fields):
    """A delivery record; the keyword arguments build its notification()."""
    return types.Delivery(notification(**fields), attempt, channel)


def request(body=b"", headers=None, method="POST", path="/hooks/test", query="", transport=None):
    """An inbound request record, as an adapter gets it. A dict or list body is sent as
    JSON; str as UTF-8."""
    if isinstance(body, (dict, list)):
        body = to_json(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    items = headers.items() if hasattr(headers, "items") else (headers or [])
    return types.Request(transport or types.Transport.HTTP, method, path, list(items), query, bytes(body))


def context(route="test-route", channel="test-channel", attempt=1):
    """A transform context record."""
    return types.TransformContext(route, channel, attempt)


def rejection_of(call):
    """Calls `call()` and returns the rejection record the export raised (as the host
    would see it); AssertionError when it raised none."""
    try:
        call()
    except Err as e:
        return e.value
    raise AssertionError("no rejection was raised")
