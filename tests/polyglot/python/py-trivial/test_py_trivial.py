import unittest

import switchyard_sdk as sy
from switchyard_sdk import testing

import py_trivial


class PyTrivialTest(unittest.TestCase):
    def test_delivers(self):
        self.assertEqual(py_trivial.Outbound().deliver(testing.delivery()), sy.delivered())
        self.assertEqual(py_trivial.Outbound().info().name, "py-trivial")


if __name__ == "__main__":
    unittest.main()
