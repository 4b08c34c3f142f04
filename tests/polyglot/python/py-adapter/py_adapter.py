"""py-adapter: verifies Standard Webhooks signatures with the secret `secret` and turns a
JSON body {"kind": ..., "payload": ...} into one draft, keyed by webhook-id. A bad
signature is a 401 `invalid-signature`; a body that is not JSON is a 400."""

import switchyard_sdk as sy


class PyAdapter(sy.Adapter):
    """Turns a signed {"kind", "payload"} body into one draft."""

    name = "py-adapter"
    version = "0.1.0"

    def handle(self, request):
        message_id = sy.webhooks.verify_request(request, [sy.secret("secret")])
        body = request.json()
        if not isinstance(body, dict):
            raise sy.invalid_field("$", "must be an object")
        kind = body.get("kind")
        if not isinstance(kind, str) or sy.drafts.check_kind(kind):
            raise sy.invalid_field("kind", "must be a dotted kind such as invoice.paid")
        return sy.draft(kind, body.get("payload"), idempotency_key=message_id)


Inbound = sy.export_adapter(PyAdapter)
