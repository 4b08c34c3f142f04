"""Runs on a normal Python: python -m unittest"""

import unittest

import switchyard_sdk as sy
from switchyard_sdk import testing

import __MODULE__


class TransformTest(unittest.TestCase):
    def run_transform(self, notification, config=None):
        with testing.host(config=config or {}):
            return __MODULE__.Transformer().transform(notification, testing.context())

    def test_filtered_kinds_are_dropped(self):
        result = self.run_transform(testing.notification(kind="test.ping"), {"drop_kinds": ["test.ping"]})
        self.assertIsInstance(result, sy.Drop)

    def test_items_are_split(self):
        result = self.run_transform(testing.notification(payload={"items": [1, 2, 3]}))
        self.assertIsInstance(result, sy.Split)
        self.assertEqual([n.payload for n in result.value], ["1", "2", "3"])

    def test_others_are_kept_and_stamped(self):
        result = self.run_transform(testing.notification(payload={"a": 1}))
        self.assertIsInstance(result, sy.Keep)
        self.assertEqual(result.value.attribute("transformed-by"), "__NAME__")

    def test_a_payload_that_is_not_json_is_a_permanent_error(self):
        n = testing.notification()
        n.payload = "{"
        error = testing.rejection_of(lambda: self.run_transform(n))
        self.assertEqual(error.retry, False)


if __name__ == "__main__":
    unittest.main()
