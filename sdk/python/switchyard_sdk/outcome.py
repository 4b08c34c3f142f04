"""Outcomes: what a channel says happened to one delivery attempt, and the one place
that maps an HTTP answer to an outcome, so every HTTP channel treats destinations alike.

    return delivered()                      # the destination took it
    return retry("rate limited", after_ms=30_000)
    return failed("the payload has no `to` field")
    return outcome_from_response(response)  # 2xx / 408, 429, 5xx / 410 / other
"""

from ._wit import types
from .http import FetchError, fetch

Delivered = types.Outcome_Delivered
Retry = types.Outcome_Retry
Failed = types.Outcome_Failed


def delivered(status=None, detail=None):
    """The destination took the notification; `detail` (such as the provider's message
    id) goes into the attempt record."""
    return types.Outcome_Delivered(types.Receipt(status, detail))


def retry(reason, after_ms=None, status=None):
    """A transient failure: try again on the channel's retry schedule, or no sooner than
    `after_ms` from now."""
    return types.Outcome_Retry(types.RetryHint(status, after_ms, str(reason)))


def failed(reason, status=None, disable=False):
    """A permanent failure: stop retrying and dead-letter the delivery. `disable` asks
    the host to stop sending to this destination altogether."""
    return types.Outcome_Failed(types.Failure(status, str(reason), bool(disable)))


def gone(reason):
    """The destination is gone for good (HTTP 410): fail, and ask the host to disable it."""
    return failed(reason, status=410, disable=True)


def outcome_from_response(response, detail=None):
    """Classifies an HTTP answer the way Switchyard's HTTP channels agree on: 2xx
    delivered; 408, 429 and 5xx retry, honouring `Retry-After`; 410 failed with a disable
    hint; any other status (3xx included: redirects are never followed) failed.

    `detail` is a string, or a function of the response returning one, for the receipt of
    a delivered answer."""
    status = response.status
    summary = f"HTTP {status}{body_excerpt(response.body)}"
    if 200 <= status <= 299:
        if callable(detail):
            detail = detail(response)
        return delivered(status, detail)
    if status == 410:
        return failed(f"{summary}: the destination is gone", status, disable=True)
    if status in (408, 429) or 500 <= status <= 599:
        return retry(summary, after_ms=response.retry_after_ms(), status=status)
    if 300 <= status <= 399:
        location = response.header("location")
        where = "nowhere" if location is None else origin_of(location)
        return failed(f"{summary}: redirect to {where} not followed", status)
    return failed(summary, status)


def outcome_from_error(error):
    """Classifies a FetchError: a timeout or a connection error is worth a retry; a
    denied or malformed request never gets better, so it fails."""
    if error.retryable:
        return retry(error.describe())
    return failed(error.describe())


def outcome_from_fetch(request, detail=None):
    """Sends `request` and classifies what came back: an answer as in
    outcome_from_response, a FetchError as in outcome_from_error."""
    try:
        response = fetch(request)
    except FetchError as error:
        return outcome_from_error(error)
    return outcome_from_response(response, detail)


def origin_of(location):
    """Where a redirect points, by scheme, host and port only: a `Location` can carry a
    credential, and the reason lands in logs."""
    scheme, sep, rest = location.partition("://")
    if sep and scheme and all(c.isascii() and (c.isalnum() or c in "+-.") for c in scheme):
        authority = rest
        for stop in "/?#":
            authority = authority.split(stop, 1)[0]
        host = authority.rsplit("@", 1)[-1]
        return f"{scheme}://{host}"
    return "a path on the same host"


def body_excerpt(body, limit=200):
    """The start of a response body, for the attempt record: ` (text)` or empty."""
    text = bytes(body[:limit]).decode("utf-8", "replace").strip()
    return f" ({text})" if text else ""
