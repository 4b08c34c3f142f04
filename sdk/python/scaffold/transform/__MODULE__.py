"""__NAME__: a Switchyard transform.

Drops notifications whose kind is in `config["drop_kinds"]`, splits a payload
`{"items": [...]}` into one notification per item, and stamps every notification it keeps
with the attribute `transformed-by`.

routes.yaml:
    transforms:
      shape:
        plugin: __NAME__
        config: {drop_kinds: [test.ping]}
    routes:
      - name: everything
        match: {kind: "*"}
        transform: [shape]
        to: [my]
"""

import switchyard_sdk as sy


class Plugin(sy.Transform):
    """Filters, splits and stamps notifications."""

    name = "__NAME__"
    version = "0.1.0"

    def transform(self, notification, context):
        if notification.kind in sy.config().get("drop_kinds", []):
            return sy.drop(f"kind {notification.kind} is filtered out on route {context.route}")
        try:
            payload = notification.payload_json()
        except ValueError:
            raise sy.TransformError.fail("the payload is not JSON")  # dead-lettered
        attributes = notification.attributes + [("transformed-by", "__NAME__")]
        if isinstance(payload, dict) and isinstance(payload.get("items"), list):
            return sy.split(sy.copy(notification, attributes=attributes, payload=item) for item in payload["items"][:100])
        return sy.keep(notification, attributes=attributes)


# componentize-py looks for this name: the transform world exports `Transformer`.
Transformer = sy.export_transform(Plugin)
