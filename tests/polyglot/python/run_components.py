"""Runs the built Python test plugins in wasmtime (the `wasmtime` PyPI package), with a
stand-in for the Switchyard host, the way the hub calls them: a fresh instance per call,
WASI with nothing granted, a memory cap and a CPU deadline.

    $SWITCHYARD_PYTHON_VENV/bin/python run_components.py OUTDIR

Needs `pip install wasmtime==50.0.1` in that venv. It checks each plugin's answers and
prints compile time, instantiation and per-call times and the linear memory a call
leaves, a quick way to see what the Rust host will see. The Rust host's tests are the
real check; this one needs no hub.
"""

import json
import os
import statistics
import sys
import threading
import time
from types import SimpleNamespace

import wasmtime
from wasmtime import component as cm

MEMORY_CAP = 64 * 1024 * 1024
CPU_DEADLINE_MS = 200
NOW_MS = 1_700_000_000_000
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PKG = "switchyard:plugin"
VERSION = "0.2.0"


def record(**fields):
    r = cm.Record()
    for k, v in fields.items():
        setattr(r, k.replace("_", "-"), v)
    return r


def get(r, name):
    return getattr(r, name.replace("_", "-"))


class Host:
    """The `host` import: answers from this object; records logs and fetches."""

    def __init__(self, config=None, secrets=None, answer=None):
        self.config = json.dumps(config or {})
        self.secrets = secrets or {}
        self.answer = answer
        self.logs = []
        self.fetched = []


def make_engine():
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.cache = True
    return wasmtime.Engine(config)


def linker_for(engine, box):
    linker = cm.Linker(engine)
    linker.add_wasip2()
    with linker.root() as root:
        with root.add_instance(f"{PKG}/host@{VERSION}") as host:
            host.add_func("log", lambda store, level, message: box.host.logs.append((level, message)))
            host.add_func("config", lambda store: box.host.config)
            host.add_func("secret", lambda store, name: box.host.secrets.get(name))
            host.add_func("now", lambda store: NOW_MS)

            def fetch(store, request):
                box.host.fetched.append(request)
                return box.host.answer
            host.add_func("fetch", fetch)
    return linker


def call(engine, linker, comp, box, host, interface, func, *args):
    """One call on a fresh instance. Returns (value or exception, seconds, memory bytes)."""
    box.host = host
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    store.set_limits(memory_size=MEMORY_CAP)
    store.set_epoch_deadline(CPU_DEADLINE_MS)
    started = time.perf_counter()
    try:
        instance = linker.instantiate(store, comp)
        iface = instance.get_export_index(store, f"{PKG}/{interface}@{VERSION}")
        f = instance.get_func(store, instance.get_export_index(store, func, iface))
        value = f(store, *args)
        f.post_return(store)
    except Exception as e:  # a trap, the deadline, the memory cap
        value = e
    elapsed = time.perf_counter() - started
    return value, elapsed


def delivery(payload, kind="invoice.paid"):
    n = record(id="ntf_1", kind=kind, source="test", attributes=[("region", "eu")], payload=json.dumps(payload), created_at_ms=NOW_MS)
    return record(notification=n, attempt=1, channel="test")


def main(out):
    engine = make_engine()
    stop = threading.Event()

    def tick():  # 1 ms epochs, as the hub's ticker
        while not stop.wait(0.001):
            engine.increment_epoch()

    threading.Thread(target=tick, daemon=True).start()
    box = SimpleNamespace(host=None)
    linker = linker_for(engine, box)
    failures = []

    def expect(label, ok, detail=""):
        print(("ok   " if ok else "FAIL ") + label + (f"  ({detail})" if detail else ""))
        if not ok:
            failures.append(label)

    def load(name):
        started = time.perf_counter()
        comp = cm.Component.from_file(engine, os.path.join(out, f"{name}.wasm"))
        print(f"{name}: {os.path.getsize(os.path.join(out, name + '.wasm'))} bytes, loaded in {time.perf_counter() - started:.2f}s")
        return comp

    comp = load("py-trivial")
    info, _ = call(engine, linker, comp, box, Host(), "outbound", "info")
    expect("py-trivial info", get(info, "name") == "py-trivial", info)
    times = []
    for _ in range(30):
        value, elapsed = call(engine, linker, comp, box, Host(), "outbound", "deliver", delivery({}))
        times.append(elapsed)
    expect("py-trivial delivers", getattr(value, "tag", None) == "delivered", value)
    print(f"py-trivial: instantiate+deliver median {statistics.median(times) * 1000:.2f} ms, min {min(times) * 1000:.2f} ms over {len(times)}")

    # The smallest memory cap under which a trivial call still succeeds.
    global MEMORY_CAP
    cap = MEMORY_CAP
    for mib in (8, 12, 16, 20, 24, 32, 40, 48):
        MEMORY_CAP = mib << 20
        value, _ = call(engine, linker, comp, box, Host(), "outbound", "deliver", delivery({}))
        if getattr(value, "tag", None) == "delivered":
            print(f"py-trivial: runs under a memory cap of {mib} MiB, not under the one before")
            break
    MEMORY_CAP = cap

    comp = load("py-channel")
    answer = record(status=503, headers=[("retry-after", "7")], body=b"busy")
    host = Host({"url": "https://hooks.example.com/x"}, {"signing_key": SECRET}, answer)
    value, elapsed = call(engine, linker, comp, box, host, "outbound", "deliver", delivery({"a": 1}))
    expect("py-channel maps 503 to retry after 7s", getattr(value, "tag", None) == "retry" and get(value.payload, "after_ms") == 7000, vars(getattr(value, "payload", value)) if hasattr(value, "payload") else value)
    if host.fetched:
        req = host.fetched[0]
        headers = dict(req.headers)
        body = bytes(req.body)
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "sdk", "python"))
        from switchyard_sdk import webhooks
        try:
            webhooks.verify_headers([SECRET], req.headers, body, NOW_MS // 1000)
            expect("py-channel signature verifies", True)
        except webhooks.VerifyError as e:
            expect("py-channel signature verifies", False, e)
        expect("py-channel body", json.loads(body)["data"] == {"a": 1} and headers["content-type"] == "application/json", body)
    else:
        expect("py-channel fetched", False, host.logs)
    host = Host({"url": "https://hooks.example.com/x"}, {}, answer)
    value, _ = call(engine, linker, comp, box, host, "outbound", "deliver", delivery({"a": 1}))
    expect("py-channel without signing_key fails", getattr(value, "tag", None) == "failed", value)

    comp = load("py-adapter")
    from switchyard_sdk import webhooks
    body = json.dumps({"kind": "order.created", "payload": {"id": 3}}).encode()
    headers = webhooks.sign_headers(SECRET, "msg_1", NOW_MS // 1000, body)

    def request(body, headers):
        return record(transport="http", method="POST", path="/hooks/x", headers=headers, query="", body=body)

    value, elapsed = call(engine, linker, comp, box, Host(secrets={"secret": SECRET}), "inbound", "handle", request(body, headers))
    ok = isinstance(value, list) and len(value) == 1 and get(value[0], "kind") == "order.created" and get(value[0], "idempotency_key") == "msg_1"
    expect("py-adapter makes one draft", ok, value if not ok else f"{elapsed * 1000:.1f} ms")
    bad = webhooks.sign_headers("whsec_c2VjcmV0", "msg_1", NOW_MS // 1000, body)
    value, _ = call(engine, linker, comp, box, Host(secrets={"secret": SECRET}), "inbound", "handle", request(body, bad))
    # result<list<draft>, rejection> lifts untagged: the rejection record itself
    expect("py-adapter bad signature is a 401", getattr(value, "status", None) == 401 and getattr(value, "code", None) == "invalid-signature", getattr(value, "__dict__", value))
    garbage = b"{nope"
    value, _ = call(engine, linker, comp, box, Host(secrets={"secret": SECRET}), "inbound", "handle", request(garbage, webhooks.sign_headers(SECRET, "m", NOW_MS // 1000, garbage)))
    expect("py-adapter bad JSON is a 400", getattr(value, "status", None) == 400 and getattr(value, "code", None) == "invalid-json", getattr(value, "__dict__", value))

    comp = load("py-hostile")
    for attack in ("loop", "memory"):
        value, elapsed = call(engine, linker, comp, box, Host(), "outbound", "deliver", delivery({"attack": attack}))
        expect(f"py-hostile {attack} is stopped", isinstance(value, Exception), f"{type(value).__name__} after {elapsed * 1000:.0f} ms: {str(value).splitlines()[0] if str(value) else ''}")
    value, _ = call(engine, linker, comp, box, Host(), "outbound", "deliver", delivery({}))
    expect("py-hostile otherwise delivers", getattr(value, "tag", None) == "delivered", value)

    if os.path.exists(os.path.join(out, "py-transform.wasm")):
        comp = load("py-transform")
        n = get(delivery({"items": [1, 2]}), "notification")
        ctx = record(route="r", channel="c", attempt=1)
        value, _ = call(engine, linker, comp, box, Host(), "transformer", "transform", n, ctx)
        # result<transformed, ...> lifts tagged ok/err; transformed itself untagged (a list is a split)
        expect("py-transform splits", getattr(value, "tag", None) == "ok" and isinstance(value.payload, list) and len(value.payload) == 2, getattr(value, "__dict__", value))

    stop.set()
    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
