"""Runs on a normal Python: python -m unittest"""

import json
import unittest

import switchyard_sdk as sy
from switchyard_sdk import testing

import __MODULE__

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = 1_700_000_000


def signed(body, secret=SECRET):
    body = json.dumps(body).encode()
    return testing.request(body, headers=sy.webhooks.sign_headers(secret, "msg_1", NOW, body))


class AdapterTest(unittest.TestCase):
    def handle(self, request):
        with testing.host(secrets={"signing_secret": SECRET}, now_ms=NOW * 1000):
            return __MODULE__.Inbound().handle(request)

    def test_a_signed_notification_becomes_a_draft(self):
        [draft] = self.handle(signed({"kind": "build.failed", "payload": {"job": 7}}))
        self.assertEqual((draft.kind, json.loads(draft.payload), draft.idempotency_key), ("build.failed", {"job": 7}, "msg_1"))

    def test_a_wrong_signature_is_a_401(self):
        request = signed({"kind": "build.failed"}, secret="whsec_c2VjcmV0")
        rejection = testing.rejection_of(lambda: self.handle(request))
        self.assertEqual((rejection.status, rejection.code), (401, "invalid-signature"))

    def test_a_missing_kind_is_a_422_naming_it(self):
        rejection = testing.rejection_of(lambda: self.handle(signed({"payload": {}})))
        self.assertEqual((rejection.status, rejection.field), (422, "kind"))


if __name__ == "__main__":
    unittest.main()
