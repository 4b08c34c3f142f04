"""What a transform makes of a notification: keep it (changed or not), drop it, or split
it; or a TransformError that is retried or not.

    return keep(notification, kind="invoice.paid.eu")
    return drop("internal test invoice")
    return split([copy(notification, payload=line) for line in lines])
    raise TransformError.retry_later("the lookup timed out")
"""

import dataclasses

from ._wit import types
from .drafts import to_json

Keep = types.Transformed_Keep
Drop = types.Transformed_Drop
Split = types.Transformed_Split

MAX_SPLIT = 100
"""The most notifications one split may produce."""

_UNSET = object()


def copy(notification, kind=None, attributes=None, payload=_UNSET, payload_json=None):
    """A copy of `notification` with the given fields replaced: `kind`; `attributes`, a dict
    or (name, value) pairs; `payload`, any JSON-serializable value (or `payload_json`, text
    that already is JSON). The host keeps the id, source and creation time."""
    changes = {}
    if kind is not None:
        changes["kind"] = kind
    if attributes is not None:
        items = attributes.items() if hasattr(attributes, "items") else attributes
        changes["attributes"] = [(str(k), v if isinstance(v, str) else to_json(v)) for k, v in items]
    if payload_json is not None:
        changes["payload"] = payload_json
    elif payload is not _UNSET:
        changes["payload"] = to_json(payload)
    return dataclasses.replace(notification, **changes) if changes else notification


def keep(notification, **changes):
    """Deliver this notification, with any of copy()'s changes applied."""
    return types.Transformed_Keep(copy(notification, **changes))


def drop(reason):
    """Deliver nothing to this channel (a filter); the reason goes on the attempt record
    and the delivery counts as done."""
    return types.Transformed_Drop(str(reason))


def split(notifications):
    """Deliver these notifications instead, in order (at most 100; the n-th gets the id
    `<id>.<n>`). An empty list is a drop."""
    notifications = list(notifications)
    if len(notifications) > MAX_SPLIT:
        raise TransformError.fail(f"a split makes at most {MAX_SPLIT} notifications, not {len(notifications)}")
    return types.Transformed_Split(notifications)


class TransformError(Exception):
    """Why a transform could not shape a notification. `retry=True` when trying again may
    help (a lookup timed out): the delivery is retried on the channel's schedule; False
    when it never will: the delivery is dead-lettered."""

    def __init__(self, reason, retry=False):
        super().__init__(reason)
        self.reason = str(reason)
        self.retry = bool(retry)

    def __repr__(self):
        return f"TransformError({self.reason!r}, retry={self.retry})"

    def __eq__(self, other):
        if not isinstance(other, TransformError):
            return NotImplemented
        return (self.reason, self.retry) == (other.reason, other.retry)

    __hash__ = Exception.__hash__

    @classmethod
    def retry_later(cls, reason):
        """A transient failure: retried on the channel's schedule."""
        return cls(reason, retry=True)

    @classmethod
    def fail(cls, reason):
        """A permanent failure: the delivery is dead-lettered."""
        return cls(reason, retry=False)

    def to_wit(self):
        """The contract's `transform-error` record."""
        return types.TransformError(self.reason, self.retry)


def retry_later(reason):
    """TransformError.retry_later(reason), to raise."""
    return TransformError(reason, retry=True)


def fail(reason):
    """TransformError.fail(reason), to raise."""
    return TransformError(reason, retry=False)
