"""Outbound HTTP through the host: a small request builder over the contract's
`http-request`, helpers on its `http-response`, and `FetchError`.

    response = http.post(url).bearer(token).json({"text": "hi"}).timeout_ms(5000).send()
    if response.ok:
        ...

Only hosts the routes file grants the plugin are reachable; redirects come back as they
are, never followed.
"""

import json

from ._wit import Err, find_field, host, types
from .host import now_ms


class FetchError(Exception):
    """Why an outbound request produced no response. `kind` is one of "denied",
    "invalid-request", "timeout", "connection" or "response-too-large"; `detail` is what
    the host said, when it said anything; `str(error)` is a sentence for logs."""

    def __init__(self, kind, detail=None):
        self.kind = kind
        self.detail = detail
        super().__init__(self.describe())

    @property
    def retryable(self):
        """True for a timeout or a connection error: trying again later may help."""
        return self.kind in ("timeout", "connection")

    def describe(self):
        """A sentence for logs and attempt records."""
        if self.kind == "denied":
            return f"request denied: {self.detail}"
        if self.kind == "invalid-request":
            return f"invalid request: {self.detail}"
        if self.kind == "timeout":
            return "timed out"
        if self.kind == "connection":
            return f"connection failed: {self.detail}"
        return "response body over the host's size cap"

    @classmethod
    def from_wit(cls, error):
        """From the contract's `fetch-error` variant."""
        if isinstance(error, types.FetchError_Denied):
            return cls("denied", error.value)
        if isinstance(error, types.FetchError_InvalidRequest):
            return cls("invalid-request", error.value)
        if isinstance(error, types.FetchError_Timeout):
            return cls("timeout")
        if isinstance(error, types.FetchError_Connection):
            return cls("connection", error.value)
        return cls("response-too-large")


class HttpRequest:
    """An outbound request, built by chaining: every setter returns the request."""

    def __init__(self, method, url):
        self.method = method
        self.url = url
        self.headers = []
        self.body = b""
        self.timeout = None

    def header(self, name, value):
        """Adds a header (repeats are kept)."""
        self.headers.append((str(name), str(value)))
        return self

    def bearer(self, token):
        """Adds `Authorization: Bearer <token>`."""
        return self.header("authorization", f"Bearer {token}")

    def basic_auth(self, user, password):
        """Adds `Authorization: Basic <base64 user:password>`."""
        from .webhooks import b64encode

        return self.header("authorization", "Basic " + b64encode(f"{user}:{password}".encode()))

    def set_body(self, body):
        """Sets a raw body (bytes, or text sent as UTF-8)."""
        self.body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        return self

    def json(self, value):
        """Sets a JSON body (compact, UTF-8) and `content-type: application/json`."""
        self.body = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return self.header("content-type", "application/json")

    def form(self, pairs):
        """Sets an `application/x-www-form-urlencoded` body from a dict or (name, value)
        pairs."""
        items = pairs.items() if hasattr(pairs, "items") else pairs
        self.body = "&".join(f"{form_encode(k)}={form_encode(v)}" for k, v in items).encode("ascii")
        return self.header("content-type", "application/x-www-form-urlencoded")

    def timeout_ms(self, timeout_ms):
        """Asks for a shorter timeout than the host's, in milliseconds."""
        self.timeout = int(timeout_ms)
        return self

    def to_wit(self):
        """The contract's `http-request` record."""
        return types.HttpRequest(self.method, self.url, list(self.headers), self.body, self.timeout)

    def send(self):
        """Sends the request through the host and returns its response (any status);
        raises FetchError when there is none."""
        return fetch(self)


def request(method, url):
    """A request with any method."""
    return HttpRequest(method, url)


def get(url):
    """A `GET` request."""
    return HttpRequest("GET", url)


def post(url):
    """A `POST` request."""
    return HttpRequest("POST", url)


def put(url):
    """A `PUT` request."""
    return HttpRequest("PUT", url)


def patch(url):
    """A `PATCH` request."""
    return HttpRequest("PATCH", url)


def delete(url):
    """A `DELETE` request."""
    return HttpRequest("DELETE", url)


def fetch(req):
    """Sends an HttpRequest (or the contract's record) through the host: the response, or
    a raised FetchError."""
    record = req.to_wit() if isinstance(req, HttpRequest) else req
    try:
        return host.fetch(record)
    except Err as e:
        raise FetchError.from_wit(e.value) from None


# -- Helpers on the contract's `http-response` record.


def _response_header(self, name):
    """The first header with this name, ignoring case, or None."""
    return find_field(self.headers, name)


def _response_ok(self):
    """True for a 2xx status."""
    return 200 <= self.status < 300


def _response_text(self):
    """The body as text, invalid UTF-8 replaced."""
    return bytes(self.body).decode("utf-8", "replace")


def _response_json(self):
    """The body parsed as JSON (raises ValueError when it is not)."""
    return json.loads(bytes(self.body))


def _response_retry_after_ms(self):
    """`Retry-After` in milliseconds from now (delta-seconds or an HTTP date), or None."""
    value = self.header("retry-after")
    if value is None:
        return None
    return retry_after_ms(value)


types.HttpResponse.header = _response_header
types.HttpResponse.ok = property(_response_ok)
types.HttpResponse.text = _response_text
types.HttpResponse.json = _response_json
types.HttpResponse.retry_after_ms = _response_retry_after_ms

Response = types.HttpResponse


def retry_after_ms(value, now=None):
    """A `Retry-After` value in milliseconds from now (`now` in ms; the host's clock by
    default), or None when it is neither delta-seconds nor an HTTP date."""
    value = value.strip()
    digits = value[1:] if value.startswith("+") else value
    if digits and digits.isascii() and digits.isdigit():
        return min(int(digits) * 1000, 2**64 - 1)
    at = parse_http_date(value)
    if at is None:
        return None
    if now is None:
        now = now_ms()
    return max(at * 1000 - now, 0)


_MONTHS = {m: i + 1 for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LONG_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def parse_http_date(value):
    """An HTTP date (IMF-fixdate, RFC 850 or asctime) as seconds since the Unix epoch, or
    None."""
    try:
        if value[3:5] == ", ":  # Sun, 06 Nov 1994 08:49:37 GMT
            if value[:3] not in _DAYS or len(value) != 29 or not value.endswith(" GMT"):
                return None
            day, month, year, clock = value[5:7], value[8:11], value[12:16], value[17:25]
        elif value[:3] in _DAYS and value[3] == " ":  # Sun Nov  6 08:49:37 1994
            if len(value) != 24:
                return None
            month, day, clock, year = value[4:7], value[8:10].strip(), value[11:19], value[20:24]
        else:  # Sunday, 06-Nov-94 08:49:37 GMT
            name, _, rest = value.partition(", ")
            if name not in _LONG_DAYS or len(rest) != 22 or not rest.endswith(" GMT"):
                return None
            day, month, yy, clock = rest[0:2], rest[3:6], rest[7:9], rest[10:18]
            year = str((1900 if int(yy) >= 70 else 2000) + int(yy))
        h, m, s = clock.split(":")
        parts = (year, day, h, m, s)
        if not all(p.isascii() and p.isdigit() for p in parts):
            return None
        y, mo, d = int(year), _MONTHS[month], int(day)
        hh, mm, ss = int(h), int(m), int(s)
        if not (1 <= d <= 31 and hh < 24 and mm < 60 and ss < 61):
            return None
    except (KeyError, ValueError, IndexError):
        return None
    return _days_from_civil(y, mo, d) * 86400 + hh * 3600 + mm * 60 + ss


def _days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-._")


def form_encode(text):
    """`application/x-www-form-urlencoded` encoding of one name or value."""
    out = []
    for byte in str(text).encode("utf-8"):
        if byte in _UNRESERVED:
            out.append(chr(byte))
        elif byte == 0x20:
            out.append("+")
        else:
            out.append("%%%02X" % byte)
    return "".join(out)


def _percent_decode(text):
    raw = text.replace("+", " ").encode("utf-8")
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == 0x25 and i + 2 < len(raw) and _is_hex(raw[i + 1 : i + 3]):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(c)
            i += 1
    return out.decode("utf-8", "replace")


def _is_hex(pair):
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)


def parse_query(query):
    """A query string or form body as a list of (name, value) pairs, decoded."""
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((_percent_decode(name), _percent_decode(value)))
    return pairs
