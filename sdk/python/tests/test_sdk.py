"""Rejections, drafts, transforms, config and the export shims, on a normal Python."""

import json
import unittest

import switchyard_sdk as sy
from switchyard_sdk import drafts, testing
from switchyard_sdk._wit import types


class RejectionTest(unittest.TestCase):
    def test_builders(self):
        self.assertEqual(sy.bad_request("invalid-json", "no").to_wit(), types.Rejection(400, "invalid-json", "no", None))
        self.assertEqual(sy.unauthorized("bad sig").to_wit(), types.Rejection(401, "invalid-signature", "bad sig", None))
        self.assertEqual(sy.invalid_field("a.b", "is required").to_wit(), types.Rejection(422, "invalid-field", "a.b: is required", "a.b"))
        self.assertEqual(sy.Rejection.new(413, "too-big", "x").with_field("body").field, "body")
        self.assertEqual((sy.forbidden("no").status, sy.payload_too_large("big").status), (403, 413))


class DraftsTest(unittest.TestCase):
    def test_draft_builder(self):
        d = sy.draft("invoice.paid", {"a": 1}, attributes={"n": 3, "ok": True}, idempotency_key="k")
        self.assertEqual(d, types.Draft("invoice.paid", [("n", "3"), ("ok", "true")], '{"a":1}', "k"))
        self.assertEqual(sy.draft("x").payload, "null")

    def test_json_shapes_as_the_rust_sdk(self):
        [d] = drafts.from_json_body(b'{"kind":"invoice.paid","attributes":{"severity":"critical","n":3,"ok":true},"payload":{"a":1},"idempotency_key":"k1"}')
        self.assertEqual((d.kind, d.payload, d.idempotency_key), ("invoice.paid", '{"a":1}', "k1"))
        self.assertIn(("n", "3"), d.attributes)
        self.assertIn(("ok", "true"), d.attributes)
        self.assertEqual(len(drafts.from_json_body(b'[{"kind":"a"},{"kind":"b"}]')), 2)
        self.assertEqual(drafts.from_json_body(b'{"notifications":[{"kind":"a"}]}')[0].payload, "null")

    def test_errors_name_the_field(self):
        def rejection(body):
            with self.assertRaises(sy.Rejection) as caught:
                drafts.from_json_body(body.encode())
            return caught.exception

        r = rejection('{"notifications":[{"kind":"a"},{"kind":7}]}')
        self.assertEqual((r.status, r.field), (422, "notifications[1].kind"))
        self.assertIn("must be a string, not a number", r.message)
        self.assertEqual(rejection('{"payload":{}}').field, "kind")
        self.assertEqual(rejection('{"kind":"a","attributes":{"x":{"deep":1}}}').field, "attributes.x")
        self.assertEqual(rejection('{"kind":"a","colour":"red"}').field, "colour")
        self.assertIn("' '", rejection('{"kind":"a b"}').message)
        r = rejection('{"kind": "a",}')
        self.assertEqual((r.status, r.code), (400, "invalid-json"))
        self.assertIn("line 1", r.message)
        self.assertEqual(rejection("[]").field, "$")
        self.assertEqual(rejection("42").field, "$")
        self.assertEqual(rejection("[1]").field, "[0]")
        self.assertEqual(rejection('{"kind":"a","payload":NaN}').code, "invalid-json")
        over = "é" * 257
        self.assertEqual(rejection(json.dumps({"kind": "a", "idempotency_key": over})).field, "idempotency_key")
        self.assertEqual(len(drafts.from_json_body(json.dumps({"kind": "a", "idempotency_key": "é" * 256}).encode())), 1)
        self.assertEqual(len(drafts.from_json_object(b'{"kind":"a"}')), 1)
        self.assertEqual(len(drafts.from_json_batch(b'{"notifications":[{"kind":"a"},{"kind":"b"}]}')), 2)
        with self.assertRaises(sy.Rejection) as caught:
            drafts.from_json_batch(b"{}")
        self.assertEqual(caught.exception.field, "notifications")


class TransformTest(unittest.TestCase):
    def test_results(self):
        n = testing.notification(kind="a", payload={"x": 1})
        kept = sy.keep(n, kind="b", payload=[1], attributes={"k": "v"})
        self.assertEqual((kept.value.kind, kept.value.payload, kept.value.attributes, kept.value.id), ("b", "[1]", [("k", "v")], n.id))
        self.assertEqual(n.kind, "a")  # the original is untouched
        self.assertEqual(sy.drop("filtered"), types.Transformed_Drop("filtered"))
        self.assertEqual(len(sy.split([n, n]).value), 2)
        with self.assertRaises(sy.TransformError):
            sy.split([n] * 101)
        self.assertEqual(sy.TransformError.retry_later("t").to_wit(), types.TransformError("t", True))
        self.assertEqual(sy.TransformError.fail("f").to_wit(), types.TransformError("f", False))


class HostTest(unittest.TestCase):
    def test_config_secrets_time_and_logs(self):
        with testing.host(config={"url": "u"}, secrets={"k": "v"}, now_ms=5_500) as fake:
            self.assertEqual(sy.config(), {"url": "u"})
            self.assertEqual(sy.config_value("url"), "u")
            self.assertEqual(sy.config_value("missing", 3), 3)
            with self.assertRaises(sy.ConfigError):
                sy.config_value("missing")
            self.assertEqual((sy.secret("k"), sy.secret("nope")), ("v", None))
            with self.assertRaises(sy.ConfigError):
                sy.require_secret("nope")
            self.assertEqual((sy.now_ms(), sy.now_secs()), (5_500, 5))
            sy.info("posting %s", "n1")
            sy.warn("careful")
            sy.log("debug", "raw %d%%", 5)
        self.assertEqual(fake.logs, [("info", "posting n1"), ("warn", "careful"), ("debug", "raw 5%")])
        with testing.host(config="{not json"):
            with self.assertRaises(sy.ConfigError) as caught:
                sy.config()
            self.assertIn("invalid plugin config", str(caught.exception))

    def test_http_builder(self):
        with testing.host(fetch=lambda req: testing.response(200, b'{"ok":1}', {"X-A": "b"})) as fake:
            resp = sy.post("https://x.example/p").bearer("t").json({"a": "é"}).timeout_ms(500).send()
            sy.put("https://x.example/f").form({"a b": "c&d", "e": "ü"}).send()
            sy.get("https://x.example/g").basic_auth("u", "p").send()
        self.assertTrue(resp.ok)
        self.assertEqual((resp.header("x-a"), resp.json(), resp.text()), ("b", {"ok": 1}, '{"ok":1}'))
        first, second, third = fake.requests
        self.assertEqual((first.method, first.body, first.timeout_ms), ("POST", '{"a":"é"}'.encode(), 500))
        self.assertIn(("authorization", "Bearer t"), first.headers)
        self.assertIn(("content-type", "application/json"), first.headers)
        self.assertEqual(second.body, b"a+b=c%26d&e=%C3%BC")
        self.assertIn(("authorization", "Basic dTpw"), third.headers)
        with testing.host(fetch=lambda req: testing.fetch_error("timeout")):
            with self.assertRaises(sy.FetchError) as caught:
                sy.get("https://x.example/").send()
        self.assertEqual((caught.exception.kind, caught.exception.retryable, str(caught.exception)), ("timeout", True, "timed out"))

    def test_request_helpers(self):
        req = testing.request(b'{"a":1}', {"Content-Type": "application/json"}, query="a=1&b=x+y%21&c")
        self.assertEqual((req.header("content-type"), req.json(), req.text()), ("application/json", {"a": 1}, '{"a":1}'))
        self.assertEqual(req.query_params(), [("a", "1"), ("b", "x y!"), ("c", "")])
        with self.assertRaises(sy.Rejection) as caught:
            testing.request(b"\xff").text()
        self.assertEqual((caught.exception.status, caught.exception.code), (400, "invalid-encoding"))
        n = testing.notification(attributes=[("a", "1"), ("a", "2")])
        self.assertEqual((n.attribute("a"), n.attributes_dict()), ("1", {"a": "1"}))


class ExportTest(unittest.TestCase):
    def test_channel_exports_map_exceptions(self):
        class C(sy.Channel):
            """Says hello."""

            name = "c"

            def deliver(self, delivery):
                mode = delivery.notification.payload_json()
                if mode == "config":
                    sy.config_value("url")
                if mode == "fetch":
                    sy.get("https://x.example/").send()
                if mode == "boom":
                    raise RuntimeError("boom")
                if mode == "none":
                    return None
                return sy.delivered()

        Outbound = sy.export_channel(C)
        self.assertEqual(Outbound().info(), types.PluginInfo("c", "0.1.0", "Says hello."))
        with testing.host(fetch=lambda req: testing.fetch_error("connection", "refused")) as fake:
            self.assertEqual(Outbound().deliver(testing.delivery(payload="ok")), sy.delivered())
            self.assertEqual(Outbound().deliver(testing.delivery(payload="config")), sy.failed("invalid plugin config: `url` is required"))
            self.assertEqual(Outbound().deliver(testing.delivery(payload="fetch")), sy.retry("connection failed: refused"))
            with self.assertRaises(RuntimeError):
                Outbound().deliver(testing.delivery(payload="boom"))
            with self.assertRaises(TypeError):
                Outbound().deliver(testing.delivery(payload="none"))
        self.assertIn("RuntimeError: boom", fake.logs[0][1])
        self.assertEqual(fake.logs[0][0], "error")

    def test_function_exports_need_a_name(self):
        def deliver(delivery):
            """Delivers."""
            return sy.delivered()

        self.assertEqual(sy.export_channel(deliver, name="f")().info(), types.PluginInfo("f", "0.1.0", "Delivers."))
        with self.assertRaises(TypeError):
            sy.export_channel(deliver)

    def test_adapter_and_transform_exports(self):
        def handle(request):
            if request.body == b"no":
                raise sy.unauthorized("no")
            if request.body == b"one":
                return sy.draft("a")
            return sy.drafts.from_json_body(request.body)

        Inbound = sy.export_adapter(handle, name="a")
        self.assertEqual(Inbound().handle(testing.request(b"one")), [sy.draft("a")])
        self.assertEqual(len(Inbound().handle(testing.request(b'[{"kind":"a"},{"kind":"b"}]'))), 2)
        self.assertEqual(testing.rejection_of(lambda: Inbound().handle(testing.request(b"no"))).status, 401)
        self.assertEqual(testing.rejection_of(lambda: Inbound().handle(testing.request(b"{"))).status, 400)

        def transform(notification, context):
            if notification.kind == "drop":
                return sy.drop("x")
            if notification.kind == "retry":
                raise sy.TransformError.retry_later("later")
            if notification.kind == "config":
                sy.config_value("needed")
            return notification

        Transformer = sy.export_transform(transform, name="t")
        ctx = testing.context()
        with testing.host():
            self.assertEqual(Transformer().transform(testing.notification(kind="drop"), ctx), sy.drop("x"))
            n = testing.notification(kind="keep")
            self.assertEqual(Transformer().transform(n, ctx), types.Transformed_Keep(n))
            self.assertEqual(testing.rejection_of(lambda: Transformer().transform(testing.notification(kind="retry"), ctx)), types.TransformError("later", True))
            self.assertEqual(testing.rejection_of(lambda: Transformer().transform(testing.notification(kind="config"), ctx)).retry, False)


if __name__ == "__main__":
    unittest.main()
