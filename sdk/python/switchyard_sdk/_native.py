"""A pure-Python stand-in for the bindings componentize-py generates, used when the SDK
is imported by a normal Python (unit tests, editors) instead of inside a component.

The classes mirror `wit_world.imports.types` field for field, and `host` answers from
`switchyard_sdk.testing`'s fake. `tests/test_native.py` checks the mirror against the
generated bindings whenever componentize-py is installed.
"""

import sys
import time
from dataclasses import dataclass
from enum import Enum
from typing import List, Optional, Tuple, Union


@dataclass
class Err(Exception):
    """The failure case of a WIT `result`, raised (as componentize-py does). Not frozen,
    unlike componentize-py's, so that contextlib can set its traceback in tests."""

    value: object
    __hash__ = Exception.__hash__


class _Types:
    """Namespace standing in for the `wit_world.imports.types` module."""

    class Transport(Enum):
        HTTP = 0
        WS_MESSAGE = 1
        GRAPHQL = 2

    @dataclass
    class Request:
        transport: "object"
        method: str
        path: str
        headers: List[Tuple[str, str]]
        query: str
        body: bytes

    @dataclass
    class Draft:
        kind: str
        attributes: List[Tuple[str, str]]
        payload: str
        idempotency_key: Optional[str]

    @dataclass
    class Rejection:
        status: int
        code: str
        message: str
        field: Optional[str]

    @dataclass
    class Notification:
        id: str
        kind: str
        source: str
        attributes: List[Tuple[str, str]]
        payload: str
        created_at_ms: int

    @dataclass
    class Delivery:
        notification: "object"
        attempt: int
        channel: str

    @dataclass
    class Receipt:
        status: Optional[int]
        detail: Optional[str]

    @dataclass
    class RetryHint:
        status: Optional[int]
        after_ms: Optional[int]
        reason: str

    @dataclass
    class Failure:
        status: Optional[int]
        reason: str
        disable: bool

    @dataclass
    class Outcome_Delivered:
        value: "object"

    @dataclass
    class Outcome_Retry:
        value: "object"

    @dataclass
    class Outcome_Failed:
        value: "object"

    class Level(Enum):
        TRACE = 0
        DEBUG = 1
        INFO = 2
        WARN = 3
        ERROR = 4

    @dataclass
    class HttpRequest:
        method: str
        url: str
        headers: List[Tuple[str, str]]
        body: bytes
        timeout_ms: Optional[int]

    @dataclass
    class HttpResponse:
        status: int
        headers: List[Tuple[str, str]]
        body: bytes

    @dataclass
    class FetchError_Denied:
        value: str

    @dataclass
    class FetchError_InvalidRequest:
        value: str

    @dataclass
    class FetchError_Timeout:
        pass

    @dataclass
    class FetchError_Connection:
        value: str

    @dataclass
    class FetchError_ResponseTooLarge:
        pass

    @dataclass
    class TransformContext:
        route: str
        channel: str
        attempt: int

    @dataclass
    class Transformed_Keep:
        value: "object"

    @dataclass
    class Transformed_Drop:
        value: str

    @dataclass
    class Transformed_Split:
        value: List["object"]

    @dataclass
    class TransformError:
        reason: str
        retry: bool

    @dataclass
    class PluginInfo:
        name: str
        version: str
        description: str


types = _Types
types.Outcome = Union[types.Outcome_Delivered, types.Outcome_Retry, types.Outcome_Failed]
types.FetchError = Union[
    types.FetchError_Denied,
    types.FetchError_InvalidRequest,
    types.FetchError_Timeout,
    types.FetchError_Connection,
    types.FetchError_ResponseTooLarge,
]
types.Transformed = Union[types.Transformed_Keep, types.Transformed_Drop, types.Transformed_Split]


class FakeHost:
    """What the `host` import answers outside a component. `switchyard_sdk.testing`
    swaps in another instance for the length of a test."""

    def __init__(self, config="{}", secrets=None, now_ms=None, fetch=None, echo=True):
        self.config_text = config
        self.secrets = dict(secrets or {})
        self.now_value = now_ms
        self.fetch_handler = fetch
        self.echo = echo
        self.logs = []  # (level name, message), in order
        self.requests = []  # every HttpRequest passed to fetch


class _Host:
    """Module-like object standing in for `wit_world.imports.host`."""

    fake = FakeHost(echo=False)

    def log(self, level, message):
        self.fake.logs.append((level.name.lower(), message))
        if self.fake.echo:
            print(f"[{level.name.lower()}] {message}", file=sys.stderr)

    def config(self):
        return self.fake.config_text

    def secret(self, name):
        return self.fake.secrets.get(name)

    def now(self):
        if self.fake.now_value is not None:
            return self.fake.now_value
        return int(time.time() * 1000)

    def fetch(self, request):
        self.fake.requests.append(request)
        if self.fake.fetch_handler is None:
            raise Err(types.FetchError_Denied("no fetch handler in this test (switchyard_sdk.testing.host(fetch=...))"))
        answer = self.fake.fetch_handler(request)
        if isinstance(answer, Err):
            raise answer
        return answer


host = _Host()
