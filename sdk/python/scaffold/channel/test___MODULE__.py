"""Runs on a normal Python: python -m unittest"""

import unittest

import switchyard_sdk as sy
from switchyard_sdk import testing

import __MODULE__


class ChannelTest(unittest.TestCase):
    def test_a_2xx_is_delivered(self):
        with testing.host(config={"url": "https://hooks.example.com/x"}, fetch=lambda req: testing.response(204)) as fake:
            outcome = __MODULE__.Outbound().deliver(testing.delivery(kind="invoice.paid", payload={"n": 1}))
        self.assertEqual(outcome, sy.delivered(204))
        self.assertEqual(fake.requests[0].url, "https://hooks.example.com/x")

    def test_a_503_is_retried_after_the_retry_after(self):
        answer = testing.response(503, headers={"retry-after": "30"})
        with testing.host(config={"url": "https://hooks.example.com/x"}, fetch=lambda req: answer):
            outcome = __MODULE__.Outbound().deliver(testing.delivery())
        self.assertIsInstance(outcome, sy.Retry)
        self.assertEqual(outcome.value.after_ms, 30_000)

    def test_without_a_url_the_delivery_fails(self):
        with testing.host(config={}):
            outcome = __MODULE__.Outbound().deliver(testing.delivery())
        self.assertIsInstance(outcome, sy.Failed)


if __name__ == "__main__":
    unittest.main()
