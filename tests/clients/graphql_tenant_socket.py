"""Subscribes over Switchyard's GraphQL socket (graphql-transport-ws) with a token, speaking
the protocol by hand so every message the hub sends is seen as sent.

Usage: graphql_tenant_socket.py WS_URL TOKEN

Sends connection_init with the token, then subscribes to `notifications` and to
`deliveries`, and reports, for each, the first message the hub sends about it. Prints one
JSON object; tests/blackbox/tenants_graphql.rs asserts on it (a token confined to a tenant
is acknowledged, as any valid token, and every subscription is refused with an error).
"""

import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

# How long to wait for the hub's answer to one message.
ANSWER_TIMEOUT = 30

SUBSCRIPTIONS = {
    "notifications": "subscription { notifications { id kind } }",
    "deliveries": "subscription { deliveries { deliveryId channel } }",
}


async def first_for(ws, id):
    """The first message about operation `id`; the `complete` that ends an earlier one may
    come in between."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT))
        if message.get("id") == id:
            return message


async def main(url, token):
    seen = {}
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"token": token}}))
        try:
            ack = json.loads(await asyncio.wait_for(ws.recv(), ANSWER_TIMEOUT))
        except ConnectionClosed as closed:
            seen["acknowledged"] = False
            seen["close_code"] = closed.rcvd.code if closed.rcvd else None
            print(json.dumps(seen))
            return
        seen["acknowledged"] = ack.get("type") == "connection_ack"
        for number, (name, query) in enumerate(SUBSCRIPTIONS.items(), start=1):
            await ws.send(
                json.dumps({"id": str(number), "type": "subscribe", "payload": {"query": query}})
            )
            answer = await first_for(ws, str(number))
            payload = answer.get("payload")
            # A refusal comes as `error` (a list of errors) or as `next` with `errors`.
            errors = payload if isinstance(payload, list) else (payload or {}).get("errors")
            seen[name] = {"type": answer.get("type"), "errors": errors or []}
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
