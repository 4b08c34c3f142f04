"""Verifies one received webhook with the `standardwebhooks` library from PyPI, the way a
receiver would, once per secret.

Usage:
    verify_webhook.py REQUEST_JSON SECRET...

REQUEST_JSON is a file holding {"headers": {name: value}, "body_base64": "..."}: the
request exactly as the receiver got it. Prints one JSON object:
{"results": [{"verified": true|false, "error": "..."|null}, ...]}, one per SECRET, in
order. A secret that does not verify is a result, not a failure of the script.
"""

import base64
import json
import sys

from standardwebhooks import Webhook, WebhookVerificationError


def main():
    path, secrets = sys.argv[1], sys.argv[2:]
    with open(path, encoding="utf-8") as f:
        request = json.load(f)
    body = base64.b64decode(request["body_base64"])
    headers = request["headers"]
    results = []
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers)
            results.append({"verified": True, "error": None})
        except WebhookVerificationError as error:
            results.append({"verified": False, "error": str(error)})
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
