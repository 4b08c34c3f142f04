"""Drives Switchyard's /graphql with the `gql` client library, as an ordinary client would.

Usage: graphql_client.py HTTP_URL WS_URL TOKEN

Over HTTP (gql's requests transport, which first fetches the schema by introspection): a
query, the sendNotification mutation, a mutation the adapter rejects, a follow-up query of
the sent notification, and a request without a token. Over the WebSocket
(graphql-transport-ws): two subscriptions (notifications and deliveries of `gql.*`), a
mutation on the same socket, and the events for it; then sockets whose connection_init
carries no token, a bad one, or the token under `token`, and one that never sends
connection_init.

Prints one JSON object describing what it saw; tests/blackbox/graphql.rs asserts on it.
"""

import asyncio
import json
import sys

from gql import Client, GraphQLRequest, gql
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from gql.transport.exceptions import TransportQueryError, TransportServerError
from gql.transport.requests import RequestsHTTPTransport
from gql.transport.websockets import WebsocketsTransport

SEND = """
mutation Send($input: NotificationInput!) {
  sendNotification(input: $input) { id duplicate }
}
"""

NOTIFICATION = """
query One($id: String!) {
  notification(id: $id) { id kind source attributes payload deliveries { channel state } }
}
"""

ACCEPTED = """
subscription Accepted($kind: String) {
  notifications(kind: $kind) { id kind source }
}
"""

DELIVERED = """
subscription Delivered($kind: String, $channel: String) {
  deliveries(kind: $kind, channel: $channel) { notificationId kind channel outcome next }
}
"""

# How long to wait for an event the hub should send.
EVENT_TIMEOUT = 30


def over_http(url, token):
    seen = {}
    transport = RequestsHTTPTransport(
        url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    # Fetching the schema runs the full introspection query: it must fit the limits.
    client = Client(transport=transport, fetch_schema_from_transport=True)
    with client as session:
        seen["introspected"] = "NotificationInput" in client.schema.type_map
        seen["query"] = session.execute(
            gql("{ routes { channels } plugins { name world } }")
        )
        sent = session.execute(
            GraphQLRequest(
                SEND,
                variable_values={
                    "input": {
                        "kind": "gql.http",
                        "attributes": {"team": "ops"},
                        "payload": {"via": "http"},
                    }
                },
            )
        )
        seen["sent"] = sent["sendNotification"]
        try:
            session.execute(
                GraphQLRequest(SEND, variable_values={"input": {"kind": "not a kind"}})
            )
            seen["rejected"] = None
        except TransportQueryError as error:
            seen["rejected"] = error.errors[0]
        seen["notification"] = session.execute(
            GraphQLRequest(NOTIFICATION, variable_values={"id": seen["sent"]["id"]})
        )["notification"]

    anonymous = Client(transport=RequestsHTTPTransport(url=url, timeout=30))
    try:
        with anonymous as session:
            session.execute(gql("{ routes { path } }"))
        seen["anonymous_status"] = 200
    except TransportServerError as error:
        seen["anonymous_status"] = error.code
    return seen


def socket(url, init_payload):
    return WebsocketsTransport(
        url=url,
        init_payload=init_payload,
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )


async def collect(session, request, into):
    async for result in session.subscribe(request):
        into.append(result)


async def first(events, predicate):
    """Waits for an event in `events` (filled by a subscription) that matches."""
    while True:
        for event in events:
            if predicate(event):
                return event
        await asyncio.sleep(0.02)


async def over_websocket(url, token):
    seen = {}
    transport = socket(url, {"Authorization": f"Bearer {token}"})
    async with Client(transport=transport) as session:
        seen["subprotocol"] = transport.subprotocol
        accepted, delivered = [], []
        tasks = [
            asyncio.create_task(
                collect(
                    session,
                    GraphQLRequest(ACCEPTED, variable_values={"kind": "gql.*"}),
                    accepted,
                )
            ),
            asyncio.create_task(
                collect(
                    session,
                    GraphQLRequest(
                        DELIVERED, variable_values={"kind": "gql.*", "channel": "log"}
                    ),
                    delivered,
                )
            ),
        ]
        # Both subscribe messages are on the socket before the mutation, so the hub has
        # the subscriptions before it accepts the notification.
        while len(transport.listeners) < 2:
            await asyncio.sleep(0.01)
        other = await session.execute(
            GraphQLRequest(SEND, variable_values={"input": {"kind": "other.kind"}})
        )
        sent = await session.execute(
            GraphQLRequest(SEND, variable_values={"input": {"kind": "gql.socket"}})
        )
        id = sent["sendNotification"]["id"]
        seen["sent"] = id
        seen["other"] = other["sendNotification"]["id"]
        seen["accepted"] = (
            await asyncio.wait_for(
                first(accepted, lambda e: e["notifications"]["id"] == id),
                EVENT_TIMEOUT,
            )
        )["notifications"]
        seen["delivered"] = (
            await asyncio.wait_for(
                first(delivered, lambda e: e["deliveries"]["notificationId"] == id),
                EVENT_TIMEOUT,
            )
        )["deliveries"]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        seen["accepted_kinds"] = sorted({e["notifications"]["kind"] for e in accepted})
    return seen


async def init_outcome(url, payload):
    """Whether a socket with this connection_init payload is acknowledged, or how it was
    refused."""
    transport = socket(url, payload)
    try:
        async with Client(transport=transport):
            return {"connected": True}
    except Exception as error:
        # gql keeps the websockets exception that closed the socket as the cause.
        closed = error.__cause__ or error.__context__
        received = getattr(closed, "rcvd", None)
        return {
            "connected": False,
            "error": type(error).__name__,
            "close_code": received.code if received else None,
            "close_reason": received.reason if received else None,
        }


async def silent(url):
    """Opens a socket and never sends connection_init; reports how the hub closes it."""
    async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:
        try:
            await asyncio.wait_for(ws.recv(), 60)
            return {"closed": False}
        except ConnectionClosed as closed:
            return {"closed": True, "close_code": closed.rcvd.code if closed.rcvd else None}


async def main(http_url, ws_url, token):
    # The hub waits a while for connection_init; that runs alongside everything else.
    waiting = asyncio.create_task(silent(ws_url))
    seen = {"http": await asyncio.to_thread(over_http, http_url, token)}
    seen["ws"] = await over_websocket(ws_url, token)
    seen["ws_token_key"] = await init_outcome(ws_url, {"token": token})
    seen["ws_no_token"] = await init_outcome(ws_url, {})
    seen["ws_bad_token"] = await init_outcome(
        ws_url, {"Authorization": "Bearer sy_not-a-token"}
    )
    seen["ws_silent"] = await waiting
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
