"""__NAME__: a Switchyard channel.

POSTs every notification as JSON to `config["url"]` and lets the SDK turn the answer into
an outcome (2xx delivered; 408, 429 and 5xx retried, honouring Retry-After; 410 failed and
the destination disabled; anything else failed).

routes.yaml:
    channels:
      my:
        plugin: __NAME__
        config: {url: "https://hooks.example.com/notify"}
        allowed_hosts: [hooks.example.com]
"""

import switchyard_sdk as sy


class Plugin(sy.Channel):
    """Posts every notification as JSON to config["url"]."""

    name = "__NAME__"
    version = "0.1.0"

    def deliver(self, delivery):
        url = sy.config_value("url")  # a missing url fails the delivery with a clear reason
        n = delivery.notification
        body = {
            "id": n.id,
            "kind": n.kind,
            "source": n.source,
            "attributes": n.attributes_dict(),
            "payload": n.payload_json(),
        }
        sy.debug("posting %s (attempt %d)", n.id, delivery.attempt)
        return sy.outcome_from_response(sy.post(url).json(body).send())


# componentize-py looks for this name: the channel world exports `Outbound`.
Outbound = sy.export_channel(Plugin)
