import json
import unittest

import switchyard_sdk as sy
from switchyard_sdk import testing

import py_adapter

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = 1_700_000_000


def request(body, secret=SECRET):
    body = body if isinstance(body, bytes) else json.dumps(body).encode()
    return testing.request(body, headers=sy.webhooks.sign_headers(secret, "msg_1", NOW, body))


class PyAdapterTest(unittest.TestCase):
    def handle(self, req):
        with testing.host(secrets={"secret": SECRET}, now_ms=NOW * 1000):
            return py_adapter.Inbound().handle(req)

    def test_one_draft(self):
        [d] = self.handle(request({"kind": "order.created", "payload": {"id": 3}}))
        self.assertEqual((d.kind, d.payload, d.idempotency_key), ("order.created", '{"id":3}', "msg_1"))

    def test_bad_signature_is_401(self):
        r = testing.rejection_of(lambda: self.handle(request({"kind": "a"}, secret="whsec_c2VjcmV0")))
        self.assertEqual((r.status, r.code), (401, "invalid-signature"))

    def test_bad_json_is_400(self):
        r = testing.rejection_of(lambda: self.handle(request(b"{nope")))
        self.assertEqual((r.status, r.code), (400, "invalid-json"))


if __name__ == "__main__":
    unittest.main()
