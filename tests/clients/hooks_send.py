"""Sends one signed webhook to a Switchyard hook with `requests`, as a real sender would.

Usage:
    hooks_send.py URL --scheme standard|github --secret SECRET [options]

It signs the body itself, Standard Webhooks style (`webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, the key being
the base64 after `whsec_`) or GitHub style (`X-Hub-Signature-256: sha256=<hex HMAC-SHA256
of the body>`). Options make it misbehave on purpose: `--tamper` changes the body after
signing, `--timestamp-offset` moves the signed time, `--pad` inflates the body.

It prints one JSON line: a list with one answer per send (`--repeat` sends the very same
request again), each `{"status": 202, "content_type": "...", "body": <JSON or text>}`.
"""

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
import uuid

import requests


def standard_headers(secret, message_id, timestamp, body):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{signature}",
    }


def github_headers(secret, delivery_id, event, body):
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id,
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def answer_of(response):
    content_type = response.headers.get("content-type", "")
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return {"status": response.status_code, "content_type": content_type, "body": body}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--scheme", choices=["standard", "github"], default="standard")
    parser.add_argument("--secret", required=True)
    parser.add_argument("--id", default=None, help="webhook-id / X-GitHub-Delivery")
    parser.add_argument("--payload", default='{"type": "invoice.paid", "amount": 42}')
    parser.add_argument("--event", default="issues", help="X-GitHub-Event")
    parser.add_argument("--timestamp-offset", type=int, default=0, help="seconds")
    parser.add_argument("--tamper", action="store_true", help="alter the body after signing")
    parser.add_argument("--pad", type=int, default=0, help="add this many bytes of padding")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    payload = json.loads(args.payload)
    if args.pad:
        payload["padding"] = "x" * args.pad
    body = json.dumps(payload).encode()
    message_id = args.id or f"msg_{uuid.uuid4().hex}"
    if args.scheme == "standard":
        timestamp = int(time.time()) + args.timestamp_offset
        headers = standard_headers(args.secret, message_id, timestamp, body)
    else:
        headers = github_headers(args.secret, message_id, args.event, body)
    headers["content-type"] = "application/json"
    if args.tamper:
        body = body.replace(b"}", b', "tampered": true}', 1)

    answers = []
    with requests.Session() as session:
        for _ in range(args.repeat):
            response = session.post(args.url, data=body, headers=headers, timeout=60)
            answers.append(answer_of(response))
    json.dump(answers, sys.stdout)
    print()


if __name__ == "__main__":
    main()
