"""Does what `switchyard plugin new NAME --kind KIND --lang python` does, so the test
plugins are built exactly as a scaffolded project is:

    python3 scaffold.py NAME KIND DEST [OVERLAY]

writes sdk/python/scaffold/common/** then sdk/python/scaffold/KIND/** into DEST, with
__NAME__, __MODULE__ and __WORLD__ replaced in file names and contents, then
sdk/python/switchyard_sdk/ into DEST/switchyard_sdk/ and wit/plugin.wit into
DEST/wit/plugin.wit. OVERLAY, when given, is a directory whose files are copied on top
(a test plugin's own sources).
"""

import os
import shutil
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TEMPLATES = os.path.join(REPO, "sdk", "python", "scaffold")
SDK = os.path.join(REPO, "sdk", "python", "switchyard_sdk")
WIT = os.path.join(REPO, "wit", "plugin.wit")


def substitute(text, name, kind):
    return text.replace("__NAME__", name).replace("__MODULE__", name.replace("-", "_")).replace("__WORLD__", kind)


def copy_tree(src, dest, name, kind):
    for root, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        rel = os.path.relpath(root, src)
        for file in files:
            target = os.path.join(dest, substitute(os.path.join(rel, file), name, kind))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(os.path.join(root, file), encoding="utf-8") as f:
                text = f.read()
            with open(target, "w", encoding="utf-8") as f:
                f.write(substitute(text, name, kind))


def main(name, kind, dest, overlay=None):
    assert kind in ("adapter", "channel", "transform"), kind
    os.makedirs(dest, exist_ok=True)
    copy_tree(os.path.join(TEMPLATES, "common"), dest, name, kind)
    copy_tree(os.path.join(TEMPLATES, kind), dest, name, kind)
    shutil.copytree(SDK, os.path.join(dest, "switchyard_sdk"), ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    os.chmod(os.path.join(dest, "build.sh"), 0o755)  # as the Rust scaffold does
    os.makedirs(os.path.join(dest, "wit"), exist_ok=True)
    shutil.copyfile(WIT, os.path.join(dest, "wit", "plugin.wit"))
    if overlay:
        for root, dirs, files in os.walk(overlay):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for file in files:
                if file == "KIND":
                    continue
                src = os.path.join(root, file)
                target = os.path.join(dest, os.path.relpath(src, overlay))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(src, target)


if __name__ == "__main__":
    main(*sys.argv[1:])
