"""outcome_from_response and friends: the same rules as sdk/src/outcome.rs."""

import unittest

import switchyard_sdk as sy
from switchyard_sdk import testing
from switchyard_sdk.http import parse_http_date, retry_after_ms
from switchyard_sdk.outcome import body_excerpt, origin_of


def classify(status, body=b"", headers=None, now_ms=None):
    with testing.host(now_ms=now_ms):
        return sy.outcome_from_response(testing.response(status, body, headers))


class FromResponseTest(unittest.TestCase):
    def test_2xx_is_delivered_with_the_status(self):
        for status in (200, 201, 204, 299):
            self.assertEqual(classify(status, b"ignored"), sy.delivered(status))
        with testing.host():
            self.assertEqual(
                sy.outcome_from_response(testing.response(202, {"id": "m1"}), detail=lambda r: r.json()["id"]),
                sy.delivered(202, "m1"),
            )

    def test_408_429_and_5xx_retry_honouring_retry_after(self):
        for status in (408, 429, 500, 503, 599):
            self.assertEqual(classify(status), sy.retry(f"HTTP {status}", status=status))
        self.assertEqual(classify(429, b" slow down \n", {"Retry-After": "30"}), sy.retry("HTTP 429 (slow down)", after_ms=30_000, status=429))
        date = "Sun, 06 Nov 1994 08:49:37 GMT"
        at = 784111777 * 1000
        self.assertEqual(classify(503, headers=[("retry-after", date)], now_ms=at - 5000).value.after_ms, 5000)
        self.assertEqual(classify(503, headers=[("retry-after", date)], now_ms=at + 5000).value.after_ms, 0)
        self.assertIsNone(classify(503, headers=[("retry-after", "soon")]).value.after_ms)

    def test_410_fails_and_disables(self):
        self.assertEqual(classify(410, b"gone"), sy.failed("HTTP 410 (gone): the destination is gone", status=410, disable=True))
        self.assertEqual(sy.gone("bye"), sy.failed("bye", status=410, disable=True))

    def test_redirects_fail_naming_only_the_origin(self):
        outcome = classify(301, headers={"Location": "https://user:pw@hooks.example.com:8443/s/T0?t=1#f"})
        self.assertEqual(outcome, sy.failed("HTTP 301: redirect to https://hooks.example.com:8443 not followed", status=301))
        self.assertEqual(classify(302).value.reason, "HTTP 302: redirect to nowhere not followed")

    def test_other_statuses_fail(self):
        for status in (100, 400, 401, 404, 422):
            outcome = classify(status, b"x" * 300)
            self.assertEqual(outcome, sy.failed(f"HTTP {status} ({'x' * 200})", status=status))

    def test_fetch_errors(self):
        cases = {
            "timeout": sy.retry("timed out"),
            "connection": sy.retry("connection failed: refused"),
            "denied": sy.failed("request denied: refused"),
            "invalid-request": sy.failed("invalid request: refused"),
            "response-too-large": sy.failed("response body over the host's size cap"),
        }
        for kind, expected in cases.items():
            with testing.host(fetch=lambda req, kind=kind: testing.fetch_error(kind, "refused")):
                self.assertEqual(sy.outcome_from_fetch(sy.get("https://x.example/")), expected, kind)


class HelpersTest(unittest.TestCase):
    def test_origin_of(self):
        self.assertEqual(origin_of("https://user:pw@hooks.example.com:8443/services/T0/B0/XXXX?t=1#f"), "https://hooks.example.com:8443")
        self.assertEqual(origin_of("http://example.com"), "http://example.com")
        self.assertEqual(origin_of("/login?next=/x"), "a path on the same host")
        self.assertEqual(origin_of("secret-token"), "a path on the same host")

    def test_body_excerpt(self):
        self.assertEqual(body_excerpt(b""), "")
        self.assertEqual(body_excerpt(b"  \n"), "")
        self.assertEqual(body_excerpt("é".encode() * 150), " (" + "é" * 100 + ")")
        self.assertTrue(body_excerpt(b"a" * 199 + "é".encode()).endswith("\ufffd)"))

    def test_http_dates(self):
        for text in ("Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"):
            self.assertEqual(parse_http_date(text), 784111777, text)
        for text in ("", "Sun, 06 Nov 1994 08:49:37 UTC", "Xyz, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT"):
            self.assertIsNone(parse_http_date(text), text)
        self.assertEqual(parse_http_date("Thu, 29 Feb 2024 12:00:00 GMT"), 1709208000)
        self.assertEqual(retry_after_ms("120", now=0), 120_000)
        self.assertIsNone(retry_after_ms("-5", now=0))


if __name__ == "__main__":
    unittest.main()
