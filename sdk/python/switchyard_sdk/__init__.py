"""switchyard_sdk: write Switchyard plugins in Python.

A plugin is a WebAssembly component built with componentize-py. It is an adapter (an
inbound request becomes notification drafts), a channel (one notification goes to one
destination) or a transform (a notification is reshaped, filtered or split on its way to a
channel). Subclass Adapter, Channel or Transform and export it:

    import switchyard_sdk as sy

    class Notify(sy.Channel):
        '''Posts every notification as JSON to config["url"].'''
        name = "notify"
        version = "0.1.0"

        def deliver(self, delivery):
            url = sy.config_value("url")
            n = delivery.notification
            body = {"id": n.id, "kind": n.kind, "payload": n.payload_json()}
            return sy.outcome_from_response(sy.post(url).json(body).send())

    Outbound = sy.export_channel(Notify)

Everything here is importable on a normal Python too (see switchyard_sdk.testing); the
`host` calls then answer from a fake.
"""

from . import drafts, http, transform, webhooks
from ._wit import NATIVE, types
from .drafts import draft
from .host import (
    ConfigError,
    config,
    config_value,
    debug,
    error,
    info,
    log,
    now_ms,
    now_secs,
    require_secret,
    secret,
    trace,
    warn,
    warning,
)
from .http import FetchError, HttpRequest, delete, fetch, get, patch, post, put, request
from .outcome import (
    Delivered,
    Failed,
    Retry,
    delivered,
    failed,
    gone,
    outcome_from_error,
    outcome_from_fetch,
    outcome_from_response,
    retry,
)
from .rejection import Rejection, bad_request, forbidden, invalid_field, payload_too_large, unauthorized
from .transform import Drop, Keep, Split, TransformError, copy, drop, keep, split
from .worlds import Adapter, Channel, Transform, export_adapter, export_channel, export_transform

__version__ = "0.2.0"
"""The SDK's version; it follows the contract, switchyard:plugin@0.2.0."""

Request = types.Request
Notification = types.Notification
Delivery = types.Delivery
TransformContext = types.TransformContext
