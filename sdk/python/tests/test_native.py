"""The pure-Python stand-in (_native) must mirror what componentize-py generates from
wit/plugin.wit, field for field. Skipped when componentize-py is not installed."""

import dataclasses
import enum
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from switchyard_sdk import _native

HERE = os.path.dirname(os.path.abspath(__file__))
WIT = os.path.join(HERE, "..", "..", "..", "wit", "plugin.wit")


def componentize_py():
    venv = os.environ.get("SWITCHYARD_PYTHON_VENV", os.path.expanduser("~/.cache/switchyard/venv"))
    for candidate in (shutil.which("componentize-py"), os.path.join(venv, "bin", "componentize-py")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


@unittest.skipIf(componentize_py() is None or not os.path.exists(WIT), "componentize-py or wit/plugin.wit not found")
class NativeMirrorTest(unittest.TestCase):
    def test_native_types_match_the_generated_bindings(self):
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([componentize_py(), "-d", WIT, "-w", "transform", "bindings", out], check=True, capture_output=True)
            sys.path.insert(0, out)
            try:
                generated = importlib.import_module("wit_world.imports.types")
                names = [n for n, v in vars(generated).items() if isinstance(v, type) and v.__module__ == generated.__name__]
                self.assertTrue(names)
                for name in names:
                    real, mirror = getattr(generated, name), getattr(_native.types, name, None)
                    self.assertIsNotNone(mirror, f"_native.types lacks {name}")
                    if issubclass(real, enum.Enum):
                        self.assertEqual([(m.name, m.value) for m in real], [(m.name, m.value) for m in mirror], name)
                    else:
                        self.assertEqual([f.name for f in dataclasses.fields(real)], [f.name for f in dataclasses.fields(mirror)], name)
            finally:
                sys.path.remove(out)
                for mod in [m for m in sys.modules if m == "wit_world" or m.startswith("wit_world.") or m.startswith("componentize_py")]:
                    del sys.modules[mod]


if __name__ == "__main__":
    unittest.main()
