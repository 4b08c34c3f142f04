import json
import unittest

import switchyard_sdk as sy
from switchyard_sdk import testing

import py_channel

KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class PyChannelTest(unittest.TestCase):
    def deliver(self, answer, **host):
        with testing.host(fetch=lambda req: answer, **host) as fake:
            outcome = py_channel.Outbound().deliver(testing.delivery(kind="invoice.paid", payload={"n": 1}, attributes={"region": "eu"}))
        return outcome, fake

    def test_posts_a_signed_body_that_verifies(self):
        outcome, fake = self.deliver(testing.response(200), config={"url": "https://h.example/x"}, secrets={"signing_key": KEY}, now_ms=1_700_000_000_000)
        self.assertEqual(outcome, sy.delivered(200))
        [req] = fake.requests
        sy.webhooks.verify_headers([KEY], req.headers, req.body, 1_700_000_000)
        body = json.loads(req.body)
        self.assertEqual((body["type"], body["data"], body["attributes"]), ("invoice.paid", {"n": 1}, {"region": "eu"}))
        self.assertEqual(body["timestamp"], "1970-01-01T00:00:00.000Z")

    def test_maps_the_answer(self):
        outcome, _ = self.deliver(testing.response(410), config={"url": "https://h.example/x"}, secrets={"signing_key": KEY})
        self.assertTrue(outcome.value.disable)

    def test_fails_without_a_key(self):
        outcome, fake = self.deliver(testing.response(200), config={"url": "https://h.example/x"})
        self.assertIsInstance(outcome, sy.Failed)
        self.assertEqual(fake.requests, [])


if __name__ == "__main__":
    unittest.main()
