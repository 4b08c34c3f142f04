"""__NAME__: a Switchyard adapter.

Accepts a JSON body such as `{"kind": "build.failed", "payload": {...}}` (or a list of
them, or `{"notifications": [...]}`) signed per Standard Webhooks with the secret
`signing_secret`, and refuses anything else with the field and the reason.

routes.yaml (the source is then served at POST /hooks/builds):
    sources:
      builds:
        adapter: __NAME__
        secrets: {signing_secret: "${BUILDS_SIGNING_SECRET}"}
"""

import switchyard_sdk as sy


class Plugin(sy.Adapter):
    """Turns signed JSON notifications into drafts."""

    name = "__NAME__"
    version = "0.1.0"

    def handle(self, request):
        # A wrong or missing signature is a 401 `invalid-signature` rejection.
        message_id = sy.webhooks.verify_request(request, [sy.secret("signing_secret")])
        drafts = sy.drafts.from_json_body(request.body)  # bad JSON: 400; bad field: 422
        if len(drafts) == 1 and drafts[0].idempotency_key is None:
            drafts[0].idempotency_key = message_id  # a redelivered webhook is a no-op
        return drafts


# componentize-py looks for this name: the adapter world exports `Inbound`.
Inbound = sy.export_adapter(Plugin)
