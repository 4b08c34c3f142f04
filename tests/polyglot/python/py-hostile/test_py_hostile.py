import unittest

import switchyard_sdk as sy
from switchyard_sdk import testing

import py_hostile


class PyHostileTest(unittest.TestCase):
    def test_harmless_payloads_are_delivered(self):
        for payload in (None, {"attack": "none"}, [1]):
            self.assertEqual(py_hostile.Outbound().deliver(testing.delivery(payload=payload)), sy.delivered())


if __name__ == "__main__":
    unittest.main()
