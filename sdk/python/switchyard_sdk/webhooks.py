"""Standard Webhooks (https://www.standardwebhooks.com): sign outbound messages and
verify inbound ones.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature is
`v1,<base64 HMAC-SHA256>` keyed by the secret, whose `whsec_` prefix is dropped and whose
rest is base64. A header may carry several space-separated signatures, so a sender can
sign with an old and a new key while rotating. A header with more than MAX_SIGNATURES
`v1` signatures is refused unread; each secret's MAC is computed once whatever the number
of candidates, and every comparison is constant-time (`hmac.compare_digest`).

    # a channel
    headers = webhooks.sign_headers(secret("signing_key"), notification.id, now_secs(), body)
    # an adapter
    webhooks.verify_request(request, [secret("secret")])   # raises Rejection 401
"""

import binascii
import hashlib
import hmac

from .host import now_secs
from .rejection import Rejection

DEFAULT_TOLERANCE_SECS = 5 * 60
"""The default tolerance between `webhook-timestamp` and now: five minutes either way."""

MAX_SIGNATURES = 5
"""The most `v1` signatures one `webhook-signature` header may carry."""

_U64_MAX = 2**64 - 1


def b64encode(data):
    """Standard base64 with padding, as text."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def b64decode(text):
    """Strict standard base64 (padding required, no stray characters); ValueError when
    it is not."""
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("not base64") from None


class Secret:
    """A signing secret, decoded. `Secret.parse("whsec_...")`."""

    __slots__ = ("_key",)

    def __init__(self, key):
        if not key:
            raise ValueError("the signing secret is empty")
        self._key = bytes(key)

    def __repr__(self):
        return "Secret(...)"

    @classmethod
    def parse(cls, secret):
        """Parses `whsec_<base64>` (the prefix is optional); ValueError with a sentence that
        never repeats the secret when it is not that."""
        if isinstance(secret, Secret):
            return secret
        encoded = secret.strip()
        if encoded.startswith("whsec_"):
            encoded = encoded[len("whsec_"):]
        try:
            key = b64decode(encoded)
        except ValueError:
            raise ValueError("the signing secret is not whsec_ followed by base64") from None
        return cls(key)

    def _digest(self, msg_id, timestamp, body):
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        mac.update(msg_id.encode("utf-8"))
        mac.update(b".")
        mac.update(str(int(timestamp)).encode("ascii"))
        mac.update(b".")
        mac.update(body)
        return mac.digest()

    def sign(self, msg_id, timestamp, body):
        """The `webhook-signature` value for one message: `v1,<base64>`. `timestamp` is in
        seconds; `body` is the exact bytes sent (text is sent as UTF-8)."""
        return "v1," + b64encode(self._digest(msg_id, timestamp, _bytes(body)))


def _bytes(body):
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def sign(secret, msg_id, timestamp, body):
    """`Secret.parse(secret).sign(msg_id, timestamp, body)`."""
    return Secret.parse(secret).sign(msg_id, timestamp, body)


def sign_headers(secret, msg_id, timestamp, body):
    """The three headers that sign one message, as (name, value) pairs to add to a request."""
    return [
        ("webhook-id", msg_id),
        ("webhook-timestamp", str(int(timestamp))),
        ("webhook-signature", sign(secret, msg_id, timestamp, body)),
    ]


class VerifyError(Exception):
    """Why a message did not verify. `kind` is one of "missing-header",
    "bad-timestamp", "outside-tolerance", "no-matching-signature",
    "too-many-signatures"; `header` names the missing header, `skew_secs` how far the
    timestamp is from now. `str(error)` is a sentence for the sender."""

    def __init__(self, kind, header=None, skew_secs=None):
        self.kind = kind
        self.header = header
        self.skew_secs = skew_secs
        super().__init__(self._sentence())

    def _sentence(self):
        if self.kind == "missing-header":
            return f"the {self.header} header is missing"
        if self.kind == "bad-timestamp":
            return "webhook-timestamp is not a whole number of seconds"
        if self.kind == "outside-tolerance":
            return f"webhook-timestamp is {self.skew_secs}s away from now, outside the tolerance"
        if self.kind == "no-matching-signature":
            return "no webhook-signature matches the signing secret"
        return f"webhook-signature carries more than {MAX_SIGNATURES} v1 signatures"

    def __eq__(self, other):
        if not isinstance(other, VerifyError):
            return NotImplemented
        return (self.kind, self.header, self.skew_secs) == (other.kind, other.header, other.skew_secs)

    __hash__ = Exception.__hash__

    def __repr__(self):
        return f"VerifyError({self.kind!r}, header={self.header!r}, skew_secs={self.skew_secs!r})"


def _parse_timestamp(text):
    text = text.strip()
    digits = text[1:] if text.startswith("+") else text
    if not (digits and digits.isascii() and digits.isdigit()):
        raise VerifyError("bad-timestamp")
    value = int(digits)
    if value > _U64_MAX:
        raise VerifyError("bad-timestamp")
    return value


def verify(secrets, msg_id, timestamp, signature, body, now_secs, tolerance_secs=DEFAULT_TOLERANCE_SECS):
    """Verifies one message against one or more secrets (Secret or `whsec_` text), with
    `tolerance_secs` either side of `now_secs`. `msg_id`, `timestamp` and `signature` are
    the three header values (None when missing). Returns None; raises VerifyError."""
    if msg_id is None:
        raise VerifyError("missing-header", header="webhook-id")
    if timestamp is None:
        raise VerifyError("missing-header", header="webhook-timestamp")
    if signature is None:
        raise VerifyError("missing-header", header="webhook-signature")
    ts = _parse_timestamp(timestamp)
    skew = abs(int(now_secs) - ts)
    if skew > tolerance_secs:
        raise VerifyError("outside-tolerance", skew_secs=skew)

    candidates = []
    for entry in signature.split():
        if entry.startswith("v1,"):
            if len(candidates) == MAX_SIGNATURES:
                raise VerifyError("too-many-signatures")
            candidates.append(entry[3:])
    tags = []
    for candidate in candidates:
        try:
            tags.append(b64decode(candidate))
        except ValueError:
            pass  # a tag that is not base64 cannot match
    if not tags:
        raise VerifyError("no-matching-signature")

    body = _bytes(body)
    if isinstance(secrets, (str, Secret)):
        secrets = [secrets]
    matched = False
    for secret in secrets:
        expected = Secret.parse(secret)._digest(msg_id, ts, body)
        for tag in tags:
            # Every candidate is compared, so the time taken says nothing about which one
            # (if any) matched.
            if hmac.compare_digest(expected, tag):
                matched = True
    if not matched:
        raise VerifyError("no-matching-signature")


def verify_headers(secrets, headers, body, now_secs, tolerance_secs=DEFAULT_TOLERANCE_SECS):
    """verify() with the three values read from a list of (name, value) header pairs,
    ignoring case."""
    from ._wit import find_field

    verify(
        secrets,
        find_field(headers, "webhook-id"),
        find_field(headers, "webhook-timestamp"),
        find_field(headers, "webhook-signature"),
        body,
        now_secs,
        tolerance_secs,
    )


def verify_request(request, secrets, tolerance_secs=DEFAULT_TOLERANCE_SECS):
    """Verifies an adapter's inbound request against the host's clock. Raises a 401
    `invalid-signature` Rejection saying why when it does not verify, and a 401 when no
    secret is set (a missing secret never lets a request through). Returns the
    `webhook-id`, a natural idempotency key."""
    if isinstance(secrets, (str, Secret)):
        secrets = [secrets]
    usable = [s for s in secrets if s]
    if not usable:
        raise Rejection.unauthorized("this source has no signing secret configured")
    try:
        keys = [Secret.parse(s) for s in usable]
    except ValueError as e:
        # The sender cannot fix this; the operator reads the log.
        from .host import error

        error("the signing secret is unusable: %s", e)
        raise Rejection.unauthorized("this source's signing secret is not set up") from None
    try:
        verify_headers(keys, request.headers, request.body, now_secs(), tolerance_secs)
    except VerifyError as e:
        raise Rejection.unauthorized(str(e)) from None
    return request.header("webhook-id")


# Run the signing path once at import: componentize-py snapshots the interpreter after
# importing the plugin, so whatever hashlib, hmac and binascii set up lazily is already
# there when each call starts from that snapshot.
Secret(b"\0").sign("warm-up", 0, b"")
b64decode("AAAA")
