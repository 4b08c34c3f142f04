"""Rejections: the answer an adapter gives a request it refuses.

A `Rejection` is an exception: `raise` it anywhere below `handle` (or return it) and the
sender gets its status and a JSON problem body built from the code, message and field.
"""

from ._wit import types


class Rejection(Exception):
    """Why an adapter refused a request: a 4xx status, a stable machine-readable code, a
    sentence for the sender and, when there is one, the path of the offending field."""

    def __init__(self, status, code, message, field=None):
        super().__init__(message)
        self.status = int(status)
        self.code = code
        self.message = message
        self.field = field

    def __repr__(self):
        return f"Rejection({self.status}, {self.code!r}, {self.message!r}, field={self.field!r})"

    def __eq__(self, other):
        if not isinstance(other, Rejection):
            return NotImplemented
        return (self.status, self.code, self.message, self.field) == (
            other.status,
            other.code,
            other.message,
            other.field,
        )

    __hash__ = Exception.__hash__

    @classmethod
    def new(cls, status, code, message):
        """A rejection with any 4xx status."""
        return cls(status, code, message)

    @classmethod
    def bad_request(cls, code, message):
        """400: the request cannot be read at all (not JSON, not UTF-8)."""
        return cls(400, code, message)

    @classmethod
    def unauthorized(cls, message):
        """401 `invalid-signature`: the signature or token is missing or wrong."""
        return cls(401, "invalid-signature", message)

    @classmethod
    def forbidden(cls, message, code="forbidden"):
        """403: the sender is known but may not send this."""
        return cls(403, code, message)

    @classmethod
    def payload_too_large(cls, message, code="payload-too-large"):
        """413: the body is larger than this adapter takes."""
        return cls(413, code, message)

    @classmethod
    def invalid_field(cls, field, reason):
        """422 `invalid-field`: one field breaks the schema; `field` is its path, such as
        `notifications[2].kind`. The message is `field: reason`."""
        return cls(422, "invalid-field", f"{field}: {reason}", field)

    def with_field(self, field):
        """Names the offending field; returns self, to chain."""
        self.field = field
        return self

    def to_wit(self):
        """The contract's `rejection` record."""
        return types.Rejection(self.status, self.code, self.message, self.field)


bad_request = Rejection.bad_request
unauthorized = Rejection.unauthorized
forbidden = Rejection.forbidden
payload_too_large = Rejection.payload_too_large
invalid_field = Rejection.invalid_field
