"""py-channel: POSTs each notification as JSON to config["url"], signed per Standard
Webhooks with the secret `signing_key`, and maps the answer with outcome_from_response.

The body has the webhook channel's shape: {"type", "timestamp", "id", "source",
"attributes", "data"}; the headers are content-type, webhook-id (the notification id),
webhook-timestamp (this attempt's time) and webhook-signature.
"""

import time

import switchyard_sdk as sy


def rfc3339_utc(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


class PyChannel(sy.Channel):
    """Posts each notification as signed JSON to config["url"]."""

    name = "py-channel"
    version = "0.1.0"

    def deliver(self, delivery):
        url = sy.config_value("url")
        try:
            secret = sy.webhooks.Secret.parse(sy.require_secret("signing_key"))
        except ValueError as e:  # ConfigError (not set) is a ValueError too
            return sy.failed(f"secret signing_key: {e}")
        n = delivery.notification
        try:
            data = n.payload_json()
        except ValueError as e:
            return sy.failed(f"the payload is not valid JSON: {e}")
        body = sy.drafts.to_json(
            {
                "type": n.kind,
                "timestamp": rfc3339_utc(n.created_at_ms),
                "id": n.id,
                "source": n.source,
                "attributes": n.attributes_dict(),
                "data": data,
            }
        ).encode("utf-8")
        # The attempt's time, not the notification's: a retry hours later must verify.
        timestamp = sy.now_secs()
        request = sy.post(url).header("content-type", "application/json").set_body(body)
        for name, value in sy.webhooks.sign_headers(secret, n.id, timestamp, body):
            request.header(name, value)
        sy.debug("posting %s (attempt %d)", n.id, delivery.attempt)
        return sy.outcome_from_response(request.send())


Outbound = sy.export_channel(PyChannel)
